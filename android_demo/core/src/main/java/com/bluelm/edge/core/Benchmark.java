package com.bluelm.edge.core;

import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The benchmark behind {@code BenchmarkActivity} (docs/contracts.md, results schema 2): load the
 * module once (its time reported once, as {@code load_ms} at the top), one warm-up answer, then
 * {@code runs} timed answers per prompt, each from an empty cache ({@code resetContext()}, done by
 * {@link ChatEngine#generate}), and the module freed at the end. A failed runner call ends it with
 * {@code status: error} and the runner's code and message.
 */
public final class Benchmark {

    public static final int SCHEMA_VERSION = 2;

    /** Peak memory of this process in kB, or -1 if unknown (the app reads /proc/self/status). */
    public interface Memory {
        long peakKb();
    }

    private static final ChatEngine.Listener SILENT = new ChatEngine.Listener() {
        @Override
        public void onPiece(String text, boolean thinking, boolean forced) {
        }
    };

    private Benchmark() {
    }

    public static JSONObject run(ChatEngine engine, BundleManifest m, List<String> prompts, int runs,
            Integer budget, Memory memory) throws JSONException {
        JSONObject out = header(m.bundleId, m.backend, budget);
        out.put("runs_per_prompt", runs).put("warmup_runs", prompts.isEmpty() ? 0 : 1);
        JSONArray rows = new JSONArray();
        try {
            out.put("load_ms", (double) engine.load());
            if (!prompts.isEmpty()) {
                check(once(engine, prompts.get(0), budget));
            }
            for (int p = 0; p < prompts.size(); p++) {
                for (int r = 0; r < runs; r++) {
                    GenerationStats s = check(once(engine, prompts.get(p), budget));
                    rows.put(row(s, r, p, memory.peakKb()));
                }
            }
        } catch (RunnerException e) {
            out.put("status", "error").put("error", e.oneLine()).put("error_code", e.code);
        } finally {
            engine.close();
        }
        out.put("runs", rows);
        return out;
    }

    private static GenerationStats once(ChatEngine engine, String prompt, Integer budget) {
        engine.newChat();
        return engine.answer(prompt, Collections.<List<float[]>>emptyList(), budget, SILENT);
    }

    private static GenerationStats check(GenerationStats s) throws RunnerException {
        if (s.error != null) {
            throw RunnerException.ofLine(s.errorCode, s.error);
        }
        return s;
    }

    private static JSONObject row(GenerationStats s, int run, int prompt, long peakKb) throws JSONException {
        JSONObject row = new JSONObject();
        row.put("run", run).put("prompt_index", prompt).put("load_ms", JSONObject.NULL);
        row.put("ttft_ms", s.ttftMs()).put("prefill_tokens", s.promptTokens);
        row.put("prefill_tok_s", s.prefillTokPerS()).put("decode_tokens", s.generatedTokens);
        row.put("decode_tok_s", s.decodeTokPerS()).put("thinking_tokens", s.thinkingTokens);
        row.put("total_ms", s.totalMs()).put("peak_memory_kb", peakKb);
        row.put("finish", s.finish).put("runner_calls", s.runnerCalls);
        return row;
    }

    /** The results head; also the whole answer when the app fails before the engine exists. */
    public static JSONObject header(String id, String backend, Integer budget) throws JSONException {
        JSONObject o = new JSONObject();
        o.put("schema_version", SCHEMA_VERSION).put("status", "ok").put("error", JSONObject.NULL);
        o.put("error_code", JSONObject.NULL).put("load_ms", JSONObject.NULL);
        o.put("bundle_id", id == null ? JSONObject.NULL : id);
        o.put("backend", backend == null ? JSONObject.NULL : backend);
        o.put("thinking_budget", budget == null ? JSONObject.NULL : budget);
        o.put("runs", new JSONArray());
        return o;
    }
}
