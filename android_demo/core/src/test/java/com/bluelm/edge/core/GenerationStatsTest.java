package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

/** GenerationStats on a stats JSON in the exact format ExecuTorch's runner emits. */
public class GenerationStatsTest {

    private static final String STATS = "{\"prompt_tokens\":42,\"generated_tokens\":120,"
            + "\"model_load_start_ms\":1000,\"model_load_end_ms\":1812,"
            + "\"inference_start_ms\":2000,\"inference_end_ms\":7230,"
            + "\"prompt_eval_end_ms\":2100,\"first_token_ms\":2095,"
            + "\"aggregate_sampling_time_ms\":30,\"SCALING_FACTOR_UNITS_PER_SECOND\":1000}";

    @Test
    public void ratesFromTimestamps() throws Exception {
        GenerationStats s = GenerationStats.fromRunnerJson(STATS);
        assertEquals(812.0, s.loadMs(), 0);
        assertEquals(95.0, s.ttftMs(), 0);
        assertEquals(420.0, s.prefillTokPerS(), 1e-9); // 42 tokens in 100 ms
        assertEquals(120 * 1000.0 / 5130, s.decodeTokPerS(), 1e-9);
        assertEquals(5230.0, s.totalMs(), 0);
    }

    @Test
    public void continuationAddsDecodeKeepsPrefill() throws Exception {
        GenerationStats a = GenerationStats.fromRunnerJson(STATS);
        a.thinkingTokens = 64;
        GenerationStats b = GenerationStats.fromRunnerJson(STATS.replace("\"inference_end_ms\":7230",
                "\"inference_end_ms\":9230").replace("\"generated_tokens\":120", "\"generated_tokens\":30"));
        GenerationStats m = a.mergeContinuation(b);
        assertEquals(150, m.generatedTokens);
        assertEquals(150 * 1000.0 / 7130, m.decodeTokPerS(), 1e-9);
        assertEquals(420.0, m.prefillTokPerS(), 1e-9);
        assertEquals(64, m.thinkingTokens);
        assertEquals("TTFT 95 ms | prefill 420.0 tok/s | decode 21.0 tok/s | thinking 64 tokens", m.summary());
    }

    @Test(expected = org.json.JSONException.class)
    public void otherUnitsAreRejected() throws Exception {
        GenerationStats.fromRunnerJson(STATS.replace(":1000}", ":1000000}"));
    }
}
