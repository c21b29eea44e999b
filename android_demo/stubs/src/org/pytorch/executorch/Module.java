package org.pytorch.executorch;

public class Module implements java.io.Closeable {
    public static final int LOAD_MODE_MMAP = 1;
    private Module() { throw new RuntimeException("Stub!"); }
    public static Module load(String modelPath, int loadMode) { throw new RuntimeException("Stub!"); }
    public EValue[] execute(String methodName, EValue... inputs) { throw new RuntimeException("Stub!"); }
    public String[] getMethods() { throw new RuntimeException("Stub!"); }
    public void destroy() { throw new RuntimeException("Stub!"); }
    public void close() { throw new RuntimeException("Stub!"); }
}
