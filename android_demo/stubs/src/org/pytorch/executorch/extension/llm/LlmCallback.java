package org.pytorch.executorch.extension.llm;

public interface LlmCallback {
    void onResult(String result);
    default void onStats(String stats) { throw new RuntimeException("Stub!"); }
    default void onError(int errorCode, String message) { throw new RuntimeException("Stub!"); }
}
