package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.zip.Inflater;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * StaticKvRunner against the Python runner (tests/vectors/static_kv_runner.json, written by
 * tests/static_kv_vectors.py): the program's outputs are replayed as recorded (entries a correct
 * runner never reads poisoned), and every input the Java runner sends must equal the recorded one
 * (bytes, or RoPE rows to the file's tolerance); the pieces and token counts must be the Python's.
 */
public class StaticKvRunnerTest {

    @Test
    public void sendsTheRecordedInputsAndStreamsThePythonPieces() throws Exception {
        JSONObject doc = Vectors.load("static_kv_runner.json");
        BpeTokenizer tok = BpeTokenizer.fromTokenizerJson(doc.getJSONObject("tokenizer").toString());
        JSONArray variants = doc.getJSONArray("variants");
        assertEquals(2, variants.length());
        for (int v = 0; v < variants.length(); v++) {
            play(variants.getJSONObject(v), tok, doc.getDouble("tolerance"));
        }
    }

    private static void play(JSONObject variant, BpeTokenizer tok, double tolerance) throws Exception {
        String name = variant.getString("name");
        Replay program = new Replay(variant, tolerance);
        StaticKvRunner runner = new StaticKvRunner(program, tok, 0);
        runner.load();
        JSONArray got = StaticKvScript.play(runner, variant.getJSONArray("script"));
        JSONArray want = variant.getJSONArray("results");
        for (int i = 0; i < want.length(); i++) {
            JSONObject w = want.getJSONObject(i);
            JSONObject g = got.getJSONObject(i);
            if (!w.has("pieces")) {
                continue; // prefill / reset steps: checked through the calls they made
            }
            assertEquals(name + " step " + i, Vectors.strings(w.getJSONArray("pieces")),
                    Vectors.strings(g.getJSONArray("pieces")));
            assertEquals(name + " step " + i, w.getLong("generated_tokens"), g.getLong("generated_tokens"));
            assertEquals(name + " step " + i, w.getLong("prompt_tokens"), g.getLong("prompt_tokens"));
        }
        assertEquals(name + ": every recorded call made", program.calls.length(), program.at);
    }

    @Test
    public void refusesSixteenBitGraphIoInOneLine() throws Exception {
        JSONObject doc = Vectors.load("static_kv_runner.json");
        JSONObject variant = new JSONObject(doc.getJSONArray("variants").getJSONObject(0).toString());
        variant.getJSONObject("metadata").put("get_logits_bit_width", 16);
        StaticKvRunner runner = new StaticKvRunner(new Replay(variant, 0), null, 0);
        try {
            runner.load();
            fail("a program with 16-bit logits loaded");
        } catch (RunnerException e) {
            assertTrue(e.oneLine(), e.oneLine().contains("logits crosses the NPU boundary as 16-bit integers"));
            assertTrue(e.oneLine(), e.oneLine().contains("--graph-io kv") && !e.oneLine().contains("\n"));
        }
    }

    /** The recorded program: metadata as constants, method calls checked and answered in order. */
    static final class Replay implements StaticProgram {
        final JSONObject meta;
        final JSONArray calls;
        final double tolerance;
        int at;

        Replay(JSONObject variant, double tolerance) throws Exception {
            meta = variant.getJSONObject("metadata");
            calls = variant.getJSONArray("calls");
            this.tolerance = tolerance;
        }

        @Override
        public Object[] constant(String method) throws RunnerException {
            Object v = meta.opt(method);
            if (v == null) {
                throw new RunnerException("load", 0x14, "no method " + method);
            }
            if (v instanceof JSONArray) {
                JSONArray a = (JSONArray) v;
                Object[] out = new Object[a.length()];
                for (int i = 0; i < a.length(); i++) {
                    out[i] = a.opt(i);
                }
                return out;
            }
            return new Object[] {v};
        }

        @Override
        public boolean hasMethod(String method) {
            return meta.has(method);
        }

        @Override
        public HostTensor[] execute(String method, HostTensor[] inputs) throws RunnerException {
            try {
                assertTrue("call " + at + " (" + method + ") was not recorded", at < calls.length());
                JSONObject rec = calls.getJSONObject(at);
                String where = "call " + at + " (" + method + ")";
                assertEquals(where, rec.getString("method"), method);
                JSONArray ins = rec.getJSONArray("inputs");
                assertEquals(where + " inputs", ins.length(), inputs.length);
                for (int i = 0; i < inputs.length; i++) {
                    check(ins.getJSONObject(i), inputs[i], where + " input " + i);
                }
                JSONArray outs = rec.getJSONArray("outputs");
                HostTensor[] out = new HostTensor[outs.length()];
                for (int i = 0; i < out.length; i++) {
                    out[i] = tensor(outs.getJSONObject(i));
                }
                at++;
                return out;
            } catch (org.json.JSONException e) {
                throw new AssertionError(e);
            }
        }

        private void check(JSONObject doc, HostTensor t, String where) throws org.json.JSONException {
            assertEquals(where + " dtype", doc.getString("dtype"), t.describe().replaceAll("\\[.*", ""));
            assertEquals(where + " shape", doc.getJSONArray("shape").toString(), new JSONArray(shape(t)).toString());
            if (doc.has("sha256")) {
                assertEquals(where + " bytes", doc.getString("sha256"), sha256(bytes(t)));
                return;
            }
            HostTensor want = tensor(doc);
            float[] wantF = t.dtype == HostTensor.FLOAT32 ? want.floatData() : null;
            float[] gotF = t.dtype == HostTensor.FLOAT32 ? t.floatData() : null;
            for (int i = 0; i < t.numel(); i++) {
                if (t.dtype == HostTensor.FLOAT32) {
                    assertEquals(where + " [" + i + "]", wantF[i], gotF[i], tolerance);
                } else {
                    assertEquals(where + " [" + i + "]", want.i64[i], t.i64[i]);
                }
            }
        }

        @Override
        public void close() {
        }
    }

    static List<Long> shape(HostTensor t) {
        List<Long> s = new ArrayList<Long>();
        for (long d : t.shape) {
            s.add(Long.valueOf(d));
        }
        return s;
    }

    static byte[] bytes(HostTensor t) {
        int size = t.dtype == HostTensor.FLOAT32 ? 4 : t.dtype == HostTensor.INT64 ? 8 : 1;
        ByteBuffer b = ByteBuffer.allocate(t.numel() * size).order(ByteOrder.LITTLE_ENDIAN);
        float[] f = t.dtype == HostTensor.FLOAT32 ? t.floatData() : null;
        byte[] u8 = t.dtype == HostTensor.UINT8 ? t.byteData() : null;
        for (int i = 0; i < t.numel(); i++) {
            if (t.dtype == HostTensor.FLOAT32) {
                b.putFloat(f[i]);
            } else if (t.dtype == HostTensor.INT64) {
                b.putLong(t.i64[i]);
            } else {
                b.put(u8[i]);
            }
        }
        return b.array();
    }

    static String sha256(byte[] data) {
        try {
            StringBuilder sb = new StringBuilder();
            for (byte x : MessageDigest.getInstance("SHA-256").digest(data)) {
                sb.append(String.format("%02x", x & 0xff));
            }
            return sb.toString();
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    static HostTensor tensor(JSONObject doc) throws org.json.JSONException {
        JSONArray s = doc.getJSONArray("shape");
        long[] shape = new long[s.length()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = s.getLong(i);
        }
        ByteBuffer raw = ByteBuffer.wrap(inflate(Base64.getDecoder().decode(doc.getString("z"))))
                .order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) HostTensor.numel(shape);
        String dtype = doc.getString("dtype");
        if (dtype.equals("float32")) {
            float[] f = new float[n];
            raw.asFloatBuffer().get(f);
            return HostTensor.floats(f, shape);
        }
        if (dtype.equals("int64")) {
            long[] l = new long[n];
            raw.asLongBuffer().get(l);
            return HostTensor.longs(l, shape);
        }
        byte[] u = new byte[n];
        raw.get(u);
        return HostTensor.bytes(u, shape);
    }

    static byte[] inflate(byte[] z) {
        try {
            Inflater inf = new Inflater();
            inf.setInput(z);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[65536];
            while (!inf.finished()) {
                int n = inf.inflate(buf);
                if (n == 0 && inf.needsInput()) {
                    break;
                }
                out.write(buf, 0, n);
            }
            inf.end();
            return out.toByteArray();
        } catch (java.util.zip.DataFormatException e) {
            throw new AssertionError(e);
        }
    }
}
