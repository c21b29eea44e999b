package com.bluelm.edge.core;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentHashMap;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * A byte-level BPE tokenizer read from a Hugging Face tokenizer.json, equal to {@code tokenizers}'
 * {@code encode(text, add_special_tokens=False).ids} and {@code decode(ids, skip_special_tokens=False)}
 * (tests/vectors/bpe_tokenizer.json). Added tokens are split off first (leftmost-longest; single_word,
 * lstrip, rstrip; {@code normalized} ones on the normalized text), then the normalizer (NFC, NFD, NFKC,
 * NFKD, Lowercase, Sequence), the pre-tokenizer (Split, Digits, ByteLevel, Sequence) and the BPE model
 * run on the rest; the post-processor is not applied. Anything else is an IllegalArgumentException
 * naming it, in one line. Encoding and decoding change nothing but a concurrent per-piece cache.
 */
public final class BpeTokenizer {

    private static final int CACHE_ENTRIES = 10000;

    private final Map<String, Integer> vocab = new HashMap<String, Integer>();
    private final Map<Long, Long> merges = new HashMap<Long, Long>(); // pair -> rank << 32 | merged id
    private final Map<String, Integer> addedIds = new HashMap<String, Integer>();
    private final Map<Integer, Added> addedById = new HashMap<Integer, Added>();
    private final Map<Character, List<Added>> rawTokens = new HashMap<Character, List<Added>>();
    private final Map<Character, List<Added>> normalizedTokens = new HashMap<Character, List<Added>>();
    private final List<String> normalizers = new ArrayList<String>();
    private PreTokenizer preTokenizer;
    private final Map<String, int[]> cache = new ConcurrentHashMap<String, int[]>();
    private String[] modelTokens; // by id
    private int unkId = -1;
    private boolean fuseUnk;
    private boolean ignoreMerges;

    private BpeTokenizer() {
    }

    /** From the text of a tokenizer.json; what this class cannot reproduce exactly is refused. */
    public static BpeTokenizer fromTokenizerJson(String json) throws JSONException {
        JSONObject o = new JSONObject(json);
        require(o.isNull("truncation") && o.isNull("padding"), "truncation/padding");
        JSONObject decoder = o.optJSONObject("decoder");
        String decoderType = decoder == null ? "null" : decoder.optString("type");
        require("ByteLevel".equals(decoderType), "decoder " + decoderType + " (only ByteLevel)");
        BpeTokenizer t = new BpeTokenizer();
        t.readModel(o.getJSONObject("model"));
        t.readNormalizer(o.optJSONObject("normalizer"));
        t.preTokenizer = PreTokenizer.fromJson(o.optJSONObject("pre_tokenizer"));
        t.readAddedTokens(o.optJSONArray("added_tokens"));
        return t;
    }

    /** {@code Tokenizer.encode(text, add_special_tokens=False).ids}. */
    public long[] encode(String text) {
        List<Integer> out = new ArrayList<Integer>();
        for (Object part : splitAdded(text, rawTokens)) {
            for (Object piece : part instanceof Integer ? Collections.singletonList(part)
                    : splitAdded(normalize((String) part), normalizedTokens)) {
                if (piece instanceof Integer) {
                    out.add((Integer) piece);
                } else {
                    for (String word : preTokenizer.split((String) piece)) {
                        model(word, out);
                    }
                }
            }
        }
        long[] ids = new long[out.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = out.get(i);
        }
        return ids;
    }

    /** {@code Tokenizer.decode(ids, skip_special_tokens=False)}: ids with no token are skipped; bytes
     * that are not UTF-8 become U+FFFD, as {@code bytes.decode('utf-8', errors='replace')} does. */
    public String decode(long[] ids) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        for (long id : ids) {
            byte[] b = tokenBytes(id);
            buf.write(b, 0, b.length);
        }
        return utf8Lossy(buf.toByteArray());
    }

    /** The bytes one token decodes to, as the ByteLevel decoder does: each char's byte, or the token's
     * UTF-8 if a char is not a byte's (so an added token is its UTF-8 text, unless all its chars are
     * bytes' chars, as "café" is); empty for an id with no token. */
    public byte[] tokenBytes(long id) {
        Added a = id < 0 || id > Integer.MAX_VALUE ? null : addedById.get((int) id);
        String token = a != null ? a.match : id >= 0 && id < modelTokens.length ? modelTokens[(int) id] : null;
        byte[] out = new byte[token == null ? 0 : token.length()];
        for (int i = 0; i < out.length; i++) {
            char c = token.charAt(i);
            if (c >= PreTokenizer.CHAR_BYTE.length || PreTokenizer.CHAR_BYTE[c] < 0) {
                return token.getBytes(StandardCharsets.UTF_8);
            }
            out[i] = (byte) PreTokenizer.CHAR_BYTE[c];
        }
        return out;
    }

    /** The id of an added (special) token, else of a vocabulary entry, by its text; -1 if none. */
    public long id(String tokenContent) {
        Integer id = addedIds.containsKey(tokenContent) ? addedIds.get(tokenContent) : vocab.get(tokenContent);
        return id == null ? -1 : id;
    }

    /** {@code Tokenizer.get_vocab_size()}: the vocabulary and the added tokens not in it. */
    public int vocabSize() {
        int n = vocab.size();
        for (String content : addedIds.keySet()) {
            n += vocab.containsKey(content) ? 0 : 1;
        }
        return n;
    }

    private void readModel(JSONObject m) throws JSONException {
        require("BPE".equals(m.optString("type", "BPE")), "model type " + m.optString("type") + " (only BPE)");
        require(!m.optBoolean("byte_fallback", false), "model.byte_fallback=true");
        require(m.isNull("dropout") || m.getDouble("dropout") == 0, "model.dropout");
        for (String key : new String[] {"continuing_subword_prefix", "end_of_word_suffix"}) {
            require(m.isNull(key) || m.getString(key).isEmpty(), "model." + key);
        }
        fuseUnk = m.optBoolean("fuse_unk", false);
        ignoreMerges = m.optBoolean("ignore_merges", false);
        JSONObject v = m.getJSONObject("vocab");
        int maxId = -1;
        for (Iterator<?> it = v.keys(); it.hasNext(); ) {
            String token = (String) it.next();
            vocab.put(token, v.getInt(token));
            maxId = Math.max(maxId, v.getInt(token));
        }
        modelTokens = new String[maxId + 1];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            modelTokens[e.getValue()] = e.getKey();
        }
        if (!m.isNull("unk_token")) {
            require(vocab.containsKey(m.getString("unk_token")), "model.unk_token not in the vocab");
            unkId = vocab.get(m.getString("unk_token"));
        }
        JSONArray list = m.getJSONArray("merges");
        for (int i = 0, rank = 0; i < list.length(); i++) {
            JSONArray pair = list.optJSONArray(i);
            String line = pair == null ? list.getString(i) : null;
            if (line == null || !line.startsWith("#version")) {
                addMerge(rank++, pair != null ? new String[] {pair.getString(0), pair.getString(1)}
                        : line.split(" ", -1));
            }
        }
    }

    /** Merges rank by their order ("a b" strings or ["a", "b"] pairs); a repeated pair keeps its last. */
    private void addMerge(int rank, String[] pair) {
        require(pair.length == 2, "merge " + rank + " is not two tokens");
        Integer left = vocab.get(pair[0]);
        Integer right = vocab.get(pair[1]);
        Integer merged = vocab.get(pair[0] + pair[1]);
        require(left != null && right != null && merged != null, "merge " + rank + " has a token not in the vocab");
        merges.put(pairKey(left, right), ((long) rank << 32) | merged);
    }

    private void readNormalizer(JSONObject n) throws JSONException {
        String type = n == null ? "" : n.getString("type");
        if ("Sequence".equals(type)) {
            for (int i = 0; i < n.getJSONArray("normalizers").length(); i++) {
                readNormalizer(n.getJSONArray("normalizers").getJSONObject(i));
            }
        } else if (n != null) {
            require(Arrays.asList("NFC", "NFD", "NFKC", "NFKD", "Lowercase").contains(type), "normalizer " + type);
            normalizers.add(type);
        }
    }

    /** As {@code tokenizers} loads them: the id of that text if it has one, else the next free id. */
    private void readAddedTokens(JSONArray list) throws JSONException {
        int nextId = vocab.size();
        for (int i = 0; list != null && i < list.length(); i++) {
            JSONObject o = list.getJSONObject(i);
            String content = o.getString("content");
            if (!content.isEmpty()) {
                Added a = new Added();
                Integer known = addedIds.containsKey(content) ? addedIds.get(content) : vocab.get(content);
                a.id = known != null ? known : nextId++;
                a.normalized = o.optBoolean("normalized", !o.optBoolean("special", false));
                a.match = a.normalized ? normalize(content) : content;
                a.singleWord = o.optBoolean("single_word", false);
                a.lstrip = o.optBoolean("lstrip", false);
                a.rstrip = o.optBoolean("rstrip", false);
                addedIds.put(content, a.id);
                addedById.put(a.id, a);
            }
        }
        for (Added a : addedById.values()) {
            Map<Character, List<Added>> index = a.normalized ? normalizedTokens : rawTokens;
            if (!index.containsKey(a.match.charAt(0))) {
                index.put(a.match.charAt(0), new ArrayList<Added>());
            }
            List<Added> same = index.get(a.match.charAt(0)); // longest first
            int at = 0;
            while (at < same.size() && same.get(at).match.length() >= a.match.length()) {
                at++;
            }
            same.add(at, a);
        }
    }

    /** AddedVocabulary.find_matches: the text around added tokens (Strings) and their ids (Integers). */
    private static List<Object> splitAdded(String s, Map<Character, List<Added>> index) {
        List<Object> parts = new ArrayList<Object>();
        int offset = 0;
        for (int pos = 0; !index.isEmpty() && pos < s.length(); ) {
            Added hit = longestAt(s, pos, index.get(s.charAt(pos)));
            int start = pos;
            pos += hit == null ? 1 : hit.match.length();
            if (hit == null || (hit.singleWord && ((start > 0 && isWord(s.codePointBefore(start)))
                    || (pos < s.length() && isWord(s.codePointAt(pos)))))) {
                continue;
            }
            start = hit.lstrip ? Math.max(spacesBefore(s, start), offset) : start;
            if (offset < start) {
                parts.add(s.substring(offset, start));
            }
            parts.add(hit.id);
            offset = hit.rstrip ? spacesAfter(s, pos) : pos;
        }
        if (offset < s.length()) {
            parts.add(s.substring(offset));
        }
        return parts;
    }

    private static Added longestAt(String s, int pos, List<Added> candidates) {
        for (int i = 0; candidates != null && i < candidates.size(); i++) {
            if (s.startsWith(candidates.get(i).match, pos)) {
                return candidates.get(i);
            }
        }
        return null;
    }

    private String normalize(String s) {
        for (String form : normalizers) {
            s = "Lowercase".equals(form) ? lowercase(s) : Normalizer.normalize(s, Normalizer.Form.valueOf(form));
        }
        return s;
    }

    /** Code point by code point, as Rust's char::to_lowercase (no final-sigma rule). */
    private static String lowercase(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0, cp; i < s.length(); i += Character.charCount(cp)) {
            cp = s.codePointAt(i);
            sb.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT));
        }
        return sb.toString();
    }

    private void model(String word, List<Integer> out) {
        int[] ids = cache.get(word);
        if (ids == null) {
            Integer whole = ignoreMerges ? vocab.get(word) : null;
            ids = whole != null ? new int[] {whole} : merge(symbols(word));
            if (cache.size() < CACHE_ENTRIES && word.length() < 256) {
                cache.put(word, ids);
            }
        }
        for (int id : ids) {
            out.add(id);
        }
    }

    /** One symbol per code point; those not in the vocab become the unk token (fused if fuse_unk), or,
     * with no unk_token, an error (tokenizers would drop them silently). */
    private int[] symbols(String word) {
        int[] ids = new int[word.length() + 1];
        int n = 0;
        boolean unk = false;
        for (int i = 0, len; i < word.length(); i += len) {
            len = Character.charCount(word.codePointAt(i));
            Integer id = vocab.get(word.substring(i, i + len));
            if (id == null && unkId < 0) {
                throw new IllegalArgumentException("not in the vocabulary and no unk_token: " + word);
            }
            if (unk && (id != null || !fuseUnk)) {
                ids[n++] = unkId;
            }
            unk = id == null;
            if (id != null) {
                ids[n++] = id;
            }
        }
        if (unk) {
            ids[n++] = unkId;
        }
        return Arrays.copyOf(ids, n);
    }

    /** Word.merge_all without dropout: the lowest-rank pair first, the leftmost among equals. */
    private int[] merge(int[] sym) {
        int n = sym.length;
        int[] prev = new int[n];
        int[] next = new int[n];
        PriorityQueue<Long> queue = new PriorityQueue<Long>();
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            offer(queue, sym, i, next[i]);
        }
        while (!queue.isEmpty()) {
            long top = queue.poll();
            int pos = (int) top;
            int right = next[pos];
            Long m = right < 0 || sym[pos] < 0 ? null : merges.get(pairKey(sym[pos], sym[right]));
            if (m == null || m >>> 32 != top >>> 32) {
                continue; // the pair there has changed since
            }
            sym[pos] = m.intValue();
            sym[right] = -1;
            next[pos] = next[right];
            if (next[pos] >= 0) {
                prev[next[pos]] = pos;
            }
            offer(queue, sym, pos, next[pos]);
            offer(queue, sym, prev[pos], pos);
        }
        int[] out = new int[n];
        int k = 0;
        for (int id : sym) {
            out[k] = id;
            k += id < 0 ? 0 : 1;
        }
        return Arrays.copyOf(out, k);
    }

    private void offer(PriorityQueue<Long> queue, int[] sym, int left, int right) {
        Long m = left < 0 || right < 0 ? null : merges.get(pairKey(sym[left], sym[right]));
        if (m != null) {
            queue.add((m >>> 32 << 32) | left);
        }
    }

    private static long pairKey(int left, int right) {
        return ((long) left << 32) | (right & 0xffffffffL);
    }

    /** UTF-8 with each maximal invalid subpart as one U+FFFD (Rust's from_utf8_lossy, Python's 'replace'). */
    static String utf8Lossy(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length);
        for (int i = 0; i < b.length; ) {
            int c = b[i++] & 0xff;
            int need = c < 0x80 ? 0 : c < 0xc2 ? -1 : c < 0xe0 ? 1 : c < 0xf0 ? 2 : c < 0xf5 ? 3 : -1;
            int lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
            int hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
            int cp = need <= 0 ? c : c & (0x3f >> need);
            for (int k = 0; k < need; k++, lo = 0x80, hi = 0xbf) {
                if (i >= b.length || (b[i] & 0xff) < lo || (b[i] & 0xff) > hi) {
                    need = -1;
                    break;
                }
                cp = (cp << 6) | (b[i++] & 0x3f);
            }
            sb.appendCodePoint(need < 0 ? 0xfffd : cp);
        }
        return sb.toString();
    }

    /** Unicode White_Space (Rust's char::is_whitespace and regex \s); all of it is in the BMP. */
    static boolean isSpace(char c) {
        return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a)
                || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
    }

    /** Rust regex's Unicode \w: alphabetic, marks, decimal digits, connector punctuation, joiners. */
    private static boolean isWord(int c) {
        int t = Character.getType(c);
        return Character.isAlphabetic(c) || t == Character.NON_SPACING_MARK || t == Character.ENCLOSING_MARK
                || t == Character.COMBINING_SPACING_MARK || t == Character.DECIMAL_DIGIT_NUMBER
                || t == Character.CONNECTOR_PUNCTUATION || c == 0x200c || c == 0x200d;
    }

    private static int spacesBefore(String s, int end) {
        while (end > 0 && isSpace(s.charAt(end - 1))) {
            end--;
        }
        return end;
    }

    private static int spacesAfter(String s, int start) {
        while (start < s.length() && isSpace(s.charAt(start))) {
            start++;
        }
        return start;
    }

    static void require(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException(unsupported(what));
        }
    }

    static String unsupported(String what) {
        return ("unsupported in tokenizer.json: " + what).replace('\n', ' ').replace('\r', ' ');
    }

    /** An added token: its id, the text it matches (normalized if {@code normalized}), its flags. */
    private static final class Added {
        int id;
        String match;
        boolean normalized;
        boolean singleWord;
        boolean lstrip;
        boolean rstrip;
    }
}
