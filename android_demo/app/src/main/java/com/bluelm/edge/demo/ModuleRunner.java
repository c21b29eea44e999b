package com.bluelm.edge.demo;

import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatEngine;
import com.bluelm.edge.core.LlmRunner;
import com.bluelm.edge.core.RunnerException;
import com.bluelm.edge.core.TokenCounter;
import java.io.File;
import java.io.IOException;
import org.pytorch.executorch.extension.llm.LlmCallback;
import org.pytorch.executorch.extension.llm.LlmModule;

/**
 * The core's {@link LlmRunner} over ExecuTorch's {@code LlmModule}. Members used (all in 1.0.1 and
 * 1.5.x): {@code LlmModule(int, String, String, float)}, {@code load()}, {@code prefillPrompt(String)},
 * {@code prefillImages(float[], int, int, int)}, {@code generate(String, int, LlmCallback, boolean)},
 * {@code stop()}, {@code resetContext()}, {@code resetNative()}; {@code LlmCallback.onResult/onStats}
 * and, from 1.5, {@code onError(int, String)}. Each is called as a statement, so the same source
 * builds against 1.0.1 (which returns codes: int/long) and 1.5 (which returns nothing and throws
 * {@code ExecutorchRuntimeException}, whose {@code getErrorCode()} is read here). On 1.0.1 a failed
 * generate returns 0 silently: the engine then sees no tokens and no stats and reports that.
 */
final class ModuleRunner implements LlmRunner {

    private final LlmModule module;

    ModuleRunner(File dir, BundleManifest manifest) {
        module = new LlmModule(LlmModule.MODEL_TYPE_MULTIMODAL, new File(dir, manifest.program).getPath(),
                new File(dir, "tokenizer.json").getPath(), 0.0f);
    }

    /** The engine for a bundle: the module plus the token counter from its tokenizer.json. */
    static ChatEngine engine(File dir, BundleManifest manifest) throws IOException, RunnerException {
        TokenCounter counter;
        try {
            counter = TokenCounter.fromTokenizerJson(new String(Files.read(new File(dir, "tokenizer.json")), "UTF-8"));
        } catch (org.json.JSONException e) {
            throw new IOException("tokenizer.json is not a Hugging Face tokenizer: " + e.getMessage());
        }
        try {
            return new ChatEngine(new ModuleRunner(dir, manifest), manifest, counter);
        } catch (RuntimeException e) { // 1.5 validates the paths and creates the runner here
            throw failure("create", e);
        }
    }

    static RunnerException failure(String call, Throwable t) {
        int code = RunnerException.UNKNOWN;
        try {
            Object c = t.getClass().getMethod("getErrorCode").invoke(t);
            code = ((Integer) c).intValue();
        } catch (Exception notExecutorch) {
            code = RunnerException.UNKNOWN;
        }
        return new RunnerException(call, code, String.valueOf(t.getMessage()));
    }

    @Override
    public void load() throws RunnerException {
        try {
            module.load();
        } catch (RuntimeException e) {
            throw failure("load", e);
        }
    }

    @Override
    public void prefillPrompt(String text) throws RunnerException {
        try {
            module.prefillPrompt(text);
        } catch (RuntimeException e) {
            throw failure("prefill", e);
        }
    }

    @Override
    public void prefillImage(float[] chw, int width, int height, int channels) throws RunnerException {
        try {
            module.prefillImages(chw, width, height, channels);
        } catch (RuntimeException e) {
            throw failure("prefill", e);
        }
    }

    @Override
    public void generate(String prompt, int seqLen, final Callback callback) throws RunnerException {
        try {
            module.generate(prompt, seqLen, new Bridge(callback), false);
        } catch (RuntimeException e) {
            throw failure("generate", e);
        }
    }

    @Override
    public void stop() {
        module.stop();
    }

    @Override
    public void resetContext() throws RunnerException {
        try {
            module.resetContext();
        } catch (RuntimeException e) {
            throw failure("reset", e);
        }
    }

    @Override
    public void close() {
        module.resetNative();
    }

    /** LlmCallback to the core's callback; onError is 1.5's (a plain method for 1.0.1). */
    private static final class Bridge implements LlmCallback {
        private final Callback cb;

        Bridge(Callback cb) {
            this.cb = cb;
        }

        @Override
        public void onResult(String piece) {
            cb.onResult(piece);
        }

        @Override
        public void onStats(String json) {
            cb.onStats(json);
        }

        public void onError(int code, String message) {
            cb.onError(code, message);
        }
    }
}
