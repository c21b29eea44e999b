package com.bluelm.edge.core;

import java.io.UnsupportedEncodingException;
import java.util.HashSet;
import java.util.Iterator;
import java.util.Set;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Counts the tokens in one streamed piece. {@code LlmModule} passes text, not ids, and merges
 * tokens until their bytes are valid UTF-8, so one callback can be several tokens (a Chinese
 * character of a byte-level BPE is often 2-3). The count is the longest-match segmentation of
 * the piece's bytes over the tokenizer's vocabulary: exactly 1 for a piece that is one token,
 * and the number of byte tokens for a character the model spelled in bytes. The runner's stats
 * ({@code generated_tokens}) stay the exact total per call.
 */
public final class TokenCounter {

    private final Set<String> vocab; // token bytes as ISO-8859-1 strings (one char per byte)
    private final int maxLen;

    public TokenCounter(Set<byte[]> tokens) {
        vocab = new HashSet<String>();
        int longest = 1;
        for (byte[] t : tokens) {
            vocab.add(latin1(t));
            longest = Math.max(longest, t.length);
        }
        maxLen = longest;
    }

    /** From a Hugging Face tokenizer.json with a ByteLevel model vocabulary plus added tokens. */
    public static TokenCounter fromTokenizerJson(String json) throws JSONException {
        JSONObject o = new JSONObject(json);
        Set<byte[]> tokens = new HashSet<byte[]>();
        JSONObject v = o.getJSONObject("model").getJSONObject("vocab");
        int[] unbyte = byteLevelDecoder();
        Iterator<?> keys = v.keys();
        while (keys.hasNext()) {
            tokens.add(byteLevelBytes((String) keys.next(), unbyte));
        }
        JSONArray added = o.optJSONArray("added_tokens");
        for (int i = 0; added != null && i < added.length(); i++) {
            tokens.add(utf8(added.getJSONObject(i).getString("content")));
        }
        return new TokenCounter(tokens);
    }

    /** Tokens in one piece (at least 1 for a non-empty piece). */
    public int count(String piece) {
        String b = latin1(utf8(piece));
        int n = 0;
        int i = 0;
        while (i < b.length()) {
            int len = Math.min(maxLen, b.length() - i);
            while (len > 1 && !vocab.contains(b.substring(i, i + len))) {
                len--;
            }
            i += len;
            n++;
        }
        return n;
    }

    /** GPT-2's bytes_to_unicode, inverted: code point -> byte (-1 where none). */
    private static int[] byteLevelDecoder() {
        int[] out = new int[512];
        java.util.Arrays.fill(out, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            out[printable ? b : 256 + extra++] = b;
        }
        return out;
    }

    private static byte[] byteLevelBytes(String key, int[] unbyte) {
        byte[] out = new byte[key.length()];
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            int b = c < unbyte.length ? unbyte[c] : -1;
            if (b < 0) {
                return utf8(key); // not a byte-level key: take its text
            }
            out[i] = (byte) b;
        }
        return out;
    }

    static byte[] utf8(String s) {
        try {
            return s.getBytes("UTF-8");
        } catch (UnsupportedEncodingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String latin1(byte[] b) {
        try {
            return new String(b, "ISO-8859-1");
        } catch (UnsupportedEncodingException e) {
            throw new IllegalStateException(e);
        }
    }
}
