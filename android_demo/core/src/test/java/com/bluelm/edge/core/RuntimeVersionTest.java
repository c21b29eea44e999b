package com.bluelm.edge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** RuntimeVersion on tests/vectors/runtime_version.json (the same cases as the Python contract). */
public class RuntimeVersionTest {

    @Test
    public void parsesReleasesLikePython() throws Exception {
        JSONArray release = Vectors.load("runtime_version.json").getJSONArray("release");
        for (int i = 0; i < release.length(); i++) {
            JSONArray c = release.getJSONArray(i);
            JSONArray want = c.getJSONArray(1);
            int[] expected = {want.getInt(0), want.getInt(1), want.getInt(2)};
            assertArrayEquals(c.getString(0), expected, RuntimeVersion.release(c.getString(0)));
        }
        JSONArray bad = Vectors.load("runtime_version.json").getJSONArray("not_versions");
        for (int i = 0; i < bad.length(); i++) {
            try {
                RuntimeVersion.release(bad.getString(i));
                fail("'" + bad.getString(i) + "' parsed as a version");
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage().contains("is not a version"));
            }
        }
    }

    @Test
    public void refusesExactlyLikePython() throws Exception {
        JSONArray cases = Vectors.load("runtime_version.json").getJSONArray("cases");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            JSONObject rt = c.optJSONObject("runtime");
            String exporter = rt == null || rt.isNull("executorch") ? null : rt.getString("executorch");
            String needed = rt == null || rt.isNull("min_runtime") ? null : rt.getString("min_runtime");
            String want = c.isNull("refusal") ? null : c.getString("refusal");
            assertEquals("case " + c.getString("name"), want,
                    RuntimeVersion.refusal(c.getString("bundle"), exporter, needed, c.getString("carried")));
        }
    }

    @Test
    public void refusesRunnersLikePython() throws Exception {
        JSONArray cases = Vectors.load("runtime_version.json").getJSONArray("runner_cases");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            String want = c.isNull("refusal") ? null : c.getString("refusal");
            String runner = c.isNull("runner") ? null : c.getString("runner");
            String contract = c.isNull("graph_contract") ? null : c.getString("graph_contract");
            String io = c.isNull("graph_io") ? null : c.getString("graph_io");
            assertEquals("runner case " + c.getString("name"), want,
                    RuntimeVersion.runnerRefusal(c.getString("bundle"), runner, contract, io));
        }
        String json = BundleManifestTest.manifest("1", BundleManifestTest.ABC);
        BundleManifest npu = BundleManifest.parse(json.substring(0, json.length() - 1)
                + ",\"runner\":\"static-kv\",\"graph_contract\":\"bluelm-static-kv/2\",\"graph_io\":\"kv\"}");
        assertEquals("static-kv", npu.runner);
        assertEquals("bluelm-static-kv/2", npu.graphContract);
        assertEquals("kv", npu.graphIo);
        assertEquals(null, BundleManifest.parse(json).runner);
    }

    @Test
    public void manifestCarriesTheRuntimeSection() throws Exception {
        String json = BundleManifestTest.manifest("1", BundleManifestTest.ABC);
        String withRuntime = json.substring(0, json.length() - 1)
                + ",\"runtime\":{\"executorch\":\"1.6.0\",\"min_runtime\":\"1.6.0\"}}";
        BundleManifest m = BundleManifest.parse(withRuntime);
        assertEquals("1.6.0", m.runtimeExecutorch);
        assertEquals("1.6.0", m.minRuntime);
        String line = RuntimeVersion.refusal(m.bundleId, m.runtimeExecutorch, m.minRuntime, "1.5.1");
        assertTrue(line, line.startsWith("bundle b1 needs ExecuTorch runtime 1.6.0 or newer"));
        assertEquals(null, BundleManifest.parse(json).minRuntime);
    }
}
