package com.bluelm.edge.core;

import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Date;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * A checkpoint's own chat template as the exporter cut it into segments (the manifest's
 * {@code app.chat.segments}, schema {@code chat_segments/1}): the Java mirror of
 * {@code bluelm_edge/text/segments.py render}, checked on the same
 * {@code tests/vectors/hf_chat_templates.json} (transformers' {@code apply_chat_template}).
 *
 * <p>A conversation is {@code begin[first role]} (or {@code begin_image} before an image), then for
 * each later message {@code between["a>b"]} (or {@code between_image}), the images' text and the
 * content after the template's operations; then {@code generation[think|no_think]} for a prompt,
 * or {@code answer} + the last answer + {@code end} for a finished conversation.
 */
public final class TemplateSegments implements PromptFormat {

    public static final String SCHEMA = "chat_segments/1";
    /** A template's {@code strftime_now(fmt)}, kept as DATE_OPEN fmt DATE_CLOSE (Llama 3.2's "Today Date"). */
    static final String DATE_OPEN = "\u27e6DATE:";
    static final String DATE_CLOSE = "\u27e7";

    private final Map<String, String> begin;
    private final Map<String, String> between;
    private final Map<String, String> betweenImage;
    private final Map<String, List<String>> content;
    private final String beginImage;
    private final String image;
    private final String generationThink;
    private final String generationNoThink;
    private final String answer;
    private final String end;
    private final String thinkEnd;

    public TemplateSegments(JSONObject seg) throws JSONException {
        if (!SCHEMA.equals(seg.optString("schema"))) {
            throw new JSONException("chat segments schema '" + seg.optString("schema") + "' is not " + SCHEMA);
        }
        begin = strings(seg.getJSONObject("begin"));
        between = strings(seg.getJSONObject("between"));
        betweenImage = seg.isNull("between_image") ? Collections.<String, String>emptyMap()
                : strings(seg.getJSONObject("between_image"));
        beginImage = text(seg, "begin_image");
        image = text(seg, "image");
        JSONObject gen = seg.getJSONObject("generation");
        generationThink = gen.getString("think");
        generationNoThink = gen.getString("no_think");
        answer = seg.getString("answer");
        end = seg.getString("end");
        thinkEnd = text(seg, "think_end");
        content = new HashMap<String, List<String>>();
        JSONObject ops = seg.getJSONObject("content");
        for (String position : names(ops)) {
            JSONArray arr = ops.getJSONArray(position);
            List<String> list = new ArrayList<String>();
            for (int i = 0; i < arr.length(); i++) {
                list.add(checkOp(arr.getString(i)));
            }
            content.put(position, list);
        }
    }

    private static String text(JSONObject o, String key) throws JSONException {
        return o.isNull(key) ? null : o.getString(key);
    }

    private static Map<String, String> strings(JSONObject o) throws JSONException {
        Map<String, String> out = new HashMap<String, String>();
        for (String k : names(o)) {
            out.put(k, o.isNull(k) ? null : o.getString(k));
        }
        return out;
    }

    /** The keys of an object (Android's org.json has no getNames). */
    static List<String> names(JSONObject o) {
        List<String> out = new ArrayList<String>();
        for (Iterator<?> it = o.keys(); it.hasNext();) {
            out.add((String) it.next());
        }
        return out;
    }

    private static String checkOp(String op) throws JSONException {
        if (!op.equals("drop_thinking") && !op.equals("strip") && !op.equals("lstrip_newlines")
                && !op.equals("strip_newlines")) {
            throw new JSONException("chat segments: unknown content operation '" + op + "'");
        }
        return op;
    }

    @Override
    public String render(List<ChatTemplate.Message> messages, boolean think, boolean addGenerationPrompt,
            List<Integer> imageTokens) {
        return render(messages, think, addGenerationPrompt, new Date());
    }

    /** The conversation with the template's dates as of {@code now}. */
    public String render(List<ChatTemplate.Message> messages, boolean think, boolean addGenerationPrompt, Date now) {
        checkTurns(messages, addGenerationPrompt);
        StringBuilder sb = new StringBuilder();
        int last = messages.size() - 1;
        for (int i = 0; i < messages.size(); i++) {
            ChatTemplate.Message m = messages.get(i);
            if (m.nImages > 0 && (image == null || !m.role.equals("user"))) {
                throw new IllegalArgumentException(image == null ? "this model's template takes no images"
                        : "only user messages take images");
            }
            boolean isAnswer = m.role.equals("assistant") && i == last && !addGenerationPrompt;
            sb.append(fillDates(header(i == 0 ? null : messages.get(i - 1).role, m.role, m.nImages > 0, isAnswer), now));
            for (int k = 0; k < m.nImages; k++) {
                sb.append(image);
            }
            sb.append(apply(content.get(isAnswer ? "answer" : m.role), m.content));
        }
        sb.append(fillDates(addGenerationPrompt ? (think ? generationThink : generationNoThink) : end, now));
        return sb.toString();
    }

    private String header(String prev, String role, boolean images, boolean isAnswer) {
        String text;
        if (isAnswer) {
            text = answer;
        } else if (prev == null) {
            text = images ? beginImage : begin.get(role);
        } else {
            text = (images ? betweenImage : between).get(prev + ">" + role);
        }
        if (text == null) {
            throw new IllegalArgumentException("this model's template takes no " + role + " message there");
        }
        return text;
    }

    /** The template's content operations in order (text/segments.py apply_ops). */
    String apply(List<String> ops, String text) {
        if (ops == null) {
            throw new IllegalArgumentException("this model's template has no such message");
        }
        for (String op : ops) {
            if (op.equals("drop_thinking")) {
                if (thinkEnd != null && text.contains(thinkEnd)) {
                    text = lstripNewlines(text.substring(text.lastIndexOf(thinkEnd) + thinkEnd.length()));
                }
            } else if (op.equals("strip")) {
                text = strip(text);
            } else if (op.equals("lstrip_newlines")) {
                text = lstripNewlines(text);
            } else {
                text = stripNewlines(text);
            }
        }
        return text;
    }

    /** Each date marker as Python's {@code now.strftime(fmt)} writes it in the C locale. */
    static String fillDates(String text, Date now) {
        StringBuilder sb = new StringBuilder();
        int at = 0;
        for (int open = text.indexOf(DATE_OPEN); open >= 0; open = text.indexOf(DATE_OPEN, at)) {
            int close = text.indexOf(DATE_CLOSE, open);
            sb.append(text, at, open).append(strftime(text.substring(open + DATE_OPEN.length(), close), now));
            at = close + DATE_CLOSE.length();
        }
        return sb.append(text.substring(at)).toString();
    }

    /** The directives text/segments.py lets through (DATE_DIRECTIVES): d m Y y b B a A H M S %. */
    static String strftime(String fmt, Date now) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < fmt.length(); i++) {
            char c = fmt.charAt(i);
            if (c != '%' || i + 1 == fmt.length()) {
                sb.append(c);
                continue;
            }
            char d = fmt.charAt(++i);
            String pattern = d == 'd' ? "dd" : d == 'm' ? "MM" : d == 'Y' ? "yyyy" : d == 'y' ? "yy"
                    : d == 'b' ? "MMM" : d == 'B' ? "MMMM" : d == 'a' ? "EEE" : d == 'A' ? "EEEE"
                    : d == 'H' ? "HH" : d == 'M' ? "mm" : d == 'S' ? "ss" : null;
            sb.append(pattern == null ? String.valueOf(d) : new SimpleDateFormat(pattern, Locale.US).format(now));
        }
        return sb.toString();
    }

    @Override
    public String continuation(String lastAnswer, String user) {
        boolean same = generationNoThink.equals(between.get("user>assistant"))
                && apply(content.get("assistant"), lastAnswer).equals(lastAnswer) && between.containsKey("assistant>user");
        return same ? between.get("assistant>user") + apply(content.get("user"), user) + generationNoThink : null;
    }

    @Override
    public boolean appImages() {
        return false; // the families cut into segments expand their images by rules the app lacks
    }

    /** Python's str.isspace for the characters a chat can hold (Jinja's trim is str.strip). */
    static boolean isSpace(char c) {
        return Character.isWhitespace(c) || c == '\u00a0' || c == '\u2007' || c == '\u202f' || c == '\u0085';
    }

    static String strip(String s) {
        int a = 0;
        int b = s.length();
        while (a < b && isSpace(s.charAt(a))) {
            a++;
        }
        while (b > a && isSpace(s.charAt(b - 1))) {
            b--;
        }
        return s.substring(a, b);
    }

    static String lstripNewlines(String s) {
        int a = 0;
        while (a < s.length() && s.charAt(a) == '\n') {
            a++;
        }
        return s.substring(a);
    }

    static String stripNewlines(String s) {
        String t = lstripNewlines(s);
        int b = t.length();
        while (b > 0 && t.charAt(b - 1) == '\n') {
            b--;
        }
        return t.substring(0, b);
    }

    private static void checkTurns(List<ChatTemplate.Message> messages, boolean addGenerationPrompt) {
        int start = !messages.isEmpty() && messages.get(0).role.equals("system") ? 1 : 0;
        boolean ok = messages.size() > start;
        for (int i = start; i < messages.size(); i++) {
            ok &= messages.get(i).role.equals((i - start) % 2 == 0 ? "user" : "assistant");
        }
        if (!ok || messages.get(messages.size() - 1).role.equals("user") != addGenerationPrompt) {
            throw new IllegalArgumentException("a conversation is [system] then user/assistant turns, ending with a"
                    + " user turn for a generation prompt or an assistant turn otherwise");
        }
    }
}
