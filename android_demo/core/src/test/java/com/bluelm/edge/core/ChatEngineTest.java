package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** ChatEngine over the runner model on tests/vectors/chat_engine.json (budget 0/1/N/none, ...). */
public class ChatEngineTest {

    /** A runner model whose network samples the case's script in order (any context). */
    static RunnerModel scripted(JSONObject v, final String name, JSONArray script, int maxContext) throws Exception {
        Map<Integer, byte[]> vocab = new HashMap<Integer, byte[]>();
        JSONObject voc = v.getJSONObject("vocab");
        for (Iterator<?> it = voc.keys(); it.hasNext();) {
            String k = (String) it.next();
            vocab.put(Integer.valueOf(k), RunnerModelTest.hex(voc.getString(k)));
        }
        Map<String, int[]> encode = new HashMap<String, int[]>();
        JSONObject enc = v.getJSONObject("encode");
        for (Iterator<?> it = enc.keys(); it.hasNext();) {
            String k = (String) it.next();
            encode.put(k, RunnerModelTest.ints(enc.getJSONArray(k)));
        }
        final int[] tokens = RunnerModelTest.ints(script);
        Set<Integer> eos = new HashSet<Integer>();
        JSONArray ids = v.getJSONObject("manifest").getJSONObject("app").getJSONArray("eos_ids");
        for (int i = 0; i < ids.length(); i++) {
            eos.add(Integer.valueOf(ids.getInt(i)));
        }
        return new RunnerModel(vocab, encode, new RunnerModel.Lm() {
            private int next;

            @Override
            public int next(List<Integer> kv) {
                if (next >= tokens.length) {
                    throw new AssertionError(name + ": the runner ran past the script (a stop that did not take)");
                }
                return tokens[next++];
            }
        }, eos, maxContext);
    }

    static TokenCounter counter(JSONObject v) throws Exception {
        Set<byte[]> toks = new HashSet<byte[]>();
        JSONArray arr = v.getJSONArray("counter_vocab");
        for (int i = 0; i < arr.length(); i++) {
            toks.add(RunnerModelTest.hex(arr.getString(i)));
        }
        return new TokenCounter(toks);
    }

    @Test
    public void everyCaseMatches() throws Exception {
        JSONObject v = Vectors.load("chat_engine.json");
        JSONArray cases = v.getJSONArray("cases");
        assertTrue("no cases", cases.length() >= 13);
        for (int i = 0; i < cases.length(); i++) {
            checkCase(v, cases.getJSONObject(i));
        }
    }

    /** The same engine on checkpoint families' bundles (qwen3 thinks with its own suffix; smollm2 cannot think). */
    @Test
    public void everyFamilyCaseMatches() throws Exception {
        JSONArray sets = Vectors.load("chat_engine_hub.json").getJSONArray("sets");
        assertTrue("no family sets", sets.length() >= 2);
        for (int k = 0; k < sets.length(); k++) {
            JSONObject v = sets.getJSONObject(k);
            JSONArray cases = v.getJSONArray("cases");
            assertTrue(v.getString("family") + ": no cases", cases.length() > 0);
            for (int i = 0; i < cases.length(); i++) {
                checkCase(v, cases.getJSONObject(i));
            }
        }
    }

    private static void checkCase(JSONObject v, JSONObject c) throws Exception {
        String name = c.getString("name");
        JSONObject exp = c.getJSONObject("expect");
        BundleManifest m = BundleManifest.parse(v.getJSONObject("manifest").toString());
        m.maxContext = exp.optInt("max_context", m.maxContext);
        RunnerModel model = scripted(v, name, c.getJSONArray("script"), m.maxContext);
        final ChatEngine engine = new ChatEngine(model, m, counter(v));
        Integer budget = c.isNull("budget") ? null : Integer.valueOf(c.getInt("budget"));
        Shown shown = new Shown(engine, exp.optInt("user_stop_at", 0));
        if (c.has("temperature")) {
            engine.setTemperature((float) c.getDouble("temperature"));
        }
        model.tileTokens = m.tokensPerTile;
        GenerationStats s = engine.answer(c.getString("user"), images(c.optJSONArray("images"), m), budget, shown);
        JSONObject then = exp.optJSONObject("then");
        if (then != null) {
            assertEquals(name + ": first turn shown", rows(exp.getJSONArray("shown")), shown.rows);
            shown = new Shown(engine, 0);
            Integer b2 = then.isNull("budget") ? null : Integer.valueOf(then.getInt("budget"));
            s = engine.answer(then.getString("user"), Collections.<List<float[]>>emptyList(), b2, shown);
            exp.put("shown", then.getJSONArray("shown"));
        }
        assertEquals(name + ": shown", rows(exp.getJSONArray("shown")), shown.rows);
        assertEquals(name + ": finish", exp.getString("finish"), s.finish);
        assertEquals(name + ": thinking tokens", exp.getInt("thinking"), s.thinkingTokens);
        assertEquals(name + ": KV cache", Vectors.ints(exp.getJSONArray("kv")), model.kv);
        assertEquals(name + ": stop() calls", exp.getInt("stops"), model.stopCalls);
        assertEquals(name + ": decode steps", exp.getInt("steps"), model.decodeSteps);
        assertEquals(name + ": runner calls", exp.getInt("calls"), s.runnerCalls);
        assertEquals(name + ": resetContext() calls", exp.optInt("resets", 1), model.resetCalls);
        if (c.has("temperature")) {
            assertEquals(name + ": temperature passed to the runner", (float) c.getDouble("temperature"),
                    model.lastTemperature, 0f);
        }
        String error = exp.optString("error", null);
        assertTrue(name + ": error line " + s.error, error == null ? s.error == null
                : s.error != null && s.error.startsWith(error) && s.error.indexOf('\n') < 0);
    }

    /** Dummy tiles of the right size, as many per image as the case says. */
    static List<List<float[]>> images(JSONArray tiles, BundleManifest m) throws Exception {
        List<List<float[]>> out = new ArrayList<List<float[]>>();
        for (int i = 0; tiles != null && i < tiles.length(); i++) {
            List<float[]> image = new ArrayList<float[]>();
            for (int k = 0; k < tiles.getInt(i); k++) {
                image.add(new float[3 * m.tileSize * m.tileSize]);
            }
            out.add(image);
        }
        return out;
    }

    private static List<String> rows(JSONArray a) throws Exception {
        List<String> out = new ArrayList<String>();
        for (int i = 0; i < a.length(); i++) {
            JSONArray r = a.getJSONArray(i);
            out.add(r.getString(0) + "|" + (r.getInt(1) == 1) + "|" + (r.getInt(2) == 1));
        }
        return out;
    }

    /** What the UI would show; presses stop at the given piece like a user would. */
    static final class Shown implements ChatEngine.Listener {
        final List<String> rows = new ArrayList<String>();
        final ChatEngine engine;
        final int stopAt;

        Shown(ChatEngine engine, int stopAt) {
            this.engine = engine;
            this.stopAt = stopAt;
        }

        @Override
        public void onPiece(String text, boolean thinking, boolean forced) {
            rows.add(text + "|" + thinking + "|" + forced);
            if (rows.size() == stopAt) {
                engine.stop();
            }
        }
    }

    @Test
    public void aFailedLoadIsOneLine() throws Exception {
        JSONObject v = Vectors.load("chat_engine.json");
        BundleManifest m = BundleManifest.parse(v.getJSONObject("manifest").toString());
        RunnerModel model = scripted(v, "load", new JSONArray(), m.maxContext);
        model.loadError = new RunnerException("load", 0x23, "Failed to load model\nInvalidProgram");
        ChatEngine engine = new ChatEngine(model, m, counter(v));
        try {
            engine.load();
            throw new AssertionError("load did not fail");
        } catch (RunnerException e) {
            assertEquals("load failed (ExecuTorch error 0x23): Failed to load model InvalidProgram", e.oneLine());
        }
        GenerationStats s = engine.answer("Hi", Collections.<List<float[]>>emptyList(), Integer.valueOf(0), new Shown(engine, 0));
        assertEquals("error", s.finish);
        assertEquals(0x23, s.errorCode);
        engine.close();
        assertTrue(model.closed);
    }
}
