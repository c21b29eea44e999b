package org.pytorch.executorch;

/** Test double of ExecuTorch 1.5's exception (same members as stubs/api-list.txt records). */
public class ExecutorchRuntimeException extends RuntimeException {
    private final int code;

    public ExecutorchRuntimeException(int errorCode, String details) {
        super("[ExecuTorch Error 0x" + Integer.toHexString(errorCode) + "] " + details);
        code = errorCode;
    }

    public final int getErrorCode() {
        return code;
    }
}
