"""Phones over adb: the adb wrapper (knows nothing of models), deploy, profile and their reports."""
