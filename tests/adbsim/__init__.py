"""A simulated Android phone for tests: the device side of the adb protocol on loopback TCP.

The real `adb` server connects to it (`adb -P PORT connect 127.0.0.1:SIMPORT`); see `phone.py`
for the profiles, the fault switches and the benchmark app.
"""

from .phone import APP_FILES, APP_PACKAGE, PROFILES, Faults, Profile, SimPhone

__all__ = ["APP_FILES", "APP_PACKAGE", "PROFILES", "Faults", "Profile", "SimPhone"]
