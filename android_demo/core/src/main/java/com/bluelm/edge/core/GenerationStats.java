package com.bluelm.edge.core;

import org.json.JSONException;
import org.json.JSONObject;

/**
 * Generation statistics from the ExecuTorch runner's stats JSON ({@code LlmCallback.onStats}):
 * time to first token, prefill and decode tokens per second, plus the thinking pieces counted by
 * the budget controller. Keys and units follow ExecuTorch's {@code extension/llm/stats.h}.
 */
public final class GenerationStats {

    public long promptTokens;
    public long generatedTokens;
    public long modelLoadStartMs;
    public long modelLoadEndMs;
    public long inferenceStartMs;
    public long inferenceEndMs;
    public long promptEvalEndMs;
    public long firstTokenMs;
    public int thinkingTokens;
    /** How the answer ended: eos, user, context_full or error (see ChatEngine). */
    public String finish = "eos";
    /** The failed runner call on one line (RunnerException.oneLine), or null. */
    public String error;
    /** The ExecuTorch error code of {@link #error}, or RunnerException.UNKNOWN. */
    public int errorCode = RunnerException.UNKNOWN;
    /** Runner calls that made up the answer (one more per forced continuation). */
    public int runnerCalls;

    /** Parse the runner's stats JSON (timestamps in ms, {@code SCALING_FACTOR_UNITS_PER_SECOND} 1000). */
    public static GenerationStats fromRunnerJson(String json) throws JSONException {
        JSONObject o = new JSONObject(json);
        long scale = o.optLong("SCALING_FACTOR_UNITS_PER_SECOND", 1000);
        if (scale != 1000) {
            throw new JSONException("stats timestamps are not in ms (scale " + scale + ")");
        }
        GenerationStats s = new GenerationStats();
        s.promptTokens = o.getLong("prompt_tokens");
        s.generatedTokens = o.getLong("generated_tokens");
        s.modelLoadStartMs = o.getLong("model_load_start_ms");
        s.modelLoadEndMs = o.getLong("model_load_end_ms");
        s.inferenceStartMs = o.getLong("inference_start_ms");
        s.inferenceEndMs = o.getLong("inference_end_ms");
        s.promptEvalEndMs = o.getLong("prompt_eval_end_ms");
        s.firstTokenMs = o.getLong("first_token_ms");
        return s;
    }

    /**
     * One answer made of several runner calls (the budget splits it: think, stop, prefill the
     * forced text, answer): the first call's prefill and first token, and the decode of all.
     */
    public GenerationStats mergeContinuation(GenerationStats next) {
        GenerationStats m = new GenerationStats();
        m.promptTokens = promptTokens;
        m.generatedTokens = generatedTokens + next.generatedTokens;
        m.modelLoadStartMs = modelLoadStartMs;
        m.modelLoadEndMs = modelLoadEndMs;
        m.inferenceStartMs = inferenceStartMs;
        m.promptEvalEndMs = promptEvalEndMs;
        m.firstTokenMs = firstTokenMs;
        m.inferenceEndMs = next.inferenceEndMs;
        m.thinkingTokens = thinkingTokens + next.thinkingTokens;
        m.runnerCalls = runnerCalls + next.runnerCalls;
        return m;
    }

    public double loadMs() {
        return modelLoadEndMs - modelLoadStartMs;
    }

    public double ttftMs() {
        return firstTokenMs - inferenceStartMs;
    }

    public double totalMs() {
        return inferenceEndMs - inferenceStartMs;
    }

    /** Prompt tokens per second of prefill (0 when the interval is empty). */
    public double prefillTokPerS() {
        return rate(promptTokens, promptEvalEndMs - inferenceStartMs);
    }

    /** Generated tokens per second after prefill, as ExecuTorch's own report computes it. */
    public double decodeTokPerS() {
        return rate(generatedTokens, inferenceEndMs - promptEvalEndMs);
    }

    private static double rate(long tokens, long ms) {
        return ms <= 0 ? 0.0 : tokens * 1000.0 / ms;
    }

    /** The stats line shown under an answer (the error line when it failed). */
    public String summary() {
        if (error != null) {
            return error;
        }
        return String.format(java.util.Locale.US,
                "TTFT %.0f ms | prefill %.1f tok/s | decode %.1f tok/s | thinking %d tokens",
                ttftMs(), prefillTokPerS(), decodeTokPerS(), thinkingTokens);
    }
}
