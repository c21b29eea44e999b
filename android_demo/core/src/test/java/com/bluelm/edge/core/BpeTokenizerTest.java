package com.bluelm.edge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.junit.Test;

/** BpeTokenizer against tests/vectors/bpe_tokenizer.json (Hugging Face tokenizers' own ids and text). */
public class BpeTokenizerTest {

    private static final String FILE = "bpe_tokenizer.json";

    @Test
    public void encodeMatchesHuggingFace() throws Exception {
        int n = 0;
        for (JSONObject e : entries().values()) {
            BpeTokenizer tok = tokenizer(e);
            JSONArray cases = e.getJSONArray("cases");
            for (int i = 0; i < cases.length(); i++, n++) {
                JSONObject c = cases.getJSONObject(i);
                assertArrayEquals(name(e, c) + ": ids", longs(c.getJSONArray("ids")), tok.encode(c.getString("text")));
            }
        }
        assertTrue("too few cases in " + FILE, n > 100);
    }

    @Test
    public void decodeMatchesHuggingFace() throws Exception {
        for (JSONObject e : entries().values()) {
            BpeTokenizer tok = tokenizer(e);
            for (String key : new String[] {"cases", "decode_cases"}) {
                JSONArray cases = e.optJSONArray(key);
                for (int i = 0; cases != null && i < cases.length(); i++) {
                    JSONObject c = cases.getJSONObject(i);
                    assertEquals(name(e, c) + ": decoded", c.getString("decoded"),
                            tok.decode(longs(c.getJSONArray("ids"))));
                }
            }
        }
    }

    /** Where the text comes back whole, the tokens' bytes are its UTF-8 (what a streaming runner joins). */
    @Test
    public void tokenBytesConcatenateToTheText() throws Exception {
        int n = 0;
        for (JSONObject e : entries().values()) {
            BpeTokenizer tok = tokenizer(e);
            JSONArray cases = e.getJSONArray("cases");
            for (int i = 0; i < cases.length(); i++) {
                JSONObject c = cases.getJSONObject(i);
                if (!c.getString("text").equals(c.getString("decoded"))) {
                    continue; // normalized, stripped or removed text
                }
                ByteArrayOutputStream joined = new ByteArrayOutputStream();
                for (long id : longs(c.getJSONArray("ids"))) {
                    byte[] b = tok.tokenBytes(id);
                    joined.write(b, 0, b.length);
                }
                assertArrayEquals(name(e, c) + ": bytes", c.getString("text").getBytes(StandardCharsets.UTF_8),
                        joined.toByteArray());
                n++;
            }
        }
        assertTrue(n > 50);
    }

    @Test
    public void idsOfSpecialTokensAndVocabSize() throws Exception {
        for (JSONObject e : entries().values()) {
            BpeTokenizer tok = tokenizer(e);
            assertEquals(e.getString("name") + ": vocab size", e.getInt("vocab_size"), tok.vocabSize());
            JSONObject special = e.optJSONObject("special_id");
            if (special != null) {
                assertEquals(e.getString("name"), special.getLong("id"), tok.id(special.getString("content")));
                assertEquals(special.getString("content"), new String(tok.tokenBytes(special.getLong("id")),
                        StandardCharsets.UTF_8));
            }
            assertEquals(-1, tok.id("<|no such token|>"));
            assertEquals(0, tok.tokenBytes(1 << 30).length);
        }
    }

    @Test
    public void unsupportedPartsAreOneLineErrors() throws Exception {
        JSONObject base = entries().get("qwen2_style").getJSONObject("tokenizer");
        String[][] cases = {
            {"model", "byte_fallback", "true", "byte_fallback"},
            {"model", "type", "\"WordPiece\"", "WordPiece"},
            {"model", "dropout", "0.1", "dropout"},
            {"model", "unk_token", "\"<unk>\"", "unk_token"},
            {"", "normalizer", "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"_\"}",
                "normalizer Replace"},
            {"", "pre_tokenizer", "{\"type\": \"Metaspace\", \"replacement\": \"_\"}", "pre_tokenizer Metaspace"},
            {"", "pre_tokenizer", "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?i:'s\"}, \"behavior\":"
                + " \"Isolated\", \"invert\": false}", "Split regex"},
            {"", "decoder", "{\"type\": \"WordPiece\"}", "decoder WordPiece"},
            {"", "truncation", "{\"max_length\": 8}", "truncation"},
        };
        for (String[] c : cases) {
            JSONObject doc = new JSONObject(base.toString());
            JSONObject target = c[0].isEmpty() ? doc : doc.getJSONObject(c[0]);
            target.put(c[1], new JSONObject("{\"v\": " + c[2] + "}").get("v"));
            try {
                BpeTokenizer.fromTokenizerJson(doc.toString());
                fail(c[1] + " = " + c[2] + " was accepted");
            } catch (IllegalArgumentException ex) {
                String msg = ex.getMessage();
                assertTrue(msg, msg.contains(c[3]) && msg.startsWith("unsupported"));
                assertFalse("not one line: " + msg, msg.contains("\n"));
            }
        }
        JSONObject raw = new JSONObject(base.toString()).put("pre_tokenizer", JSONObject.NULL);
        try {
            BpeTokenizer.fromTokenizerJson(raw.toString()).encode("a 中"); // tokenizers would drop them
            fail("a piece not in the vocab, with no unk_token, was accepted");
        } catch (IllegalArgumentException ex) {
            assertTrue(ex.getMessage(), ex.getMessage().contains("no unk_token"));
        }
    }

    /** A 2,000-character prompt on a fresh tokenizer (no cache, cold JIT) is quick. */
    @Test
    public void longPromptIsFast() throws Exception {
        for (JSONObject e : entries().values()) {
            JSONArray cases = e.getJSONArray("cases");
            for (int i = 0; i < cases.length(); i++) {
                JSONObject c = cases.getJSONObject(i);
                if (!"long_prompt".equals(c.getString("name"))) {
                    continue;
                }
                BpeTokenizer tok = tokenizer(e);
                long t0 = System.nanoTime();
                long[] ids = tok.encode(c.getString("text"));
                long ms = (System.nanoTime() - t0) / 1000000;
                assertTrue(c.getString("text").length() >= 1900);
                assertArrayEquals(name(e, c), longs(c.getJSONArray("ids")), ids);
                assertTrue(name(e, c) + " took " + ms + " ms", ms < 1000);
            }
        }
    }

    // ---- the vector file: tokenizers embedded whole, or a base with changes ---------------------

    private static Map<String, JSONObject> entries() throws Exception {
        JSONArray list = Vectors.load(FILE).getJSONArray("tokenizers");
        Map<String, JSONObject> out = new java.util.LinkedHashMap<String, JSONObject>();
        for (int i = 0; i < list.length(); i++) {
            out.put(list.getJSONObject(i).getString("name"), list.getJSONObject(i));
        }
        for (JSONObject e : out.values()) {
            if (!e.has("tokenizer")) {
                e.put("tokenizer", materialize(e, out));
            }
        }
        return out;
    }

    /** As tests/test_bpe_tokenizer_vectors.py::materialize: replace top-level and model keys, add vocab. */
    private static JSONObject materialize(JSONObject e, Map<String, JSONObject> all) throws JSONException {
        if (e.has("tokenizer")) {
            return e.getJSONObject("tokenizer");
        }
        JSONObject doc = new JSONObject(materialize(all.get(e.getString("base")), all).toString());
        putAll(doc, e.optJSONObject("replace"));
        putAll(doc.getJSONObject("model"), e.optJSONObject("model_replace"));
        putAll(doc.getJSONObject("model").getJSONObject("vocab"), e.optJSONObject("vocab_add"));
        return doc;
    }

    private static void putAll(JSONObject into, JSONObject from) throws JSONException {
        Map<String, Object> copy = new HashMap<String, Object>();
        for (Iterator<?> it = from == null ? null : from.keys(); it != null && it.hasNext(); ) {
            String k = (String) it.next();
            copy.put(k, from.get(k));
        }
        for (Map.Entry<String, Object> kv : copy.entrySet()) {
            into.put(kv.getKey(), kv.getValue());
        }
    }

    private static BpeTokenizer tokenizer(JSONObject e) throws JSONException {
        return BpeTokenizer.fromTokenizerJson(e.getJSONObject("tokenizer").toString());
    }

    private static String name(JSONObject e, JSONObject c) throws JSONException {
        return e.getString("name") + "/" + c.getString("name");
    }

    private static long[] longs(JSONArray a) throws JSONException {
        long[] out = new long[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.getLong(i);
        }
        return out;
    }
}
