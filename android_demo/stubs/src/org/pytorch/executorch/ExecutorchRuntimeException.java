package org.pytorch.executorch;

public class ExecutorchRuntimeException extends RuntimeException {
    public ExecutorchRuntimeException(int errorCode, String details) { throw new RuntimeException("Stub!"); }
    public final int getErrorCode() { throw new RuntimeException("Stub!"); }
}
