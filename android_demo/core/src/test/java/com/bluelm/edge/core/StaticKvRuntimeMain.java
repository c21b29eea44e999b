package com.bluelm.edge.core;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import org.json.JSONArray;

/**
 * The app's StaticKvRunner on a real {@code .pte} in ExecuTorch's runtime (through
 * {@link BridgeProgram}): {@code StaticKvRuntimeMain PYTHON BRIDGE PTE TOKENIZER_JSON SCRIPT_JSON OUT_JSON}
 * plays the script and writes what the callbacks saw (tests/test_static_kv_runtime.py compares it
 * with the Python runner on the same file).
 */
public final class StaticKvRuntimeMain {

    private StaticKvRuntimeMain() {
    }

    public static void main(String[] args) throws Exception {
        String tokenizer = new String(Files.readAllBytes(new File(args[3]).toPath()), StandardCharsets.UTF_8);
        JSONArray script = new JSONArray(new String(Files.readAllBytes(new File(args[4]).toPath()), StandardCharsets.UTF_8));
        StaticKvRunner runner = new StaticKvRunner(new BridgeProgram(args[0], args[1], args[2]),
                BpeTokenizer.fromTokenizerJson(tokenizer), 0);
        try {
            runner.load();
            JSONArray results = StaticKvScript.play(runner, script);
            Files.write(new File(args[5]).toPath(), results.toString(1).getBytes(StandardCharsets.UTF_8));
        } finally {
            runner.close();
        }
    }
}
