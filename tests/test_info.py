"""`bluelm-edge info`: parameter counts of the presets and of a saved checkpoint, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from typer.testing import CliRunner

from bluelm_edge.cli.main import app
from bluelm_edge.errors import ConfigError
from bluelm_edge.model.checkpoint import save_checkpoint
from bluelm_edge.model.config import tiny
from bluelm_edge.model.vlm import BlueLM


def _info(*args: str) -> dict:
    out = CliRunner().invoke(app, ["info", *args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_bluelm_2_5_3b_preset_is_2_9b_with_a_0_4b_vit():
    report = _info("--preset", "bluelm-2.5-3b")
    p = report["parameters"]
    assert abs(p["total"] - 2.9e9) <= 0.03 * 2.9e9
    assert 0.35e9 <= p["vision"] <= 0.45e9
    assert 2.3e9 <= p["total"] - p["vision"] - p["adapter"] <= 2.6e9  # "a 2.5B decoder"
    assert p["total"] == sum(v for k, v in p.items() if k != "total")
    assert report["memory_bytes"]["total"]["fp16"] == p["total"] * 2
    assert report["memory_bytes"]["decoder_layers"]["int4"] == p["decoder_layers"] // 2
    assert report["image_tokens_per_tile"] == 196  # 27x27 patches -> 14x14 after the padded 2x2 merge
    assert report["config"]["vision"]["layers"] == 27


def test_info_of_a_checkpoint_matches_its_weights(tmp_path):
    torch.manual_seed(0)
    cfg = tiny()
    model = BlueLM(cfg)
    save_checkpoint(model, cfg, tmp_path / "ck")
    report = _info(str(tmp_path / "ck"))
    assert report["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert report["parameters"]["output_head"] == 0  # tiny ties the head to the embedding
    table = CliRunner().invoke(app, ["info", str(tmp_path / "ck")])
    assert table.exit_code == 0 and "decoder layers" in table.output


def test_unknown_preset_is_one_line_naming_the_choices():
    out = CliRunner().invoke(app, ["info", "--preset", "nope"])
    assert out.exit_code == 1
    assert isinstance(out.exception, ConfigError)
    assert str(out.exception) == "unknown preset 'nope'; choose one of: bluelm-2.5-3b, tiny, geometry"
    proc = subprocess.run(
        [sys.executable, "-m", "bluelm_edge.cli.main", "info", "--preset", "nope"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "QNN_SDK_ROOT": ""},
    )
    assert proc.returncode == 1
    choices = "bluelm-2.5-3b, tiny, geometry"
    assert proc.stderr.strip().splitlines() == [f"error: unknown preset 'nope'; choose one of: {choices}"]
