package com.bluelm.edge.core;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;

/**
 * The app's runner of a static NPU program (manifest {@code "runner": "static-kv"}): the contract's
 * math in {@link StaticKvDecoder}, the tokenizer in {@link BpeTokenizer}, and {@code LlmModule}'s
 * behaviour as {@link LlmRunner} states it, so {@link ChatEngine} drives it unchanged: the prompt's
 * tokens are cached; the first callback is the token sampled from the prefill's logits; each later
 * step caches the previous token; a {@code stop()} is honoured after any callback but the prefill
 * token's; EOS ends generation; the last emitted token is never cached; {@code seqLen} bounds the
 * total position; pieces are token bytes merged until valid UTF-8; stats in the runner's JSON.
 * Checked against the Python runner on tests/vectors/static_kv_runner.json.
 */
public final class StaticKvRunner implements LlmRunner {

    static final int INVALID_ARGUMENT = 0x12;

    private final StaticProgram program;
    private final BpeTokenizer tokenizer;
    private final Random random;
    private StaticKvDecoder decoder;
    private final Set<Long> eos = new HashSet<Long>();
    private float[] lastLogits;
    private volatile boolean stopFlag;
    private long loadStartMs;
    private long loadEndMs;

    public StaticKvRunner(StaticProgram program, BpeTokenizer tokenizer, long seed) {
        this.program = program;
        this.tokenizer = tokenizer;
        this.random = new Random(seed);
    }

    @Override
    public void load() throws RunnerException {
        if (decoder != null) {
            return;
        }
        loadStartMs = System.currentTimeMillis();
        decoder = new StaticKvDecoder(program);
        for (Object id : program.constant("get_eos_ids")) {
            eos.add(Long.valueOf(((Number) id).longValue()));
        }
        loadEndMs = System.currentTimeMillis();
    }

    /** Tokens of the KV cache so far. */
    public int position() {
        return decoder == null ? 0 : decoder.pos;
    }

    @Override
    public void prefillPrompt(String text) throws RunnerException {
        cachePrompt("prefill", text);
    }

    @Override
    public void prefillImage(float[] chw, int width, int height, int channels) throws RunnerException {
        load();
        if (chw.length != channels * width * height || channels != 3 || width != height) {
            throw new RunnerException("prefill", INVALID_ARGUMENT, "image of " + chw.length + " floats is not a "
                    + channels + "x" + height + "x" + width + " square RGB tile");
        }
        float[] embeds = decoder.visionEncoder(chw, 1);
        int rows = embeds.length / decoder.dim;
        checkRoom("prefill", rows);
        lastLogits = decoder.textDecoder(embeds, rows);
    }

    private int cachePrompt(String call, String text) throws RunnerException {
        load();
        if (text.length() == 0) {
            throw new RunnerException(call, INVALID_ARGUMENT, "MultimodalInput vector cannot be empty");
        }
        long[] ids = tokenizer.encode(text);
        checkRoom(call, ids.length);
        float[] embeds = decoder.tokenEmbedding(ids);
        lastLogits = decoder.textDecoder(embeds, ids.length);
        return ids.length;
    }

    private void checkRoom(String call, int tokens) throws RunnerException {
        if (decoder.pos + tokens >= decoder.cacheLen) {
            throw new RunnerException(call, INVALID_ARGUMENT, "pos_ " + decoder.pos + " + num_prompt_tokens " + tokens
                    + " >= max_context_len " + decoder.cacheLen);
        }
    }

    @Override
    public void generate(String prompt, int seqLen, float temperature, Callback cb) throws RunnerException {
        long start = System.currentTimeMillis();
        int nPrompt = cachePrompt("generate", prompt);
        long prefilled = System.currentTimeMillis();
        int budget = Math.min(seqLen < 0 ? decoder.cacheLen : seqLen, decoder.cacheLen) - decoder.pos;
        if (budget <= 0) {
            throw new RunnerException("generate", INVALID_ARGUMENT, "Max new tokens " + budget + " is <= 0");
        }
        Utf8Buffer out = new Utf8Buffer(cb);
        long cur = sample(lastLogits, temperature);
        out.add(tokenizer.tokenBytes(cur));
        long first = System.currentTimeMillis();
        stopFlag = false; // as the token generator: a stop in the prefill token's callback is dropped
        int generated = 0;
        while (generated < budget - 1) {
            lastLogits = decoder.textDecoder(decoder.tokenEmbedding(new long[] {cur}), 1);
            cur = sample(lastLogits, temperature);
            generated++;
            out.add(tokenizer.tokenBytes(cur));
            if (stopFlag || eos.contains(Long.valueOf(cur))) {
                break;
            }
        }
        cb.onStats(stats(nPrompt, generated, start, prefilled, first, System.currentTimeMillis()));
    }

    /** Greedy (first maximum) at temperature 0, else a draw from softmax(logits / temperature). */
    long sample(float[] logits, float temperature) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        if (temperature <= 0f) {
            return best;
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp((logits[i] - logits[best]) / temperature);
            sum += p[i];
        }
        double r = random.nextDouble() * sum;
        for (int i = 0; i < p.length; i++) {
            r -= p[i];
            if (r <= 0) {
                return i;
            }
        }
        return best;
    }

    private String stats(int prompt, int generated, long start, long prefilled, long first, long end) {
        return "{\"prompt_tokens\":" + prompt + ",\"generated_tokens\":" + generated + ",\"model_load_start_ms\":"
                + loadStartMs + ",\"model_load_end_ms\":" + loadEndMs + ",\"inference_start_ms\":" + start
                + ",\"inference_end_ms\":" + end + ",\"prompt_eval_end_ms\":" + prefilled + ",\"first_token_ms\":"
                + first + ",\"SCALING_FACTOR_UNITS_PER_SECOND\":1000}";
    }

    @Override
    public void stop() {
        stopFlag = true;
    }

    @Override
    public void resetContext() throws RunnerException {
        load();
        decoder.reset();
        lastLogits = null;
    }

    @Override
    public void close() {
        program.close();
    }

    /** Token bytes passed on once they are valid UTF-8 (as the JNI layer's token buffer). */
    private static final class Utf8Buffer {
        private final Callback cb;
        private ByteBuffer buf = ByteBuffer.allocate(64);

        Utf8Buffer(Callback cb) {
            this.cb = cb;
        }

        void add(byte[] bytes) {
            if (buf.remaining() < bytes.length) {
                ByteBuffer bigger = ByteBuffer.allocate(2 * buf.capacity() + bytes.length);
                buf.flip();
                bigger.put(buf);
                buf = bigger;
            }
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
