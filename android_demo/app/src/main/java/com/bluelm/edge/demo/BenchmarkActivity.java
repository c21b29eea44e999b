package com.bluelm.edge.demo;

import android.app.Activity;
import android.content.Intent;
import android.os.Bundle;
import com.bluelm.edge.core.Benchmark;
import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatEngine;
import com.bluelm.edge.core.RunnerException;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The benchmark entry for {@code bluelm-edge profile} (docs/contracts.md): started with
 * {@code am start -n com.bluelm.edge.demo/.BenchmarkActivity --es bundle ID --es prompts PATH
 * --ei runs N --es thinking_budget none|0|N --es out NAME}; runs without UI interaction and writes
 * the results JSON atomically to {@code getExternalFilesDir("bench")/NAME}, then finishes. The
 * measuring is the core's {@link Benchmark}: one load, one warm-up, N runs per prompt, module freed.
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
        JSONArray arr = new JSONArray(new String(Files.read(new File(intent.getStringExtra("prompts"))), "UTF-8"));
        List<String> prompts = new ArrayList<String>();
        for (int i = 0; i < arr.length(); i++) {
            prompts.add(arr.getString(i));
        }
        ChatEngine engine;
        try {
            engine = ModuleRunner.engine(store.dir(id), m);
        } catch (RunnerException e) {
            JSONObject o = Benchmark.header(id, m.backend, budget);
            return o.put("status", "error").put("error", e.oneLine()).put("error_code", e.code);
        }
        return Benchmark.run(engine, m, prompts, runs, budget, new Benchmark.Memory() {
            @Override
            public long peakKb() {
                return Files.peakMemoryKb();
            }
        });
    }

    private static JSONObject errorResult(Intent intent, Throwable t) {
        try {
            JSONObject o = Benchmark.header(intent.getStringExtra("bundle"), null, null);
            String msg = String.valueOf(t.getMessage()).split("\n")[0];
            o.put("status", "error").put("error", t.getClass().getSimpleName() + ": " + msg);
            return o;
        } catch (JSONException e) {
            return new JSONObject();
        }
    }
}
