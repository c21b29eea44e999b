package org.pytorch.executorch;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Locale;

/**
 * Test double of ExecuTorch 1.5's Tensor (Tensor.kt at cff6f4dd32) with the members the stubs
 * record: {@code fromBlob(float[]/long[], shape)} and {@code fromBlobUnsigned(byte[], shape)} copy
 * the data (fp32 and uint8 into a fresh direct buffer, as upstream) after checking the shape
 * (IllegalArgumentException for a negative dimension or a data length that does not fill it);
 * {@code fromBlob(FloatBuffer)} / {@code fromBlobUnsigned(ByteBuffer)} keep the caller's buffer (no
 * copy) after upstream's checks (capacity, direct, native order); {@code getRawDataBuffer()} is that
 * buffer, and {@code getDataAsXArray()} copies out of it (rewinding it, as upstream); {@code shape()} is a copy;
 * a {@code getDataAsXArray()} of another dtype throws IllegalStateException("Tensor of type
 * Tensor_uint8 cannot return data as float array."). Outputs the JNI makes of other scalar types:
 * HALF is Tensor_float16 (upstream widens it to floats in getDataAsFloatArray), the rest (INT16,
 * BITS16, BOOL, ...) Tensor_unsupported, whose dtype() says which. (Upstream also has classes for
 * INT8, INT32 and DOUBLE; here they are Tensor_unsupported too: the app refuses them by dtype.)
 */
public abstract class Tensor {

    protected final long[] shape;

    Tensor(long[] shape) {
        for (long s : shape) {
            if (s < 0) {
                throw new IllegalArgumentException("Shape elements must be non negative");
            }
        }
        this.shape = shape.clone();
    }

    public final long numel() {
        return numel(shape);
    }

    public static long numel(long[] shape) {
        checkShape(shape);
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        return n;
    }

    public final long[] shape() {
        return shape.clone();
    }

    public abstract DType dtype();

    public float[] getDataAsFloatArray() {
        throw cannot("float array");
    }

    public byte[] getDataAsUnsignedByteArray() {
        throw cannot("unsigned byte array");
    }

    public long[] getDataAsLongArray() {
        throw cannot("long array");
    }

    public short[] getDataAsShortArray() {
        throw cannot("short array");
    }

    private IllegalStateException cannot(String what) {
        return new IllegalStateException("Tensor of type " + getClass().getSimpleName() + " cannot return data as "
                + what + ".");
    }

    public static Tensor fromBlob(float[] data, long[] shape) {
        checkShape(shape);
        checkCapacity(data.length, shape);
        FloatBuffer copy = ByteBuffer.allocateDirect(4 * data.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
        copy.put(data);
        return new Tensor_float32(copy, shape);
    }

    public static Tensor fromBlobUnsigned(byte[] data, long[] shape) {
        checkShape(shape);
        checkCapacity(data.length, shape);
        ByteBuffer copy = ByteBuffer.allocateDirect(data.length).order(ByteOrder.nativeOrder());
        copy.put(data);
        return new Tensor_uint8(copy, shape);
    }

    public static Tensor fromBlob(FloatBuffer data, long[] shape) {
        checkShape(shape);
        checkCapacity(data.capacity(), shape);
        checkDirect(data.isDirect(), data.order());
        return new Tensor_float32(data, shape);
    }

    public static Tensor fromBlobUnsigned(ByteBuffer data, long[] shape) {
        checkShape(shape);
        checkCapacity(data.capacity(), shape);
        checkDirect(data.isDirect(), data.order());
        return new Tensor_uint8(data, shape);
    }

    private static void checkDirect(boolean direct, ByteOrder order) {
        if (!direct) {
            throw new IllegalArgumentException("Data buffer must be direct (java.nio.ByteBuffer#allocateDirect)");
        }
        if (order != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("Data buffer must have native byte order (java.nio.ByteOrder#nativeOrder)");
        }
    }

    /** The tensor's data buffer (upstream: getRawDataBuffer()); an array-backed double has none. */
    public Buffer getRawDataBuffer() {
        throw cannot("raw data buffer");
    }

    public static Tensor fromBlob(long[] data, long[] shape) {
        checkShape(shape);
        checkCapacity(data.length, shape);
        return new Tensor_int64(data.clone(), shape);
    }

    /** As upstream's nativeNewTensor: the Java tensor of a JNI dtype code (zeros here). */
    static Tensor nativeNewTensor(int dtype, long[] shape) {
        int n = (int) numel(shape);
        if (dtype == DType.FLOAT.jniCode) {
            return new Tensor_float32(ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asFloatBuffer(),
                    shape);
        } else if (dtype == DType.HALF.jniCode) {
            return new Tensor_float16(new short[n], shape);
        } else if (dtype == DType.INT64.jniCode) {
            return new Tensor_int64(new long[n], shape);
        } else if (dtype == DType.UINT8.jniCode) {
            return new Tensor_uint8(ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder()), shape);
        }
        return new Tensor_unsupported(shape, DType.fromJniCode(dtype));
    }

    private static void checkShape(long[] shape) {
        for (long s : shape) {
            if (s < 0) {
                throw new IllegalArgumentException("Shape elements must be non negative");
            }
        }
    }

    private static void checkCapacity(int capacity, long[] shape) {
        long numel = numel(shape);
        if (numel != capacity) {
            throw new IllegalArgumentException(String.format(Locale.US,
                    "Inconsistent data capacity:%d and shape number elements:%d shape:%s",
                    Integer.valueOf(capacity), Long.valueOf(numel), Arrays.toString(shape)));
        }
    }

    static final class Tensor_uint8 extends Tensor {
        private final ByteBuffer data;

        Tensor_uint8(ByteBuffer data, long[] shape) {
            super(shape);
            this.data = data;
        }

        @Override
        public DType dtype() {
            return DType.UINT8;
        }

        @Override
        public Buffer getRawDataBuffer() {
            return data;
        }

        @Override
        public byte[] getDataAsUnsignedByteArray() {
            data.rewind();
            byte[] arr = new byte[data.remaining()];
            data.get(arr);
            return arr;
        }

        @Override
        public String toString() {
            return "Tensor(" + Arrays.toString(shape) + ", dtype=torch.uint8)";
        }
    }

    static final class Tensor_int64 extends Tensor {
        private final long[] data;

        Tensor_int64(long[] data, long[] shape) {
            super(shape);
            this.data = data;
        }

        @Override
        public DType dtype() {
            return DType.INT64;
        }

        @Override
        public long[] getDataAsLongArray() {
            return data.clone();
        }

        @Override
        public String toString() {
            return "Tensor(" + Arrays.toString(shape) + ", dtype=torch.int64)";
        }
    }

    static final class Tensor_float32 extends Tensor {
        private final FloatBuffer data;

        Tensor_float32(FloatBuffer data, long[] shape) {
            super(shape);
            this.data = data;
        }

        @Override
        public DType dtype() {
            return DType.FLOAT;
        }

        @Override
        public Buffer getRawDataBuffer() {
            return data;
        }

        @Override
        public float[] getDataAsFloatArray() {
            data.rewind();
            float[] arr = new float[data.remaining()];
            data.get(arr);
            return arr;
        }

        @Override
        public String toString() {
            return "Tensor(" + Arrays.toString(shape) + ", dtype=torch.float32)";
        }
    }

    /** fp16 bits; getDataAsFloatArray widens them, as upstream (so only a dtype check keeps them out). */
    static final class Tensor_float16 extends Tensor {
        private final short[] data;

        Tensor_float16(short[] data, long[] shape) {
            super(shape);
            this.data = data;
        }

        @Override
        public DType dtype() {
            return DType.HALF;
        }

        @Override
        public short[] getDataAsShortArray() {
            return data.clone();
        }

        @Override
        public float[] getDataAsFloatArray() {
            float[] f = new float[data.length];
            for (int i = 0; i < f.length; i++) {
                f[i] = halfToFloat(data[i]);
            }
            return f;
        }

        private static float halfToFloat(short bits) {
            int h = bits & 0xffff;
            int sign = (h >>> 15) != 0 ? -1 : 1;
            int exp = (h >>> 10) & 0x1f;
            int mant = h & 0x3ff;
            if (exp == 0) {
                return sign * (float) Math.scalb((double) mant, -24);
            } else if (exp == 31) {
                return mant == 0 ? sign * Float.POSITIVE_INFINITY : Float.NaN;
            }
            return sign * (float) Math.scalb(1.0 + mant / 1024.0, exp - 15);
        }

        @Override
        public String toString() {
            return "Tensor(" + Arrays.toString(shape) + ", dtype=torch.float16)";
        }
    }

    static final class Tensor_unsupported extends Tensor {
        private final DType dtype;

        Tensor_unsupported(long[] shape, DType dtype) {
            super(shape);
            this.dtype = dtype;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public String toString() {
            return "Unsupported tensor(" + Arrays.toString(shape) + ", dtype=" + dtype + ")";
        }
    }
}
