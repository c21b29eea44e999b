package com.bluelm.edge.core;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Whether the ExecuTorch runtime this app carries may load a bundle: the program's
 * {@code runtime.min_runtime} must not be newer than the AAR's version. Mirrors
 * {@code bluelm_edge.contract.release/runtime_refusal}; both are checked on
 * tests/vectors/runtime_version.json, messages included.
 */
public final class RuntimeVersion {

    private static final Pattern VERSION = Pattern.compile("^(\\d+)\\.(\\d+)(?:\\.(\\d+))?(?:[.+\\-a-zA-Z].*)?$");

    private RuntimeVersion() {
    }

    /** {major, minor, patch} of "1.5.1", "1.5", "1.5.1+cpu", "1.6.0rc1", "1.6.0.dev20260801". */
    public static int[] release(String version) {
        Matcher m = VERSION.matcher(version.trim());
        if (!m.matches()) {
            throw new IllegalArgumentException("'" + version + "' is not a version (MAJOR.MINOR[.PATCH])");
        }
        return new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)),
            m.group(3) == null ? 0 : Integer.parseInt(m.group(3))};
    }

    /** Negative, zero or positive as {@code a} is older than, the same release as, or newer than {@code b}. */
    public static int compare(String a, String b) {
        int[] x = release(a);
        int[] y = release(b);
        for (int i = 0; i < 3; i++) {
            if (x[i] != y[i]) {
                return x[i] < y[i] ? -1 : 1;
            }
        }
        return 0;
    }

    /**
     * Null when a runtime {@code carried} may load the bundle, else the one line the app shows.
     *
     * @param exporter the manifest's runtime.executorch (may be null)
     * @param needed the manifest's runtime.min_runtime (null in bundles that predate it)
     */
    public static String refusal(String bundle, String exporter, String needed, String carried) {
        if (needed == null) {
            return "bundle " + bundle + " does not record the ExecuTorch runtime it needs (exported before "
                    + "bluelm-edge recorded it); re-export it";
        }
        boolean tooNew;
        try {
            tooNew = compare(needed, carried) > 0;
        } catch (IllegalArgumentException e) {
            return "bundle " + bundle + " records ExecuTorch runtime '" + needed + "', which is not a version; "
                    + "re-export it";
        }
        if (!tooNew) {
            return null;
        }
        return "bundle " + bundle + " needs ExecuTorch runtime " + needed + " or newer (exported with executorch "
                + (exporter == null ? needed : exporter) + "); this app carries " + carried + ": rebuild the app "
                + "with executorch " + needed + " in android_demo/runtime.json, or re-export with executorch=="
                + carried;
    }

    /** The manifest {@code runner} of the static NPU program (contract.NPU_RUNNER). */
    public static final String STATIC_KV = "static-kv";
    /** The static NPU graph contract this app's {@link StaticKvRunner} drives. */
    public static final String STATIC_KV_CONTRACT = "bluelm-static-kv/2";

    /**
     * Null when this app can drive the bundle's program (no {@code runner}: an LlmModule program; a
     * static-kv program of {@link #STATIC_KV_CONTRACT} whose graph I/O is kv or float: uint8 and fp32
     * tensors, what ExecuTorch's Java API passes), else the one line it shows; mirrors
     * {@code contract.runner_refusal}.
     */
    public static String runnerRefusal(String bundle, String runner, String graphContract, String graphIo) {
        if (runner == null) {
            return null;
        }
        if (!runner.equals(STATIC_KV)) {
            return "bundle " + bundle + " names runner '" + runner + "', which this app does not know; re-export it";
        }
        if (!STATIC_KV_CONTRACT.equals(graphContract)) {
            return "bundle " + bundle + " is a static-kv program of graph contract "
                    + (graphContract == null ? "(none)" : graphContract) + "; this app drives " + STATIC_KV_CONTRACT
                    + ": re-export it";
        }
        if ("full".equals(graphIo)) {
            return "bundle " + bundle + " passes 16-bit integers across the NPU boundary (--graph-io full), which "
                    + "ExecuTorch's Java API cannot: re-export with --graph-io kv for the app, or deploy with "
                    + "--target runner for a native runner";
        }
        if (!"kv".equals(graphIo) && !"float".equals(graphIo)) {
            return "bundle " + bundle + " does not say which graph I/O its program takes (graph_io); re-export it";
        }
        return null;
    }
}
