package org.pytorch.executorch.extension.llm;

import java.util.ArrayList;
import java.util.List;
import org.pytorch.executorch.ExecutorchRuntimeException;

/**
 * Test double of ExecuTorch 1.5's LlmModule with the members the app uses (stubs/api-list.txt),
 * behaving as the 1.5 Kotlin does where the adapter depends on it: a native failure throws
 * ExecutorchRuntimeException (a failed generate first calls onError, then throws), close() throws
 * IllegalStateException while a call runs. {@link #script} says what the next module does.
 */
public final class LlmModule implements java.io.Closeable {
    public static final int MODEL_TYPE_TEXT = 1;
    public static final int MODEL_TYPE_TEXT_VISION = 2;
    public static final int MODEL_TYPE_MULTIMODAL = 2;

    /** What the module does; a test sets it before the ModuleRunner creates its module. */
    public static final class Script {
        public RuntimeException onCreate;
        public RuntimeException onLoad;
        public List<String> pieces = new ArrayList<String>();
        public int generateErrorCode;
        public int closeBusy;
        public final List<String> calls = new ArrayList<String>();
        public float temperature = Float.NaN;
        public int stops;
    }

    public static Script script = new Script();
    /** Constructions so far, failed ones included (a test resets it). */
    public static int created;
    private final Script s;

    public LlmModule(int modelType, String modulePath, String tokenizerPath, float temperature) {
        created++;
        s = script;
        if (s.onCreate != null) {
            throw s.onCreate;
        }
        s.calls.add("create " + modelType);
    }

    public final void load() {
        s.calls.add("load");
        if (s.onLoad != null) {
            throw s.onLoad;
        }
    }

    public final void generate(String prompt, int seqLen, LlmCallback cb, boolean echo) {
        generate(prompt, seqLen, cb, echo, -1f, 0, 0);
    }

    public final void generate(String prompt, int seqLen, LlmCallback cb, boolean echo, float temperature,
            int numBos, int numEos) {
        s.calls.add("generate " + prompt + " " + seqLen + " echo=" + echo + " bos=" + numBos + " eos=" + numEos);
        s.temperature = temperature;
        for (String p : s.pieces) {
            cb.onResult(p);
        }
        if (s.generateErrorCode != 0) {
            cb.onError(s.generateErrorCode, "Failed to generate");
            throw new ExecutorchRuntimeException(s.generateErrorCode, "Invalid argument: Failed to generate");
        }
        cb.onStats("{\"prompt_tokens\":3,\"generated_tokens\":" + Math.max(0, s.pieces.size() - 1) + "}");
    }

    public final void prefillImages(float[] image, int width, int height, int channels) {
        s.calls.add("image " + image.length + " " + width + "x" + height + "x" + channels);
    }

    public final void prefillPrompt(String prompt) {
        s.calls.add("prefill " + prompt);
    }

    public final void resetContext() {
        s.calls.add("reset");
    }

    public final void stop() {
        s.stops++;
    }

    public void close() {
        if (s.closeBusy > 0) {
            s.closeBusy--;
            throw new IllegalStateException("Cannot close while a call is running");
        }
        s.calls.add("close");
    }
}
