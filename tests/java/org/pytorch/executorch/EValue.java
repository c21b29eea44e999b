package org.pytorch.executorch;

import java.util.Locale;

/**
 * Test double of ExecuTorch 1.5's EValue (EValue.kt at cff6f4dd32): a tagged union; {@code toX()}
 * of the wrong type throws IllegalStateException("Expected EValue type X, actual type Y").
 * The stubs record from(Tensor), isTensor/isInt/isDouble, toTensor/toInt/toDouble.
 */
public final class EValue {
    private static final int TYPE_CODE_NONE = 0;
    private static final int TYPE_CODE_TENSOR = 1;
    private static final int TYPE_CODE_STRING = 2;
    private static final int TYPE_CODE_DOUBLE = 3;
    private static final int TYPE_CODE_INT = 4;
    private static final int TYPE_CODE_BOOL = 5;
    private static final String[] TYPE_NAMES = {"None", "Tensor", "String", "Double", "Int", "Bool"};

    public final int mTypeCode;
    public Object mData;

    /**
     * Not upstream: set by {@link Module#nativeOutput} for a native value the JNI cannot turn into
     * an EValue; {@link Module#execute} then fails with this message, as the JNI does.
     */
    String nativeRefusal;

    private EValue(int typeCode) {
        mTypeCode = typeCode;
    }

    public static EValue optionalNone() {
        return new EValue(TYPE_CODE_NONE);
    }

    public static EValue from(Tensor tensor) {
        EValue v = new EValue(TYPE_CODE_TENSOR);
        v.mData = tensor;
        return v;
    }

    public static EValue from(boolean value) {
        EValue v = new EValue(TYPE_CODE_BOOL);
        v.mData = Boolean.valueOf(value);
        return v;
    }

    public static EValue from(long value) {
        EValue v = new EValue(TYPE_CODE_INT);
        v.mData = Long.valueOf(value);
        return v;
    }

    public static EValue from(double value) {
        EValue v = new EValue(TYPE_CODE_DOUBLE);
        v.mData = Double.valueOf(value);
        return v;
    }

    public static EValue from(String value) {
        EValue v = new EValue(TYPE_CODE_STRING);
        v.mData = value;
        return v;
    }

    public boolean isNone() {
        return mTypeCode == TYPE_CODE_NONE;
    }

    public boolean isTensor() {
        return mTypeCode == TYPE_CODE_TENSOR;
    }

    public boolean isBool() {
        return mTypeCode == TYPE_CODE_BOOL;
    }

    public boolean isInt() {
        return mTypeCode == TYPE_CODE_INT;
    }

    public boolean isDouble() {
        return mTypeCode == TYPE_CODE_DOUBLE;
    }

    public boolean isString() {
        return mTypeCode == TYPE_CODE_STRING;
    }

    public Tensor toTensor() {
        precondition(TYPE_CODE_TENSOR);
        return (Tensor) mData;
    }

    public boolean toBool() {
        precondition(TYPE_CODE_BOOL);
        return ((Boolean) mData).booleanValue();
    }

    public long toInt() {
        precondition(TYPE_CODE_INT);
        return ((Long) mData).longValue();
    }

    public double toDouble() {
        precondition(TYPE_CODE_DOUBLE);
        return ((Double) mData).doubleValue();
    }

    public String toStr() {
        precondition(TYPE_CODE_STRING);
        return (String) mData;
    }

    private void precondition(int expected) {
        if (mTypeCode != expected) {
            throw new IllegalStateException(String.format(Locale.US, "Expected EValue type %s, actual type %s",
                    name(expected), name(mTypeCode)));
        }
    }

    private static String name(int typeCode) {
        return typeCode >= 0 && typeCode < TYPE_NAMES.length ? TYPE_NAMES[typeCode] : "Unknown";
    }
}
