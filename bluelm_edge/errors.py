"""User-facing errors: each carries one line saying what is wrong and what to do.

The CLI maps these to a one-line message and an exit code; anything else is a bug and shows a
traceback only with BLUELM_DEBUG=1.
"""

from __future__ import annotations


class BlueLMError(Exception):
    """An error the user can cause and fix. `str(err)` is the one line shown to them."""

    exit_code = 1


class UsageError(BlueLMError):
    """Bad arguments or options (exit code 2)."""

    exit_code = 2


class ConfigError(BlueLMError):
    """A model config that is invalid or does not match its weights."""


class CheckpointError(BlueLMError):
    """A checkpoint folder or weights file that is missing, corrupt or mismatched."""


class ImageError(BlueLMError):
    """An image that cannot be read, is too large or has an unsupported mode."""


class DataError(BlueLMError):
    """Bad user data (JSONL chats, calibration sets, prompts files)."""


class ContextError(UsageError, ValueError):
    """A prompt that does not fit the model's context (checked before the runtime is called)."""


class FallbackError(BlueLMError):
    """A program whose decoder would leave the NPU for the CPU in the middle (an export error)."""


class SdkLoadError(BlueLMError):
    """A vendor SDK was found but its libraries did not load (exit code 3, as a missing SDK)."""

    exit_code = 3
