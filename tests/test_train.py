"""The trainer: the loss falls, resume equals an uninterrupted run exactly, 2-process DDP equals
1 process, the LR schedule, user JSONL chats (and their errors), and the `train` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from bluelm_edge.cli.main import app
from bluelm_edge.datasets.chats import load_chats
from bluelm_edge.errors import DataError
from bluelm_edge.train import trainer
from bluelm_edge.train.state import LOG_JSON, STATE_JSON

FAST = dict(batch_size=8, lr=3e-3, warmup=2, eval_every=0, eval_size=0, save_every=0, vocab_size=300)


def _cfg(**kw) -> trainer.TrainConfig:
    return trainer.TrainConfig(**(FAST | kw))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_lr_schedule():
    cfg = _cfg(steps=110, warmup=10, lr=1e-3, min_lr_ratio=0.1)
    assert trainer.lr_at(0, cfg) == pytest.approx(1e-4)
    assert trainer.lr_at(9, cfg) == pytest.approx(1e-3)
    assert trainer.lr_at(60, cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert trainer.lr_at(110, cfg) == pytest.approx(1e-4)


def test_loss_decreases_in_a_few_steps(tmp_path):
    run = trainer.setup(_cfg(steps=25, tasks=["add", "img_compare"]), tmp_path / "run")
    trainer.train(run)
    losses = [h["loss"] for h in run.history]
    assert len(losses) == 25
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses
    # the final checkpoint loads, keeps its log, and has no optimizer state
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", LOG_JSON} <= files
    assert STATE_JSON not in files
    assert json.loads((tmp_path / "run" / "config.json").read_text())["decoder"]["vocab_size"] == 300


def test_resume_equals_uninterrupted(tmp_path):
    cfg = _cfg(steps=6, tasks=["count", "shapes"])
    full = trainer.train(trainer.setup(cfg, tmp_path / "full"))
    part = trainer.train(trainer.setup(cfg, tmp_path / "part"), stop_after=3)
    assert part.step == 3 and (tmp_path / "part" / STATE_JSON).is_file()
    torch.manual_seed(12345)  # a resumed process starts with other RNG state: restored from disk
    resumed = trainer.setup(cfg, tmp_path / "part")
    assert resumed.step == 3
    trainer.train(resumed)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_settings_is_refused(tmp_path):
    trainer.train(trainer.setup(_cfg(steps=4, tasks=["count"]), tmp_path / "r"), stop_after=1)
    with pytest.raises(Exception, match="other settings"):
        trainer.setup(_cfg(steps=4, tasks=["count"], lr=1e-2), tmp_path / "r")


def _torchrun(nproc: int, out: Path) -> dict:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
        "-m", "bluelm_edge.cli.main", "train", "--out", str(out), "--steps", "5", "--batch-size", "8",
        "--tasks", "add,grid", "--vocab-size", "300", "--warmup", "2", "--fp32", "--eval-every", "0",
        "--save-every", "0", "--json",
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1", "QNN_SDK_ROOT": ""}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
    return json.loads((out / LOG_JSON).read_text())


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    """Same global batch (8): 2 ranks x 4 vs 1 x 8, fp32. Tolerance: losses within 1e-4
    relative and weights within 1e-4 absolute after 5 steps (summation order differs)."""
    one, two = _torchrun(1, tmp_path / "one"), _torchrun(2, tmp_path / "two")
    l1 = [h["loss"] for h in one["history"]]
    l2 = [h["loss"] for h in two["history"]]
    assert len(l1) == len(l2) == 5
    assert l2 == pytest.approx(l1, rel=1e-4)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def _chats(tmp_path: Path, lines: list[str]) -> Path:
    from bluelm_edge.datasets.images import draw_numbers

    draw_numbers(12, 34).save(tmp_path / "n.png")
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"messages": [
    {"role": "user", "content": "Add them.", "images": ["n.png"]},
    {"role": "assistant", "content": "46", "thinking": "12+34=46"},
]})


def test_jsonl_chats_load(tmp_path):
    chats = load_chats(_chats(tmp_path, [GOOD, "", GOOD.replace("46", "47")]))
    assert len(chats) == 2 and chats[0][1].thinking == "12+34=46"
    assert chats[1][0].images == [tmp_path / "n.png"]


@pytest.mark.parametrize(("bad", "why"), [
    ("{not json", "invalid JSON"),
    (json.dumps({"chat": []}), "unknown key 'chat'; valid keys: messages"),
    (json.dumps({}), "missing key 'messages'"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "last message must be the assistant"),
    (json.dumps({"messages": [{"role": "user", "content": "a", "images": ["x.png"]},
                              {"role": "assistant", "content": "b"}]}), "image 'x.png' not found"),
    (json.dumps({"messages": [{"role": "bot", "content": "a"}]}), "role 'bot'"),
])
def test_jsonl_bad_line_names_the_line(tmp_path, bad, why):
    path = _chats(tmp_path, [GOOD, GOOD, bad])
    with pytest.raises(DataError, match=rf"chats.jsonl:3: .*{why}"):
        load_chats(path)


def test_train_command_fine_tunes_on_chats(tmp_path):
    runner = CliRunner()
    base = tmp_path / "base"
    r = runner.invoke(app, ["train", "--out", str(base), "--steps", "2", "--batch-size", "4",
                            "--tasks", "add", "--vocab-size", "300", "--json"])
    assert r.exit_code == 0, r.output
    data = _chats(tmp_path, [GOOD])
    r = runner.invoke(app, ["train", "--init", str(base), "--data", str(data), "--out", str(tmp_path / "ft"),
                            "--steps", "3", "--batch-size", "2", "--lr", "1e-3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["step"] == 3
    assert (tmp_path / "ft" / "tokenizer.json").read_text() == (base / "tokenizer.json").read_text()


def test_train_command_errors_are_one_line(tmp_path):
    bad = _chats(tmp_path, ["{oops"])
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "x"), "--data", str(bad)])
    assert isinstance(r.exception, DataError) and "chats.jsonl:1" in str(r.exception)
    r = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "x"), "--tasks", "nope"])
    assert "unknown task 'nope'" in str(r.exception)
    assert "Example: bluelm-edge train" in CliRunner().invoke(app, ["train", "--help"]).output
