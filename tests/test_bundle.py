"""Bundle writing and verification: manifest schema, sizes + sha256, atomic writes, killed exports.

These bundles hold small placeholder programs (a valid ExecuTorch header in front of filler bytes:
verification without the runtime reads only the header, sizes and hashes); real `.pte` bundles,
and what the runtime check finds in broken ones, are in test_export.py and test_user_files.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fake_program import fake_pte
from typer.testing import CliRunner

from bluelm_edge import contract
from bluelm_edge.export.bundle import verify_bundle, write_bundle
from bluelm_edge.io import sha256_file
from bluelm_edge.model.config import tiny

PTE_BYTES = fake_pte(b"placeholder program bytes " * 100)


def _fill(tmp: Path) -> None:
    (tmp / contract.MODEL_PTE).write_bytes(PTE_BYTES)
    (tmp / contract.TOKENIZER_JSON).write_text("{}")
    tiny().save(tmp / contract.CONFIG_JSON)


def _args(lowered: bool = True) -> dict:
    return {"cfg": tiny(), "backend": "xnnpack", "soc": None, "recipe": "xnnpack-8da4w", "lowered": lowered,
            "vision_batch": 1}


def test_manifest_fields_and_verify_ok(tmp_path):
    out = tmp_path / "b"
    manifest = write_bundle(out, _fill, _args())
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest and verify_bundle(out) == []
    assert manifest["schema_version"] == 1 and manifest["program"] == "model.pte" and manifest["soc"] is None
    entry = next(f for f in manifest["files"] if f["path"] == "model.pte")
    assert entry == {"path": "model.pte", "size": len(PTE_BYTES), "sha256": sha256_file(out / "model.pte")}
    assert manifest["bundle_id"] == f"bluelm-tiny-xnnpack-8da4w-{entry['sha256'][:8]}"
    app = manifest["app"]
    assert app["token_ids"] == {"bos": 1, "eos": 2, "human": 3, "ai": 4, "blue_think": 5, "think_start": 6,
                                "think_end": 7, "im_start": 8, "image": 9, "im_end": 10}
    assert app["tokens"]["think_end"] == "</think>" and app["tokens"]["ai"] == "[|AI|]:"
    assert app["image"] == {"tile_size": 64, "max_tiles": 1, "tokens_per_tile": 16, "thumbnail": True,
                            "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "vision_batch": 1}
    assert app["max_context"] == 512 and app["eos_ids"] == [2]
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temp folder left beside it


def test_verify_reports_each_problem(tmp_path):
    out = tmp_path / "b"
    write_bundle(out, _fill, _args())
    data = bytearray((out / "model.pte").read_bytes())
    data[5] ^= 1
    (out / "model.pte").write_bytes(bytes(data))
    (out / "stray.bin").write_bytes(b"x")
    (out / "tokenizer.json").write_text("{} ")
    problems = verify_bundle(out)
    assert problems == ["model.pte: sha256 does not match manifest.json (corrupt or changed)",
                        "tokenizer.json: size 3 != 2 in manifest.json",
                        "stray.bin: not listed in manifest.json"]
    (out / "config.json").unlink()
    assert "config.json: listed in manifest.json but missing" in verify_bundle(out)
    (out / "manifest.json").unlink()
    assert len(verify_bundle(out)) == 1 and "no manifest.json" in verify_bundle(out)[0]


def test_lowering_ready_bundle_needs_program_and_coverage(tmp_path):
    out = tmp_path / "b"
    write_bundle(out, lambda t: (_fill(t), (t / "program.pt2").write_bytes(b"p")), _args(lowered=False))
    assert verify_bundle(out) == ["coverage.json: required for a lowering-ready bundle but not in manifest.json"]


def test_cli_bundle_verify(tmp_path):
    from bluelm_edge.cli.main import app

    out = tmp_path / "b"
    write_bundle(out, _fill, _args())
    runner = CliRunner()
    assert verify_bundle(out) == []  # manifest, hashes and header are fine; the CLI also runs the program
    fake = runner.invoke(app, ["bundle", "verify", str(out), "--json"])
    assert fake.exit_code == 1 and json.loads(fake.stdout) == {"bundle": str(out), "ok": False, "problems": [
        "model.pte: the ExecuTorch runtime cannot load it (Failed to load program, error: 0x:23); re-export the "
        "bundle (`bluelm-edge export`) or copy it again"]}
    (out / "model.pte").write_bytes(b"short")
    bad = runner.invoke(app, ["bundle", "verify", str(out)])
    assert bad.exit_code != 0
    assert f"model.pte: size 5 != {len(PTE_BYTES)} in manifest.json" in bad.output


_SLOW_WRITER = """
import sys, time
from pathlib import Path
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
from tests.test_bundle import _args, _fill
from bluelm_edge.export.bundle import write_bundle
def fill(tmp):
    _fill(tmp)
    Path({flag!r}).write_text("filled")
    time.sleep(60)
write_bundle(Path({out!r}), fill, _args())
"""


def test_killed_export_leaves_nothing_that_verifies_and_rerun_completes(tmp_path):
    out, flag = tmp_path / "b", tmp_path / "flag"
    code = _SLOW_WRITER.format(root=str(Path(__file__).resolve().parent.parent), flag=str(flag), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert flag.exists(), "writer never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and verify_bundle(out) != []
    partials = list(tmp_path.glob(".b.*.partial"))
    assert len(partials) == 1 and verify_bundle(partials[0]) != []
    write_bundle(out, _fill, _args())  # the rerun
    assert verify_bundle(out) == [] and not list(tmp_path.glob(".b.*.partial"))
