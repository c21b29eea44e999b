package com.bluelm.edge.demo;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.bluelm.edge.core.HostTensor;
import com.bluelm.edge.core.RunnerException;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.Before;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;
import org.pytorch.executorch.DType;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;
import org.pytorch.executorch.Tensor;

/**
 * The app's StaticProgram over a test double of ExecuTorch 1.5's Module (ModuleProgram): tensors of
 * each dtype both ways with their shapes, constants as Long and Double, the one-line failures the
 * app shows (uint16, INT16/BITS16/HALF and non-tensor outputs, a missing file, an unknown method),
 * and close() while a method runs (ordered with latches, no timing).
 */
public class ModuleProgramTest {

    private static final String KV_HINT =
            "16-bit graph I/O cannot cross ExecuTorch's Java API; re-export with --graph-io kv";
    private static final long WAIT_S = 20;

    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    @Before
    public void setUp() {
        Module.reset();
    }

    /** A program file on disk whose native program is {@code program}. */
    private File install(Module.Program program) throws IOException {
        File pte = tmp.newFile("model.pte");
        FileOutputStream out = new FileOutputStream(pte);
        try {
            out.write("not a program: the Module test double runs the registered one".getBytes("UTF-8"));
        } finally {
            out.close();
        }
        Module.programs.put(pte.getAbsolutePath(), program);
        return pte;
    }

    private ModuleProgram load(Module.Program program) throws Exception {
        return ModuleProgram.load(install(program));
    }

    private static EValue[] outputs(EValue... values) {
        return values;
    }

    private static String oneLineOf(ThrowingCall call) {
        try {
            call.run();
        } catch (RunnerException e) {
            assertFalse(e.oneLine(), e.oneLine().contains("\n"));
            return e.oneLine();
        } catch (Exception e) {
            throw new AssertionError("not a RunnerException: " + e, e);
        }
        fail("the call did not fail");
        return null;
    }

    private interface ThrowingCall {
        void run() throws Exception;
    }

    @Test
    public void loadsTheAbsolutePathMapped() throws Exception {
        File pte = install(new Module.Methods().constant("get_n_layers", EValue.from(4L)));
        ModuleProgram.load(pte);
        assertEquals(Arrays.asList(pte.getAbsolutePath() + " mode=" + Module.LOAD_MODE_MMAP), Module.loads);
    }

    @Test
    public void eachDtypeCrossesBothWaysWithItsShape() throws Exception {
        final List<Tensor> got = new ArrayList<Tensor>();
        ModuleProgram p = load(new Module.Methods().on("mix", in -> {
            for (EValue v : in) {
                got.add(v.toTensor());
            }
            return outputs(
                    EValue.from(Tensor.fromBlob(new float[] {0.5f, -1f, 3.25f, 1e-7f, -0f, 7f}, new long[] {3, 1, 2})),
                    EValue.from(Tensor.fromBlobUnsigned(new byte[] {0, 127, (byte) 128, (byte) 255}, new long[] {2, 2})),
                    EValue.from(Tensor.fromBlob(new long[] {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE}, new long[] {1, 4})),
                    EValue.from(Tensor.fromBlob(new long[] {42}, new long[] {})),
                    EValue.from(Tensor.fromBlob(new float[0], new long[] {1, 0, 8})));
        }));
        float[] f = {1f, 2f, 3f, 4f, 5f, 6f};
        byte[] u = {(byte) 200, 1, 0, (byte) 255};
        long[] l = {-5L, 1L << 40, 3L};
        HostTensor[] out = p.execute("mix", new HostTensor[] {
            HostTensor.floats(f, 2, 3), HostTensor.bytes(u, 1, 1, 4), HostTensor.longs(l, 3), HostTensor.longs(new long[] {9}),
        });
        f[0] = 99f; // the tensors the program got are copies (Tensor.fromBlob copies)
        u[0] = 9;
        l[0] = 99L;

        assertEquals(4, got.size());
        assertSame(DType.FLOAT, got.get(0).dtype());
        assertArrayEquals(new long[] {2, 3}, got.get(0).shape());
        assertArrayEquals(new float[] {1f, 2f, 3f, 4f, 5f, 6f}, got.get(0).getDataAsFloatArray(), 0f);
        assertSame(DType.UINT8, got.get(1).dtype());
        assertArrayEquals(new long[] {1, 1, 4}, got.get(1).shape());
        assertArrayEquals(new byte[] {(byte) 200, 1, 0, (byte) 255}, got.get(1).getDataAsUnsignedByteArray());
        assertSame(DType.INT64, got.get(2).dtype());
        assertArrayEquals(new long[] {3}, got.get(2).shape());
        assertArrayEquals(new long[] {-5L, 1L << 40, 3L}, got.get(2).getDataAsLongArray());
        assertArrayEquals(new long[0], got.get(3).shape());
        assertArrayEquals(new long[] {9}, got.get(3).getDataAsLongArray());

        assertEquals(5, out.length);
        assertEquals(HostTensor.FLOAT32, out[0].dtype);
        assertArrayEquals(new long[] {3, 1, 2}, out[0].shape);
        assertArrayEquals(new float[] {0.5f, -1f, 3.25f, 1e-7f, -0f, 7f}, out[0].f, 0f);
        assertEquals(HostTensor.UINT8, out[1].dtype);
        assertArrayEquals(new long[] {2, 2}, out[1].shape);
        assertArrayEquals(new byte[] {0, 127, (byte) 128, (byte) 255}, out[1].u8);
        assertEquals(HostTensor.INT64, out[2].dtype);
        assertArrayEquals(new long[] {1, 4}, out[2].shape);
        assertArrayEquals(new long[] {Long.MIN_VALUE, -1, 0, Long.MAX_VALUE}, out[2].i64);
        assertEquals("int64[]", out[3].describe());
        assertArrayEquals(new long[] {42}, out[3].i64);
        assertEquals("float32[1, 0, 8]", out[4].describe());
        assertEquals(0, out[4].numel());
    }

    @Test
    public void directTensorsReachTheProgramWithoutACopy() throws Exception {
        final List<Tensor> got = new ArrayList<Tensor>();
        ModuleProgram p = load(new Module.Methods().on("step", in -> {
            for (EValue v : in) {
                got.add(v.toTensor());
            }
            ((java.nio.FloatBuffer) in[0].toTensor().getRawDataBuffer()).put(1, -2.5f); // the program writes its input
            ((java.nio.ByteBuffer) in[1].toTensor().getRawDataBuffer()).put(2, (byte) 201);
            return outputs();
        }));
        java.nio.ByteBuffer keys = HostTensor.allocate(4 * 6);
        keys.asFloatBuffer().put(new float[] {1f, 2f, 3f, 4f, 5f, 6f});
        java.nio.ByteBuffer codes = HostTensor.allocate(4);
        codes.put(new byte[] {7, 8, 9, (byte) 250});
        HostTensor k = HostTensor.direct(HostTensor.FLOAT32, keys, 1, 2, 3);
        HostTensor c = HostTensor.direct(HostTensor.UINT8, codes, 2, 2);
        p.execute("step", new HostTensor[] {k, c});

        assertSame(DType.FLOAT, got.get(0).dtype());
        assertArrayEquals(new long[] {1, 2, 3}, got.get(0).shape());
        assertSame(DType.UINT8, got.get(1).dtype());
        // the program's tensors are the caller's memory: its writes are in the caller's buffers
        assertArrayEquals(new float[] {1f, -2.5f, 3f, 4f, 5f, 6f}, k.floatData(), 0f);
        assertArrayEquals(new byte[] {7, 8, (byte) 201, (byte) 250}, c.byteData());
        keys.putFloat(0, 42f); // and the caller's later writes are in the program's tensors
        assertEquals(42f, got.get(0).getDataAsFloatArray()[0], 0f);
        // the caller's buffers are never moved (a view is handed over), whatever the program reads
        assertEquals(0, keys.position());
        assertEquals(4, codes.position());
    }

    @Test
    public void aUint16OutputIsRefusedNativelyAndSaidAsWhatToDo() throws Exception {
        ModuleProgram p = load(new Module.Methods().on("decode",
                in -> outputs(Module.nativeOutput(6, 1, 384), Module.nativeOutput(27, 1, 8, 1, 32))));
        String line = oneLineOf(() -> p.execute("decode", new HostTensor[] {HostTensor.floats(new float[] {1f}, 1)}));
        assertEquals("decode failed (ExecuTorch error 0x12): an output is uint16 (ScalarType 27): " + KV_HINT, line);
    }

    @Test
    public void sixteenBitAndOtherOutputsAreRefusedByIndex() throws Exception {
        ModuleProgram p = load(new Module.Methods()
                .on("int16", in -> outputs(Module.nativeOutput(6, 1, 2), Module.nativeOutput(2, 1, 2)))
                .on("bits16", in -> outputs(Module.nativeOutput(22, 4)))
                .on("half", in -> outputs(Module.nativeOutput(5, 2, 2)))
                .on("bool", in -> outputs(Module.nativeOutput(0, 1), Module.nativeOutput(4, 1), Module.nativeOutput(11, 3)))
                .on("scalar", in -> outputs(EValue.from(3L))));
        HostTensor[] none = new HostTensor[0];
        assertEquals("int16 failed: output 1 is DType.INT16: " + KV_HINT, oneLineOf(() -> p.execute("int16", one())));
        assertEquals("bits16 failed: output 0 is DType.BITS16: " + KV_HINT, oneLineOf(() -> p.execute("bits16", one())));
        assertEquals("half failed: output 0 is DType.HALF: the app reads float32, uint8 and int64 tensors only; "
                + "re-export the program", oneLineOf(() -> p.execute("half", one())));
        assertEquals("bool failed: output 2 is DType.BOOL: the app reads float32, uint8 and int64 tensors only; "
                + "re-export the program", oneLineOf(() -> p.execute("bool", one())));
        assertEquals("scalar failed: output 0 is not a tensor", oneLineOf(() -> p.execute("scalar", none)));
        // upstream would read the HALF tensor as floats: only ModuleProgram's dtype check refuses it
        assertEquals(4, Module.nativeOutput(5, 2, 2).toTensor().getDataAsFloatArray().length);
    }

    private static HostTensor[] one() {
        return new HostTensor[] {HostTensor.longs(new long[] {1}, 1, 1)};
    }

    @Test
    public void aMissingFileOrOneThatIsNoProgramIsOneLine() throws Exception {
        final File missing = new File(tmp.getRoot(), "absent/model.pte");
        assertEquals("load failed: Cannot load model path: path does not exist: " + missing.getAbsolutePath(),
                oneLineOf(() -> ModuleProgram.load(missing)));
        assertEquals("load failed: Cannot load model path: path is not a file: " + tmp.getRoot().getAbsolutePath(),
                oneLineOf(() -> ModuleProgram.load(tmp.getRoot())));
        final File junk = tmp.newFile("junk.pte");
        assertEquals("load failed (ExecuTorch error 0x12): Invalid argument: Cannot get load module [Native Error: 0x23]",
                oneLineOf(() -> ModuleProgram.load(junk)));
        assertTrue(Module.loads.isEmpty());
    }

    @Test
    public void anUnknownMethodIsTheNativeInvalidArgument() throws Exception {
        ModuleProgram p = load(new Module.Methods().constant("get_n_layers", EValue.from(4L)));
        assertEquals("decode failed (ExecuTorch error 0x12): Invalid argument: Execution failed for method: decode",
                oneLineOf(() -> p.execute("decode", one())));
        assertEquals("get_nope failed (ExecuTorch error 0x12): Invalid argument: Cannot get method names "
                + "[Native Error: 0x12]", oneLineOf(() -> p.constant("get_nope")));
        try {
            p.constant("get_nope");
            fail("an unknown constant method ran");
        } catch (RunnerException e) {
            assertEquals(0x12, e.code);
            assertEquals("get_nope", e.call);
        }
    }

    @Test
    public void aFailingMethodKeepsTheNativeCode() throws Exception {
        ModuleProgram p = load(new Module.Methods().on("prefill", in -> {
            throw Module.nativeError(0x01, "Execution failed for method: prefill");
        }));
        assertEquals("prefill failed (ExecuTorch error 0x01): Internal error: Execution failed for method: prefill",
                oneLineOf(() -> p.execute("prefill", one())));
    }

    @Test
    public void constantsAreLongsAndDoublesAndAListIsSeveralValues() throws Exception {
        ModuleProgram p = load(new Module.Methods()
                .constant("get_n_layers", EValue.from(4L))
                .constant("get_rope_theta", EValue.from(10000.0))
                .constant("get_mask_value", EValue.from(-10000.0))
                .constant("get_eos_ids", EValue.from(2L), EValue.from(7L), EValue.from(-1L))
                .constant("get_none")
                .constant("get_flag", EValue.from(true))
                .constant("get_table", EValue.from(1L), EValue.from(Tensor.fromBlob(new long[] {1}, new long[] {1}))));
        Object[] layers = p.constant("get_n_layers");
        assertEquals(1, layers.length);
        assertEquals(Long.class, layers[0].getClass());
        assertEquals(Long.valueOf(4), layers[0]);
        Object[] theta = p.constant("get_rope_theta");
        assertEquals(Double.class, theta[0].getClass());
        assertEquals(Double.valueOf(10000.0), theta[0]);
        assertArrayEquals(new Object[] {Double.valueOf(-10000.0)}, p.constant("get_mask_value"));
        assertArrayEquals(new Object[] {Long.valueOf(2), Long.valueOf(7), Long.valueOf(-1)}, p.constant("get_eos_ids"));
        assertEquals(0, p.constant("get_none").length);
        assertEquals("get_flag failed: output 0 is neither an int nor a float", oneLineOf(() -> p.constant("get_flag")));
        assertEquals("get_table failed: output 1 is neither an int nor a float", oneLineOf(() -> p.constant("get_table")));
    }

    @Test
    public void hasMethodAsksTheModulesMethods() throws Exception {
        ModuleProgram p = load(new Module.Methods().constant("get_n_layers", EValue.from(4L)).on("decode", in -> in));
        assertTrue(p.hasMethod("decode"));
        assertTrue(p.hasMethod("get_n_layers"));
        assertFalse(p.hasMethod("get_rope_original_context"));
        p.close();
        assertEquals("getMethods failed: Module has been destroyed", oneLineOf(() -> p.hasMethod("decode")));
        assertEquals("decode failed: Module has been destroyed", oneLineOf(() -> p.execute("decode", one())));
        p.close(); // a second close is a no-op, as upstream's destroy()
    }

    /** A program whose "decode" blocks until released; destroy() refusals are counted. */
    private static final class Blocking extends Module.Methods {
        final CountDownLatch entered = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);
        final CountDownLatch returned = new CountDownLatch(1);
        final AtomicInteger refused = new AtomicInteger();
        volatile boolean releaseOnRefusal;

        Blocking() {
            on("decode", in -> {
                entered.countDown();
                await(release);
                return outputs(EValue.from(Tensor.fromBlob(new float[] {1.5f}, new long[] {1, 1})));
            });
        }

        @Override
        public void destroyRefused() {
            refused.incrementAndGet();
            if (releaseOnRefusal) { // let the method end and wait until its call has returned
                release.countDown();
                await(returned);
            }
        }
    }

    static void await(CountDownLatch latch) {
        try {
            assertTrue("a latch was not reached", latch.await(WAIT_S, TimeUnit.SECONDS));
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    /** Runs decode on another thread; the returned thread has stored the outputs or the error when it ends. */
    private static Thread decodeInBackground(final ModuleProgram p, final Blocking b,
            final AtomicReference<HostTensor[]> out, final AtomicReference<Throwable> err) {
        Thread t = new Thread(() -> {
            try {
                out.set(p.execute("decode", one()));
            } catch (Throwable e) {
                err.set(e);
            } finally {
                b.returned.countDown();
            }
        });
        t.start();
        return t;
    }

    @Test
    public void closeWaitsForTheRunningMethodThenDestroys() throws Exception {
        Blocking b = new Blocking();
        b.releaseOnRefusal = true;
        ModuleProgram p = load(b);
        AtomicReference<HostTensor[]> out = new AtomicReference<HostTensor[]>();
        AtomicReference<Throwable> err = new AtomicReference<Throwable>();
        Thread t = decodeInBackground(p, b, out, err);
        await(b.entered);
        p.close(); // refused once (the decode holds the module), the decode ends, the retry destroys
        t.join(TimeUnit.SECONDS.toMillis(WAIT_S));
        assertFalse(t.isAlive());
        assertEquals(1, b.refused.get());
        assertNull(err.get());
        assertArrayEquals(new float[] {1.5f}, out.get()[0].f, 0f);
        assertEquals("decode failed: Module has been destroyed", oneLineOf(() -> p.execute("decode", one())));
    }

    @Test
    public void closeGivesUpOnAMethodThatDoesNotEndAndLeavesTheModuleAlive() throws Exception {
        Blocking b = new Blocking();
        ModuleProgram p = load(b);
        AtomicReference<HostTensor[]> out = new AtomicReference<HostTensor[]>();
        AtomicReference<Throwable> err = new AtomicReference<Throwable>();
        Thread t = decodeInBackground(p, b, out, err);
        await(b.entered);
        p.close(); // every destroy() is refused: close returns after its tries, the module left to its finalizer
        assertTrue(String.valueOf(b.refused.get()), b.refused.get() > 1);
        b.release.countDown();
        t.join(TimeUnit.SECONDS.toMillis(WAIT_S));
        assertFalse(t.isAlive());
        assertNull(err.get());
        assertArrayEquals(new float[] {1.5f}, out.get()[0].f, 0f);
        assertTrue(p.hasMethod("decode"));
    }

    /** The doubles themselves, where ModuleProgram relies on upstream's behaviour. */
    @Test
    public void theDoublesFailAsUpstream() throws Exception {
        Tensor u8 = Tensor.fromBlobUnsigned(new byte[] {1, 2}, new long[] {2});
        try {
            u8.getDataAsFloatArray();
            fail("a uint8 tensor read as floats");
        } catch (IllegalStateException e) {
            assertEquals("Tensor of type Tensor_uint8 cannot return data as float array.", e.getMessage());
        }
        try {
            Tensor.fromBlob(new float[] {1f, 2f, 3f}, new long[] {2, 2});
            fail("3 floats filled a 2x2 shape");
        } catch (IllegalArgumentException e) {
            assertEquals("Inconsistent data capacity:3 and shape number elements:4 shape:[2, 2]", e.getMessage());
        }
        try {
            Tensor.fromBlob(new long[0], new long[] {-1});
            fail("a negative dimension");
        } catch (IllegalArgumentException e) {
            assertEquals("Shape elements must be non negative", e.getMessage());
        }
        long[] shape = {2};
        Tensor t = Tensor.fromBlob(new long[] {1, 2}, shape);
        shape[0] = 5;
        t.shape()[0] = 7;
        assertArrayEquals(new long[] {2}, t.shape());
        try {
            EValue.from(u8).toInt();
            fail("a tensor read as an int");
        } catch (IllegalStateException e) {
            assertEquals("Expected EValue type Int, actual type Tensor", e.getMessage());
        }
        assertTrue(EValue.from(3L).isInt() && EValue.from(0.5).isDouble() && EValue.from(u8).isTensor());
        assertSame(DType.INT16, Module.nativeOutput(2, 1).toTensor().dtype());
    }
}
