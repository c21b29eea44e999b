package com.bluelm.edge.core;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * A {@link StaticProgram} whose methods run in ExecuTorch's runtime: a Python process serving the
 * {@code .pte} through the runtime's bindings (tests/static_kv_bridge.py), one JSON line per call.
 */
final class BridgeProgram implements StaticProgram {

    private final Process process;
    private final Writer out;
    private final BufferedReader in;

    BridgeProgram(String python, String bridge, String pte) throws IOException {
        process = new ProcessBuilder(python, bridge, pte).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        out = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
        in = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    }

    private JSONObject ask(JSONObject req, String call) throws RunnerException {
        // one request, one reply line (the bridge answers every line)
        try {
            out.write(req.toString() + "\n");
            out.flush();
            String line = in.readLine();
            if (line == null) {
                throw new RunnerException(call, RunnerException.UNKNOWN, "the runtime process ended");
            }
            JSONObject reply = new JSONObject(line);
            if (reply.has("error")) {
                throw new RunnerException(call, RunnerException.UNKNOWN, reply.getString("error"));
            }
            return reply;
        } catch (IOException | org.json.JSONException e) {
            throw new RunnerException(call, RunnerException.UNKNOWN, e.toString());
        }
    }

    @Override
    public HostTensor[] execute(String method, HostTensor[] inputs) throws RunnerException {
        try {
            JSONArray ins = new JSONArray();
            for (HostTensor t : inputs) {
                ins.put(new JSONObject().put("dtype", name(t)).put("shape", new JSONArray(StaticKvRunnerTest.shape(t)))
                        .put("b64", Base64.getEncoder().encodeToString(StaticKvRunnerTest.bytes(t))));
            }
            JSONArray outs = ask(new JSONObject().put("op", "execute").put("method", method).put("inputs", ins), method)
                    .getJSONArray("outputs");
            HostTensor[] result = new HostTensor[outs.length()];
            for (int i = 0; i < result.length; i++) {
                result[i] = tensor(outs.getJSONObject(i));
            }
            return result;
        } catch (org.json.JSONException e) {
            throw new RunnerException(method, RunnerException.UNKNOWN, e.toString());
        }
    }

    private static String name(HostTensor t) {
        return t.dtype == HostTensor.FLOAT32 ? "float32" : t.dtype == HostTensor.UINT8 ? "uint8" : "int64";
    }

    private static HostTensor tensor(JSONObject doc) throws org.json.JSONException {
        JSONArray s = doc.getJSONArray("shape");
        long[] shape = new long[s.length()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = s.getLong(i);
        }
        ByteBuffer raw = ByteBuffer.wrap(Base64.getDecoder().decode(doc.getString("b64"))).order(ByteOrder.LITTLE_ENDIAN);
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

    @Override
    public Object[] constant(String method) throws RunnerException {
        try {
            JSONArray values = ask(new JSONObject().put("op", "constant").put("method", method), "load")
                    .getJSONArray("values");
            Object[] out = new Object[values.length()];
            for (int i = 0; i < out.length; i++) {
                Object v = values.get(i);
                boolean integral = v instanceof Integer || v instanceof Long;
                out[i] = v instanceof Boolean ? v : integral ? Long.valueOf(((Number) v).longValue())
                        : Double.valueOf(((Number) v).doubleValue());
            }
            return out;
        } catch (org.json.JSONException e) {
            throw new RunnerException("load", RunnerException.UNKNOWN, e.toString());
        }
    }

    @Override
    public boolean hasMethod(String method) throws RunnerException {
        try {
            JSONArray names = ask(new JSONObject().put("op", "methods"), "load").getJSONArray("values");
            for (int i = 0; i < names.length(); i++) {
                if (names.getString(i).equals(method)) {
                    return true;
                }
            }
            return false;
        } catch (org.json.JSONException e) {
            throw new RunnerException("load", RunnerException.UNKNOWN, e.toString());
        }
    }

    @Override
    public void close() {
        process.destroy();
    }
}
