package com.bluelm.edge.core;

/**
 * The methods of a static NPU program (docs/contracts.md, "The static NPU program") as the app
 * reaches them: ExecuTorch's Java {@code Module} in the app ({@code demo.ModuleProgram}); the host
 * tests replay calls recorded from the Python runner ({@code tests/vectors/static_kv_runner.json}).
 */
public interface StaticProgram {

    /** Run {@code method} on {@code inputs} (the contract's order); its outputs in order. */
    HostTensor[] execute(String method, HostTensor[] inputs) throws RunnerException;

    /** The values a constant (metadata) method returns: {@link Long} for ints, {@link Double} for floats. */
    Object[] constant(String method) throws RunnerException;

    /** Whether the program has a method of that name. */
    boolean hasMethod(String method) throws RunnerException;

    /** Free the native program; no call may follow. */
    void close();
}
