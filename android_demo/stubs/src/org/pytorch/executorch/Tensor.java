package org.pytorch.executorch;

public abstract class Tensor {
    Tensor() { throw new RuntimeException("Stub!"); }
    public static Tensor fromBlob(float[] data, long[] shape) { throw new RuntimeException("Stub!"); }
    public static Tensor fromBlobUnsigned(byte[] data, long[] shape) { throw new RuntimeException("Stub!"); }
    public static Tensor fromBlob(long[] data, long[] shape) { throw new RuntimeException("Stub!"); }
    public static Tensor fromBlob(java.nio.FloatBuffer data, long[] shape) { throw new RuntimeException("Stub!"); }
    public static Tensor fromBlobUnsigned(java.nio.ByteBuffer data, long[] shape) { throw new RuntimeException("Stub!"); }
    public abstract DType dtype();
    public final long[] shape() { throw new RuntimeException("Stub!"); }
    public float[] getDataAsFloatArray() { throw new RuntimeException("Stub!"); }
    public byte[] getDataAsUnsignedByteArray() { throw new RuntimeException("Stub!"); }
    public long[] getDataAsLongArray() { throw new RuntimeException("Stub!"); }
}
