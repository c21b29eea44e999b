"""The package's flow is one-way: each lower layer imports nothing from the layers above it (any
import, module-level or inside a function), so a backend's graph forms, the quantizer and the data
readers can be used and tested without the export pipeline, the trainer or the CLI."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "bluelm_edge"
ABOVE_ALL = ("cli", "device", "android", "export", "train")
# layer (a module or package of bluelm_edge) -> the packages above it that it must not import
FORBIDDEN = {
    "contract": (*ABOVE_ALL, "quant", "graphs", "datasets", "session", "generate"),
    "datasets": (*ABOVE_ALL, "quant", "graphs"),
    "graphs": (*ABOVE_ALL, "quant", "datasets"),
    "quant": ABOVE_ALL,
}


def imported(path: Path) -> set[str]:
    """Every `bluelm_edge.<top>` a file imports, as `<top>`."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "bluelm_edge":
                out |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bluelm_edge.")}
    return out


def layer_files(layer: str) -> list[Path]:
    return sorted((PKG / layer).rglob("*.py")) if (PKG / layer).is_dir() else [PKG / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_import_nothing_above_them(layer):
    files = layer_files(layer)
    assert files and all(f.is_file() for f in files)
    bad = {f"{f.relative_to(PKG)} imports bluelm_edge.{top}"
           for f in files for top in imported(f) & set(FORBIDDEN[layer])}
    assert not bad, sorted(bad)


def test_the_checker_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from bluelm_edge.export import bundle\n    import bluelm_edge.cli.main\n"
                 "from bluelm_edge import contract\n")
    assert imported(f) == {"export", "cli", "contract"}
