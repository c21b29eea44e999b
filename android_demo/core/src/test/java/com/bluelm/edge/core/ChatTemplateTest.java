package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** ChatTemplate against tests/vectors/chat_template.json (the same cases as the Python test). */
public class ChatTemplateTest {

    @Test
    public void allVectorCasesRenderExactly() throws Exception {
        JSONObject v = Vectors.load("chat_template.json");
        Map<String, String> tokens = new HashMap<String, String>();
        JSONObject t = v.getJSONObject("tokens");
        for (Iterator<?> it = t.keys(); it.hasNext();) {
            String k = (String) it.next();
            tokens.put(k, t.getString(k));
        }
        ChatTemplate template = new ChatTemplate(tokens);
        JSONArray cases = v.getJSONArray("cases");
        assertTrue("no cases in chat_template.json", cases.length() > 0);
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            String got = template.render(messages(c.getJSONArray("messages")), c.getBoolean("think"),
                    c.getBoolean("add_generation_prompt"), ints(c.optJSONArray("image_tokens")));
            assertEquals(c.getString("name"), c.getString("text"), got);
        }
    }

    private static List<ChatTemplate.Message> messages(JSONArray arr) throws Exception {
        List<ChatTemplate.Message> out = new ArrayList<ChatTemplate.Message>();
        for (int i = 0; i < arr.length(); i++) {
            JSONObject m = arr.getJSONObject(i);
            String thinking = m.isNull("thinking") ? null : m.optString("thinking", null);
            out.add(new ChatTemplate.Message(m.getString("role"), m.getString("content"),
                    m.optInt("n_images", 0), thinking));
        }
        return out;
    }

    private static List<Integer> ints(JSONArray arr) throws Exception {
        List<Integer> out = new ArrayList<Integer>();
        for (int i = 0; arr != null && i < arr.length(); i++) {
            out.add(Integer.valueOf(arr.getInt(i)));
        }
        return out;
    }
}
