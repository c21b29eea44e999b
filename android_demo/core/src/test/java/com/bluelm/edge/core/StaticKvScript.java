package com.bluelm.edge.core;

import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * Plays a runner script (tests/static_kv_vectors.py SCRIPTS: prefillPrompt, prefillImage,
 * generate with seq_len and stop_after, resetContext) on an {@link LlmRunner}, greedy; per step
 * what the callback saw, as the Python {@code drive} reports it.
 */
final class StaticKvScript {

    private StaticKvScript() {
    }

    static JSONArray play(LlmRunner runner, JSONArray script) throws Exception {
        JSONArray results = new JSONArray();
        for (int i = 0; i < script.length(); i++) {
            JSONObject step = script.getJSONObject(i);
            String call = step.getString("call");
            JSONObject r = new JSONObject();
            if (call.equals("resetContext")) {
                runner.resetContext();
            } else if (call.equals("prefillImage")) {
                int size = step.getInt("size");
                runner.prefillImage(tile(size), size, size, 3);
            } else if (call.equals("prefillPrompt")) {
                runner.prefillPrompt(step.getString("text"));
                r.put("prompt_tokens", -1); // the runner API reports no count for a prefill
            } else {
                Collect cb = new Collect(runner, step.optInt("stop_after", 0));
                runner.generate(step.getString("text"), step.getInt("seq_len"), 0f, cb);
                GenerationStats s = GenerationStats.fromRunnerJson(cb.stats);
                r.put("prompt_tokens", s.promptTokens);
                r.put("generated_tokens", s.generatedTokens);
                r.put("pieces", new JSONArray(cb.pieces));
            }
            results.put(r);
        }
        return results;
    }

    /** The script's tile, by the formula of tests/static_kv_vectors.py tile_pixels. */
    static float[] tile(int size) {
        float[] px = new float[3 * size * size];
        for (int i = 0; i < px.length; i++) {
            px[i] = (float) ((i * 37L) % 255) / 127.5f - 1.0f;
        }
        return px;
    }

    private static final class Collect implements LlmRunner.Callback {
        final List<String> pieces = new ArrayList<String>();
        final LlmRunner runner;
        final int stopAfter;
        String stats;

        Collect(LlmRunner runner, int stopAfter) {
            this.runner = runner;
            this.stopAfter = stopAfter;
        }

        @Override
        public void onResult(String piece) {
            pieces.add(piece);
            if (pieces.size() == stopAfter) {
                runner.stop();
            }
        }

        @Override
        public void onStats(String json) {
            stats = json;
        }

        @Override
        public void onError(int code, String message) {
            throw new AssertionError(code + " " + message);
        }
    }
}
