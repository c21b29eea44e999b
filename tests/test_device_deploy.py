"""`bluelm-edge deploy` with the real adb against simulated phones: fresh, resumed after a dropped
connection, refused for a wrong SoC, storage full; files on the phone are byte-identical."""

from __future__ import annotations

import hashlib
import json

import pytest
from adbsim.harness import AdbServer, adb_available, cli, make_bundle
from adbsim.phone import APP_FILES, APP_PACKAGE, Faults

from bluelm_edge.device.errors import BundleMismatch, Offline, StorageFull

pytestmark = [pytest.mark.device, pytest.mark.skipif(not adb_available(), reason="needs the adb binary")]
BUNDLES = f"{APP_FILES}/bundles"


@pytest.fixture
def server(tmp_path):
    s = AdbServer(tmp_path / "phones")
    yield s
    s.close()


def _on_phone(phone, bundle_id):
    folder = phone.path(f"{BUNDLES}/{bundle_id}")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} if folder.is_dir() else {}


def _local(bundle):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in bundle.iterdir()}


def _bundle_id(bundle):
    return json.loads((bundle / "manifest.json").read_text())["bundle_id"]


def test_fresh_deploy_installs_app_and_pushes_verified_bundle(server, tmp_path):
    phone = server.phone("sm8650")
    bundle = make_bundle(tmp_path / "b")
    apk = tmp_path / "fake-demo.apk"  # a test stand-in, not an APK: the sim installs by package name
    apk.write_bytes(b"PK\x03\x04 test stand-in for " + APP_PACKAGE.encode())
    res = cli(server, "deploy", str(bundle), "--apk", str(apk), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("["):])
    assert [(r["pushed"], r["skipped"], r["bytes_pushed"]) for r in out] == [(4, 0, sum(
        p.stat().st_size for p in bundle.iterdir()))]
    assert APP_PACKAGE in phone.packages
    assert _on_phone(phone, _bundle_id(bundle)) == _local(bundle)
    assert sorted(p.name for p in phone.path(BUNDLES).iterdir()) == [_bundle_id(bundle)]  # no .partial left
    again = cli(server, "deploy", str(bundle), "--json")
    assert [(r["pushed"], r["skipped"]) for r in json.loads(again.stdout)] == [(0, 4)]


def test_disconnect_mid_push_resumes_and_never_takes_a_half_file_as_done(server, tmp_path):
    bundle = make_bundle(tmp_path / "b", sizes=(3_000_000, 2_000_000))
    phone = server.phone("mt6989", faults=Faults(disconnect_after_bytes=4_000_000))
    bid = _bundle_id(bundle)
    res = cli(server, "deploy", str(bundle))
    assert isinstance(res.exception, Offline), res.output
    assert "rerun deploy to resume" in str(res.exception) and "\n" not in str(res.exception)
    assert not phone.path(f"{BUNDLES}/{bid}").exists()  # nothing under the real name
    partial = phone.path(f"{BUNDLES}/.{bid}.partial")
    assert (partial / "model.pte").stat().st_size == 3_000_000
    assert 0 < (partial / "tokenizer.json").stat().st_size < 2_000_000  # half-pushed file left by "adbd"
    server.reconnect(phone)
    res = cli(server, "deploy", str(bundle), "--json")
    assert res.exit_code == 0, res.output
    assert [(r["pushed"], r["skipped"]) for r in json.loads(res.stdout)] == [(3, 1)]  # model.pte kept
    assert _on_phone(phone, bid) == _local(bundle)
    assert not partial.exists()


def test_wrong_soc_is_refused_unless_forced(server, tmp_path):
    phone = server.phone("mt6989")
    bundle = make_bundle(tmp_path / "q", backend="qnn", soc="SM8650")
    res = cli(server, "deploy", str(bundle))
    assert isinstance(res.exception, BundleMismatch)
    msg = str(res.exception)
    assert "does not fit" in msg and "V2324A" in msg and "--force" in msg and "\n" not in msg
    assert not phone.path(BUNDLES).exists() or not any(phone.path(BUNDLES).iterdir())
    res = cli(server, "deploy", str(bundle), "--force", "--json")
    assert res.exit_code == 0 and _on_phone(phone, _bundle_id(bundle)) == _local(bundle)


def test_matching_qnn_bundle_deploys(server, tmp_path):
    phone = server.phone("sm8650")
    bundle = make_bundle(tmp_path / "q", backend="qnn", soc="SM8650")
    assert cli(server, "deploy", str(bundle)).exit_code == 0
    assert _on_phone(phone, _bundle_id(bundle)) == _local(bundle)


def test_static_kv_bundles_the_app_cannot_drive_are_refused_for_its_folder(server, tmp_path):
    """The app drives static-kv programs whose graph I/O its Java runtime passes (kv, float): such a
    bundle goes to the app's folder; one with 16-bit graph I/O (`--graph-io full`) is refused there in
    one line (the same line the app shows) and pushed for `--target runner`."""
    phone = server.phone("sm8650")
    npu = {"runner": "static-kv", "graph_contract": "bluelm-static-kv/2"}
    full = make_bundle(tmp_path / "full", backend="qnn", soc="SM8650", extra={**npu, "graph_io": "full"})
    res = cli(server, "deploy", str(full))
    assert isinstance(res.exception, BundleMismatch), res.output
    msg = str(res.exception)
    assert "it passes 16-bit integers across the NPU boundary (--graph-io full)" in msg and "--target runner" in msg
    assert "\n" not in msg and not phone.path(f"{BUNDLES}/{_bundle_id(full)}").exists()
    assert cli(server, "deploy", str(full), "--target", "runner").exit_code == 0
    kv = make_bundle(tmp_path / "kv", backend="qnn", soc="SM8650", extra={**npu, "graph_io": "kv"})
    assert cli(server, "deploy", str(kv)).exit_code == 0
    assert _on_phone(phone, _bundle_id(kv)) == _local(kv)


def test_storage_full_is_refused_before_pushing(server, tmp_path):
    phone = server.phone("sm8650", faults=Faults(free_bytes=1_000_000))
    res = cli(server, "deploy", str(make_bundle(tmp_path / "b")))
    assert isinstance(res.exception, StorageFull)
    assert "free up storage" in str(res.exception) and "\n" not in str(res.exception)
    assert list(phone.path(BUNDLES).iterdir()) == []


def test_storage_filling_during_push_removes_temp_files(server, tmp_path):
    phone = server.phone("sm8650", faults=Faults(fill_after_bytes=2_000_000))
    res = cli(server, "deploy", str(make_bundle(tmp_path / "b")))
    assert isinstance(res.exception, StorageFull), res.output
    assert "temporary files were removed" in str(res.exception)
    assert list(phone.path(BUNDLES).iterdir()) == []
