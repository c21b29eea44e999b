package com.bluelm.edge.core;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;

/**
 * The app's benchmark on the JVM for the simulated phone (tests/test_device_profile.py): the
 * core {@link Benchmark} over the synthetic runner model, printing the results JSON.
 * Arguments: BUNDLE_DIR PROMPTS_JSON RUNS BUDGET(none|N).
 */
public final class BenchmarkMain {

    private BenchmarkMain() {
    }

    public static void main(String[] args) throws Exception {
        BundleManifest m = BundleManifest.read(new File(args[0]));
        JSONArray arr = new JSONArray(new String(BundleManifest.readAll(new File(args[1])), "UTF-8"));
        List<String> prompts = new ArrayList<String>();
        for (int i = 0; i < arr.length(); i++) {
            prompts.add(arr.getString(i));
        }
        Integer budget = args[3].equals("none") ? null : Integer.valueOf(args[3]);
        RunnerModel model = SyntheticModel.create(m.maxContext);
        ChatEngine engine = new ChatEngine(model, m, new TokenCounter(SyntheticModel.vocabBytes()));
        System.out.println(Benchmark.run(engine, m, prompts, Integer.parseInt(args[2]), budget,
                new Benchmark.Memory() {
                    @Override
                    public long peakKb() {
                        return 2000000;
                    }
                }).toString());
        if (model.loadCalls != 1 || !model.closed) {
            throw new IllegalStateException("loaded " + model.loadCalls + " times, closed " + model.closed);
        }
    }
}
