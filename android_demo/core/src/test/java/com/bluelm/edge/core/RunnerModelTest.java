package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** The Java model of LlmModule reproduces every scenario of tests/vectors/runner_behaviour.json. */
public class RunnerModelTest {

    /** The model of the exported tiny bundle that the vectors describe. */
    static RunnerModel fromVectors(JSONObject v, final String scenario) throws Exception {
        Map<Integer, byte[]> vocab = new HashMap<Integer, byte[]>();
        JSONObject voc = v.getJSONObject("vocab");
        for (Iterator<?> it = voc.keys(); it.hasNext();) {
            String k = (String) it.next();
            vocab.put(Integer.valueOf(k), hex(voc.getString(k)));
        }
        Map<String, int[]> encode = new HashMap<String, int[]>();
        JSONObject enc = v.getJSONObject("encode");
        for (Iterator<?> it = enc.keys(); it.hasNext();) {
            String k = (String) it.next();
            encode.put(k, ints(enc.getJSONArray(k)));
        }
        final Map<String, Integer> lm = new HashMap<String, Integer>();
        JSONArray rows = v.getJSONArray("lm");
        for (int i = 0; i < rows.length(); i++) {
            lm.put(ints(rows.getJSONArray(i).getJSONArray(0)).length + ":"
                    + rows.getJSONArray(i).getJSONArray(0).toString(), Integer.valueOf(rows.getJSONArray(i).getInt(1)));
        }
        Set<Integer> eos = new HashSet<Integer>();
        for (int id : ints(v.getJSONArray("eos"))) {
            eos.add(Integer.valueOf(id));
        }
        return new RunnerModel(vocab, encode, new RunnerModel.Lm() {
            @Override
            public int next(List<Integer> kv) {
                Integer n = lm.get(kv.size() + ":" + new JSONArray(kv).toString());
                if (n == null) {
                    throw new AssertionError(scenario + ": the model asked for a context the real runner never had: " + kv);
                }
                return n.intValue();
            }
        }, eos, v.getInt("max_context"));
    }

    @Test
    public void everyScenarioMatchesTheRealRunner() throws Exception {
        JSONObject v = Vectors.load("runner_behaviour.json");
        JSONArray scenarios = v.getJSONArray("scenarios");
        assertTrue("no scenarios", scenarios.length() >= 11);
        for (int i = 0; i < scenarios.length(); i++) {
            checkScenario(v, scenarios.getJSONObject(i));
        }
    }

    private static void checkScenario(JSONObject v, JSONObject sc) throws Exception {
        String name = sc.getString("name");
        RunnerModel m = fromVectors(v, name);
        JSONArray calls = sc.getJSONArray("calls");
        for (int i = 0; i < calls.length(); i++) {
            JSONObject call = calls.getJSONObject(i);
            JSONObject exp = call.getJSONObject("expect");
            String where = name + " call " + i;
            Recorder rec = new Recorder(m, call.optJSONArray("stop_at"));
            try {
                String op = call.getString("op");
                if (op.equals("reset")) {
                    m.resetContext();
                } else if (op.equals("prefill")) {
                    m.prefillPrompt(call.getString("prompt"));
                } else {
                    m.generate(call.getString("prompt"), -1, call.getInt("max_new_tokens"), rec);
                }
                if (exp.has("error")) {
                    fail(where + ": expected error " + exp.getJSONObject("error"));
                }
            } catch (RunnerException e) {
                assertTrue(where + ": unexpected " + e.oneLine(), exp.has("error"));
                assertEquals(where + ": error code", exp.getJSONObject("error").getInt("code"), e.code);
            }
            if (exp.has("tokens")) {
                assertEquals(where + ": tokens", Vectors.ints(exp.getJSONArray("tokens")), m.lastTokens);
                assertEquals(where + ": pieces", Vectors.strings(exp.getJSONArray("pieces")), rec.pieces);
                JSONObject stats = new JSONObject(rec.stats);
                assertEquals(where + ": generated_tokens", exp.getInt("generated_tokens"), stats.getInt("generated_tokens"));
                assertEquals(where + ": prompt_tokens", exp.getInt("prompt_tokens"), stats.getInt("prompt_tokens"));
            }
            assertEquals(where + ": KV position", exp.getInt("pos"), m.pos());
        }
        assertEquals(name + ": KV contents", Vectors.ints(sc.getJSONArray("kv")), m.kv);
    }

    /** Collects one call's callbacks and calls stop() at the scripted callbacks. */
    static final class Recorder implements LlmRunner.Callback {
        final List<String> pieces = new ArrayList<String>();
        final LlmRunner runner;
        final Set<Integer> stopAt = new HashSet<Integer>();
        String stats;

        Recorder(LlmRunner runner, JSONArray stopAt) throws Exception {
            this.runner = runner;
            for (int i = 0; stopAt != null && i < stopAt.length(); i++) {
                this.stopAt.add(Integer.valueOf(stopAt.getInt(i)));
            }
        }

        @Override
        public void onResult(String piece) {
            pieces.add(piece);
            if (stopAt.contains(Integer.valueOf(pieces.size()))) {
                runner.stop();
            }
        }

        @Override
        public void onStats(String json) {
            stats = json;
        }

        @Override
        public void onError(int code, String message) {
        }
    }

    static int[] ints(JSONArray a) throws Exception {
        int[] out = new int[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.getInt(i);
        }
        return out;
    }

    static byte[] hex(String h) {
        byte[] out = new byte[h.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }
}
