package org.pytorch.executorch;

public final class EValue {
    private EValue() { throw new RuntimeException("Stub!"); }
    public static EValue from(Tensor tensor) { throw new RuntimeException("Stub!"); }
    public final boolean isTensor() { throw new RuntimeException("Stub!"); }
    public final boolean isInt() { throw new RuntimeException("Stub!"); }
    public final boolean isDouble() { throw new RuntimeException("Stub!"); }
    public final Tensor toTensor() { throw new RuntimeException("Stub!"); }
    public final long toInt() { throw new RuntimeException("Stub!"); }
    public final double toDouble() { throw new RuntimeException("Stub!"); }
}
