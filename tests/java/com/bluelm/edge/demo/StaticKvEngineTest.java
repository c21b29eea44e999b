package com.bluelm.edge.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatEngine;
import com.bluelm.edge.core.GenerationStats;
import com.bluelm.edge.core.LlmRunner;
import com.bluelm.edge.core.RunnerException;
import com.bluelm.edge.core.RuntimeVersion;
import com.bluelm.edge.core.StaticKvRunner;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.Inflater;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Before;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;
import org.pytorch.executorch.DType;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;
import org.pytorch.executorch.extension.llm.LlmModule;

/**
 * A static-kv bundle end to end through the app's adapters: ModuleRunner.engine over a manifest with
 * {@code "runner": "static-kv"} builds a ChatEngine over the core's StaticKvRunner over
 * ModuleProgram over the Module test double, whose program is the replay of
 * tests/vectors/static_kv_runner.json's "float" variant (as the core's StaticKvRunnerTest replays it,
 * here below the Java Module API: every input the app sends must equal the recorded one, the
 * outputs are the recorded ones). No LlmModule is made; the metadata is read by Module.execute of the
 * constant methods; the vector's script (its calls are the runner's, below the chat template) drives
 * the runner the engine holds; the pieces and token counts are the Python runner's.
 * The base manifest is -Dbluelm.bundle's (an exported tiny bundle), the vectors -Dbluelm.vectors.
 */
public class StaticKvEngineTest {

    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    private JSONObject doc;
    private JSONObject variant;

    @Before
    public void setUp() throws Exception {
        Module.reset();
        LlmModule.script = new LlmModule.Script();
        LlmModule.created = 0;
        File vectors = new File(System.getProperty("bluelm.vectors", "tests/vectors"), "static_kv_runner.json");
        doc = new JSONObject(new String(Files.read(vectors), StandardCharsets.UTF_8));
        JSONArray variants = doc.getJSONArray("variants");
        for (int i = 0; i < variants.length(); i++) {
            if (variants.getJSONObject(i).getString("name").equals("float")) {
                variant = variants.getJSONObject(i);
            }
        }
        assertTrue("the vectors have a float variant", variant != null);
    }

    /** The exported bundle's manifest as a static-kv NPU bundle of the float variant's program. */
    private File bundle() throws Exception {
        File dir = tmp.newFolder("bundle");
        File base = new File(System.getProperty("bluelm.bundle"));
        JSONObject m = new JSONObject(new String(Files.read(new File(base, "manifest.json")), StandardCharsets.UTF_8));
        String program = m.getString("program");
        write(new File(dir, program), "not a program: the Module test double replays static_kv_runner.json");
        write(new File(dir, "tokenizer.json"), doc.getJSONObject("tokenizer").toString());
        JSONArray files = new JSONArray();
        for (String path : new String[] {program, "tokenizer.json"}) {
            File f = new File(dir, path);
            files.put(new JSONObject().put("path", path).put("size", f.length()).put("sha256", BundleManifest.sha256(f)));
        }
        JSONObject meta = variant.getJSONObject("metadata");
        m.put("files", files).put("backend", "qnn").put("soc", "SM8650").put("runner", RuntimeVersion.STATIC_KV)
                .put("graph_contract", RuntimeVersion.STATIC_KV_CONTRACT).put("graph_io", "float");
        m.getJSONObject("app").put("max_context", meta.getInt("get_max_context_len"))
                .put("vocab_size", meta.getInt("get_vocab_size"));
        write(new File(dir, "manifest.json"), m.toString(2));
        return dir;
    }

    private static void write(File f, String text) throws IOException {
        FileOutputStream out = new FileOutputStream(f);
        try {
            out.write(text.getBytes(StandardCharsets.UTF_8));
        } finally {
            out.close();
        }
    }

    @Test
    public void aStaticKvBundleRunsTheRecordedProgramThroughModule() throws Exception {
        File dir = bundle();
        BundleManifest manifest = BundleManifest.read(dir);
        assertNull(RuntimeVersion.runnerRefusal(manifest.bundleId, manifest.runner, manifest.graphContract,
                manifest.graphIo));
        File pte = new File(dir, manifest.program);
        Replay program = new Replay(variant, doc.getDouble("tolerance"));
        Module.programs.put(pte.getAbsolutePath(), program);

        ChatEngine engine = ModuleRunner.engine(dir, manifest);
        assertEquals("no LlmModule for a static-kv bundle", 0, LlmModule.created);
        assertEquals(1, Module.loads.size());
        assertEquals(pte.getAbsolutePath() + " mode=" + Module.LOAD_MODE_MMAP, Module.loads.get(0));
        StaticKvRunner runner = (StaticKvRunner) runnerOf(engine);
        assertTrue("nothing runs before load", program.served.isEmpty() && program.at == 0);

        engine.load();
        assertTrue(program.served.toString(), program.served.contains("get_eos_ids")
                && program.served.contains("get_cache_len") && program.served.contains("get_n_layers"));
        for (String m : program.served) {
            assertTrue(m, m.startsWith("get_"));
        }
        assertEquals("load executes no method but the constants", 0, program.at);

        play(runner, program);

        engine.close();
        try {
            runner.prefillPrompt("[|Human|]: hi");
            fail("the program ran after the engine was closed");
        } catch (RunnerException e) {
            assertEquals("token_embedding failed: Module has been destroyed", e.oneLine());
        }
    }

    @Test
    public void aStaticKvBundleWithoutItsProgramFailsAtEngineInOneLine() throws Exception {
        File dir = bundle();
        BundleManifest manifest = BundleManifest.read(dir);
        File pte = new File(dir, manifest.program);
        assertTrue(pte.delete());
        try {
            ModuleRunner.engine(dir, manifest);
            fail("an engine over a missing program");
        } catch (RunnerException e) {
            assertEquals("load failed: Cannot load model path: path does not exist: " + pte.getAbsolutePath(),
                    e.oneLine());
        }
        assertEquals(0, LlmModule.created);
    }

    /** The runner the engine drives (ChatEngine renders the chat template; the vector's script is below it). */
    private static LlmRunner runnerOf(ChatEngine engine) throws Exception {
        Field f = ChatEngine.class.getDeclaredField("runner");
        f.setAccessible(true);
        return (LlmRunner) f.get(engine);
    }

    /** The variant's script, as the core's StaticKvRunnerTest plays it. */
    private void play(StaticKvRunner runner, Replay program) throws Exception {
        JSONArray script = variant.getJSONArray("script");
        JSONArray results = variant.getJSONArray("results");
        int generates = 0;
        for (int i = 0; i < script.length(); i++) {
            JSONObject step = script.getJSONObject(i);
            String call = step.getString("call");
            if (call.equals("resetContext")) {
                runner.resetContext();
            } else if (call.equals("prefillImage")) {
                int size = step.getInt("size");
                runner.prefillImage(tile(size), size, size, 3);
            } else if (call.equals("prefillPrompt")) {
                runner.prefillPrompt(step.getString("text"));
            } else {
                Collect cb = new Collect(runner, step.optInt("stop_after", 0));
                runner.generate(step.getString("text"), step.getInt("seq_len"), 0f, cb);
                JSONObject want = results.getJSONObject(i);
                JSONArray pieces = want.getJSONArray("pieces");
                List<String> expected = new ArrayList<String>();
                for (int k = 0; k < pieces.length(); k++) {
                    expected.add(pieces.getString(k));
                }
                assertEquals("step " + i, expected, cb.pieces);
                GenerationStats s = GenerationStats.fromRunnerJson(cb.stats);
                assertEquals("step " + i, want.getLong("generated_tokens"), s.generatedTokens);
                assertEquals("step " + i, want.getLong("prompt_tokens"), s.promptTokens);
                generates++;
            }
        }
        assertTrue(generates > 0);
        assertEquals("every recorded call made", program.calls.length(), program.at);
    }

    /** The script's tile, by the formula of tests/static_kv_vectors.py tile_pixels. */
    private static float[] tile(int size) {
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
            fail(code + " " + message);
        }
    }

    /**
     * The recorded program as the Module double's native program: the metadata as constant methods
     * (an int as an Int EValue, a float as a Double, a list as several), the recorded method calls
     * checked (dtype, shape, bytes or values to the tolerance) and answered in order.
     */
    static final class Replay implements Module.Program {
        final JSONObject meta;
        final JSONArray calls;
        final double tolerance;
        final Set<String> served = new LinkedHashSet<String>();
        int at;

        Replay(JSONObject variant, double tolerance) throws Exception {
            meta = variant.getJSONObject("metadata");
            calls = variant.getJSONArray("calls");
            this.tolerance = tolerance;
        }

        @Override
        public String[] methods() {
            Set<String> names = new LinkedHashSet<String>();
            for (Iterator<?> it = meta.keys(); it.hasNext();) {
                names.add((String) it.next());
            }
            for (int i = 0; i < calls.length(); i++) {
                names.add(calls.optJSONObject(i).optString("method"));
            }
            return names.toArray(new String[0]);
        }

        @Override
        public EValue[] execute(String method, EValue[] inputs) {
            try {
                if (meta.has(method)) {
                    assertEquals(method + " takes no inputs", 0, inputs.length);
                    served.add(method);
                    Object v = meta.get(method);
                    if (v instanceof JSONArray) {
                        JSONArray a = (JSONArray) v;
                        EValue[] out = new EValue[a.length()];
                        for (int i = 0; i < out.length; i++) {
                            out[i] = scalar(a.get(i));
                        }
                        return out;
                    }
                    return new EValue[] {scalar(v)};
                }
                String where = "call " + at + " (" + method + ")";
                assertTrue(where + " was not recorded", at < calls.length());
                JSONObject rec = calls.getJSONObject(at);
                assertEquals(where, rec.getString("method"), method);
                JSONArray ins = rec.getJSONArray("inputs");
                assertEquals(where + " inputs", ins.length(), inputs.length);
                for (int i = 0; i < inputs.length; i++) {
                    check(ins.getJSONObject(i), inputs[i].toTensor(), where + " input " + i);
                }
                JSONArray outs = rec.getJSONArray("outputs");
                EValue[] out = new EValue[outs.length()];
                for (int i = 0; i < out.length; i++) {
                    out[i] = EValue.from(tensor(outs.getJSONObject(i)));
                }
                at++;
                return out;
            } catch (org.json.JSONException e) {
                throw new AssertionError(e);
            }
        }

        private static EValue scalar(Object v) {
            Number n = (Number) v;
            return v instanceof Double || v instanceof Float ? EValue.from(n.doubleValue()) : EValue.from(n.longValue());
        }

        private void check(JSONObject doc, Tensor t, String where) throws org.json.JSONException {
            assertEquals(where + " dtype", doc.getString("dtype"), name(t.dtype()));
            JSONArray shape = doc.getJSONArray("shape");
            long[] got = t.shape();
            assertEquals(where + " rank", shape.length(), got.length);
            for (int i = 0; i < got.length; i++) {
                assertEquals(where + " shape", shape.getLong(i), got[i]);
            }
            if (doc.has("sha256")) {
                assertEquals(where + " bytes", doc.getString("sha256"), sha256(bytes(t)));
                return;
            }
            Tensor want = tensor(doc);
            if (t.dtype() == DType.FLOAT) {
                float[] w = want.getDataAsFloatArray();
                float[] g = t.getDataAsFloatArray();
                for (int i = 0; i < g.length; i++) {
                    assertEquals(where + " [" + i + "]", w[i], g[i], tolerance);
                }
            } else {
                assertEquals(where, java.util.Arrays.toString(want.getDataAsLongArray()),
                        java.util.Arrays.toString(t.getDataAsLongArray()));
            }
        }
    }

    static String name(DType d) {
        return d == DType.FLOAT ? "float32" : d == DType.INT64 ? "int64" : d == DType.UINT8 ? "uint8" : d.toString();
    }

    static byte[] bytes(Tensor t) {
        int n = (int) t.numel();
        DType d = t.dtype();
        ByteBuffer b = ByteBuffer.allocate(n * (d == DType.FLOAT ? 4 : d == DType.INT64 ? 8 : 1))
                .order(ByteOrder.LITTLE_ENDIAN);
        if (d == DType.FLOAT) {
            b.asFloatBuffer().put(t.getDataAsFloatArray());
        } else if (d == DType.INT64) {
            b.asLongBuffer().put(t.getDataAsLongArray());
        } else {
            b.put(t.getDataAsUnsignedByteArray());
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

    /** A recorded tensor (zlib-compressed little-endian data, base64) as the Java Tensor of its dtype. */
    static Tensor tensor(JSONObject doc) throws org.json.JSONException {
        JSONArray s = doc.getJSONArray("shape");
        long[] shape = new long[s.length()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = s.getLong(i);
        }
        ByteBuffer raw = ByteBuffer.wrap(inflate(Base64.getDecoder().decode(doc.getString("z"))))
                .order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) Tensor.numel(shape);
        String dtype = doc.getString("dtype");
        if (dtype.equals("float32")) {
            float[] f = new float[n];
            raw.asFloatBuffer().get(f);
            return Tensor.fromBlob(f, shape);
        }
        if (dtype.equals("int64")) {
            long[] l = new long[n];
            raw.asLongBuffer().get(l);
            return Tensor.fromBlob(l, shape);
        }
        assertEquals("uint8", dtype);
        byte[] u = new byte[n];
        raw.get(u);
        return Tensor.fromBlobUnsigned(u, shape);
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
