package com.bluelm.edge.demo;

import com.bluelm.edge.core.BpeTokenizer;
import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatEngine;
import com.bluelm.edge.core.LlmRunner;
import com.bluelm.edge.core.RunnerException;
import com.bluelm.edge.core.RuntimeVersion;
import com.bluelm.edge.core.StaticKvRunner;
import com.bluelm.edge.core.TokenCounter;
import java.io.File;
import java.io.IOException;
import org.pytorch.executorch.ExecutorchRuntimeException;
import org.pytorch.executorch.extension.llm.LlmCallback;
import org.pytorch.executorch.extension.llm.LlmModule;

/**
 * The core's {@link LlmRunner} over ExecuTorch 1.5.1's {@code LlmModule} (Kotlin; members used, as
 * recorded in stubs/api-list.txt: {@code LlmModule(int, String, String, float)}, {@code void load()},
 * {@code void prefillPrompt(String)}, {@code void prefillImages(float[], int, int, int)},
 * {@code void generate(String, int, LlmCallback, boolean, float, int, int)}, {@code stop()}, {@code resetContext()},
 * {@code close()}; {@code LlmCallback.onResult/onStats/onError}). A failed native call throws the
 * unchecked {@code ExecutorchRuntimeException}: it becomes a {@link RunnerException} with its
 * {@code getErrorCode()} and message ({@link RunnerException#fromExecutorch}). Any other runtime
 * exception (IllegalArgumentException for a missing file, IllegalStateException for a closed
 * module or a call from inside a callback) becomes one with {@link RunnerException#UNKNOWN}.
 */
final class ModuleRunner implements LlmRunner {

    private static final int CLOSE_TRIES = 40;
    private static final long CLOSE_WAIT_MS = 50;

    private final LlmModule module;

    private ModuleRunner(LlmModule module) {
        this.module = module;
    }

    /**
     * The engine for a bundle: its runner (LlmModule, or for a static-kv bundle the core's
     * StaticKvRunner over the program's Module) plus the token counter from its tokenizer.json.
     */
    static ChatEngine engine(File dir, BundleManifest manifest) throws IOException, RunnerException {
        String tokenizer = new String(Files.read(new File(dir, "tokenizer.json")), "UTF-8");
        TokenCounter counter;
        try {
            counter = TokenCounter.fromTokenizerJson(tokenizer);
        } catch (org.json.JSONException e) {
            throw new IOException("tokenizer.json is not a Hugging Face tokenizer: " + e.getMessage());
        }
        if (RuntimeVersion.STATIC_KV.equals(manifest.runner)) {
            return new ChatEngine(staticKv(dir, manifest, tokenizer), manifest, counter);
        }
        LlmModule module;
        try { // 1.5 checks the files and creates the native runner here
            module = new LlmModule(LlmModule.MODEL_TYPE_MULTIMODAL, new File(dir, manifest.program).getPath(),
                    new File(dir, "tokenizer.json").getPath(), 0.0f);
        } catch (RuntimeException e) {
            throw failure("create", e);
        }
        return new ChatEngine(new ModuleRunner(module), manifest, counter);
    }

    private static StaticKvRunner staticKv(File dir, BundleManifest manifest, String tokenizerJson)
            throws IOException, RunnerException {
        BpeTokenizer tokenizer;
        try {
            tokenizer = BpeTokenizer.fromTokenizerJson(tokenizerJson);
        } catch (org.json.JSONException e) {
            throw new IOException("tokenizer.json is not a Hugging Face tokenizer: " + e.getMessage());
        } catch (IllegalArgumentException e) {
            throw new IOException("tokenizer.json: " + e.getMessage());
        }
        return new StaticKvRunner(ModuleProgram.load(new File(dir, manifest.program)), tokenizer, System.nanoTime());
    }

    static RunnerException failure(String call, RuntimeException e) {
        if (e instanceof ExecutorchRuntimeException) {
            return RunnerException.fromExecutorch(call, ((ExecutorchRuntimeException) e).getErrorCode(), e.getMessage());
        }
        return new RunnerException(call, RunnerException.UNKNOWN, String.valueOf(e.getMessage()));
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

    /** 1.5 reports a failed generate twice, onError(code, message) and then the exception: the exception wins. */
    @Override
    public void generate(String prompt, int seqLen, float temperature, final Callback callback)
            throws RunnerException {
        try {
            module.generate(prompt, seqLen, new Bridge(callback), false, temperature, 0, 0);
        } catch (RuntimeException e) {
            throw failure("generate", e);
        }
    }

    @Override
    public void stop() {
        module.stop(); // returns at once after close(); never throws
    }

    @Override
    public void resetContext() throws RunnerException {
        try {
            module.resetContext();
        } catch (RuntimeException e) {
            throw failure("reset", e);
        }
    }

    /**
     * 1.5's close() throws IllegalStateException while a call runs; the app has called stop(), so
     * wait for the generate to end (up to {@code CLOSE_TRIES * CLOSE_WAIT_MS}). If it is still
     * running then, the native module is left to fbjni's HybridData destructor (freed when collected).
     */
    @Override
    public void close() {
        for (int i = 0; ; i++) {
            try {
                module.close();
                return;
            } catch (IllegalStateException running) {
                if (i == CLOSE_TRIES) {
                    return;
                }
                module.stop();
                try {
                    Thread.sleep(CLOSE_WAIT_MS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    /** LlmCallback to the core's callback. */
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

        @Override
        public void onError(int code, String message) {
            cb.onError(code, message);
        }
    }
}
