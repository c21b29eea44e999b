package com.bluelm.edge.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.FileOutputStream;
import java.util.Collections;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** BundleManifest parsing and validation on the docs/contracts.md example, and sha256 checks. */
public class BundleManifestTest {

    @Rule
    public TemporaryFolder tmp = new TemporaryFolder();

    // sha256 of the 3 bytes "abc"
    static final String ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    static String manifest(String schema, String programSha) {
        return "{\"schema_version\":" + schema + ",\"bundle_id\":\"b1\",\"model_id\":\"bluelm-tiny\","
                + "\"backend\":\"xnnpack\",\"soc\":null,\"recipe\":\"xnnpack-8da4w\",\"lowered\":true,"
                + "\"program\":\"model.pte\",\"created_by\":\"bluelm-edge 0.1.0\","
                + "\"files\":[{\"path\":\"model.pte\",\"size\":3,\"sha256\":\"" + programSha + "\"}],"
                + "\"app\":{\"max_context\":512,\"vocab_size\":1024,\"eos_ids\":[2],"
                + "\"tokens\":{\"bos\":\"<s>\",\"eos\":\"</s>\",\"think_start\":\"<think>\",\"think_end\":\"</think>\"},"
                + "\"token_ids\":{\"bos\":1,\"eos\":2,\"think_start\":6,\"think_end\":7},"
                + "\"thinking\":{\"default_budget\":null,\"budget_message\":\"\\nTime is up. Answer:\\n\","
                + "\"wait_message\":\"Wait,\"},"
                + "\"image\":{\"tile_size\":64,\"max_tiles\":1,\"tokens_per_tile\":16,\"thumbnail\":true,"
                + "\"mean\":[0.5,0.5,0.5],\"std\":[0.5,0.5,0.5],\"vision_batch\":1}}}";
    }

    @Test
    public void parsesTheContractExample() throws Exception {
        BundleManifest m = BundleManifest.parse(manifest("1", ABC));
        assertEquals("b1", m.bundleId);
        assertEquals("xnnpack", m.backend);
        assertNull(m.soc);
        assertNull(m.defaultBudget);
        assertEquals(Collections.singletonList(Integer.valueOf(2)), m.eosIds);
        assertEquals("</think>", m.tokens.get("think_end"));
        assertEquals(Integer.valueOf(6), m.tokenIds.get("think_start"));
        assertEquals(64, m.tileSize);
        assertEquals(0.5f, m.std[2], 0f);
        assertEquals("\nTime is up. Answer:\n", m.budgetMessage);
    }

    @Test
    public void rejectsOtherSchemaVersions() throws Exception {
        try {
            BundleManifest.parse(manifest("2", ABC));
            fail("schema_version 2 accepted");
        } catch (BundleManifest.ManifestException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("schema_version 2"));
        }
    }

    @Test(expected = BundleManifest.ManifestException.class)
    public void rejectsBadSha() throws Exception {
        BundleManifest.parse(manifest("1", "xyz"));
    }

    /** A checkpoint family's manifest: its segments, tokens and thinking; without segments, one line why. */
    @Test
    public void familyManifestsCarryTheirFormat() throws Exception {
        org.json.JSONArray sets = Vectors.load("chat_engine_hub.json").getJSONArray("sets");
        BundleManifest qwen3 = BundleManifest.parse(sets.getJSONObject(0).getJSONObject("manifest").toString());
        assertTrue(qwen3.format instanceof TemplateSegments);
        assertTrue(qwen3.thinks);
        assertEquals("\n\n", qwen3.budgetSuffix);
        org.json.JSONObject smol = sets.getJSONObject(1).getJSONObject("manifest");
        BundleManifest smollm2 = BundleManifest.parse(smol.toString());
        assertTrue(!smollm2.thinks && smollm2.tokens.get("think_start") == null);
        org.json.JSONObject chat = smol.getJSONObject("app").getJSONObject("chat");
        chat.put("segments", org.json.JSONObject.NULL);
        chat.put("segments_problem", "the template changes user content in a way the app cannot mirror");
        try {
            BundleManifest.parse(smol.toString());
            fail("a template without segments accepted");
        } catch (BundleManifest.ManifestException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("cannot render llama's chat template (the template "
                    + "changes user content") && e.getMessage().indexOf('\n') < 0);
        }
    }

    @Test
    public void verifyFindsChangedFiles() throws Exception {
        File dir = tmp.newFolder("bundle");
        write(new File(dir, "model.pte"), "abc");
        write(new File(dir, "manifest.json"), manifest("1", ABC));
        BundleManifest m = BundleManifest.read(dir);
        assertEquals(ABC, BundleManifest.sha256(new File(dir, "model.pte")));
        assertTrue(m.verify(dir).isEmpty());
        write(new File(dir, "model.pte"), "abd");
        assertEquals(Collections.singletonList("model.pte"), m.verify(dir));
    }

    private static void write(File f, String s) throws Exception {
        FileOutputStream out = new FileOutputStream(f);
        try {
            out.write(s.getBytes("UTF-8"));
        } finally {
            out.close();
        }
    }
}
