package com.bluelm.edge.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The thinking-budget controller over generated token pieces: a port of the Python
 * {@code bluelm_edge/text/thinking.py}, tested on the same {@code tests/vectors/thinking_budget.json}.
 *
 * <p>For each sampled piece, {@link #step(String)} returns what is emitted for it: usually the piece
 * itself; sometimes forced pieces the caller must feed by prefill (the budget message and
 * {@code </think>}, a forced {@code <think>}, or "Wait" instead of an early {@code </think>});
 * sometimes nothing (a piece not allowed now). Budget {@code null} = unlimited, 0 = non-thinking
 * mode, N &gt; 0 = at most N sampled pieces inside the thinking block.
 */
public final class ThinkingBudget {

    /** One emitted piece; forced pieces were fed by the controller, not sampled. */
    public static final class Emitted {
        public final String piece;
        public final boolean forced;

        public Emitted(String piece, boolean forced) {
            this.piece = piece;
            this.forced = forced;
        }

        @Override
        public String toString() {
            return (forced ? "forced:" : "") + piece;
        }
    }

    public static final int BEFORE = 0;
    public static final int THINKING = 1;
    public static final int ANSWER = 2;

    private final String thinkStart;
    private final String thinkEnd;
    private final Set<String> eos;
    private final Integer budget;
    private final int minThinking;
    private final List<String> budgetMessage;
    private final List<String> waitMessage;
    private final List<String> budgetSuffix;
    private int state;
    private int thinkingTokens;

    /**
     * @param budget null for unlimited, 0 for non-thinking mode, N &gt; 0 for at most N pieces
     * @param promptOpened true when the prompt already ends with {@code <think>}
     */
    public ThinkingBudget(String thinkStart, String thinkEnd, List<String> eos, Integer budget,
            List<String> budgetMessage, int minThinking, List<String> waitMessage,
            boolean promptOpened) {
        this(thinkStart, thinkEnd, eos, budget, budgetMessage, minThinking, waitMessage, promptOpened,
                Collections.<String>emptyList());
    }

    /**
     * @param budgetSuffix pieces forced after the forced {@code </think>} when the budget runs out
     *     (the family's {@code app.thinking.budget_suffix}; Qwen3: a blank line)
     */
    public ThinkingBudget(String thinkStart, String thinkEnd, List<String> eos, Integer budget,
            List<String> budgetMessage, int minThinking, List<String> waitMessage,
            boolean promptOpened, List<String> budgetSuffix) {
        if (budget != null && budget.intValue() < 0) {
            throw new IllegalArgumentException("thinking budget must be >= 0 or null, got " + budget);
        }
        if (minThinking > 0 && budget != null && minThinking > budget.intValue()) {
            throw new IllegalArgumentException(
                    "minimum thinking (" + minThinking + ") exceeds the budget (" + budget + ")");
        }
        this.thinkStart = thinkStart;
        this.thinkEnd = thinkEnd;
        this.eos = new HashSet<String>(eos);
        this.budget = budget;
        this.minThinking = minThinking;
        this.budgetMessage = new ArrayList<String>(budgetMessage);
        this.waitMessage = new ArrayList<String>(waitMessage);
        this.budgetSuffix = new ArrayList<String>(budgetSuffix);
        if (budget != null && budget.intValue() == 0) {
            state = ANSWER;
        } else {
            state = promptOpened ? THINKING : BEFORE;
        }
    }

    public int state() {
        return state;
    }

    public int thinkingTokens() {
        return thinkingTokens;
    }

    public boolean thinkingEnabled() {
        return budget == null || budget.intValue() != 0;
    }

    public boolean isEos(String piece) {
        return eos.contains(piece);
    }

    /** Pieces a sampler should mask now; {@link #step} drops them if they come anyway. */
    public Set<String> banned() {
        Set<String> out = new HashSet<String>();
        if (state == ANSWER) {
            out.add(thinkStart);
            out.add(thinkEnd);
        } else if (state == BEFORE) {
            out.add(thinkEnd);
        } else {
            out.add(thinkStart);
        }
        return Collections.unmodifiableSet(out);
    }

    /** The pieces emitted for one sampled piece (one token), in order. */
    public List<Emitted> step(String piece) {
        return step(piece, 1);
    }

    /**
     * The pieces emitted for one streamed piece that holds {@code tokens} tokens (the runner can
     * merge several into one piece): inside thinking it counts {@code tokens} against the budget.
     */
    public List<Emitted> step(String piece, int tokens) {
        List<Emitted> out = new ArrayList<Emitted>();
        if (banned().contains(piece)) {
            return out;
        }
        if (state == BEFORE) {
            state = THINKING;
            if (piece.equals(thinkStart)) {
                out.add(new Emitted(piece, false));
                return out;
            }
            // Thinking mode always opens with <think>: force it, then the piece is a thinking piece.
            out.add(new Emitted(thinkStart, true));
            out.addAll(thinkingStep(piece, tokens));
            return out;
        }
        if (state == THINKING) {
            return thinkingStep(piece, tokens);
        }
        out.add(new Emitted(piece, false));
        return out;
    }

    private List<Emitted> thinkingStep(String piece, int tokens) {
        List<Emitted> out = new ArrayList<Emitted>();
        boolean closing = piece.equals(thinkEnd) || eos.contains(piece);
        if (closing && thinkingTokens < minThinking) {
            addForced(out, waitMessage);
            return out;
        }
        if (piece.equals(thinkEnd)) {
            state = ANSWER;
            out.add(new Emitted(piece, false));
            return out;
        }
        if (eos.contains(piece)) { // the model stopped inside thinking: close it, then it answers
            state = ANSWER;
            out.add(new Emitted(thinkEnd, true));
            return out;
        }
        thinkingTokens += Math.max(1, tokens);
        out.add(new Emitted(piece, false));
        if (budget != null && thinkingTokens >= budget.intValue()) {
            state = ANSWER;
            addForced(out, budgetMessage);
            out.add(new Emitted(thinkEnd, true));
            addForced(out, budgetSuffix);
        }
        return out;
    }

    private static void addForced(List<Emitted> out, List<String> pieces) {
        for (String p : pieces) {
            out.add(new Emitted(p, true));
        }
    }

    /** True when the emitted list holds a forced piece: the caller must stop and prefill. */
    public static boolean hasForced(List<Emitted> emitted) {
        for (Emitted e : emitted) {
            if (e.forced) {
                return true;
            }
        }
        return false;
    }
}
