package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * TemplateSegments against tests/vectors/hf_chat_templates.json: every case (multi-turn, the
 * thinking switch, images, a finished conversation) equals transformers' apply_chat_template, as
 * the Python renderer (text/segments.py) does on the same file.
 */
public class TemplateSegmentsTest {

    static List<ChatTemplate.Message> turns(JSONArray arr) throws Exception {
        List<ChatTemplate.Message> out = new ArrayList<ChatTemplate.Message>();
        for (int i = 0; i < arr.length(); i++) {
            JSONObject t = arr.getJSONObject(i);
            out.add(new ChatTemplate.Message(t.getString("role"), t.getString("content"), t.getInt("images"), null));
        }
        return out;
    }

    @Test
    public void everyCaseEqualsApplyChatTemplate() throws Exception {
        JSONObject v = Vectors.load("hf_chat_templates.json");
        JSONArray cases = v.getJSONArray("cases");
        assertTrue("too few cases", cases.length() >= 73);
        List<Integer> none = Collections.emptyList();
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            TemplateSegments seg = new TemplateSegments(v.getJSONObject("segments").getJSONObject(c.getString("template")));
            boolean think = c.getJSONObject("variables").optBoolean("enable_thinking", true);
            java.util.Date now = c.has("now") ? new java.text.SimpleDateFormat("yyyy-MM-dd").parse(c.getString("now"))
                    : new java.util.Date(); // a dated template's day, as transformers was given it
            String got = seg.render(turns(c.getJSONArray("turns")), think, c.getBoolean("add_generation_prompt"), now);
            assertEquals(c.getString("family") + " " + c.getString("case") + " " + c.getJSONObject("variables"),
                    c.getString("expected"), got);
        }
    }

    /** A continuation, where a format gives one, extends the cached prompt + answer to the full render. */
    @Test
    public void continuationEqualsTheFullRender() throws Exception {
        JSONObject v = Vectors.load("hf_chat_templates.json");
        JSONObject all = v.getJSONObject("segments");
        List<Integer> none = Collections.emptyList();
        int continued = 0;
        for (String name : TemplateSegments.names(all)) {
            TemplateSegments seg = new TemplateSegments(all.getJSONObject(name));
            List<ChatTemplate.Message> one = new ArrayList<ChatTemplate.Message>();
            one.add(new ChatTemplate.Message("user", "Hello! What is 17 + 25?", 0, null));
            String cached = seg.render(one, false, true, none) + "It is 42.";
            one.add(new ChatTemplate.Message("assistant", "It is 42.", 0, null));
            one.add(new ChatTemplate.Message("user", " Why? ", 0, null));
            String next = seg.continuation("It is 42.", " Why? ");
            if (name.equals("qwen3.jinja") || name.equals("smolvlm.jinja")) {
                // qwen3's non-thinking prompt holds an empty think block, smolvlm's ends "Assistant:" where
                // its history has "Assistant: ": the cache is not the history rendered again
                assertNull(name + ": no continuation", next);
                continue;
            }
            assertEquals(name, seg.render(one, false, true, none), cached + next);
            continued++;
        }
        assertEquals("llama3, the llama3.2-style and smollm2 continue", 3, continued);
    }

    @Test(expected = IllegalArgumentException.class)
    public void imagesForATextTemplateAreRefused() throws Exception {
        JSONObject v = Vectors.load("hf_chat_templates.json");
        TemplateSegments seg = new TemplateSegments(v.getJSONObject("segments").getJSONObject("qwen3.jinja"));
        seg.render(ChatTemplate.single("Describe it.", 1), false, true, Collections.<Integer>emptyList());
    }

    @Test
    public void datesAreStrftimes() throws Exception {
        java.util.Date day = new java.text.SimpleDateFormat("yyyy-MM-dd HH:mm:ss").parse("2026-03-05 07:08:09");
        assertEquals("05 Mar 2026 | March Thursday Thu | 03/26 07:08:09 100%",
                TemplateSegments.strftime("%d %b %Y | %B %A %a | %m/%y %H:%M:%S 100%%", day));
        assertEquals("Today Date: 05 Mar 2026\n", TemplateSegments.fillDates(
                "Today Date: " + TemplateSegments.DATE_OPEN + "%d %b %Y" + TemplateSegments.DATE_CLOSE + "\n", day));
    }

    @Test
    public void stripIsPythons() {
        assertEquals("a b", TemplateSegments.strip("\u00a0\t a b\n\u2007\u202f"));
        assertEquals(" x\n", TemplateSegments.lstripNewlines("\n\n x\n"));
        assertEquals(" x ", TemplateSegments.stripNewlines("\n x \n\n"));
    }
}
