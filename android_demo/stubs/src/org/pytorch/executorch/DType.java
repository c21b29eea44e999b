package org.pytorch.executorch;

public enum DType {
    UINT8, INT16, INT64, FLOAT, BITS16
}
