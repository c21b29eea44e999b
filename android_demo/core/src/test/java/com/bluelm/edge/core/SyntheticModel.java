package com.bluelm.edge.core;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A runner model over a one-token-per-character tokenizer whose network answers "ab" and EOS
 * (id 2), for the benchmark tests: any prompt can be fed, and every answer is 3 callbacks.
 */
final class SyntheticModel {

    private SyntheticModel() {
    }

    static RunnerModel create(int maxContext) {
        Map<Integer, byte[]> vocab = new HashMap<Integer, byte[]>();
        vocab.put(Integer.valueOf(2), TokenCounter.utf8("</s>"));
        vocab.put(Integer.valueOf('a'), TokenCounter.utf8("a"));
        vocab.put(Integer.valueOf('b'), TokenCounter.utf8("b"));
        Map<String, int[]> encode = new HashMap<String, int[]>() {
            @Override
            public int[] get(Object key) {
                String s = (String) key;
                int[] ids = new int[s.length()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = 100 + s.charAt(i) % 200;
                }
                return ids;
            }
        };
        Set<Integer> eos = new HashSet<Integer>();
        eos.add(Integer.valueOf(2));
        return new RunnerModel(vocab, encode, new RunnerModel.Lm() {
            @Override
            public int next(List<Integer> kv) {
                int last = kv.get(kv.size() - 1).intValue();
                return last == 'a' ? 'b' : last == 'b' ? 2 : 'a';
            }
        }, eos, maxContext);
    }

    static Set<byte[]> vocabBytes() {
        Set<byte[]> out = new HashSet<byte[]>();
        out.add(TokenCounter.utf8("a"));
        out.add(TokenCounter.utf8("b"));
        out.add(TokenCounter.utf8("</s>"));
        return out;
    }
}
