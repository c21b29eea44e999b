"""Interactive `bluelm-edge chat`: commands answer at once, a user error never costs the conversation.

Driven through Typer's CliRunner with the shipped tiny checkpoint and a few generated tokens;
`ChatSession.ask` is wrapped to record what reached the model and how long the history was.
"""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from bluelm_edge.cli.chat import HELP
from bluelm_edge.cli.main import app
from bluelm_edge.session import ChatSession


@pytest.fixture
def asked(monkeypatch):
    """(text, number of images, history length) of every turn sent to the model."""
    calls: list[tuple[str, int, int]] = []
    real = ChatSession.ask

    def ask(self, text, images=(), **kw):
        calls.append((text, len(images), len(self.history)))
        return real(self, text, images, **kw)

    monkeypatch.setattr(ChatSession, "ask", ask)
    return calls


def _chat(lines: list[str], tmp_path, monkeypatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["chat", "--no-think", "--max-new-tokens", "3"], input="\n".join(lines) + "\n")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    return [ln.removeprefix("you> ") for ln in res.output.splitlines()]


def _images(tmp_path):
    Image.effect_noise((64, 64), 60).convert("RGB").save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])  # an incomplete download
    (tmp_path / "photos").mkdir()


def test_bad_images_are_one_line_and_the_conversation_goes_on(tmp_path, monkeypatch, asked):
    _images(tmp_path)
    out = _chat(["What is 2+3?", "/image missing.png", "/image photos", "/image half.png", "/image",
                 "/image ok.png", "What is 4+4?"], tmp_path, monkeypatch)
    for line in ("error: missing.png: no such image file",
                 "error: photos: is a folder; give an image file (PNG or JPEG)",
                 "error: half.png: cannot decode it (Truncated File Read); is the file complete?",
                 "error: /image needs a path, e.g. /image photo.png",
                 "attached ok.png (64x64); it goes with your next message"):
        assert line in out, out
    assert asked == [("What is 2+3?", 0, 0), ("What is 4+4?", 1, 2)]  # history kept, the good image sent


def test_help_reset_and_unknown_commands(tmp_path, monkeypatch, asked):
    out = _chat(["/help", "What is 2+3?", "/reset", "/frobnicate now", "What is 4+4?", "/quit", "never sent"],
                tmp_path, monkeypatch)
    assert "\n".join(out).count(HELP) == 1 and "/image PATH" in HELP and "/reset" in HELP
    assert "conversation cleared" in out
    assert "error: unknown command /frobnicate; /help lists the commands" in out
    assert asked == [("What is 2+3?", 0, 0), ("What is 4+4?", 0, 0)]  # reset emptied the history


def test_a_turn_over_the_context_keeps_the_history(tmp_path, monkeypatch, asked):
    out = _chat(["What is 2+3?", "word " * 2000, "What is 4+4?"], tmp_path, monkeypatch)
    assert sum(ln.startswith("error: ") for ln in out) == 1, out
    assert [(t[:5], h) for t, _, h in asked] == [("What ", 0), ("word ", 2), ("What ", 2)]
