package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** The benchmark loads once, warms up once, resets between runs, frees the module; errors are one line. */
public class BenchmarkTest {

    static final Benchmark.Memory MEMORY = new Benchmark.Memory() {
        @Override
        public long peakKb() {
            return 123456;
        }
    };

    static BundleManifest manifest(int maxContext) throws Exception {
        JSONObject v = Vectors.load("chat_engine.json");
        BundleManifest m = BundleManifest.parse(v.getJSONObject("manifest").toString());
        m.maxContext = maxContext;
        return m;
    }

    @Test
    public void loadsOnceWarmsUpAndFreesTheModule() throws Exception {
        RunnerModel model = SyntheticModel.create(256);
        BundleManifest m = manifest(256);
        ChatEngine engine = new ChatEngine(model, m, new TokenCounter(SyntheticModel.vocabBytes()));
        List<String> prompts = Arrays.asList("What is 2+3?", "Name a colour.");
        JSONObject out = Benchmark.run(engine, m, prompts, 3, Integer.valueOf(0), MEMORY);
        assertEquals(2, out.getInt("schema_version"));
        assertEquals("ok", out.getString("status"));
        assertTrue(out.isNull("error"));
        assertTrue(out.getDouble("load_ms") >= 0);
        assertEquals(1, out.getInt("warmup_runs"));
        assertEquals(3, out.getInt("runs_per_prompt"));
        assertEquals(1, model.loadCalls);
        assertEquals(1 + 2 * 3, model.generateCalls); // budget 0: one runner call an answer
        assertEquals(1 + 2 * 3, model.resetCalls);
        assertTrue(model.closed);
        JSONArray rows = out.getJSONArray("runs");
        assertEquals(6, rows.length());
        for (int i = 0; i < rows.length(); i++) {
            JSONObject r = rows.getJSONObject(i);
            assertEquals(i % 3, r.getInt("run"));
            assertEquals(i / 3, r.getInt("prompt_index"));
            assertTrue(r.isNull("load_ms"));
            assertEquals(2, r.getInt("decode_tokens")); // "a", "b", EOS: two steps after the prefill sample
            assertEquals("eos", r.getString("finish"));
            assertEquals(123456, r.getLong("peak_memory_kb"));
        }
    }

    @Test
    public void aFailedGenerateIsStatusErrorWithTheCode() throws Exception {
        RunnerModel model = SyntheticModel.create(8); // the prompt does not fit
        BundleManifest m = manifest(8);
        ChatEngine engine = new ChatEngine(model, m, new TokenCounter(SyntheticModel.vocabBytes()));
        JSONObject out = Benchmark.run(engine, m, Arrays.asList("What is 2+3?"), 2, Integer.valueOf(0), MEMORY);
        assertEquals("error", out.getString("status"));
        assertEquals(0x12, out.getInt("error_code"));
        String err = out.getString("error");
        assertTrue(err, err.startsWith("generate failed (ExecuTorch error 0x12): pos_ 0 + num_prompt_tokens"));
        assertEquals(0, out.getJSONArray("runs").length());
        assertEquals(1, model.generateCalls); // stopped at the warm-up
        assertTrue(model.closed);
    }
}
