"""A checkpoint's chat template as segments: the form the Android app renders without Jinja.

The app cannot run a Jinja interpreter, so `derive(...)` renders the checkpoint's own template
(`text/template.py`, the one transformers runs) on conversations whose contents are sentinels and
cuts the text around them into data:

- `begin[role]`: the text before the first message's content (BOS, a default system prompt);
- `between["a>b"]`: the text from the end of an `a` message's content to the start of the next
  `b` message's content (the `a` closer + the `b` header);
- `generation[think|no_think]`: the text after the last user content when a prompt asks for the
  assistant's turn (Qwen3's `enable_thinking=false` adds `<think>\\n\\n</think>\\n\\n`);
- `answer`, `end`: the user>assistant text when the assistant message is the last one (a
  conversation that ends with its answer), and the text after it;
- `content[position]`: what the template does to a content string (`strip` for Llama 3's `trim`,
  `drop_thinking` for Qwen3's earlier answers) from a fixed vocabulary of operations (`OPS`);
- `image`: an image part's text (`<image>`, expanded later by the family's image prompt), and
  `begin_image` / `between_image`: the header variants for a message that opens with an image
  (SmolVLM writes `User:` before an image and `User: ` before text).

`verify` then renders a battery of conversations both ways; a template the segments do not
reproduce exactly gets no segments (the manifest says why, and the app refuses it in one line).
`render(segments, ...)` is the renderer the Java core mirrors (`TemplateSegments.java`); both are
checked on `tests/vectors/hf_chat_templates.json`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bluelm_edge.errors import DataError
from bluelm_edge.text.template import render_template

SCHEMA = "chat_segments/1"
# A template's `strftime_now(fmt)` (Llama 3.2's "Today Date") is kept as the marker DATE_OPEN fmt
# DATE_CLOSE and filled in when a prompt is rendered; the app mirrors these directives only.
DATE_OPEN, DATE_CLOSE = "\u27e6DATE:", "\u27e7"
DATE_DIRECTIVES = set("dmYybBaAHMS%")
_DATE = re.compile(re.escape(DATE_OPEN) + "(.*?)" + re.escape(DATE_CLOSE))
S, U1, A1, U2, X = "\u27e6S\u27e7", "\u27e6U1\u27e7", "\u27e6A1\u27e7", "\u27e6U2\u27e7", "\u27e6X\u27e7"
OPS = ("drop_thinking", "strip", "lstrip_newlines", "strip_newlines")
POSITIONS = ("system", "user", "assistant", "answer")  # answer: the last message, an assistant's


@dataclass(frozen=True)
class Renderer:
    """The checkpoint's template with its tokens and thinking switch: `render(messages, gen, think)`."""

    template: str
    special: dict[str, str | None]
    switch: str | None = None
    parts: bool = False  # content as a list of {"type": ...} parts (SmolVLM's template)
    think_start: str | None = None
    think_end: str | None = None

    def render(self, messages: list[dict[str, Any]], gen: bool, think: bool) -> str:
        """The template's text, today's date left as its marker (`fill_dates` puts a date in)."""
        extra = {self.switch: think} if self.switch else {}
        dicts = [_as_template_message(m, self.parts) for m in messages]
        return render_template(self.template, dicts, add_generation_prompt=gen, special=self.special,
                               strftime_now=lambda fmt: f"{DATE_OPEN}{fmt}{DATE_CLOSE}", **extra)


def fill_dates(text: str, now: datetime) -> str:
    """Each date marker of a segment as `now.strftime` writes it (the C locale's month names)."""
    return _DATE.sub(lambda m: now.strftime(m.group(1)), text)


def _check_dates(seg: dict[str, Any]) -> None:
    for fmt in _DATE.findall(repr(seg)):
        bad = {d for d in re.findall(r"%(.)", fmt)} - DATE_DIRECTIVES
        if bad:
            raise DataError(f"chat segments: date format {fmt!r} uses %{sorted(bad)[0]}, which the app cannot mirror")


def _as_template_message(m: dict[str, Any], parts: bool) -> dict[str, Any]:
    images = int(m.get("images", 0))
    if not parts:
        return {"role": m["role"], "content": m["content"]}
    return {"role": m["role"], "content": [{"type": "image"}] * images + [{"type": "text", "text": m["content"]}]}


def apply_ops(ops: list[str], text: str, think_end: str | None) -> str:
    """The content operations in order (the vocabulary `OPS`; the Java core has the same)."""
    for op in ops:
        if op == "drop_thinking":
            text = text.split(think_end)[-1].lstrip("\n") if think_end and think_end in text else text
        elif op == "strip":
            text = text.strip()
        elif op == "lstrip_newlines":
            text = text.lstrip("\n")
        elif op == "strip_newlines":
            text = text.strip("\n")
        else:
            raise DataError(f"chat segments: unknown content operation {op!r}")
    return text


def _cut(out: str, marks: list[str]) -> list[str]:
    """`out` split at each mark in order: the len(marks)+1 texts around them (each mark exactly once)."""
    pieces, rest = [], out
    for mark in marks:
        if rest.count(mark) != 1:
            raise DataError(f"chat segments: the template does not render each content once ({mark!r})")
        head, rest = rest.split(mark)
        pieces.append(head)
    return [*pieces, rest]


def _msg(role: str, content: str, images: int = 0) -> dict[str, Any]:
    return {"role": role, "content": content, "images": images}


def _try(r: Renderer, messages: list[dict[str, Any]], gen: bool, think: bool) -> str | None:
    try:
        return r.render(messages, gen, think)
    except DataError:
        return None  # the template refuses this shape (e.g. no system role)


def _skeleton(r: Renderer) -> dict[str, Any]:
    """begin / between / generation / answer / end from the sentinel conversations."""
    gens: dict[str, str] = {}
    between: dict[str, str] = {}
    for think in (True, False):
        a, b, c, gen = _cut(r.render([_msg("user", U1), _msg("assistant", A1), _msg("user", U2)], True, think),
                               [U1, A1, U2])
        found = {"user>assistant": b, "assistant>user": c}
        if between and found != between:
            raise DataError("chat segments: the thinking switch changes earlier turns")
        between, begin_user = found, a
        gens["think" if think else "no_think"] = gen
    begin = {"user": begin_user, "system": None}
    with_system = _try(r, [_msg("system", S), _msg("user", U1)], True, False)
    if with_system is not None and with_system.count(S) == 1:
        begin["system"], between["system>user"], _ = _cut(with_system, [S, U1])
    _, answer, end = _cut(r.render([_msg("user", U1), _msg("assistant", A1)], False, False), [U1, A1])
    return {"begin": begin, "between": between, "generation": gens, "answer": answer, "end": end}


def _image_variants(r: Renderer, seg: dict[str, Any]) -> None:
    """The image part's text (what a second image adds) and the headers before a message that opens
    with an image (images come first in a message, as SmolVLM's examples put them)."""
    def head(images: int, turns: list[dict[str, Any]], marks: list[str]) -> list[str]:
        return _cut(r.render([*turns, {"role": "user", "content": marks[-1], "images": images}], True, False), marks)

    one, two = head(1, [], [U1])[0], head(2, [], [U1])[0]
    n = len(two) - len(one)
    image = two[-n:] if n > 0 else ""
    if not image or not two.endswith(image * 2) or not one.endswith(image):
        raise DataError("chat segments: images do not render as one repeated text each")
    seg["image"], seg["begin_image"] = image, one[:-n]
    c = head(1, [_msg("user", U1), _msg("assistant", A1)], [U1, A1, U2])[2]
    seg["between_image"] = {"assistant>user": c[:-n]}
    if seg["begin"]["system"] is not None:
        seg["between_image"]["system>user"] = head(1, [_msg("system", S)], [S, U1])[1][:-n]


def _probes(r: Renderer, position: str) -> list[str]:
    """Contents that show what the template does at `position` (a last answer's thinking is not
    probed: the app never renders one; earlier answers may carry theirs)."""
    ws = "\n \n" + X + " \n\n"
    if r.think_start and r.think_end and position != "answer":
        return [ws, f"{r.think_start}\nR\n{r.think_end}\n\n{X}"]
    return [ws]


def _rendered_content(r: Renderer, seg: dict[str, Any], position: str, probe: str) -> str:
    """What the template writes for content `probe` at `position` (cut out by the known segments)."""
    if position == "system":
        out = r.render([_msg("system", probe), _msg("user", U1)], True, False)
        head = seg["begin"]["system"]
        tail = seg["between"]["system>user"] + U1 + seg["generation"]["no_think"]
    elif position == "user":
        out = r.render([_msg("user", probe)], True, False)
        head, tail = seg["begin"]["user"], seg["generation"]["no_think"]
    elif position == "assistant":
        out = r.render([_msg("user", U1), _msg("assistant", probe), _msg("user", U2)], True, False)
        head = seg["begin"]["user"] + U1 + seg["between"]["user>assistant"]
        tail = seg["between"]["assistant>user"] + U2 + seg["generation"]["no_think"]
    else:
        out = r.render([_msg("user", U1), _msg("assistant", probe)], False, False)
        head, tail = seg["begin"]["user"] + U1 + seg["answer"], seg["end"]
    if not (out.startswith(head) and out.endswith(tail)) or len(out) < len(head) + len(tail):
        raise DataError(f"chat segments: the {position} header changes with its content")
    return out[len(head):len(out) - len(tail)]


def _content_ops(r: Renderer, seg: dict[str, Any], position: str) -> list[str]:
    got = [(p, _rendered_content(r, seg, position, p)) for p in _probes(r, position)]
    for n in range(3):
        for ops in itertools.permutations(OPS, n):
            if all(apply_ops(list(ops), p, r.think_end) == out for p, out in got):
                return list(ops)
    raise DataError(f"chat segments: the template changes {position} content in a way the app cannot mirror")


def derive(r: Renderer) -> dict[str, Any]:
    """The template as segments (raises DataError naming what it cannot mirror)."""
    seg = {"schema": SCHEMA, **_skeleton(r), "image": None, "begin_image": None, "between_image": None}
    positions = [p for p in POSITIONS if p != "system" or seg["begin"]["system"] is not None]
    seg["content"] = {p: _content_ops(r, seg, p) for p in positions}
    seg["think_end"] = r.think_end
    if r.parts:
        _image_variants(r, seg)
    _check_dates(seg)
    verify(r, seg)
    return seg


def derive_or_reason(r: Renderer) -> tuple[dict[str, Any] | None, str | None]:
    """(segments, None), or (None, why the app cannot render this template)."""
    try:
        return derive(r), None
    except DataError as err:
        return None, str(err).removeprefix("chat segments: ")


def _check_turns(messages: list[dict[str, Any]], gen: bool) -> None:
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles[:1] == ["system"] else roles
    ok = bool(body) and all(r == ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(body))
    if not ok or (body[-1] == "user") != gen:
        raise DataError("chat segments: a conversation is [system] then user/assistant turns, ending with a user "
                        "turn for a generation prompt or an assistant turn otherwise")


def render(seg: dict[str, Any], messages: list[dict[str, Any]], *, think: bool, add_generation_prompt: bool,
           now: datetime | None = None) -> str:
    """The conversation as the segments write it (`messages`: role, content, images = count, first),
    dates as of `now` (default: the clock)."""
    when = now or datetime.now()
    return _render(seg, messages, think, add_generation_prompt, lambda text: fill_dates(text, when))


def _render(seg: dict[str, Any], messages: list[dict[str, Any]], think: bool, add_generation_prompt: bool,
            fill=lambda text: text) -> str:
    """`render` with `fill` applied to the segments' own text (a date marker in a message stays)."""
    _check_turns(messages, add_generation_prompt)
    out, last = [], len(messages) - 1
    for i, m in enumerate(messages):
        images, role = int(m.get("images", 0)), m["role"]
        if images and (seg["image"] is None or role != "user"):
            raise DataError("chat segments: this template takes no images" if seg["image"] is None
                            else "chat segments: only user messages take images")
        answer = role == "assistant" and i == last and not add_generation_prompt
        out.append(fill(_header(seg, messages[i - 1]["role"] if i else None, role, images, answer)))
        out.append(seg["image"] * images if images else "")
        out.append(apply_ops(seg["content"]["answer" if answer else role], m["content"], seg["think_end"]))
    gen = seg["generation"]["think" if think else "no_think"]
    return "".join(out) + fill(gen if add_generation_prompt else seg["end"])


def _header(seg: dict[str, Any], prev: str | None, role: str, images: int, answer: bool) -> str:
    if answer:
        return seg["answer"]
    if prev is None:
        text = seg["begin_image"] if images else seg["begin"][role]
    else:
        text = (seg["between_image"] if images else seg["between"]).get(f"{prev}>{role}")
    if text is None:
        raise DataError(f"chat segments: this template takes no {role} message there")
    return text


def battery(images: bool) -> list[tuple[list[dict[str, Any]], bool]]:
    """The conversations `verify` renders both ways: (messages, add_generation_prompt)."""
    u, a, think = "Hello! What is 17 + 25?", "It is 42.", "<think>\n17 + 25 = 42\n</think>\n\nIt is 42."
    ws, sys_ = "  spaced out \n", "You are terse."
    convs = [([_msg("user", u)], True), ([_msg("user", ws)], True), ([_msg("user", u), _msg("assistant", a)], False),
             ([_msg("user", u), _msg("assistant", think), _msg("user", ws)], True),
             ([_msg("user", u), _msg("assistant", " \n" + a + " "), _msg("user", u), _msg("assistant", a)], False),
             ([_msg("system", sys_), _msg("user", u)], True),
             ([_msg("system", " " + sys_ + "\n"), _msg("user", u), _msg("assistant", a), _msg("user", u)], True)]
    if images:
        convs += [([_msg("user", u, 1)], True), ([_msg("user", u, 2)], True),
                  ([_msg("user", u, 1), _msg("assistant", a), _msg("user", ws, 2)], True),
                  ([_msg("system", sys_), _msg("user", u, 1), _msg("assistant", a)], False)]
    return convs


def verify(r: Renderer, seg: dict[str, Any]) -> None:
    """Raise unless the segments render every battery conversation exactly as the template does."""
    for messages, gen in battery(seg["image"] is not None):
        if messages[0]["role"] == "system" and seg["begin"]["system"] is None:
            continue
        for think in (True, False):
            want = r.render(messages, gen, think)
            if _render(seg, messages, think, gen) != want:
                raise DataError(f"chat segments: they do not reproduce the template on {[m['role'] for m in messages]}"
                                f"{' with images' if any(m.get('images') for m in messages) else ''}")
