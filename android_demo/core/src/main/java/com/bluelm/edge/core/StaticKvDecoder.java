package com.bluelm.edge.core;

/**
 * The static NPU contract's runner math (docs/contracts.md, "The static NPU program"), the Java
 * mirror of Python's {@code export/npu_host.NpuDecoder}: one KV cache buffer per layer shared by
 * {@code prefill} and {@code decode}, written outside the graph at slots {@code [pos, pos + valid)}
 * (smart mask); prompts in chunks of {@code get_prefill_chunk} (the last padded), a single token
 * through {@code decode}; the mask and RoPE rows of each call; {@code token_embedding} and
 * {@code vision_encoder} at their static shapes. Graph I/O: fp32, or the KV cache as 8-bit codes
 * stored as returned ({@code get_kv_io_bit_width} 8, filled with each cache's zero point); 16-bit
 * I/O cannot cross ExecuTorch's Java API and is refused at construction. Each cache lives in one
 * direct buffer for the decoder's life ({@link HostTensor#direct}): every call hands the program
 * the same memory (no per-step copy of the whole cache, which is ~118 MB a step for the 2.9B model
 * at 8 bits and a 4096-slot context), and only the new entries are written into it.
 */
final class StaticKvDecoder {

    static final String[] ROLES = {"embeds", "rope_cos", "rope_sin", "mask", "logits", "token_embedding_out",
        "vision_encoder_out"};

    private final StaticProgram program;
    final int chunk;
    final int cacheLen;
    final int layers;
    final int kvHeads;
    final int headDim;
    final int visionBatch;
    final long padId;
    private final float maskValue;
    private final boolean kv8;
    private final long[] kvZeroPoints;
    private final float[][] ropeCos;
    private final float[][] ropeSin;
    private final int elementBytes;
    private final java.nio.ByteBuffer[] keys;
    private final java.nio.ByteBuffer[] values;
    int pos;
    /** The model width, known after the first embedding call. */
    int dim;

    StaticKvDecoder(StaticProgram program) throws RunnerException {
        this.program = program;
        chunk = (int) integer("get_prefill_chunk");
        cacheLen = (int) integer("get_cache_len");
        layers = (int) integer("get_n_layers");
        kvHeads = (int) integer("get_kv_heads");
        headDim = (int) integer("get_head_dim");
        visionBatch = (int) integer("get_vision_batch");
        padId = integer("get_pad_id");
        maskValue = (float) real("get_mask_value");
        checkGraphIo();
        long kvBits = integer("get_kv_io_bit_width");
        kv8 = kvBits == 8;
        kvZeroPoints = kv8 ? longs("get_kv_zero_points") : new long[2 * layers];
        elementBytes = kv8 ? 1 : 4;
        keys = new java.nio.ByteBuffer[layers];
        values = new java.nio.ByteBuffer[layers];
        for (int i = 0; i < layers; i++) {
            keys[i] = HostTensor.allocate(kvHeads * cacheLen * headDim * elementBytes);
            values[i] = HostTensor.allocate(kvHeads * cacheLen * headDim * elementBytes);
        }
        double[] scaling = program.hasMethod("get_rope_original_context") ? new double[] {
            real("get_rope_factor"), real("get_rope_low_freq_factor"), real("get_rope_high_freq_factor"),
            real("get_rope_original_context")} : null;
        float[][][] rope = ropeTables(headDim, cacheLen, real("get_rope_theta"), scaling);
        ropeCos = rope[0];
        ropeSin = rope[1];
        reset();
    }

    private void checkGraphIo() throws RunnerException {
        for (String role : ROLES) {
            long bits = program.hasMethod("get_" + role + "_bit_width") ? integer("get_" + role + "_bit_width") : 32;
            if (bits != 32) {
                throw new RunnerException("load", RunnerException.UNKNOWN, "the program's " + role + " crosses the NPU "
                        + "boundary as " + bits + "-bit integers, which ExecuTorch's Java API cannot pass; re-export "
                        + "with --graph-io kv");
            }
        }
        long kv = program.hasMethod("get_kv_io_bit_width") ? integer("get_kv_io_bit_width") : 32;
        if (kv != 8 && kv != 32) {
            throw new RunnerException("load", RunnerException.UNKNOWN, "the program's KV cache is " + kv
                    + "-bit graph I/O; this app passes 8-bit or fp32 caches: re-export with --graph-io kv");
        }
    }

    long integer(String method) throws RunnerException {
        return ((Number) program.constant(method)[0]).longValue();
    }

    private double real(String method) throws RunnerException {
        return ((Number) program.constant(method)[0]).doubleValue();
    }

    private long[] longs(String method) throws RunnerException {
        Object[] values = program.constant(method);
        long[] out = new long[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = ((Number) values[i]).longValue();
        }
        return out;
    }

    /** Empty caches (each slot the real 0 of its encoding), position 0. */
    void reset() {
        for (int i = 0; i < layers; i++) {
            fill(keys[i], kvZeroPoints[i]);
            fill(values[i], kvZeroPoints[layers + i]);
        }
        pos = 0;
    }

    /** Every slot of a cache buffer the code of real 0: the zero point (uint8), or 0f (fp32: all zero bytes). */
    private void fill(java.nio.ByteBuffer cache, long zeroPoint) {
        byte[] row = new byte[headDim * elementBytes];
        java.util.Arrays.fill(row, kv8 ? (byte) zeroPoint : 0);
        java.nio.ByteBuffer w = cache.duplicate();
        w.clear();
        while (w.hasRemaining()) {
            w.put(row);
        }
    }

    /** ids -> [ids.length * D] through the static [1, chunk] method (padded with the pad id). */
    float[] tokenEmbedding(long[] ids) throws RunnerException {
        float[] out = null;
        for (int lo = 0; lo < ids.length; lo += chunk) {
            int n = Math.min(chunk, ids.length - lo);
            long[] padded = new long[chunk];
            java.util.Arrays.fill(padded, padId);
            System.arraycopy(ids, lo, padded, 0, n);
            HostTensor[] r = program.execute("token_embedding", new HostTensor[] {HostTensor.longs(padded, 1, chunk)});
            dim = (int) r[0].shape[2];
            if (out == null) {
                out = new float[ids.length * dim];
            }
            System.arraycopy(r[0].floatData(), 0, out, lo * dim, n * dim);
        }
        return out == null ? new float[0] : out;
    }

    /** tiles [count, 3, S, S] -> [count * tokens_per_tile * D], vision_batch tiles a call (last padded with the last tile). */
    float[] visionEncoder(float[] pixels, int count) throws RunnerException {
        int per = pixels.length / count;
        int side = (int) Math.round(Math.sqrt(per / 3.0));
        float[] out = null;
        int at = 0;
        for (int lo = 0; lo < count; lo += visionBatch) {
            int n = Math.min(visionBatch, count - lo);
            float[] batch = new float[visionBatch * per];
            for (int t = 0; t < visionBatch; t++) {
                System.arraycopy(pixels, (lo + Math.min(t, n - 1)) * per, batch, t * per, per);
            }
            HostTensor[] r = program.execute("vision_encoder", new HostTensor[] {
                HostTensor.floats(batch, visionBatch, 3, side, side)});
            int perTile = (int) r[0].shape[1] / visionBatch;
            dim = (int) r[0].shape[2];
            if (out == null) {
                out = new float[count * perTile * dim];
            }
            System.arraycopy(r[0].floatData(), 0, out, at, n * perTile * dim);
            at += n * perTile * dim;
        }
        return out;
    }

    /** embeds [count * D] at positions pos..pos+count-1 -> the logits of the last one. */
    float[] textDecoder(float[] embeds, int count) throws RunnerException {
        if (pos + count > cacheLen) {
            throw new RunnerException("prefill", 0x12, (pos + count) + " positions do not fit the " + cacheLen
                    + "-slot KV cache");
        }
        int dim = embeds.length / count;
        float[] logits = null;
        for (int lo = 0; lo < count; ) {
            int size = count - lo == 1 ? 1 : Math.min(chunk, count - lo);
            logits = step(embeds, lo * dim, size, dim);
            lo += size;
        }
        return logits;
    }

    /** One graph call: decode (1 token) or prefill (up to chunk, padded) at pos; the cache update. */
    private float[] step(float[] embeds, int offset, int valid, int dim) throws RunnerException {
        boolean one = valid == 1;
        int c = one ? 1 : chunk;
        float[] x = new float[c * dim];
        System.arraycopy(embeds, offset, x, 0, valid * dim);
        float[] cos = new float[c * headDim];
        float[] sin = new float[c * headDim];
        for (int i = 0; i < valid; i++) {
            System.arraycopy(ropeCos[pos + i], 0, cos, i * headDim, headDim);
            System.arraycopy(ropeSin[pos + i], 0, sin, i * headDim, headDim);
        }
        HostTensor[] in = new HostTensor[4 + 2 * layers];
        in[0] = HostTensor.floats(x, 1, c, dim);
        in[1] = HostTensor.floats(cos, c, headDim);
        in[2] = HostTensor.floats(sin, c, headDim);
        in[3] = HostTensor.floats(mask(pos, valid, c), 1, c, cacheLen + c);
        for (int i = 0; i < layers; i++) {
            in[4 + i] = cache(true, i);
            in[4 + layers + i] = cache(false, i);
        }
        HostTensor[] out = program.execute(one ? "decode" : "prefill", in);
        for (int i = 0; i < layers; i++) {
            store(out[1 + i], true, i, valid, c);
            store(out[1 + layers + i], false, i, valid, c);
        }
        pos += valid;
        int vocab = (int) out[0].shape[2];
        float[] row = new float[vocab];
        System.arraycopy(out[0].floatData(), (valid - 1) * vocab, row, 0, vocab);
        return row;
    }

    private HostTensor cache(boolean key, int layer) {
        return HostTensor.direct(kv8 ? HostTensor.UINT8 : HostTensor.FLOAT32, (key ? keys : values)[layer],
                1, kvHeads, cacheLen, headDim);
    }

    /** The runner's cache update: new rows [0, valid) of [1, KV, c, hd] to slots [pos, pos + valid). */
    private void store(HostTensor fresh, boolean key, int layer, int valid, int c) throws RunnerException {
        if (fresh.dtype != (kv8 ? HostTensor.UINT8 : HostTensor.FLOAT32)) {
            throw new RunnerException("generate", RunnerException.UNKNOWN, "the program returned a " + fresh.describe()
                    + " cache entry; its metadata declares " + (kv8 ? "uint8" : "float32"));
        }
        java.nio.ByteBuffer w = (key ? keys : values)[layer].duplicate().order(java.nio.ByteOrder.nativeOrder());
        java.nio.FloatBuffer wf = kv8 ? null : w.asFloatBuffer();
        byte[] u8 = kv8 ? fresh.byteData() : null;
        float[] f = kv8 ? null : fresh.floatData();
        for (int h = 0; h < kvHeads; h++) {
            int src = h * c * headDim;
            int dst = (h * cacheLen + pos) * headDim;
            if (kv8) {
                w.position(dst);
                w.put(u8, src, valid * headDim);
            } else {
                wf.position(dst);
                wf.put(f, src, valid * headDim);
            }
        }
    }

    /** Smart mask [c, S + c]: row i sees slots [0, start) and new columns j <= min(i, valid - 1). */
    float[] mask(int start, int valid, int c) {
        int width = cacheLen + c;
        float[] m = new float[c * width];
        java.util.Arrays.fill(m, maskValue);
        for (int i = 0; i < c; i++) {
            java.util.Arrays.fill(m, i * width, i * width + start, 0f);
            int seen = Math.min(i, Math.max(valid - 1, 0));
            java.util.Arrays.fill(m, i * width + cacheLen, i * width + cacheLen + seen + 1, 0f);
        }
        return m;
    }

    /** cos, sin [positions][head_dim] in float32, rotate-half layout, as Python's {@code rope_tables}. */
    static float[][][] ropeTables(int headDim, int positions, double theta, double[] scaling) {
        int half = headDim / 2;
        float[] inv = new float[half];
        for (int k = 0; k < half; k++) {
            float exponent = (float) (2 * k) / (float) headDim;
            inv[k] = 1.0f / (float) Math.pow((float) theta, exponent);
            if (scaling != null) {
                inv[k] = (float) llama3(inv[k], scaling);
            }
        }
        float[][] cos = new float[positions][headDim];
        float[][] sin = new float[positions][headDim];
        for (int p = 0; p < positions; p++) {
            for (int k = 0; k < half; k++) {
                float angle = (float) p * inv[k];
                cos[p][k] = cos[p][k + half] = (float) Math.cos(angle);
                sin[p][k] = sin[p][k + half] = (float) Math.sin(angle);
            }
        }
        return new float[][][] {cos, sin};
    }

    /** Llama 3's frequency scaling (factor, low, high, original context), as transformers computes it. */
    private static double llama3(float inv, double[] s) {
        double wavelen = 2 * Math.PI / inv;
        double scaled = wavelen > s[3] / s[1] ? inv / s[0] : inv;
        if (wavelen >= s[3] / s[2] && wavelen <= s[3] / s[1]) {
            double smooth = (s[3] / wavelen - s[1]) / (s[2] - s[1]);
            return (1 - smooth) * scaled / s[0] + smooth * scaled;
        }
        return scaled;
    }
}
