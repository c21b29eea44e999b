package com.bluelm.edge.demo;

import com.bluelm.edge.core.HostTensor;
import com.bluelm.edge.core.RunnerException;
import com.bluelm.edge.core.StaticProgram;
import java.io.File;
import java.util.Arrays;
import org.pytorch.executorch.DType;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * The core's {@link StaticProgram} over ExecuTorch 1.5.1's {@code Module} (members used: stubs/api-list.txt).
 * Tensors are copied both ways (an output's buffer is the method's, valid until its next call). Failures
 * become {@link RunnerException}s named after the method ({@link ModuleRunner#failure}). uint16 outputs
 * are refused natively (0x12, before any output reaches Java); other dtypes but FLOAT, UINT8 and INT64
 * arrive (INT16, BITS16 as {@code Tensor_unsupported}) and are refused here, by index.
 */
final class ModuleProgram implements StaticProgram {

    private static final int CLOSE_TRIES = 40;
    private static final long CLOSE_WAIT_MS = 50;
    private static final String UINT16_REFUSAL = "scalar type 27 is not supported on java side"; // jni_layer.cpp
    private static final String KV_HINT =
            "16-bit graph I/O cannot cross ExecuTorch's Java API; re-export with --graph-io kv";
    private static final String OTHER_HINT =
            "the app reads float32, uint8 and int64 tensors only; re-export the program";

    private final Module module;

    private ModuleProgram(Module module) {
        this.module = module;
    }

    /** The program at {@code pte}, mapped (LOAD_MODE_MMAP) rather than read into memory. */
    static ModuleProgram load(File pte) throws RunnerException {
        try {
            return new ModuleProgram(Module.load(pte.getAbsolutePath(), Module.LOAD_MODE_MMAP));
        } catch (RuntimeException e) {
            throw ModuleRunner.failure("load", e);
        }
    }

    @Override
    public HostTensor[] execute(String method, HostTensor[] inputs) throws RunnerException {
        try {
            EValue[] in = new EValue[inputs.length];
            for (int i = 0; i < inputs.length; i++) {
                in[i] = EValue.from(toTensor(inputs[i]));
            }
            EValue[] out = module.execute(method, in);
            HostTensor[] host = new HostTensor[out.length];
            for (int i = 0; i < out.length; i++) {
                host[i] = toHost(method, i, out[i]);
            }
            return host;
        } catch (RuntimeException e) {
            throw failure(method, e);
        }
    }

    @Override
    public Object[] constant(String method) throws RunnerException {
        try {
            EValue[] out = module.execute(method);
            Object[] values = new Object[out.length];
            for (int i = 0; i < out.length; i++) {
                values[i] = scalar(method, i, out[i]);
            }
            return values;
        } catch (RuntimeException e) {
            throw failure(method, e);
        }
    }

    @Override
    public boolean hasMethod(String method) throws RunnerException {
        try {
            return Arrays.asList(module.getMethods()).contains(method);
        } catch (RuntimeException e) {
            throw failure("getMethods", e);
        }
    }

    /** destroy() throws IllegalStateException while a method runs: wait for it, as ModuleRunner.close(). */
    @Override
    public void close() {
        try {
            for (int i = 0; ; i++) {
                try {
                    module.destroy();
                    return;
                } catch (IllegalStateException running) {
                    if (i == CLOSE_TRIES) {
                        return; // left to fbjni's HybridData destructor
                    }
                    Thread.sleep(CLOSE_WAIT_MS);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A shared (direct) tensor as a Tensor over the same memory (no copy); an array one as a copy. */
    private static Tensor toTensor(HostTensor t) {
        if (t.isDirect()) {
            return t.dtype == HostTensor.FLOAT32 ? Tensor.fromBlob(t.directFloats(), t.shape)
                    : Tensor.fromBlobUnsigned(t.directBytes(), t.shape);
        }
        if (t.dtype == HostTensor.FLOAT32) {
            return Tensor.fromBlob(t.f, t.shape);
        } else if (t.dtype == HostTensor.UINT8) {
            return Tensor.fromBlobUnsigned(t.u8, t.shape);
        }
        return Tensor.fromBlob(t.i64, t.shape);
    }

    private static HostTensor toHost(String method, int index, EValue v) throws RunnerException {
        if (!v.isTensor()) {
            throw new RunnerException(method, RunnerException.UNKNOWN, "output " + index + " is not a tensor");
        }
        Tensor t = v.toTensor();
        DType d = t.dtype();
        if (d == DType.FLOAT) {
            return HostTensor.floats(t.getDataAsFloatArray(), t.shape());
        } else if (d == DType.UINT8) {
            return HostTensor.bytes(t.getDataAsUnsignedByteArray(), t.shape());
        } else if (d == DType.INT64) {
            return HostTensor.longs(t.getDataAsLongArray(), t.shape());
        }
        String hint = d == DType.INT16 || d == DType.BITS16 ? KV_HINT : OTHER_HINT;
        throw new RunnerException(method, RunnerException.UNKNOWN, "output " + index + " is DType." + d + ": " + hint);
    }

    /** A constant method's value: Long for an int, Double for a float. */
    private static Object scalar(String method, int index, EValue v) throws RunnerException {
        if (v.isInt()) {
            return Long.valueOf(v.toInt());
        } else if (v.isDouble()) {
            return Double.valueOf(v.toDouble());
        }
        throw new RunnerException(method, RunnerException.UNKNOWN,
                "output " + index + " is neither an int nor a float");
    }

    /** ModuleRunner.failure, with the native refusal of a uint16 output said as what to do about it. */
    private static RunnerException failure(String method, RuntimeException e) {
        RunnerException r = ModuleRunner.failure(method, e);
        return String.valueOf(e.getMessage()).contains(UINT16_REFUSAL)
                ? new RunnerException(method, r.code, "an output is uint16 (ScalarType 27): " + KV_HINT) : r;
    }
}
