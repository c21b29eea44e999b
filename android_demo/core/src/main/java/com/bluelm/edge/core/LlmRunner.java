package com.bluelm.edge.core;

/**
 * The part of ExecuTorch's {@code LlmModule} the engine uses, with every failure as a
 * {@link RunnerException}. The app adapts the real module ({@code demo.ModuleRunner}); the host
 * tests use a Java model of the runner checked against the real one
 * ({@code tests/vectors/runner_behaviour.json}).
 *
 * <p>Behaviour the engine relies on (the runner's, see docs/android.md): {@code generate} streams
 * pieces merged until they are valid UTF-8 (one piece can be several tokens); a {@code stop()}
 * made in the callback of the prefill token is ignored; every {@code generate} leaves the token of
 * its last callback out of the KV cache; {@code seqLen} bounds the total position.
 */
public interface LlmRunner {

    /** Receives one generate call's output; called on the generating thread. */
    interface Callback {
        void onResult(String piece);

        void onStats(String json);

        void onError(int code, String message);
    }

    void load() throws RunnerException;

    /** Tokenise and prefill text (no BOS after the first call). */
    void prefillPrompt(String text) throws RunnerException;

    /** Prefill one normalised CHW image tile. */
    void prefillImage(float[] chw, int width, int height, int channels) throws RunnerException;

    /**
     * Prefill {@code prompt} (non-empty) and generate until EOS, stop or {@code seqLen} positions,
     * sampling at {@code temperature} (0: greedy), as {@code LlmModule.generate(prompt, seqLen,
     * callback, echo=false, temperature, numBos=0, numEos=0)}. LlmModule 1.5 has no top-p.
     */
    void generate(String prompt, int seqLen, float temperature, Callback callback) throws RunnerException;

    /** Ask the running generate to stop; safe from the callback. */
    void stop();

    /** Clear the KV cache (position 0). */
    void resetContext() throws RunnerException;

    /** Free the native module; the runner cannot be used afterwards. */
    void close();
}
