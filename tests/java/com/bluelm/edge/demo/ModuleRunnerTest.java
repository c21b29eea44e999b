package com.bluelm.edge.demo;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.ChatEngine;
import com.bluelm.edge.core.GenerationStats;
import com.bluelm.edge.core.RunnerException;
import java.io.File;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.Before;
import org.junit.Test;
import org.pytorch.executorch.ExecutorchRuntimeException;
import org.pytorch.executorch.extension.llm.LlmModule;

/**
 * The app's adapter (ModuleRunner) over a test double of ExecuTorch 1.5's LlmModule: what the
 * engine sees when the native calls fail, stream, or are still running at close. The bundle is
 * -Dbluelm.bundle (an exported tiny bundle: manifest.json + tokenizer.json).
 */
public class ModuleRunnerTest {

    private File dir;
    private BundleManifest manifest;

    @Before
    public void setUp() throws Exception {
        dir = new File(System.getProperty("bluelm.bundle"));
        manifest = BundleManifest.read(dir);
        LlmModule.script = new LlmModule.Script();
    }

    private static final class Pieces implements ChatEngine.Listener {
        final List<String> got = new ArrayList<String>();

        @Override
        public void onPiece(String text, boolean thinking, boolean forced) {
            got.add(text);
        }
    }

    @Test
    public void aFailedLoadKeepsTheRunnersCode() throws Exception {
        LlmModule.script.onLoad = new ExecutorchRuntimeException(0x23, "Failed to load model");
        ChatEngine engine = ModuleRunner.engine(dir, manifest);
        try {
            engine.load();
            fail("load did not fail");
        } catch (RunnerException e) {
            assertEquals(0x23, e.code);
            assertEquals("load failed (ExecuTorch error 0x23): Failed to load model", e.oneLine());
        }
    }

    @Test
    public void aMissingFileAtCreateIsOneLine() throws Exception {
        LlmModule.script.onCreate = new IllegalArgumentException("Cannot load model path /x/model.pte");
        try {
            ModuleRunner.engine(dir, manifest);
            fail("create did not fail");
        } catch (RunnerException e) {
            assertEquals(RunnerException.UNKNOWN, e.code);
            assertTrue(e.oneLine(), e.oneLine().startsWith("create failed") && e.oneLine().contains("/x/model.pte"));
        }
    }

    @Test
    public void piecesStreamAndTheTemperatureReachesGenerate() throws Exception {
        LlmModule.script.pieces = java.util.Arrays.asList("o", " ", "</s>");
        ChatEngine engine = ModuleRunner.engine(dir, manifest);
        engine.load();
        engine.setTemperature(0.7f);
        Pieces shown = new Pieces();
        GenerationStats s = engine.answer("Hi", Collections.<List<float[]>>emptyList(), Integer.valueOf(0), shown);
        assertEquals(java.util.Arrays.asList("o", " "), shown.got);
        assertEquals("eos", s.finish);
        assertEquals(0.7f, LlmModule.script.temperature, 0f);
        String gen = LlmModule.script.calls.get(LlmModule.script.calls.size() - 1);
        assertTrue(gen, gen.startsWith("generate ") && gen.endsWith(" " + manifest.maxContext + " echo=false bos=0 eos=0"));
    }

    @Test
    public void aFailedGenerateIsOneErrorWithItsCode() throws Exception {
        LlmModule.script.generateErrorCode = 0x12;
        ChatEngine engine = ModuleRunner.engine(dir, manifest);
        engine.load();
        GenerationStats s = engine.answer("Hi", Collections.<List<float[]>>emptyList(), Integer.valueOf(0), new Pieces());
        assertEquals("error", s.finish);
        assertEquals(0x12, s.errorCode);
        assertEquals("generate failed (ExecuTorch error 0x12): Invalid argument: Failed to generate", s.error);
    }

    @Test
    public void closeWaitsForARunningCallAndStopsIt() throws Exception {
        LlmModule.script.closeBusy = 2;
        ChatEngine engine = ModuleRunner.engine(dir, manifest);
        engine.close();
        assertEquals("close", LlmModule.script.calls.get(LlmModule.script.calls.size() - 1));
        assertEquals(2, LlmModule.script.stops);
    }
}
