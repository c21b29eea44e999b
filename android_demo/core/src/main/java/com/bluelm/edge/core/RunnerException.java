package com.bluelm.edge.core;

/**
 * A failed runner call: the ExecuTorch error code ({@code runtime/core/error.h}, e.g. 0x12
 * InvalidArgument, 0x23 InvalidProgram) and the runner's message. {@link #oneLine()} is what the
 * app and the benchmark JSON show.
 */
public final class RunnerException extends Exception {

    /** No code from the runner (an IllegalStateException of a closed module, a missing file). */
    public static final int UNKNOWN = -1;

    /** How much of ExecuTorch's native log tail ({@code " | nativeLog=..."}) the one line keeps. */
    static final int NATIVE_LOG_KEPT = 160;

    private static final java.util.regex.Pattern EXECUTORCH_PREFIX =
            java.util.regex.Pattern.compile("^\\[ExecuTorch Error 0x[0-9a-fA-F]+\\] ");
    private static final String NATIVE_LOG = " | nativeLog=";

    public final int code;
    public final String call;

    public RunnerException(String call, int code, String message) {
        super(message);
        this.call = call;
        this.code = code;
    }

    /** An error already written as one line (e.g. the error of an answer's stats). */
    public static RunnerException ofLine(int code, String line) {
        return new RunnerException(null, code, line);
    }

    /**
     * A failed call of ExecuTorch 1.5's {@code LlmModule}: {@code code} is the
     * {@code ExecutorchRuntimeException}'s {@code getErrorCode()} and {@code message} its message,
     * {@code "[ExecuTorch Error 0x12] Invalid argument: Failed to generate | nativeLog=..."}. The
     * bracketed prefix is dropped ({@link #oneLine()} writes the code itself) and the native log
     * tail is cut to its last {@value #NATIVE_LOG_KEPT} characters.
     */
    public static RunnerException fromExecutorch(String call, int code, String message) {
        String msg = EXECUTORCH_PREFIX.matcher(String.valueOf(message)).replaceFirst("");
        int log = msg.indexOf(NATIVE_LOG);
        if (log >= 0) {
            String tail = msg.substring(log + NATIVE_LOG.length());
            if (tail.length() > NATIVE_LOG_KEPT) {
                tail = "..." + tail.substring(tail.length() - NATIVE_LOG_KEPT);
            }
            msg = msg.substring(0, log) + " (native log: " + tail + ")";
        }
        return new RunnerException(call, code, msg);
    }

    /** "generate failed (ExecuTorch error 0x12): message" on one line. */
    public String oneLine() {
        String msg = String.valueOf(getMessage()).replaceAll("\\s+", " ").trim();
        if (call == null) {
            return msg;
        }
        String where = code == UNKNOWN ? "" : String.format(" (ExecuTorch error 0x%02x)", Integer.valueOf(code));
        return call + " failed" + where + ": " + msg;
    }
}
