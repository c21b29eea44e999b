package com.bluelm.edge.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * A tensor crossing the boundary between the app and the ExecuTorch program: row-major fp32,
 * uint8 or int64 data and its shape (the dtypes ExecuTorch's Java {@code Tensor} passes both ways;
 * it has no uint16, so a program with 16-bit graph I/O cannot be driven from Java).
 *
 * <p>The data is a Java array ({@link #f}, {@link #u8}, {@link #i64}), which ExecuTorch's
 * {@code Tensor.fromBlob} copies into a fresh direct buffer on every call, or a direct buffer in
 * native byte order that the caller keeps ({@link #direct}: fp32 and uint8), which
 * {@code Tensor.fromBlob(Buffer)} hands to the program without a copy: the KV caches, which the
 * static runner passes whole on every step, live in such buffers.
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
    /** Non-null: the data, in a direct native-order buffer shared with the caller (never moved). */
    private final ByteBuffer direct;

    private HostTensor(int dtype, long[] shape, float[] f, byte[] u8, long[] i64, ByteBuffer direct) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.f = f;
        this.u8 = u8;
        this.i64 = i64;
        this.direct = direct;
        long n = direct != null ? direct.capacity() / (dtype == FLOAT32 ? 4 : 1)
                : dtype == FLOAT32 ? f.length : dtype == UINT8 ? u8.length : i64.length;
        if (n != numel(shape)) {
            throw new IllegalArgumentException(n + " elements do not fill shape " + java.util.Arrays.toString(shape));
        }
    }

    public static HostTensor floats(float[] data, long... shape) {
        return new HostTensor(FLOAT32, shape, data, null, null, null);
    }

    /** Unsigned 8-bit codes (Java bytes read as 0..255). */
    public static HostTensor bytes(byte[] data, long... shape) {
        return new HostTensor(UINT8, shape, null, data, null, null);
    }

    public static HostTensor longs(long[] data, long... shape) {
        return new HostTensor(INT64, shape, null, null, data, null);
    }

    /** fp32 or uint8 data in {@code data} (direct, native byte order, exactly the tensor's size), not copied. */
    public static HostTensor direct(int dtype, ByteBuffer data, long... shape) {
        if (dtype != FLOAT32 && dtype != UINT8) {
            throw new IllegalArgumentException("a direct tensor holds float32 or uint8 data, not dtype " + dtype);
        }
        if (!data.isDirect() || data.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("a direct tensor's buffer must be direct and in native byte order");
        }
        return new HostTensor(dtype, shape, null, null, null, data);
    }

    /** A direct native-order buffer of {@code bytes} bytes (zeros), as ExecuTorch's Tensor.allocateByteBuffer. */
    public static ByteBuffer allocate(int bytes) {
        return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
    }

    public boolean isDirect() {
        return direct != null;
    }

    /** The shared buffer as a new view at position 0 (the caller's buffer itself is never moved). */
    public ByteBuffer directBytes() {
        ByteBuffer view = direct.duplicate();
        view.clear();
        return view.order(ByteOrder.nativeOrder());
    }

    /** The shared fp32 buffer as a new FloatBuffer view (direct, native order, position 0). */
    public FloatBuffer directFloats() {
        return directBytes().asFloatBuffer();
    }

    /** The fp32 data: the array, or a copy of the shared buffer. */
    public float[] floatData() {
        if (direct == null) {
            return f;
        }
        float[] out = new float[numel()];
        directFloats().get(out);
        return out;
    }

    /** The uint8 data: the array, or a copy of the shared buffer. */
    public byte[] byteData() {
        if (direct == null) {
            return u8;
        }
        byte[] out = new byte[numel()];
        directBytes().get(out);
        return out;
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
