package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** ThinkingBudget against tests/vectors/thinking_budget.json (the same cases as the Python test). */
public class ThinkingBudgetTest {

    @Test
    public void allVectorCasesMatch() throws Exception {
        JSONObject v = Vectors.load("thinking_budget.json");
        JSONArray cases = v.getJSONArray("cases");
        assertTrue("no cases in thinking_budget.json", cases.length() > 0);
        for (int i = 0; i < cases.length(); i++) {
            checkCase(v, cases.getJSONObject(i));
        }
    }

    private static void checkCase(JSONObject v, JSONObject c) throws Exception {
        JSONObject tok = v.getJSONObject("tokens");
        String eos = tok.getString("eos");
        Integer budget = c.isNull("budget") ? null : Integer.valueOf(c.getInt("budget"));
        ThinkingBudget tb = new ThinkingBudget(tok.getString("think_start"), tok.getString("think_end"),
                Collections.singletonList(eos), budget, Vectors.strings(v.getJSONArray("budget_message")),
                c.getInt("min_thinking"), Vectors.strings(v.getJSONArray("wait_message")),
                c.getBoolean("prompt_opened"), c.has("budget_suffix")
                        ? Vectors.strings(c.getJSONArray("budget_suffix")) : Collections.<String>emptyList());
        List<String> got = new ArrayList<String>();
        JSONArray sampled = c.getJSONArray("sampled");
        boolean done = false;
        for (int i = 0; i < sampled.length() && !done; i++) {
            for (ThinkingBudget.Emitted e : tb.step(sampled.getString(i))) {
                got.add(e.piece + "|" + e.forced);
                done |= e.piece.equals(eos);
            }
        }
        List<String> want = new ArrayList<String>();
        JSONArray emitted = c.getJSONArray("emitted");
        for (int i = 0; i < emitted.length(); i++) {
            JSONArray pair = emitted.getJSONArray(i);
            want.add(pair.getString(0) + "|" + pair.getBoolean(1));
        }
        String name = c.getString("name");
        assertEquals(name + ": emitted pieces", want, got);
        assertEquals(name + ": thinking tokens", c.getInt("thinking_tokens"), tb.thinkingTokens());
    }

    @Test(expected = IllegalArgumentException.class)
    public void negativeBudgetIsRejected() {
        new ThinkingBudget("<think>", "</think>", Collections.singletonList("</s>"), Integer.valueOf(-1),
                Collections.<String>emptyList(), 0, Collections.<String>emptyList(), false);
    }

    @Test
    public void forcedPiecesAreFlagged() {
        ThinkingBudget tb = new ThinkingBudget("<think>", "</think>", Collections.singletonList("</s>"),
                Integer.valueOf(1), Collections.singletonList("Stop."), 0,
                Collections.<String>emptyList(), true);
        List<ThinkingBudget.Emitted> out = tb.step("x");
        assertEquals(3, out.size());
        assertTrue(ThinkingBudget.hasForced(out));
        assertEquals("</think>", out.get(2).piece);
        assertEquals(ThinkingBudget.ANSWER, tb.state());
    }
}
