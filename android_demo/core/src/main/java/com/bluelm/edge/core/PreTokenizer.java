package com.bluelm.edge.core;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The pre-tokenizer of a tokenizer.json (Split, Digits, ByteLevel, Sequence), as {@code tokenizers}
 * runs it: each step splits every piece the step before it left; ByteLevel also maps each piece's
 * UTF-8 bytes to GPT-2's printable characters ({@link #BYTE_CHAR}). Part of {@link BpeTokenizer};
 * anything else is refused there, in one line.
 */
final class PreTokenizer {

    private static final String GPT2_REGEX =
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    private static final List<String> BEHAVIORS =
            Arrays.asList("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous");
    static final int[] BYTE_CHAR = new int[256]; // GPT-2's bytes_to_unicode
    static final int[] CHAR_BYTE = new int[324]; // its inverse; -1: not a byte's char

    static {
        Arrays.fill(CHAR_BYTE, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
            BYTE_CHAR[b] = printable ? b : 256 + extra++;
            CHAR_BYTE[BYTE_CHAR[b]] = b;
        }
    }

    private final List<Step> steps = new ArrayList<Step>();

    private PreTokenizer() {
    }

    /** From tokenizer.json's {@code pre_tokenizer} (null: none, the text is one piece). */
    static PreTokenizer fromJson(JSONObject p) throws JSONException {
        PreTokenizer t = new PreTokenizer();
        t.read(p);
        return t;
    }

    private void read(JSONObject p) throws JSONException {
        String type = p == null ? "" : p.getString("type");
        if ("Sequence".equals(type)) {
            for (int i = 0; i < p.getJSONArray("pretokenizers").length(); i++) {
                read(p.getJSONArray("pretokenizers").getJSONObject(i));
            }
        } else if ("ByteLevel".equals(type)) {
            Pattern re = p.optBoolean("use_regex", true) ? regex(GPT2_REGEX) : null;
            steps.add(new Step(re, "Isolated", false, true, p.optBoolean("add_prefix_space", true)));
        } else if ("Digits".equals(type)) {
            String behavior = p.optBoolean("individual_digits", false) ? "Isolated" : "Contiguous";
            steps.add(new Step(regex("\\p{N}"), behavior, false, false, false));
        } else if ("Split".equals(type)) {
            JSONObject pat = p.getJSONObject("pattern");
            String literal = pat.optString("String", "");
            Pattern re = pat.has("Regex") ? regex(pat.getString("Regex"))
                    : Pattern.compile(literal.isEmpty() ? "(?!)" : Pattern.quote(literal));
            BpeTokenizer.require(BEHAVIORS.contains(p.getString("behavior")), "Split behavior " + p.getString("behavior"));
            steps.add(new Step(re, p.getString("behavior"), p.optBoolean("invert", false), false, false));
        } else {
            BpeTokenizer.require(p == null, "pre_tokenizer " + type);
        }
    }

    /** The pieces the BPE model encodes one by one. */
    List<String> split(String text) {
        List<String> pieces = Collections.singletonList(text);
        for (Step step : steps) {
            List<String> next = new ArrayList<String>();
            for (String piece : pieces) {
                step.apply(piece, next);
            }
            pieces = next;
        }
        return pieces;
    }

    private static Pattern regex(String re) {
        try {
            return Pattern.compile(re, Pattern.UNICODE_CHARACTER_CLASS);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException(BpeTokenizer.unsupported("Split regex Java cannot compile ("
                    + e.getDescription() + "): " + re));
        }
    }

    /** One pre-tokenizer: a split by a pattern (Split, Digits), or ByteLevel (its regex, then bytes). */
    private static final class Step {
        final Pattern pattern;
        final String behavior;
        final boolean invert;
        final boolean byteLevel;
        final boolean prefixSpace;

        Step(Pattern pattern, String behavior, boolean invert, boolean byteLevel, boolean prefixSpace) {
            this.pattern = pattern;
            this.behavior = behavior;
            this.invert = invert;
            this.byteLevel = byteLevel;
            this.prefixSpace = prefixSpace;
        }

        void apply(String piece, List<String> out) {
            String s = prefixSpace && !piece.startsWith(" ") ? " " + piece : piece;
            List<String> parts = byteLevel ? new ArrayList<String>() : out;
            if (pattern == null) {
                parts.add(s);
            } else {
                split(s, parts);
            }
            for (int i = 0; byteLevel && i < parts.size(); i++) {
                StringBuilder sb = new StringBuilder();
                for (byte b : parts.get(i).getBytes(StandardCharsets.UTF_8)) {
                    sb.append((char) BYTE_CHAR[b & 0xff]);
                }
                out.add(sb.toString());
            }
        }

        /** NormalizedString.split: the matches and the text between, combined as the behaviour says. */
        private void split(String s, List<String> out) {
            List<int[]> segs = new ArrayList<int[]>(); // start, end, is a match
            Matcher m = pattern.matcher(s);
            int prev = 0;
            while (m.find()) {
                if (prev != m.start()) {
                    segs.add(new int[] {prev, m.start(), invert ? 1 : 0});
                }
                segs.add(new int[] {m.start(), m.end(), invert ? 0 : 1});
                prev = m.end();
            }
            if (prev != s.length()) {
                segs.add(new int[] {prev, s.length(), invert ? 1 : 0});
            }
            for (int[] seg : "Isolated".equals(behavior) || "Removed".equals(behavior) ? segs : combine(segs)) {
                if (seg[1] > seg[0] && !("Removed".equals(behavior) && seg[2] == 1)) {
                    out.add(s.substring(seg[0], seg[1]));
                }
            }
        }

        /** Contiguous joins runs of matches; MergedWithPrevious/Next joins a match to its neighbour. */
        private List<int[]> combine(List<int[]> segs) {
            boolean next = "MergedWithNext".equals(behavior);
            List<int[]> acc = new ArrayList<int[]>();
            boolean previous = false;
            for (int i = 0; i < segs.size(); i++) {
                int[] seg = segs.get(next ? segs.size() - 1 - i : i);
                boolean match = seg[2] == 1;
                if (!acc.isEmpty() && ("Contiguous".equals(behavior) ? match == previous : match && !previous)) {
                    acc.get(acc.size() - 1)[next ? 0 : 1] = seg[next ? 0 : 1];
                } else {
                    acc.add(new int[] {seg[0], seg[1], 0});
                }
                previous = match;
            }
            if (next) {
                Collections.reverse(acc);
            }
            return acc;
        }
    }
}
