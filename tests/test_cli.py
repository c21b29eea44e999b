"""The CLI entry: every command has --help with an example; user errors are one line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bluelm_edge.cli.main import app


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bluelm_edge.cli.main", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            for sub in cmd.commands:
                yield f"{name} {sub}"
        else:
            yield name


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_help_with_an_example(command: str) -> None:
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, [*command.split(), "--help"])
    assert out.exit_code == 0, out.output
    assert "Example" in out.output, f"`{command} --help` shows no example"


def test_missing_model_is_one_line_exit_2() -> None:
    res = cli("chat", "/nonexistent/model", "--prompt", "hi")
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no such checkpoint" in lines[0]
    assert "Traceback" not in res.stderr


def test_debug_variable_shows_the_traceback() -> None:
    res = cli("chat", "/nonexistent/model", "--prompt", "hi", env={"BLUELM_DEBUG": "1"})
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_unknown_option_is_a_usage_error() -> None:
    res = cli("chat", "--no-such-option")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_doctor_json_reports_versions_and_sdks() -> None:
    res = cli("doctor", "--json", env={"QNN_SDK_ROOT": ""})
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["versions"]["torch"].startswith("2.13.0")
    assert doc["versions"]["executorch"] == "1.5.1"
    assert doc["qnn_sdk"]["found"] is False and "QNN_SDK_ROOT" in doc["qnn_sdk"]["detail"]
    assert doc["neuropilot"]["found"] is False


@pytest.mark.parametrize(("args", "message"), [
    (("--backend", "qnn", "--shards", "0"), "--shards '0': give a positive number of shards or 'auto'"),
    (("--backend", "qnn", "--shards", "9", "--preset", "tiny"),
     "--shards 9: the decoder has 4 layers; a shard holds at least one, use at most 4"),
    (("--shards", "2"), "--shards applies to qnn and mediatek; an XNNPACK program is one CPU graph"),
    (("--backend", "mediatek", "--graph-io", "kv"),
     "--graph-io kv applies to qnn; mediatek programs take fp32 I/O (--graph-io float)"),
    (("--backend", "qnn", "--graph-io", "int8"), "--graph-io int8 is not one of kv, full, float"),
])
def test_bad_shards_are_one_line_before_any_work(tmp_path, args, message) -> None:
    res = cli("export", "--out", str(tmp_path / "b"), *args, env={"QNN_SDK_ROOT": ""})
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and lines == [f"error: {message}"], res.stderr[-500:]
    assert not (tmp_path / "b").exists()
