"""Typed adb errors: each is one line saying what is wrong and what to do next."""

from __future__ import annotations

from bluelm_edge.errors import BlueLMError


class DeviceError(BlueLMError):
    """Something about the phone or the adb connection."""


class AdbNotFound(DeviceError):
    """No adb binary where we looked."""


class NoDevice(DeviceError):
    """No phone attached, or not the one asked for."""


class Unauthorized(DeviceError):
    """The phone has not accepted this computer's adb key."""


class Offline(DeviceError):
    """The phone is attached but not answering (or dropped mid-transfer)."""


class MultipleDevices(DeviceError):
    """Several phones attached and no serial chosen."""


class AdbTimeout(DeviceError):
    """An adb command did not finish in time."""


class CommandFailed(DeviceError):
    """A shell command on the phone exited non-zero."""

    def __init__(self, message: str, exit_code: int, stderr: str = ""):
        super().__init__(message)
        self.remote_exit_code, self.stderr = exit_code, stderr


class StorageFull(DeviceError):
    """Not enough free storage on the phone."""


class BundleMismatch(DeviceError):
    """A bundle whose backend or SoC does not fit the phone."""


class AppError(DeviceError):
    """The benchmark app is missing, crashed or reported an error."""
