"""Never lose a user's files; a broken program is one line, never an abort (issue 16).

Each CLI case runs the real entry point in a subprocess (exit code, stderr exactly one line, no
traceback, no "internal error") and hashes the folder around the output before and after: nothing
that was there may change. Refusals happen before any expensive work, so these are fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_program import fake_pte

from bluelm_edge import contract, io
from bluelm_edge.export.bundle import verify_bundle, write_bundle
from bluelm_edge.model.config import tiny
from bluelm_edge.paths import DEFAULT_MODEL_DIR

REPO = Path(__file__).resolve().parent.parent
FIX = "re-export the bundle (`bluelm-edge export`) or copy it again"


def cli(*args: str, cwd: Path) -> tuple[int, str]:
    """(exit code, stderr) of `bluelm-edge ARGS`; a wide terminal so a line is never wrapped."""
    env = {**os.environ, "COLUMNS": "1000", "PYTHONPATH": str(REPO), "QNN_SDK_ROOT": ""}
    res = subprocess.run([sys.executable, "-m", "bluelm_edge.cli.main", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    return res.returncode, res.stderr


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (and the names of empty folders)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def error_line(stderr: str) -> str:
    """The one `error:` line of a refusal (library chatter on other lines is another issue's)."""
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture
def user_dir(tmp_path):
    """A folder of the user's (a thesis and a notes folder) inside the test's workspace."""
    d = tmp_path / "mine"
    (d / "notes").mkdir(parents=True)
    (d / "thesis.txt").write_text("three years of work\n")
    (d / "notes" / "a.md").write_text("# a\n")
    return d


# ---- io: the one place that decides ----------------------------------------------------------
def test_atomic_dir_refuses_a_folder_it_did_not_write(user_dir, tmp_path):
    before = tree(tmp_path)
    with pytest.raises(io.OutputExistsError) as err, io.atomic_dir(user_dir) as tmp:
        (tmp / "x").write_text("new")
    assert str(err.value) == (f"--out {user_dir}: holds files bluelm-edge did not write (notes, thesis.txt); "
                              "give a new or empty folder (nothing was changed)")
    assert err.value.exit_code == 2 and tree(tmp_path) == before


def test_atomic_dir_never_turns_a_file_into_a_folder(tmp_path):
    f = tmp_path / "report.pdf"
    f.write_bytes(b"%PDF")
    before = tree(tmp_path)
    with pytest.raises(io.OutputExistsError, match="is a file, not a folder"), io.atomic_dir(f):
        pass
    with pytest.raises(io.OutputExistsError, match=r"report.pdf is a file, not a folder; give another path"), \
            io.atomic_dir(f / "sub"):
        pass
    assert tree(tmp_path) == before


def test_our_output_is_replaced_only_when_the_new_one_is_complete(tmp_path):
    out = tmp_path / "calib"
    with io.atomic_dir(out) as tmp:
        (tmp / "v").write_text("1")
    assert (out / io.MARKER).is_file()
    with pytest.raises(RuntimeError), io.atomic_dir(out) as tmp:  # interrupted: the old one stays
        (tmp / "v").write_text("2")
        assert (out / "v").read_text() == "1"
        raise RuntimeError("killed")
    assert (out / "v").read_text() == "1"
    with io.atomic_dir(out) as tmp:
        (tmp / "v").write_text("2")
    assert (out / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]  # no .partial / .old left


def test_a_file_the_user_added_to_our_output_makes_it_theirs(tmp_path):
    out = tmp_path / "calib"
    with io.atomic_dir(out) as tmp:
        (tmp / "inputs.safetensors").write_bytes(b"x")
    (out / "notes.txt").write_text("mine")
    before = tree(tmp_path)
    with pytest.raises(io.OutputExistsError, match=r"did not write \(notes.txt\)"), io.atomic_dir(out):
        pass
    assert tree(tmp_path) == before


def test_a_user_dot_old_folder_beside_the_output_survives(tmp_path):
    out = tmp_path / "b"
    with io.atomic_dir(out):
        pass
    (tmp_path / ".b.old").mkdir()
    (tmp_path / ".b.old" / "keep.txt").write_text("mine")
    with io.atomic_dir(out):
        pass
    assert (tmp_path / ".b.old" / "keep.txt").read_text() == "mine"


def test_the_working_folder_is_never_an_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in (Path("."), Path(""), tmp_path, Path("..")):
        with pytest.raises(io.OutputExistsError, match="cannot write over the current folder"):
            io.check_output_dir(path)


def test_atomic_path_removes_a_signer_sidecar(tmp_path):
    out = tmp_path / "app.apk"
    with io.atomic_path(out) as tmp:
        tmp.write_bytes(b"apk")
        Path(f"{tmp}.idsig").write_bytes(b"v4 signature")  # what apksigner writes beside its --out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.apk"]


def test_a_file_output_replaces_only_our_own_file(tmp_path):
    mine = tmp_path / "plot.png"
    mine.write_bytes(b"\x89PNG user's picture")
    with pytest.raises(io.OutputExistsError) as err:
        io.check_output_file(mine, "--plot", ours=io.is_our_png)
    assert str(err.value) == (f"--plot {mine}: exists and was not written by bluelm-edge; give another path or "
                              "pass --overwrite")
    io.check_output_file(mine, "--plot", ours=io.is_our_png, overwrite=True)
    ours = tmp_path / "ours.png"
    _our_png(ours)
    io.check_output_file(ours, "--plot", ours=io.is_our_png)
    with pytest.raises(io.OutputExistsError, match="is a folder; give a file path"):
        io.check_output_file(tmp_path, "--plot")


def _our_png(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.savefig(path, format="png", metadata={"Software": io.PNG_SOFTWARE})
    plt.close(fig)


# ---- every writing command refuses at its entry ------------------------------------------------
def _cases(d: str) -> list[tuple[list[str], str]]:
    folder = "holds files bluelm-edge did not write (notes, thesis.txt); give a new or empty folder (nothing was " \
             "changed)"
    return [
        (["export", "--out", d, "--preset", "tiny"], f"--out {d}: {folder}"),
        (["calibrate", "--out", d], f"--out {d}: {folder}"),
        (["quantize", "--recipe", "xnnpack-8da4w", "--out", d], f"--out {d}: {folder}"),
        (["train", "--out", d, "--steps", "1"], f"--out {d}: {folder}"),
        (["profile", "--host", "nothing", "--plot", d], f"--plot {d}: {folder}"),
        (["export", "--out", f"{d}/thesis.txt"], f"--out {d}/thesis.txt: is a file, not a folder; give a folder "
                                                  "path that does not exist"),
        (["export", "--out", "."], "--out .: cannot write over the current folder or one above it; give a new "
                                   "path, e.g. a subfolder name"),
        (["eval", "--plot", f"{d}/thesis.txt"], f"--plot {d}/thesis.txt: exists and was not written by "
                                                "bluelm-edge; give another path or pass --overwrite"),
        (["run", "nothing", "-p", "hi", "--profile", "--etdump", f"{d}/thesis.txt"],
         f"--etdump {d}/thesis.txt: exists and was not written by bluelm-edge; give another path"),
        (["package", "--out", f"{d}/thesis.txt"], f"--out {d}/thesis.txt: exists and was not written by "
                                                  "bluelm-edge; give another path or pass --overwrite"),
    ]


@pytest.mark.parametrize("case", range(len(_cases("mine"))))
def test_commands_refuse_the_users_files_before_working(case, user_dir, tmp_path):
    args, message = _cases("mine")[case]
    before = tree(tmp_path)
    code, stderr = cli(*args, cwd=tmp_path)
    assert (code, error_line(stderr)) == (2, f"error: {message}")
    assert tree(tmp_path) == before


def test_bundle_refuses_a_user_folder_and_replaces_its_own(user_dir, tmp_path):
    out = tmp_path / "b"
    write_bundle(out, _fill(fake_pte(b"one")), _args())
    first = tree(out)
    write_bundle(out, _fill(fake_pte(b"two")), _args())  # our bundle (manifest): replaced
    assert tree(out) != first and verify_bundle(out) == []
    assert not (out / io.MARKER).exists()  # a bundle is marked by its manifest, not a stray file
    before = tree(tmp_path)
    with pytest.raises(io.OutputExistsError, match="holds files bluelm-edge did not write"):
        write_bundle(user_dir, _fill(fake_pte(b"three")), _args())
    assert tree(tmp_path) == before
    (out / "thesis.txt").write_text("mine")  # put into our bundle: now the folder is not ours alone
    with pytest.raises(io.OutputExistsError, match=r"did not write \(thesis.txt\)"):
        write_bundle(out, _fill(fake_pte(b"four")), _args())
    assert (out / "thesis.txt").read_text() == "mine"


# ---- a broken program is one line, before the runtime can abort ---------------------------------
def _fill(pte: bytes):
    def fill(tmp: Path) -> None:
        (tmp / contract.MODEL_PTE).write_bytes(pte)
        shutil.copyfile(DEFAULT_MODEL_DIR / "tokenizer.json", tmp / contract.TOKENIZER_JSON)
        tiny().save(tmp / contract.CONFIG_JSON)

    return fill


def _args() -> dict:
    return {"cfg": tiny(), "backend": "xnnpack", "soc": None, "recipe": "fp32", "lowered": True, "vision_batch": 1}


def _bundle(root: Path, pte: bytes) -> Path:
    """A bundle whose manifest matches `pte` exactly (sizes and sha256 updated), as in the report."""
    write_bundle(root / "bundle", _fill(pte), _args())
    return root / "bundle"


def _truncated() -> bytes:
    data = fake_pte(bytes(4000))
    return data[:1000]  # the header still declares 4040 bytes


BROKEN = {
    "random": (random.Random(0).randbytes(3000),
               f"model.pte: not an ExecuTorch program (no ET12 identifier at byte 4); {FIX}"),
    "truncated": (_truncated(), f"model.pte: truncated: its header declares 4040 bytes, the file has 1000; {FIX}"),
    "garbage": (fake_pte(random.Random(1).randbytes(3000)),
                f"model.pte: the ExecuTorch runtime cannot load it (Failed to load program, error: 0x:23); {FIX}"),
}
COMMANDS = {
    "run": ["run", "bundle", "--prompt", "hi"],
    "eval": ["eval", "bundle", "--limit", "1"],
    "profile": ["profile", "--host", "bundle"],
    "deploy": ["deploy", "bundle"],
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_bundle_verify_reads_the_program_not_only_the_manifest(kind, tmp_path):
    pte, line = BROKEN[kind]
    bundle = _bundle(tmp_path, pte)
    assert verify_bundle(bundle) == ([] if kind == "garbage" else [line])  # without the runtime: header only
    before = tree(tmp_path)
    code, stderr = cli("bundle", "verify", "bundle", cwd=tmp_path)
    assert code == 1 and f"bundle: {line}" in stderr.splitlines()
    assert error_line(stderr) == "error: bundle: 1 problem(s); re-export with `bluelm-edge export`"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_random_program_is_one_line_for_every_command(command, tmp_path):
    pte, line = BROKEN["random"]
    _bundle(tmp_path, pte)
    before = tree(tmp_path)
    code, stderr = cli(*COMMANDS[command], cwd=tmp_path)
    assert (code, error_line(stderr)) == (1, f"error: bundle/{line}")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_run_on_a_broken_program_is_one_line_not_an_abort(kind, tmp_path):
    pte, line = BROKEN[kind]
    _bundle(tmp_path, pte)
    before = tree(tmp_path)
    code, stderr = cli("run", "bundle", "--prompt", "hi", cwd=tmp_path)
    assert (code, error_line(stderr)) == (1, f"error: bundle/{line}")
    assert tree(tmp_path) == before


def test_contract_metadata_keys_are_what_metadata_writes():
    assert tuple(contract.metadata(tiny(), 1, 1)) == contract.METADATA_KEYS


@pytest.mark.slow
def test_real_program_verifies_and_a_mismatched_manifest_does_not(fp32_export, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(fp32_export[0].out, bundle)
    assert verify_bundle(bundle, runtime=True) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["app"]["max_context"] = 999
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert verify_bundle(bundle, runtime=True) == [
        f"model.pte: get_max_context_len is 256 but manifest.json says 999; {FIX}"]


def test_a_plot_folder_is_ours_only_if_it_holds_nothing_but_our_plots(tmp_path):
    from bluelm_edge.device.report import is_plot_folder

    _our_png(tmp_path / "decode_tok_s.png")
    assert is_plot_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert not is_plot_folder(tmp_path)
