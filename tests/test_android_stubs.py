"""Every compile-only stub member is in the recorded upstream API list, with the same signature."""

from __future__ import annotations

import re
import shutil
import subprocess
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


def test_executorch_members_are_the_15_api():
    """What made the 1.0.1 list wrong for 1.5: the calls return nothing (they throw) and onError exists."""
    recorded = load_api_list(API_LIST)
    llm = "org.pytorch.executorch.extension.llm."
    for line in ("LlmModule: void load()", "LlmModule: void prefillPrompt(java.lang.String)",
                 "LlmModule: void prefillImages(float[], int, int, int)", "LlmModule: void close()",
                 f"LlmModule: void generate(java.lang.String, int, {llm}LlmCallback, boolean)",
                 "LlmCallback: void onError(int, java.lang.String)"):
        assert llm + line in recorded
    stale = [r for r in recorded if r.startswith(llm + "LlmModule: ") and (" int load()" in r or ": long " in r
                                                                           or ": int generate(" in r)]
    assert stale == []


UPSTREAM = Path("/work/.mirror/pytorch+executorch/repo")
KOTLIN = "extension/android/executorch_android/src/main/java/org/pytorch/executorch/"
KT_TYPES = {"Int": "int", "Float": "float", "Boolean": "boolean", "String": "java.lang.String", "IntArray": "int[]",
            "FloatArray": "float[]", "ByteArray": "byte[]", "Throwable": "java.lang.Throwable",
            "LlmCallback": "org.pytorch.executorch.extension.llm.LlmCallback"}
KT_FUN = re.compile(r"^\s*(?:@\w+\s+)*(?:override\s+)?fun\s+(\w+)\(([^)]*)\)\s*(:\s*[\w?]+)?", re.M)


def kotlin_void_methods(source: str) -> set[str]:
    """`void name(java types)` for each public `fun` with no return type (KT_FUN skips private ones)."""
    out = set()
    for m in KT_FUN.finditer(source):
        if m.group(3):
            continue
        params = [p.split(":")[1].strip().rstrip("?") for p in m.group(2).split(",") if ":" in p]
        out.add(f"void {m.group(1)}({', '.join(KT_TYPES.get(p, p) for p in params)})")
    return out


@pytest.mark.skipif(not (UPSTREAM / "HEAD").exists(), reason="needs the ExecuTorch source snapshot (/work/.mirror)")
def test_recorded_void_members_are_in_the_upstream_kotlin():
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(UPSTREAM), "show", f"main:{path}"], capture_output=True,
                              text=True, check=True).stdout

    assert show("version.txt").startswith("1.5."), "the snapshot is not the 1.5 line the api-list was written from"
    for cls, path in (("extension.llm.LlmModule", "extension/llm/LlmModule.kt"),
                      ("extension.llm.LlmCallback", "extension/llm/LlmCallback.kt")):
        upstream = kotlin_void_methods(show(KOTLIN + path))
        prefix = f"org.pytorch.executorch.{cls}: "
        recorded = {r[len(prefix):] for r in load_api_list(API_LIST) if r.startswith(prefix + "void ")}
        assert recorded and recorded <= upstream, sorted(recorded - upstream)
    ere = show(KOTLIN + "ExecutorchRuntimeException.kt")  # open class, `val errorCode` -> getErrorCode()
    assert re.search(r"open class ExecutorchRuntimeException\s+@DoNotStrip\s+constructor\(\s+val errorCode: Int,"
                     r"\s+details: String\?,\s+\) : RuntimeException\(", ere)


@pytest.mark.skipif(not (UPSTREAM / "HEAD").exists(), reason="needs the ExecuTorch source snapshot (/work/.mirror)")
def test_recorded_tensor_factories_are_in_the_upstream_kotlin():
    """The fromBlob overloads the app calls, the zero-copy Buffer ones included, as Tensor.kt declares them."""
    src = subprocess.run(["git", "-C", str(UPSTREAM), "show", f"main:{KOTLIN}Tensor.kt"], capture_output=True,
                         text=True, check=True).stdout
    kt = {"FloatArray": "float[]", "ByteArray": "byte[]", "LongArray": "long[]", "FloatBuffer": "java.nio.FloatBuffer",
          "ByteBuffer": "java.nio.ByteBuffer"}
    upstream = {f"static org.pytorch.executorch.Tensor {m.group(1)}({kt.get(m.group(2), m.group(2))}, long[])"
                for m in re.finditer(r"@JvmStatic\s+fun\s+(fromBlob\w*)\(data: (\w+), shape: LongArray\): Tensor", src)}
    prefix = "org.pytorch.executorch.Tensor: "
    recorded = {r[len(prefix):] for r in load_api_list(API_LIST) if r.startswith(prefix + "static ")}
    assert len(recorded) == 5 and recorded <= upstream, sorted(recorded - upstream)
