package com.bluelm.edge.demo;

import android.app.Activity;
import android.content.Intent;
import android.os.Bundle;
import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.GenerationStats;
import java.io.File;
import java.util.Collections;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The benchmark entry for {@code bluelm-edge profile} (docs/contracts.md): started with
 * {@code am start -n com.bluelm.edge.demo/.BenchmarkActivity --es bundle ID --es prompts PATH
 * --ei runs N --es thinking_budget none|0|N --es out NAME}; runs without UI interaction and writes
 * the results JSON atomically to {@code getExternalFilesDir("bench")/NAME}, then finishes.
 */
public class BenchmarkActivity extends Activity {

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        final Intent intent = getIntent();
        new Thread(new Runnable() {
            @Override
            public void run() {
                runAndWrite(intent);
            }
        }).start();
    }

    private void runAndWrite(Intent intent) {
        String out = intent.getStringExtra("out");
        JSONObject result = new JSONObject();
        try {
            result = benchmark(intent);
        } catch (Throwable t) {
            result = errorResult(intent, t);
        }
        try {
            File file = new File(getExternalFilesDir("bench"), out == null ? "results.json" : out);
            Files.writeAtomically(file, result.toString(2).getBytes("UTF-8"));
        } catch (Exception e) {
            System.err.println("bluelm benchmark: cannot write results: " + e);
        }
        finish();
    }

    static Integer parseBudget(String s) {
        if (s == null || s.equals("none")) {
            return null;
        }
        return Integer.valueOf(Integer.parseInt(s));
    }

    private JSONObject benchmark(Intent intent) throws Exception {
        String id = intent.getStringExtra("bundle");
        Integer budget = parseBudget(intent.getStringExtra("thinking_budget"));
        int runs = intent.getIntExtra("runs", 1);
        BundleStore store = new BundleStore(this);
        BundleManifest m = store.manifest(id);
        JSONArray prompts = new JSONArray(new String(Files.read(new File(intent.getStringExtra("prompts"))), "UTF-8"));
        JSONObject result = header(id, m.backend, budget);
        JSONArray rows = new JSONArray();
        for (int run = 0; run < runs; run++) {
            for (int p = 0; p < prompts.length(); p++) {
                rows.put(oneRun(store, m, id, prompts.getString(p), budget, run, p));
            }
        }
        result.put("runs", rows);
        return result;
    }

    private JSONObject oneRun(BundleStore store, BundleManifest m, String id, String prompt, Integer budget,
            int run, int index) throws JSONException {
        ChatEngine engine = new ChatEngine(store.dir(id), m);
        long loadMs = engine.load();
        GenerationStats s = engine.answer(prompt, Collections.<float[]>emptyList(), budget,
                new ChatEngine.Listener() {
                    @Override
                    public void onPiece(String text, boolean thinking, boolean forced) {
                    }
                });
        JSONObject row = new JSONObject();
        row.put("run", run).put("prompt_index", index).put("load_ms", (double) loadMs);
        row.put("ttft_ms", s.ttftMs()).put("prefill_tokens", s.promptTokens);
        row.put("prefill_tok_s", s.prefillTokPerS()).put("decode_tokens", s.generatedTokens);
        row.put("decode_tok_s", s.decodeTokPerS()).put("thinking_tokens", s.thinkingTokens);
        row.put("total_ms", s.totalMs()).put("peak_memory_kb", ChatEngine.peakMemoryKb());
        return row;
    }

    private static JSONObject header(String id, String backend, Integer budget) throws JSONException {
        JSONObject o = new JSONObject();
        o.put("schema_version", 1).put("status", "ok").put("error", JSONObject.NULL);
        o.put("bundle_id", id == null ? JSONObject.NULL : id);
        o.put("backend", backend == null ? JSONObject.NULL : backend);
        o.put("thinking_budget", budget == null ? JSONObject.NULL : budget);
        o.put("runs", new JSONArray());
        return o;
    }

    private static JSONObject errorResult(Intent intent, Throwable t) {
        try {
            JSONObject o = header(intent.getStringExtra("bundle"), null, null);
            String msg = String.valueOf(t.getMessage()).split("\n")[0];
            o.put("status", "error").put("error", t.getClass().getSimpleName() + ": " + msg);
            return o;
        } catch (JSONException e) {
            return new JSONObject();
        }
    }
}
