"""Check the compile-only stubs (android_demo/stubs/src) against the recorded upstream API list.

A stub cannot prove the phone has the API, so every class header and member the stubs declare
must appear, with the same signature, in android_demo/stubs/api-list.txt, which is written from
the pinned upstream versions (Android API 34, ExecuTorch AAR 1.5.1). Signatures are compared as
`javap -protected -constants` prints them, without access and non-signature modifiers.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from bluelm_edge.android.build import compile_stubs
from bluelm_edge.android.toolchain import AndroidBuildError, android_demo_dir

DROPPED = {"public", "protected", "final", "abstract", "native", "synchronized", "default", "transient",
           "volatile", "strictfp"}
HEADER = re.compile(r"^(?:\w+ )*(class|interface) ([\w.$]+)(?: extends ([\w.$]+))?")


def normalise_member(line: str) -> str:
    words = line.strip().rstrip(";").split(" ")
    kept = []
    while words and words[0] in DROPPED | {"static"}:
        word = words.pop(0)
        if word == "static":
            kept.append(word)
    return " ".join(kept + words)


def parse_javap(text: str) -> set[str]:
    """`<class>: <signature>` lines for every class header and member in javap output."""
    out: set[str] = set()
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("Compiled from") or line == "}":
            continue
        if line.endswith("{"):
            m = HEADER.match(line)
            if m is None:
                raise AndroidBuildError(f"cannot read javap header: {line}")
            kind, current, parent = m.groups()
            out.add(f"{current}: {kind} {current}" + (f" extends {parent}" if parent else ""))
        elif current is not None:
            out.add(f"{current}: {normalise_member(line)}")
    return out


def stub_signatures(classes: Path) -> set[str]:
    names = sorted(str(p.relative_to(classes).with_suffix("")).replace("/", ".") for p in classes.rglob("*.class"))
    proc = subprocess.run(["javap", "-protected", "-constants", "-cp", str(classes), *names],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise AndroidBuildError(f"javap failed: {proc.stderr.strip()[:300]}")
    return parse_javap(proc.stdout)


def load_api_list(path: Path) -> set[str]:
    lines = (raw.strip() for raw in Path(path).read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def check_stubs(demo: Path | None = None, api_list: Path | None = None) -> list[str]:
    """Stub signatures missing from the API list (empty when every stub member is recorded)."""
    demo = demo or android_demo_dir()
    with tempfile.TemporaryDirectory(prefix="bluelm-stubs-") as tmp:
        classes = compile_stubs(demo, Path(tmp) / "classes")
        stubs = stub_signatures(classes)
    recorded = load_api_list(api_list or demo / "stubs" / "api-list.txt")
    return sorted(stubs - recorded)
