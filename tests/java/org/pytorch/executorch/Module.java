package org.pytorch.executorch;

import java.io.File;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Function;

/**
 * Test double of ExecuTorch 1.5's Module (Module.kt and extension/android/jni/jni_layer.cpp at
 * cff6f4dd32) with the members the stubs record. The "native program" of a path is the
 * {@link Program} a test puts in {@link #programs}; behaviour as upstream where ModuleProgram
 * relies on it:
 * <ul>
 * <li>load(path, mode): IllegalArgumentException("Cannot load model path: path does not exist: P")
 *     (ExecuTorchRuntime.validateFilePath) for a missing, non-file or unreadable path; a file that is
 *     no program (none registered) fails in the constructor's getMethods, as the JNI:
 *     0x12 "Cannot get load module [Native Error: 0x23]".</li>
 * <li>execute(name, inputs...): under the module's lock; IllegalStateException("Module has been
 *     destroyed") after destroy(); an unknown method is Error::InvalidArgument (0x12, the program's
 *     "No method named"): "Execution failed for method: NAME", or with no inputs (the JNI's
 *     load_method path) "Cannot get method names [Native Error: 0x12]"; an output the JNI cannot
 *     convert ({@link #nativeOutput} of an unmapped ScalarType, e.g. 27 = UInt16) fails with 0x12
 *     "executorch::aten::Tensor scalar type 27 is not supported on java side".</li>
 * <li>destroy()/close(): IllegalStateException("Cannot destroy module while method is executing")
 *     when the lock is held by another thread (tryLock), else frees the module (idempotent).</li>
 * </ul>
 * Exceptions are the test double of ExecutorchRuntimeException, messages as upstream's
 * makeExecutorchException formats them: "[ExecuTorch Error 0x12] Invalid argument: DETAILS".
 */
public class Module implements java.io.Closeable {
    public static final int LOAD_MODE_FILE = 0;
    public static final int LOAD_MODE_MMAP = 1;
    public static final int LOAD_MODE_MMAP_USE_MLOCK = 2;
    public static final int LOAD_MODE_MMAP_USE_MLOCK_IGNORE_ERRORS = 3;

    /** What the native program of a path does. */
    public interface Program {
        /** Its method names (the JNI's getMethods). */
        String[] methods();

        /** Run a method that {@link #methods()} names; an output may be a {@link #nativeOutput}. */
        EValue[] execute(String method, EValue[] inputs);

        /** Called (on the destroying thread) when destroy() finds a method running, before it throws. */
        default void destroyRefused() {
        }
    }

    /** A {@link Program} of named methods. */
    public static class Methods implements Program {
        private final Map<String, Function<EValue[], EValue[]>> methods =
                new LinkedHashMap<String, Function<EValue[], EValue[]>>();

        public Methods on(String name, Function<EValue[], EValue[]> body) {
            methods.put(name, body);
            return this;
        }

        /** A constant (metadata) method: no inputs, these outputs. */
        public Methods constant(String name, EValue... values) {
            return on(name, in -> values.clone());
        }

        @Override
        public String[] methods() {
            return methods.keySet().toArray(new String[0]);
        }

        @Override
        public EValue[] execute(String method, EValue[] inputs) {
            return methods.get(method).apply(inputs);
        }
    }

    /** Native programs by absolute path; a test puts one in before the app loads it. */
    public static final Map<String, Program> programs = Collections.synchronizedMap(new HashMap<String, Program>());
    /** Every successful load, as "PATH mode=N". */
    public static final List<String> loads = Collections.synchronizedList(new ArrayList<String>());

    private final Program program;
    private final ReentrantLock lock = new ReentrantLock();
    private boolean valid = true;

    private Module(Program program) {
        this.program = program;
    }

    /** Forget every program and load (for a test's set-up). */
    public static void reset() {
        programs.clear();
        loads.clear();
    }

    public static Module load(String modelPath) {
        return load(modelPath, LOAD_MODE_FILE, 0);
    }

    public static Module load(String modelPath, int loadMode) {
        return load(modelPath, loadMode, 0);
    }

    public static Module load(String modelPath, int loadMode, int numThreads) {
        validateFilePath(modelPath, "model path");
        Program p = programs.get(new File(modelPath).getAbsolutePath());
        if (p == null) { // populateMethodMeta -> getMethodsNative: the program does not load
            throw nativeError(0x12, "Cannot get load module [Native Error: 0x23]");
        }
        loads.add(new File(modelPath).getAbsolutePath() + " mode=" + loadMode);
        return new Module(p);
    }

    /** ExecuTorchRuntime.validateFilePath. */
    private static void validateFilePath(String path, String description) {
        if (path == null) {
            throw new IllegalArgumentException("Cannot load " + description + ": path is null");
        }
        File file = new File(path);
        if (!file.exists()) {
            throw new IllegalArgumentException("Cannot load " + description + ": path does not exist: " + path);
        }
        if (!file.isFile()) {
            throw new IllegalArgumentException("Cannot load " + description + ": path is not a file: " + path);
        }
        if (!file.canRead()) {
            throw new IllegalArgumentException("Cannot load " + description + ": path is not readable: " + path);
        }
    }

    public EValue[] forward(EValue... inputs) {
        return execute("forward", inputs);
    }

    public EValue[] execute(String methodName, EValue... inputs) {
        lock.lock();
        try {
            if (!valid) {
                throw new IllegalStateException("Module has been destroyed");
            }
            if (!Arrays.asList(program.methods()).contains(methodName)) {
                throw inputs.length == 0 ? nativeError(0x12, "Cannot get method names [Native Error: 0x12]")
                        : nativeError(0x12, "Execution failed for method: " + methodName);
            }
            EValue[] out = program.execute(methodName, inputs.clone());
            for (EValue v : out) {
                if (v.nativeRefusal != null) {
                    throw nativeError(0x12, v.nativeRefusal);
                }
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    public String[] getMethods() {
        lock.lock();
        try {
            if (!valid) {
                throw new IllegalStateException("Module has been destroyed");
            }
            return program.methods().clone();
        } finally {
            lock.unlock();
        }
    }

    /** Whether destroy() has freed the module (not upstream: for tests). */
    public boolean destroyed() {
        return !valid;
    }

    public void destroy() {
        if (lock.tryLock()) {
            try {
                valid = false;
            } finally {
                lock.unlock();
            }
        } else {
            program.destroyRefused();
            throw new IllegalStateException("Cannot destroy module while method is executing");
        }
    }

    @Override
    public void close() {
        destroy();
    }

    /**
     * A method's output of native ScalarType {@code scalarType} (zeros) as the JNI converts it: the
     * Java tensor of its dtype (HALF as Tensor_float16; INT16, BITS16, ... as Tensor_unsupported),
     * or, for a scalar type the JNI has no Java dtype for (complex 8-10, 23 and up: 27 is UInt16),
     * the refusal execute() throws.
     */
    public static EValue nativeOutput(int scalarType, long... shape) {
        if (scalarType < 0 || (scalarType >= 8 && scalarType <= 10) || scalarType > 22) {
            EValue v = EValue.optionalNone();
            v.nativeRefusal = "executorch::aten::Tensor scalar type " + scalarType + " is not supported on java side";
            return v;
        }
        return EValue.from(Tensor.nativeNewTensor(scalarType, shape));
    }

    /** The exception the JNI raises for a native error (makeExecutorchException's message). */
    public static ExecutorchRuntimeException nativeError(int code, String details) {
        return new ExecutorchRuntimeException(code, errorName(code) + ": " + details);
    }

    private static String errorName(int code) {
        switch (code) {
            case 0x01:
                return "Internal error";
            case 0x02:
                return "Invalid state";
            case 0x10:
                return "Operation not supported";
            case 0x12:
                return "Invalid argument";
            case 0x13:
                return "Invalid type";
            case 0x14:
                return "Operator missing";
            case 0x20:
                return "Resource not found";
            case 0x21:
                return "Memory allocation failed";
            case 0x23:
                return "Invalid program";
            default:
                return "Unknown error code 0x" + Integer.toHexString(code);
        }
    }
}
