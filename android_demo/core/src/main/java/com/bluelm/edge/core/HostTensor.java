package com.bluelm.edge.core;

/**
 * A tensor crossing the boundary between the app and the ExecuTorch program: row-major fp32,
 * uint8 or int64 data and its shape (the dtypes ExecuTorch's Java {@code Tensor} passes both ways;
 * it has no uint16, so a program with 16-bit graph I/O cannot be driven from Java).
 */
public final class HostTensor {

    /** Element types, numbered as ExecuTorch's {@code DType} JNI codes. */
    public static final int UINT8 = 0;
    public static final int INT64 = 4;
    public static final int FLOAT32 = 6;

    public final int dtype;
    public final long[] shape;
    public final float[] f;
    public final byte[] u8;
    public final long[] i64;

    private HostTensor(int dtype, long[] shape, float[] f, byte[] u8, long[] i64) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.f = f;
        this.u8 = u8;
        this.i64 = i64;
        int n = dtype == FLOAT32 ? f.length : dtype == UINT8 ? u8.length : i64.length;
        if (n != numel(shape)) {
            throw new IllegalArgumentException(n + " elements do not fill shape " + java.util.Arrays.toString(shape));
        }
    }

    public static HostTensor floats(float[] data, long... shape) {
        return new HostTensor(FLOAT32, shape, data, null, null);
    }

    /** Unsigned 8-bit codes (Java bytes read as 0..255). */
    public static HostTensor bytes(byte[] data, long... shape) {
        return new HostTensor(UINT8, shape, null, data, null);
    }

    public static HostTensor longs(long[] data, long... shape) {
        return new HostTensor(INT64, shape, null, null, data);
    }

    public int numel() {
        return (int) numel(shape);
    }

    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    public String describe() {
        String t = dtype == FLOAT32 ? "float32" : dtype == UINT8 ? "uint8" : "int64";
        return t + java.util.Arrays.toString(shape);
    }
}
