"""`bluelm-edge plan`: the weight arithmetic against real `.pte` files, the ceiling arithmetic, and
one-line errors. The 2.9B check compares with the export recorded in benchmarks/export_full.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bluelm_edge.cli.main import app
from bluelm_edge.cli.plan import plan_report
from bluelm_edge.model.config import preset
from bluelm_edge.socs import load_socs

ROOT = Path(__file__).resolve().parents[1]


def test_fp32_arithmetic_is_the_pte_size(fp32_export):
    """fp32 (tied head, one table): the weights are the file but for its graphs + metadata (~0.5 MB)."""
    result = fp32_export[0]
    r = plan_report(result.out, None, None, None, ["cpu"])
    assert r["recipe"] == "fp32" and r["program_file_bytes"] == (result.out / "model.pte").stat().st_size
    assert 0 < r["program_file_bytes"] - r["program_bytes"] < 600_000


def test_3b_arithmetic_is_the_recorded_export():
    """The 2.9B preset at xnnpack-8da4w vs the `.pte` benchmarks/export_full.py wrote (2.07 GB)."""
    recorded = json.loads((ROOT / "benchmarks" / "export_full.json").read_text())
    r = plan_report(None, recorded["preset"], recorded["recipe"], recorded["max_context"], ["SM8650"])
    assert abs(r["program_bytes"] - recorded["pte_bytes"]) / recorded["pte_bytes"] < 0.02
    # a decode step reads the layers (4-bit + a 16-bit scale per 32) + the 8-bit head + the fp32 cache
    layers, head = recorded["parameters"]["decoder_layers"], recorded["parameters"]["output_head"]
    kv = 2 * 28 * 4 * 128 * 512 * 4
    assert r["decode_step_bytes"] == int(layers * 0.5625) + head + kv
    (row,) = r["socs"]
    assert row["decode_ceiling_tok_s"] == round(76.8e9 / r["decode_step_bytes"], 1)


def test_backends_per_chip_follow_the_catalogue():
    r = plan_report(None, "tiny", "qnn-16a4w", 128, None)
    runs = {row["soc"]: row["backend_runs"] for row in r["socs"]}
    assert runs == {s.id: "qnn" in s.backends for s in load_socs().values()}
    assert runs["SM8650"] and not runs["mt6989"]
    assert all(row["decode_ceiling_tok_s"] is None for row in r["socs"] if not row["backend_runs"])
    d = preset("tiny").decoder
    assert r["kv_cache_bytes"] == 2 * d.layers * d.kv_heads * d.head_dim * 128  # K and V, 8-bit (qnn-16a4w)


@pytest.mark.parametrize(("args", "message"), [
    (["--soc", "SM9999"], "unknown SoC 'SM9999'; known: SM8550"),
    (["--context", "100000"], "--context 100000 must be between 1 and the model's"),
    (["--recipe", "nope"], "unknown recipe 'nope'"),
])
def test_bad_input_is_one_line(args, message):
    from test_cli import cli

    res = cli("plan", "--preset", "tiny", *args)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], res.stderr


def test_table_names_every_chip():
    res = CliRunner().invoke(app, ["plan", "--preset", "bluelm-2.5-3b", "--context", "1024"])
    assert res.exit_code == 0, res.output
    assert all(s.id in res.output for s in load_socs().values()) and "decode ceiling" in res.output
