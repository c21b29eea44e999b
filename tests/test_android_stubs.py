"""Every compile-only stub member is in the recorded upstream API list, with the same signature."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bluelm_edge.android.stubs import check_stubs, load_api_list, normalise_member, parse_javap

pytestmark = [pytest.mark.java,
              pytest.mark.skipif(shutil.which("javap") is None, reason="needs a JDK (scripts/install.sh)")]

DEMO = Path(__file__).resolve().parents[1] / "android_demo"
API_LIST = DEMO / "stubs" / "api-list.txt"

JAVAP = """Compiled from "View.java"
public class android.widget.TextView extends android.view.View {
  public static final int GONE = 8;
  public android.widget.TextView(android.content.Context);
  public final void setText(java.lang.CharSequence);
  public <T extends android.view.View> T findViewById(int);
  protected synchronized native int load() throws java.io.IOException;
}
Compiled from "LlmCallback.java"
public interface org.pytorch.executorch.extension.llm.LlmCallback {
  public default void onStats(java.lang.String);
}
"""


def test_parse_javap_exact():
    assert parse_javap(JAVAP) == {
        "android.widget.TextView: class android.widget.TextView extends android.view.View",
        "android.widget.TextView: static int GONE = 8",
        "android.widget.TextView: android.widget.TextView(android.content.Context)",
        "android.widget.TextView: void setText(java.lang.CharSequence)",
        "android.widget.TextView: <T extends android.view.View> T findViewById(int)",
        "android.widget.TextView: int load() throws java.io.IOException",
        "org.pytorch.executorch.extension.llm.LlmCallback: interface org.pytorch.executorch.extension.llm.LlmCallback",
        "org.pytorch.executorch.extension.llm.LlmCallback: void onStats(java.lang.String)",
    }
    assert normalise_member("public static final java.lang.String MODEL;") == "static java.lang.String MODEL"


def test_every_stub_member_is_recorded():
    assert check_stubs(DEMO) == []


def test_api_list_pins_the_android_version():
    text = API_LIST.read_text()
    assert "API level 34" in text and "compileSdkVersion = 34" in (DEMO / "build.gradle").read_text()


def test_api_list_records_the_pinned_executorch():
    from bluelm_edge.android.runtime import carried_version

    assert f"org.pytorch:executorch-android {carried_version()}" in API_LIST.read_text()


@pytest.mark.parametrize("line", [
    "org.pytorch.executorch.extension.llm.LlmModule: void prefillImages(float[], int, int, int)",
    "org.pytorch.executorch.extension.llm.LlmCallback: void onError(int, java.lang.String)",
    "org.pytorch.executorch.ExecutorchRuntimeException: int getErrorCode()",
    "android.view.View: static int GONE = 8",
    "android.app.Activity: class android.app.Activity extends android.view.ContextThemeWrapper",
])
def test_a_stub_member_missing_from_the_list_is_reported(line, tmp_path):
    recorded = load_api_list(API_LIST)
    assert line in recorded
    edited = tmp_path / "api-list.txt"
    edited.write_text("\n".join(sorted(recorded - {line})) + "\n")
    assert check_stubs(DEMO, edited) == [line]


def test_a_changed_signature_is_reported(tmp_path):
    text = API_LIST.read_text().replace("static int GONE = 8", "static int GONE = 4")
    edited = tmp_path / "api-list.txt"
    edited.write_text(text)
    assert check_stubs(DEMO, edited) == ["android.view.View: static int GONE = 8"]
