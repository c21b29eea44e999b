package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

/**
 * The one line a user sees for a failed ExecuTorch 1.5 call. The messages are in the format of
 * upstream's ExecutorchRuntimeException.makeExecutorchException (ExecutorchRuntimeException.kt):
 * "[ExecuTorch Error 0x%x] <name>: <details>" plus " | nativeLog=<tail>" when the log has lines.
 */
public class RunnerExceptionTest {

    @Test
    public void executorchPrefixBecomesTheCode() {
        RunnerException e = RunnerException.fromExecutorch("generate", 0x12,
                "[ExecuTorch Error 0x12] Invalid argument: Failed to generate");
        assertEquals(0x12, e.code);
        assertEquals("generate failed (ExecuTorch error 0x12): Invalid argument: Failed to generate", e.oneLine());
        RunnerException load = RunnerException.fromExecutorch("load", 0x23,
                "[ExecuTorch Error 0x23] Invalid program: Failed to load model runner");
        assertEquals("load failed (ExecuTorch error 0x23): Invalid program: Failed to load model runner", load.oneLine());
        RunnerException internal = RunnerException.fromExecutorch("create", 0x1,
                "[ExecuTorch Error 0x1] Internal error: Failed to create LlmModule: bad tokenizer");
        assertEquals("create failed (ExecuTorch error 0x01): Internal error: Failed to create LlmModule: bad tokenizer",
                internal.oneLine());
    }

    @Test
    public void nativeLogTailIsCutToItsEnd() {
        StringBuilder log = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            log.append("E line").append(i).append(' ');
        }
        String tail = log.toString().trim(); // 40 entries, upstream joins them with single spaces
        RunnerException e = RunnerException.fromExecutorch("prefill", 0x12,
                "[ExecuTorch Error 0x12] Invalid argument: Prefill failed | nativeLog=" + tail);
        String kept = tail.substring(tail.length() - RunnerException.NATIVE_LOG_KEPT);
        assertEquals("prefill failed (ExecuTorch error 0x12): Invalid argument: Prefill failed (native log: ..."
                + kept + ")", e.oneLine());
        RunnerException shortLog = RunnerException.fromExecutorch("load", 0x20,
                "[ExecuTorch Error 0x20] Resource not found: Failed to load model runner | nativeLog=E no file x.pte");
        assertEquals("load failed (ExecuTorch error 0x20): Resource not found: Failed to load model runner"
                + " (native log: E no file x.pte)", shortLog.oneLine());
    }

    @Test
    public void otherMessagesStayOnOneLine() {
        RunnerException e = new RunnerException("reset", RunnerException.UNKNOWN,
                "LlmModule has been destroyed\n\tat org.pytorch...\r\n");
        assertEquals("reset failed: LlmModule has been destroyed at org.pytorch...", e.oneLine());
        RunnerException plain = RunnerException.fromExecutorch("generate", 0x2, "no prefix here");
        assertEquals("generate failed (ExecuTorch error 0x02): no prefix here", plain.oneLine());
    }
}
