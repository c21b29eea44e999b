"""`bluelm-edge chat`: interactive or one-shot chat with a checkpoint, a bundle or a preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from bluelm_edge.cli.common import JsonOpt, ModelArg, PresetOpt, load_for_generation
from bluelm_edge.errors import BlueLMError, UsageError
from bluelm_edge.generate import Sampling
from bluelm_edge.session import ChatSession, Reply

STYLES = {"think": "dim", "forced": "dim italic yellow", "answer": ""}


def _printer(console: Console):
    state = {"kind": None}

    def on_text(kind: str, text: str) -> None:
        shown = "think" if kind == "forced" else kind
        if state["kind"] == "think" and shown == "answer":
            console.print()
        if state["kind"] != shown and shown == "think":
            console.print("thinking: ", style="dim", end="")
        state["kind"] = shown
        console.print(text, style=STYLES[kind], end="", markup=False, highlight=False)

    return on_text


def _stats_line(reply: Reply) -> str:
    s = reply.stats
    return (
        f"TTFT {s.ttft_s * 1000:.0f} ms · prefill {s.prefill_tok_s:.0f} tok/s · decode "
        f"{s.decode_tok_s:.1f} tok/s · {s.generated_tokens} tokens ({s.thinking_tokens} thinking)"
    )


def _resize_context(loaded, max_context: int | None) -> None:
    """--max-context: resize an eager model's cache, warning past what it was trained for."""
    from bluelm_edge.generate import context_warning
    from bluelm_edge.session import EagerDecoder

    if max_context is None:
        return
    if not isinstance(loaded.decoder, EagerDecoder):
        raise UsageError(f"--max-context: a bundle's context is fixed at export ({loaded.decoder.max_context}); "
                         "re-export it with --max-context N")
    warning = context_warning(max_context, loaded.config.decoder.max_seq_len, loaded.config.name)
    if warning:
        Console(stderr=True).print(f"[yellow]warning:[/yellow] {warning}", soft_wrap=True, highlight=False)
    loaded.decoder.set_max_context(max_context)


def chat(
    model: ModelArg = None,
    preset: PresetOpt = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="Ask once and exit.")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", help="Image file(s) for the prompt.")] = None,
    think: Annotated[bool, typer.Option("--think/--no-think", help="Thinking mode on or off.")] = True,
    thinking_budget: Annotated[
        int | None, typer.Option("--thinking-budget", help="Max thinking tokens (default: unlimited).", min=0)
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Stop after this many generated tokens.", min=1)] = 256,
    temperature: Annotated[float, typer.Option(help="0 is greedy.", min=0.0)] = 0.0,
    top_k: Annotated[int, typer.Option(help="Sample from the k most likely (0: all).", min=0)] = 0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.", min=0.0, max=1.0)] = 1.0,
    seed: Annotated[int, typer.Option(help="Sampling seed (and preset init seed).")] = 0,
    max_context: Annotated[
        int | None, typer.Option("--max-context", help="KV-cache length for a checkpoint (default: its config's).",
                                 min=2)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Chat with a model: interactive, or one-shot with --prompt.

    Example: bluelm-edge chat --prompt "What is 530+627?" --think --thinking-budget 32
    """
    loaded = load_for_generation(model, preset, seed)
    console = Console(quiet=json_out)
    _resize_context(loaded, max_context)
    console.print(f"[dim]model: {loaded.label}[/dim]")
    session = loaded.session()
    sampling = Sampling(temperature, top_k, top_p, seed, max_new_tokens)
    budget = thinking_budget if thinking_budget is not None else loaded.config.default_thinking_budget

    def turn(text: str, images: list[Path]) -> Reply:
        reply = session.ask(text, images, think=think, budget=budget, sampling=sampling,
                            on_text=_printer(console))
        console.print()
        console.print(f"[dim]{_stats_line(reply)}[/dim]")
        return reply

    if prompt is not None:
        reply = turn(prompt, list(image or []))
        if json_out:
            typer.echo(json.dumps({"thinking": reply.thinking, "answer": reply.answer, "tokens": reply.tokens,
                                   "stats": reply.stats.to_dict()}, indent=2))
        return
    console.print("[dim]type a message; /help lists the commands[/dim]")
    pending: list = []
    for path in image or []:
        _attach(console, str(path), pending)
    _interactive(console, session, turn, pending)


HELP = ("/image PATH  attach an image (PNG or JPEG) to your next message\n"
        "/reset       clear the conversation and any attached images\n"
        "/help        this list\n"
        "/quit        exit (also /exit, Ctrl-D)")


def _interactive(console: Console, session: ChatSession, turn, pending: list) -> None:
    """Read messages until /quit or EOF; a user error is one line and the conversation goes on."""
    while True:
        try:
            text = console.input("[bold]you>[/bold] ")
        except EOFError:
            return
        if text.startswith("/"):
            if _command(console, session, text.strip(), pending):
                return
            continue
        if not text.strip():
            continue
        try:
            turn(text, pending)
        except BlueLMError as err:  # e.g. a prompt over the context: the history is unchanged
            _error(console, str(err))
            continue
        pending.clear()


def _command(console: Console, session: ChatSession, line: str, pending: list) -> bool:
    """Run one /command (never sent to the model); True means quit."""
    name, _, arg = line.partition(" ")
    if name in ("/quit", "/exit"):
        return True
    if name == "/help":
        console.print(HELP, markup=False, highlight=False)
    elif name == "/reset":
        session.reset()
        pending.clear()
        console.print("[dim]conversation cleared[/dim]")
    elif name == "/image":
        _attach(console, arg.strip(), pending)
    else:
        _error(console, f"unknown command {name}; /help lists the commands")
    return False


def _attach(console: Console, arg: str, pending: list) -> None:
    """Check the image now (whole file decoded) so a bad path never costs the conversation."""
    from bluelm_edge.imaging import load_image

    path = Path(arg).expanduser()
    if not arg:
        return _error(console, "/image needs a path, e.g. /image photo.png")
    if path.is_dir():
        return _error(console, f"{path}: is a folder; give an image file (PNG or JPEG)")
    try:
        img = load_image(path, keep_alpha=True)  # the family's rules decide what transparency becomes
    except BlueLMError as err:
        return _error(console, str(err))
    pending.append(img)
    console.print(f"[dim]attached {escape(str(path))} ({img.width}x{img.height}); it goes with your next "
                  "message[/dim]", highlight=False)


def _error(console: Console, message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
