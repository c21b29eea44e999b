package org.pytorch.executorch.extension.llm;

/** Test double of ExecuTorch 1.5's LlmCallback (its default methods, as the Kotlin compiles). */
public interface LlmCallback {
    void onResult(String result);

    default void onStats(String stats) {
    }

    default void onError(int errorCode, String message) {
    }
}
