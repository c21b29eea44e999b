"""A placeholder `.pte` for tests that only move bytes (deploy, package, manifests): a valid
ExecuTorch header (`ET12` identifier, `eh00` extended header with sizes matching the file) in
front of arbitrary bytes. It passes `bundle verify`'s header check, not a runtime load."""

from __future__ import annotations

HEADER = 40  # root offset (4) + identifier (4) + extended header (32)


def fake_pte(payload: bytes) -> bytes:
    """`payload` behind a header whose declared program size is the whole file."""
    size = HEADER + len(payload)
    ext = b"eh00" + (32).to_bytes(4, "little") + size.to_bytes(8, "little") + bytes(16)
    return HEADER.to_bytes(4, "little") + b"ET12" + ext + payload
