package com.bluelm.edge.demo;

import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatTemplate;
import com.bluelm.edge.core.GenerationStats;
import com.bluelm.edge.core.ThinkingBudget;
import java.io.File;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.pytorch.executorch.extension.llm.LlmCallback;
import org.pytorch.executorch.extension.llm.LlmModule;

/**
 * One answer through ExecuTorch's {@code LlmModule} with the core {@link ThinkingBudget} around
 * it: count thinking pieces in the callback, {@code stop()} when the controller forces text, then
 * generate again from the last emitted piece + the forced text (the runner leaves the last
 * emitted token out of the KV cache, so it is fed back). Blocking: call from a worker thread.
 */
final class ChatEngine {

    /** Receives the answer as it streams. */
    interface Listener {
        void onPiece(String text, boolean thinking, boolean forced);
    }

    private final File dir;
    private final BundleManifest manifest;
    private LlmModule module;
    private volatile boolean userStopped;

    ChatEngine(File dir, BundleManifest manifest) {
        this.dir = dir;
        this.manifest = manifest;
    }

    /** Load the program; returns the load time in ms. */
    long load() {
        long t0 = System.nanoTime();
        module = new LlmModule(LlmModule.MODEL_TYPE_MULTIMODAL, new File(dir, manifest.program).getPath(),
                new File(dir, "tokenizer.json").getPath(), 0.0f);
        int rc = module.load();
        if (rc != 0) {
            throw new IllegalStateException("loading " + manifest.program + " failed (ExecuTorch error " + rc + ")");
        }
        return (System.nanoTime() - t0) / 1000000L;
    }

    void stop() {
        userStopped = true;
        if (module != null) {
            module.stop();
        }
    }

    /**
     * Answer one user turn.
     *
     * @param tiles normalised CHW tiles of the image (empty for none), each tileSize square
     * @param budget null unlimited, 0 non-thinking, N &gt; 0 at most N thinking pieces
     */
    GenerationStats answer(String user, List<float[]> tiles, Integer budget, Listener listener) {
        userStopped = false;
        boolean think = budget == null || budget.intValue() != 0;
        int imageTokens = tiles.size() * manifest.tokensPerTile;
        List<Integer> perImage = tiles.isEmpty() ? Collections.<Integer>emptyList()
                : Collections.singletonList(Integer.valueOf(imageTokens));
        String prompt = new ChatTemplate(manifest.tokens).render(
                ChatTemplate.single(user, tiles.isEmpty() ? 0 : 1), think, true, perImage);
        module.resetContext();
        String rest = prefillImages(prompt, tiles);
        ThinkingBudget tb = new ThinkingBudget(tok("think_start"), tok("think_end"),
                Collections.singletonList(tok("eos")), budget,
                Collections.singletonList(manifest.budgetMessage), 0,
                Collections.singletonList(manifest.waitMessage), false);
        return runSegments(rest, tb, listener);
    }

    private String tok(String name) {
        return manifest.tokens.get(name);
    }

    /** Prefill the text before the image placeholders and the tiles; return the text after them. */
    private String prefillImages(String prompt, List<float[]> tiles) {
        if (tiles.isEmpty()) {
            return prompt;
        }
        String image = tok("image");
        int first = prompt.indexOf(image);
        int last = prompt.lastIndexOf(image) + image.length();
        module.prefillPrompt(prompt.substring(0, first));
        for (float[] tile : tiles) {
            module.prefillImages(tile, manifest.tileSize, manifest.tileSize, 3);
        }
        return prompt.substring(last);
    }

    private GenerationStats runSegments(String text, ThinkingBudget tb, Listener listener) {
        GenerationStats total = null;
        Segment seg = new Segment(tb, listener);
        String next = text;
        while (next != null && !userStopped) {
            seg.continuation = null;
            seg.stopping = false;
            module.generate(next, manifest.maxContext, seg, false);
            if (seg.stats != null) {
                total = total == null ? seg.stats : total.mergeContinuation(seg.stats);
            }
            seg.stats = null;
            next = seg.continuation;
        }
        if (total == null) {
            total = new GenerationStats();
        }
        total.thinkingTokens = tb.thinkingTokens();
        return total;
    }

    /** The callback of one runner call; asks for a continuation when the controller forces text. */
    private final class Segment implements LlmCallback {
        final ThinkingBudget tb;
        final Listener listener;
        boolean inThinking;
        volatile boolean stopping;
        String continuation;
        GenerationStats stats;

        Segment(ThinkingBudget tb, Listener listener) {
            this.tb = tb;
            this.listener = listener;
        }

        @Override
        public void onResult(String piece) {
            if (stopping) {
                return;
            }
            List<ThinkingBudget.Emitted> out = tb.step(piece);
            StringBuilder forced = new StringBuilder();
            boolean kept = false;
            for (ThinkingBudget.Emitted e : out) {
                deliver(e);
                if (e.forced) {
                    forced.append(e.piece);
                } else {
                    kept |= e.piece.equals(piece);
                }
            }
            if (forced.length() > 0) {
                continuation = (kept ? piece : "") + forced;
                stopping = true;
                module.stop();
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
    }

    /** Peak resident memory of this process in kB (VmHWM), or -1 if unknown. */
    static long peakMemoryKb() {
        try {
            String status = new String(Files.read(new File("/proc/self/status")), "UTF-8");
            for (String line : status.split("\n")) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
        } catch (java.io.IOException e) {
            return -1;
        }
        return -1;
    }

    static List<String> list(String... items) {
        List<String> out = new ArrayList<String>();
        Collections.addAll(out, items);
        return out;
    }
}
