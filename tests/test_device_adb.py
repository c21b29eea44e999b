"""The adb layer and `bluelm-edge devices` with the real adb against simulated phones, and the
connection faults: unauthorized, offline, two phones without -s, adb missing, failed commands."""

from __future__ import annotations

import json
import os

import pytest
from adbsim.harness import AdbServer, adb_available, cli, make_bundle
from adbsim.phone import Faults

from bluelm_edge.cli import devices as devices_cli
from bluelm_edge.device.adb import Device, adb_command, select_devices
from bluelm_edge.device.errors import AdbNotFound, CommandFailed, MultipleDevices, NoDevice, Offline, Unauthorized

pytestmark = [pytest.mark.device, pytest.mark.skipif(not adb_available(), reason="needs the adb binary")]


@pytest.fixture
def server(tmp_path):
    s = AdbServer(tmp_path / "phones")
    yield s
    s.close()


def _one_line(err: Exception) -> str:
    assert "\n" not in str(err)
    return str(err)


def test_devices_json_describes_both_phones_and_bundle_fit(server, tmp_path):
    snap, dim = server.phone("sm8650"), server.phone("mt6989")
    bundle = make_bundle(tmp_path / "q", backend="qnn", soc="SM8650")
    res = cli(server, "devices", "--json", "--bundle", str(bundle))
    assert res.exit_code == 0, res.output
    rows = {r["serial"]: r for r in json.loads(res.stdout)}
    s, d = rows[snap.serial], rows[dim.serial]
    assert (s["model"], s["soc"], s["soc_name"], s["android"], s["abi"]) == (
        "SM-S928B", "SM8650", "Snapdragon 8 Gen 3", "14", "arm64-v8a")
    assert (d["model"], d["soc"], d["soc_name"]) == ("V2324A", "mt6989", "Dimensity 9300")
    assert (s["ram_gb"], d["ram_gb"]) == (11.2, 14.9)  # MemTotal kB / 1024**2
    assert s["free_storage_gb"] == round(180_000_000_000 / 1e9, 1)
    assert (s["backends"], d["backends"]) == (["qnn", "xnnpack"], ["mediatek", "xnnpack"])
    assert s["bundle_fit"][str(bundle)] == "fits: qnn bundle for SM8650"
    assert d["bundle_fit"][str(bundle)].startswith("no: ")
    table = cli(server, "devices")
    assert "Snapdragon 8 Gen 3" in table.stdout and "Dimensity 9300" in table.stdout


def test_every_adb_call_carries_port_and_serial(server, monkeypatch):
    monkeypatch.setenv("BLUELM_ADB_PORT", server.port)
    assert adb_command(["shell", "id"], "ABC")[1:] == ["-P", server.port, "-s", "ABC", "shell", "id"]


def test_shell_exit_codes_come_back_through_shell_v2(server, monkeypatch):
    phone = server.phone("sm8650")
    monkeypatch.setenv("BLUELM_ADB_PORT", server.port)
    dev = Device(phone.serial)
    assert dev.shell("getprop ro.soc.model").stdout == "SM8650\n"
    with pytest.raises(CommandFailed) as info:
        dev.shell("ls /nope")
    assert info.value.remote_exit_code == 1
    assert _one_line(info.value).endswith("exited with 1: ls: /nope: No such file or directory")
    with pytest.raises(CommandFailed) as info:
        dev.shell("frobnicate")
    assert info.value.remote_exit_code == 127


def test_unauthorized_phone(server, tmp_path):
    phone = server.phone("sm8650", faults=Faults(unauthorized=True), wait="unauthorized")
    res = cli(server, "deploy", str(make_bundle(tmp_path / "b")), "-s", phone.serial)
    assert isinstance(res.exception, Unauthorized)
    assert "Allow USB debugging" in _one_line(res.exception)
    rows = json.loads(cli(server, "devices", "--json").stdout)
    assert rows == [{"serial": phone.serial, "state": "unauthorized"}]


def test_offline_phone(server, monkeypatch):
    phone = server.phone("mt6989", faults=Faults(offline=True), wait="offline")
    monkeypatch.setenv("BLUELM_ADB_PORT", server.port)
    with pytest.raises(Offline) as info:
        select_devices(phone.serial)
    assert "is offline" in _one_line(info.value)
    with pytest.raises(Offline):
        Device(phone.serial).shell("echo hi")


def test_two_phones_and_no_serial(server, tmp_path):
    server.phone("sm8650")
    server.phone("mt6989")
    res = cli(server, "deploy", str(make_bundle(tmp_path / "b")))
    assert isinstance(res.exception, MultipleDevices)
    assert "-s SERIAL" in _one_line(res.exception)


def test_no_phone_and_unknown_serial(server, tmp_path):
    res = cli(server, "deploy", str(make_bundle(tmp_path / "b")))
    assert isinstance(res.exception, NoDevice) and "no phone attached" in _one_line(res.exception)
    server.phone("sm8650")
    res = cli(server, "deploy", str(tmp_path / "b"), "-s", "R5CX0000")
    assert isinstance(res.exception, NoDevice) and "R5CX0000" in _one_line(res.exception)


def test_adb_missing(server, tmp_path):
    missing = str(tmp_path / "no" / "adb")
    res = cli(server, "devices", env={"BLUELM_ADB": missing})
    assert isinstance(res.exception, AdbNotFound)
    assert _one_line(res.exception) == f"no adb at BLUELM_ADB={missing}; point BLUELM_ADB at an adb binary or unset it"
    assert "BLUELM_ADB" not in os.environ


def _fits_80(text: str) -> set[str]:
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines) and "…" not in text, text
    return set(text.split())


def test_devices_table_shows_every_value_whole_at_80_columns(server, tmp_path):
    snap, dim = server.phone("sm8650"), server.phone("mt6989")
    bundle = make_bundle(tmp_path / "q", backend="qnn", soc="SM8650")
    res = cli(server, "devices", "--bundle", str(bundle), env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    words = _fits_80(res.stdout)
    assert {snap.serial, dim.serial, "SM-S928B", "V2324A", "SM8650", "mt6989", "(Snapdragon", "(Dimensity", "9300)",
            "arm64-v8a", "11.2", "14.9", "180.0", "201.0", "mediatek,", "qnn,", "xnnpack"} <= words
    text = " ".join(res.stdout.split())  # the lines below the table wrap between words
    assert f"{snap.serial}: q: fits: qnn bundle for SM8650" in text
    assert f"{dim.serial}: q: no: Dimensity 9300 (mt6989) has no qnn backend; use an xnnpack bundle" in text


def test_devices_without_a_phone_says_so_in_one_line(server):
    res = cli(server, "devices")
    assert res.exit_code == 0
    assert res.stdout.splitlines() == [devices_cli.NO_PHONE]
    assert json.loads(cli(server, "devices", "--json").stdout) == []
