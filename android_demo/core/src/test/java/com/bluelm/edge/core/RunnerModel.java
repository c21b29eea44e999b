package com.bluelm.edge.core;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A Java model of {@code LlmModule} 1.5 (ExecuTorch's LLM runner + the Android JNI layer), checked
 * against the real runner through tests/vectors/runner_behaviour.json (RunnerModelTest here,
 * test_runner_behaviour.py on the Python side). What it reproduces: the prompt's tokens go into
 * the KV cache; the first callback is the prefill token; max_new_tokens/seq_len count it; each
 * step caches the previous token; stop() is honoured after a callback except the prefill token's;
 * EOS ends generation except as the prefill token; the last emitted token is never cached; token
 * bytes are buffered until valid UTF-8 (a tail that never is, is dropped); errors as upstream.
 */
final class RunnerModel implements LlmRunner {

    /** The network: the next token after the cache contents. */
    interface Lm {
        int next(List<Integer> kv);
    }

    static final int INVALID_ARGUMENT = 0x12;
    static final int INVALID_STATE = 0x02;

    private final Map<Integer, byte[]> vocab;
    private final Map<String, int[]> encode;
    private final Lm lm;
    private final Set<Integer> eos;
    private final int maxContext;
    final List<Integer> kv = new ArrayList<Integer>();
    final List<Integer> lastTokens = new ArrayList<Integer>();
    int stopCalls;
    int loadCalls;
    int resetCalls;
    int generateCalls;
    int decodeSteps;
    boolean closed;
    RunnerException loadError;
    private volatile boolean stopFlag;
    private long clockMs = 1000;

    RunnerModel(Map<Integer, byte[]> vocab, Map<String, int[]> encode, Lm lm, Set<Integer> eos, int maxContext) {
        this.vocab = vocab;
        this.encode = encode;
        this.lm = lm;
        this.eos = eos;
        this.maxContext = maxContext;
    }

    int pos() {
        return kv.size();
    }

    @Override
    public void load() throws RunnerException {
        loadCalls++;
        if (loadError != null) {
            throw loadError;
        }
    }

    private int[] tokens(String text) {
        int[] ids = encode.get(text);
        if (ids == null) {
            throw new AssertionError("the model has no tokenisation for " + text);
        }
        return ids;
    }

    @Override
    public void prefillPrompt(String text) throws RunnerException {
        cachePrompt("prefill", text);
    }

    /** Cache positions one image tile's embeddings take (0: this model has no vision encoder). */
    int tileTokens;
    /** Marks an image embedding in {@link #kv} (the model has no real embeddings). */
    static final int IMAGE = -1;
    float lastTemperature = Float.NaN;

    @Override
    public void prefillImage(float[] chw, int width, int height, int channels) throws RunnerException {
        if (tileTokens == 0) {
            throw new RunnerException("prefill", INVALID_STATE, "the runner model has no vision encoder");
        }
        if (chw.length != channels * width * height) {
            throw new RunnerException("prefill", INVALID_ARGUMENT, "image of " + chw.length + " floats is not "
                    + channels + "x" + height + "x" + width);
        }
        for (int i = 0; i < tileTokens; i++) {
            kv.add(Integer.valueOf(IMAGE));
        }
    }

    private int cachePrompt(String call, String text) throws RunnerException {
        if (loadError != null) {
            throw loadError;
        }
        if (text.length() == 0) {
            throw new RunnerException(call, INVALID_ARGUMENT, "MultimodalInput vector cannot be empty");
        }
        int[] ids = tokens(text);
        if (kv.size() + ids.length >= maxContext) {
            throw new RunnerException(call, INVALID_ARGUMENT, "pos_ " + kv.size() + " + num_prompt_tokens "
                    + ids.length + " >= max_context_len " + maxContext);
        }
        for (int id : ids) {
            kv.add(Integer.valueOf(id));
        }
        return ids.length;
    }

    @Override
    public void generate(String prompt, int seqLen, float temperature, Callback callback) throws RunnerException {
        lastTemperature = temperature;
        generate(prompt, seqLen, -1, callback);
    }

    /** generate with the runner's GenerationConfig limits (-1 = unset). */
    void generate(String prompt, int seqLen, int maxNewTokens, Callback cb) throws RunnerException {
        generateCalls++;
        int nPrompt = cachePrompt("generate", prompt);
        int budget = resolveMaxNew(seqLen, maxNewTokens);
        if (budget <= 0) {
            throw new RunnerException("generate", INVALID_ARGUMENT, "Max new tokens " + budget + " is <= 0");
        }
        lastTokens.clear();
        Utf8Buffer jni = new Utf8Buffer(cb);
        long start = clockMs;
        int cur = lm.next(kv);
        lastTokens.add(Integer.valueOf(cur));
        jni.add(vocab.get(Integer.valueOf(cur)));
        stopFlag = false; // the token generator resets the flag after the prefill token
        int generated = 0;
        while (generated < budget - 1) {
            kv.add(Integer.valueOf(cur));
            cur = lm.next(kv);
            decodeSteps++;
            generated++;
            lastTokens.add(Integer.valueOf(cur));
            jni.add(vocab.get(Integer.valueOf(cur)));
            if (stopFlag || eos.contains(Integer.valueOf(cur))) {
                break;
            }
        }
        clockMs += 10 + generated;
        cb.onStats(stats(nPrompt, generated, start));
    }

    private int resolveMaxNew(int seqLen, int maxNew) {
        int room = maxContext - kv.size();
        if (seqLen == -1) {
            return maxNew == -1 ? room : Math.min(maxNew, room);
        }
        int bySeq = Math.min(seqLen, maxContext) - kv.size();
        return maxNew == -1 ? bySeq : Math.min(bySeq, maxNew);
    }

    private String stats(int prompt, int generated, long start) {
        long end = clockMs;
        return "{\"prompt_tokens\":" + prompt + ",\"generated_tokens\":" + generated
                + ",\"model_load_start_ms\":0,\"model_load_end_ms\":0,\"inference_start_ms\":" + start
                + ",\"inference_end_ms\":" + end + ",\"prompt_eval_end_ms\":" + (start + 4)
                + ",\"first_token_ms\":" + (start + 4) + ",\"SCALING_FACTOR_UNITS_PER_SECOND\":1000}";
    }

    @Override
    public void stop() {
        stopCalls++;
        stopFlag = true;
    }

    @Override
    public void resetContext() {
        resetCalls++;
        kv.clear();
    }

    @Override
    public void close() {
        closed = true;
    }

    /** The JNI's token_buffer: bytes are passed on once they are valid UTF-8. */
    private static final class Utf8Buffer {
        private final Callback cb;
        private final ByteBuffer buf = ByteBuffer.allocate(4096);

        Utf8Buffer(Callback cb) {
            this.cb = cb;
        }

        void add(byte[] bytes) {
            buf.put(bytes);
            ByteBuffer view = (ByteBuffer) buf.duplicate().flip();
            try {
                String s = Charset.forName("UTF-8").newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(view).toString();
                buf.clear();
                cb.onResult(s);
            } catch (CharacterCodingException e) {
                return; // not valid yet: wait for more
            }
        }
    }
}
