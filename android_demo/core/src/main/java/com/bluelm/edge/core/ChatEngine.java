package com.bluelm.edge.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A chat over ExecuTorch's {@code LlmModule} (through {@link LlmRunner}) with the thinking budget
 * controlled against the runner as it behaves (tests/vectors/runner_behaviour.json):
 *
 * <ul>
 * <li><b>No stop() in the decision callback.</b> When the controller forces text at piece k, the
 * engine keeps piece k and calls {@code stop()} from piece k+1 on, in every callback until the
 * runner returns, dropping those pieces. The runner leaves only its last emitted token out of the
 * KV cache, so the cache then ends exactly at piece k: nothing generated is fed back as text, and
 * the first-callback stop that the runner ignores is never the one that matters.
 * <li><b>Forced text after the last kept token.</b> The forced pieces (budget message +
 * {@code </think>}, "Wait") are the prompt of the next {@code generate}, tokenised on their own.
 * Thinking is opened in the prompt ({@code <think>} after the assistant prefix), so the controller
 * never forces {@code <think>} in front of an already sampled piece.
 * <li><b>The budget counts tokens:</b> each piece is counted with {@link TokenCounter} (the
 * tokenizer's vocabulary), since the API gives text pieces, not ids, and merges multi-byte tokens.
 * <li><b>Every call is checked:</b> a failed load/prefill/generate ends the answer with
 * {@code finish = "error"} and the runner's code and message on one line.
 * </ul>
 * The prompt is the family's ({@link PromptFormat} from the manifest: BlueLM's template or the
 * checkpoint's own, as segments); a family that cannot think always answers without thinking.
 * Multi-turn: after a non-thinking answer that ended with EOS (never cached) the cache is kept and
 * the next non-thinking turn continues it ({@link PromptFormat#continuation}: BlueLM's
 * {@code </s>} + the user turn) where the format allows; otherwise the history
 * (text; an image goes with its own message only) is rendered through the chat template and
 * re-prefilled (the cache would hold the thinking, which the template drops for earlier turns). Blocking: call from
 * a worker thread; {@link #stop()} from any thread.
 */
public final class ChatEngine {

    /** Receives the answer as it streams. */
    public interface Listener {
        void onPiece(String text, boolean thinking, boolean forced);
    }

    private final LlmRunner runner;
    private final BundleManifest manifest;
    private final TokenCounter counter;
    private final List<ChatTemplate.Message> history = new ArrayList<ChatTemplate.Message>();
    private volatile boolean userStopped;
    private volatile float temperature;
    private final LiveStats live = new LiveStats();
    private boolean closed;
    /** The KV cache ends right after the last answer's text (EOS never cached, no thinking in it). */
    private boolean cacheHoldsHistory;
    /** An EOS sampled as the prefill token was cached (the runner went on until the stop took). */
    private boolean eosCached;

    public ChatEngine(LlmRunner runner, BundleManifest manifest, TokenCounter counter) {
        this.runner = runner;
        this.manifest = manifest;
        this.counter = counter;
    }

    /** Load the program; returns the load time in ms. */
    public long load() throws RunnerException {
        long t0 = System.nanoTime();
        runner.load();
        return (System.nanoTime() - t0) / 1000000L;
    }

    /** Stop the answer in progress (repeated in every later callback: the runner may ignore one). */
    public void stop() {
        userStopped = true;
        runner.stop();
    }

    /** Sampling temperature of the next answers (0, the default: greedy); the runner has no top-p. */
    public void setTemperature(float t) {
        if (!(t >= 0f) || t > 2f) {
            throw new IllegalArgumentException("temperature must be between 0 and 2, got " + t);
        }
        temperature = t;
    }

    /** The answer in progress: decode tokens/s and resident memory, for a live line on screen. */
    public LiveStats live() {
        return live;
    }

    /** Forget the conversation. */
    public void newChat() {
        history.clear();
        cacheHoldsHistory = false;
    }

    public List<ChatTemplate.Message> history() {
        return Collections.unmodifiableList(history);
    }

    /** Free the native module (on a bundle switch or when done); the engine is unusable after. */
    public void close() {
        if (!closed) {
            closed = true;
            runner.close();
        }
    }

    private String tok(String name) {
        return manifest.tokens.get(name);
    }

    /**
     * Answer one user turn after the history.
     *
     * @param images this message's images, each as its normalised CHW tiles (empty for none)
     * @param budget null unlimited, 0 non-thinking, N &gt; 0 at most N thinking tokens
     */
    public GenerationStats answer(String user, List<List<float[]>> images, Integer budget, Listener listener) {
        PromptFormat format = manifest.format;
        if (!images.isEmpty() && !format.appImages()) {
            return failed("images", "this app cannot prepare images for the " + manifest.family
                    + " model yet; send the message without the image");
        }
        boolean think = thinking(budget);
        String continued = cacheHoldsHistory && !think && images.isEmpty() && !history.isEmpty()
                ? format.continuation(history.get(history.size() - 1).content, user) : null;
        String prompt;
        if (continued != null) { // continue the cache: close the last answer, add the user turn
            prompt = continued;
        } else {
            List<ChatTemplate.Message> msgs = new ArrayList<ChatTemplate.Message>(history);
            msgs.add(new ChatTemplate.Message("user", user, images.size(), null));
            prompt = format.render(msgs, think, true, imageTokens(images)) + (think ? tok("think_start") : "");
        }
        Collector answerText = new Collector(listener);
        GenerationStats s = run(prompt, images, budget, answerText, continued == null);
        cacheHoldsHistory = s.error == null && s.finish.equals("eos") && !think && !eosCached;
        if (s.error == null) { // earlier turns keep their text; their images are not fed again
            history.add(new ChatTemplate.Message("user", user, 0, null));
            history.add(new ChatTemplate.Message("assistant", answerText.answer.toString(), 0, null));
        }
        return s;
    }

    private List<Integer> imageTokens(List<List<float[]>> images) {
        List<Integer> out = new ArrayList<Integer>();
        for (List<float[]> tiles : images) {
            out.add(Integer.valueOf(tiles.size() * manifest.tokensPerTile));
        }
        return out;
    }

    /** Thinking is on unless the budget is 0 or the family cannot think. */
    private boolean thinking(Integer budget) {
        return manifest.thinks && (budget == null || budget.intValue() != 0);
    }

    private static GenerationStats failed(String call, String message) {
        GenerationStats s = new GenerationStats();
        s.finish = "error";
        s.error = new RunnerException(call, RunnerException.UNKNOWN, message).oneLine();
        s.errorCode = RunnerException.UNKNOWN;
        return s;
    }

    /** Generate for a rendered prompt (ending inside {@code <think>} when thinking is on). */
    public GenerationStats generate(String prompt, List<List<float[]>> images, Integer budget, Listener listener) {
        cacheHoldsHistory = false;
        return run(prompt, images, budget, listener, true);
    }

    private GenerationStats run(String prompt, List<List<float[]>> images, Integer budget, Listener listener,
            boolean fresh) {
        userStopped = false;
        eosCached = false;
        live.reset();
        boolean think = thinking(budget);
        List<String> suffix = manifest.budgetSuffix.length() == 0 ? Collections.<String>emptyList()
                : Collections.singletonList(manifest.budgetSuffix);
        ThinkingBudget tb = new ThinkingBudget(tok("think_start"), tok("think_end"),
                Collections.singletonList(tok("eos")), think ? budget : Integer.valueOf(0),
                Collections.singletonList(manifest.budgetMessage), 0,
                Collections.singletonList(manifest.waitMessage), think, suffix);
        Segment seg = new Segment(tb, listener, think);
        GenerationStats total = null;
        try {
            if (fresh) {
                runner.resetContext();
            }
            String next = prefillImages(prompt, images);
            while (next != null) {
                seg.begin();
                runner.generate(next, manifest.maxContext, temperature, seg);
                GenerationStats part = seg.finish();
                total = total == null ? part : total.mergeContinuation(part);
                next = seg.continuation(total);
            }
        } catch (RunnerException e) {
            total = total == null ? new GenerationStats() : total;
            total.finish = "error";
            total.error = e.oneLine();
            total.errorCode = e.code;
        }
        total.thinkingTokens = tb.thinkingTokens();
        return total;
    }

    /**
     * Prefill each image where its placeholders are: the text before it, then its tiles (each
     * tile's embeddings take the place of {@code tokensPerTile} placeholders); return the text
     * after the last image.
     */
    private String prefillImages(String prompt, List<List<float[]>> images) throws RunnerException {
        String image = tok("image");
        int at = 0;
        for (List<float[]> tiles : images) {
            int first = prompt.indexOf(image, at);
            if (first > at) { // images side by side have no text between them
                runner.prefillPrompt(prompt.substring(at, first));
            }
            for (float[] tile : tiles) {
                runner.prefillImage(tile, manifest.tileSize, manifest.tileSize, 3);
            }
            at = first + image.length() * tiles.size() * manifest.tokensPerTile;
        }
        return prompt.substring(at);
    }

    /** Keeps the answer's text (outside thinking) for the history. */
    private static final class Collector implements Listener {
        final Listener inner;
        final StringBuilder answer = new StringBuilder();

        Collector(Listener inner) {
            this.inner = inner;
        }

        @Override
        public void onPiece(String text, boolean thinking, boolean forced) {
            if (!thinking && !forced) {
                answer.append(text);
            }
            inner.onPiece(text, thinking, forced);
        }
    }

    /** The callback of the runner calls of one answer. */
    private final class Segment implements LlmRunner.Callback {
        final ThinkingBudget tb;
        final Listener listener;
        boolean inThinking;
        int callbacks;
        boolean sawEos;
        boolean answered;
        String forced;
        int decidedAt;
        int errorCode;
        String errorMessage;
        GenerationStats stats;

        Segment(ThinkingBudget tb, Listener listener, boolean promptOpened) {
            this.tb = tb;
            this.listener = listener;
            this.inThinking = promptOpened;
        }

        void begin() {
            callbacks = 0;
            sawEos = false;
            answered = false;
            forced = null;
            errorCode = 0;
            errorMessage = null;
            stats = null;
        }

        @Override
        public void onResult(String piece) {
            callbacks++;
            if (forced != null || userStopped || answered) {
                runner.stop(); // repeated: the runner ignores a stop in the prefill token's callback
                return;
            }
            sawEos |= tb.isEos(piece); // the runner ends on it, except as the prefill token: then stop
            int tokens = counter.count(piece);
            live.onTokens(tokens, System.nanoTime());
            StringBuilder force = new StringBuilder();
            for (ThinkingBudget.Emitted e : tb.step(piece, tokens)) {
                if (e.forced) {
                    force.append(e.piece);
                }
                deliver(e);
            }
            if (force.length() > 0) {
                forced = force.toString(); // stop from the next piece on: this one stays cached
                decidedAt = callbacks;
            } else {
                answered = sawEos;
                eosCached |= sawEos && callbacks == 1;
            }
        }

        private void deliver(ThinkingBudget.Emitted e) {
            if (e.piece.equals(tok("think_start"))) {
                inThinking = true;
            } else if (e.piece.equals(tok("think_end"))) {
                inThinking = false;
            } else if (!tb.isEos(e.piece)) {
                listener.onPiece(e.piece, inThinking, e.forced);
            }
        }

        @Override
        public void onStats(String json) {
            try {
                stats = GenerationStats.fromRunnerJson(json);
            } catch (org.json.JSONException e) {
                stats = null;
            }
        }

        @Override
        public void onError(int code, String message) {
            errorCode = code;
            errorMessage = message;
        }

        /** This call's stats; a call that reported an error, or nothing at all (no tokens, no stats), throws. */
        GenerationStats finish() throws RunnerException {
            if (errorMessage != null) {
                throw new RunnerException("generate", errorCode, errorMessage);
            }
            if (callbacks == 0 && stats == null) {
                throw new RunnerException("generate", RunnerException.UNKNOWN,
                        "the runner returned no tokens and no stats (the program may not run on this runtime)");
            }
            GenerationStats s = stats == null ? new GenerationStats() : stats;
            s.runnerCalls = 1;
            return s;
        }

        /** The next call's prompt (the forced text), or null when the answer is over. */
        String continuation(GenerationStats total) {
            if (userStopped) {
                total.finish = "user";
                return null;
            }
            if (forced != null && (callbacks > decidedAt || sawEos)) {
                return forced; // the cache ends at the last kept piece (EOS is never cached)
            }
            total.finish = sawEos ? "eos" : "context_full";
            return null;
        }
    }
}
