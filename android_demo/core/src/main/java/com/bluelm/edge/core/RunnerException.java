package com.bluelm.edge.core;

/**
 * A failed runner call: the ExecuTorch error code ({@code runtime/core/error.h}, e.g. 0x12
 * InvalidArgument, 0x23 InvalidProgram) and the runner's message. {@link #oneLine()} is what the
 * app and the benchmark JSON show.
 */
public final class RunnerException extends Exception {

    /** No code from the runner (e.g. the 1.0.x API, whose generate() returns 0 on failure). */
    public static final int UNKNOWN = -1;

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

    /** "generate failed (ExecuTorch error 0x12): message" on one line. */
    public String oneLine() {
        String msg = String.valueOf(getMessage()).replace('\n', ' ').trim();
        if (call == null) {
            return msg;
        }
        String where = code == UNKNOWN ? "" : String.format(" (ExecuTorch error 0x%02x)", Integer.valueOf(code));
        return call + " failed" + where + ": " + msg;
    }
}
