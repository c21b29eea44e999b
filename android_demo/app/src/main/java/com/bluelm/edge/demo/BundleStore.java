package com.bluelm.edge.demo;

import android.content.Context;
import android.content.res.AssetManager;
import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.RuntimeVersion;
import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Where bundles live: {@code <external files>/bundles/<bundle_id>/} (pushed by
 * {@code bluelm-edge deploy}; dot-folders are partial pushes), or embedded in the APK's
 * {@code assets/bundle/} by {@code bluelm-edge package --embed-bundle}, copied out on first start.
 */
final class BundleStore {

    static final String BUILD_INFO_ASSET = "bluelm-build.json";
    private final Context context;

    BundleStore(Context context) {
        this.context = context;
    }

    File root() {
        return new File(context.getExternalFilesDir(null), "bundles");
    }

    File dir(String bundleId) {
        return new File(root(), bundleId);
    }

    /** Bundle ids with a readable manifest, sorted. */
    List<String> list() {
        List<String> out = new ArrayList<String>();
        String[] names = root().list();
        if (names == null) {
            return out;
        }
        Arrays.sort(names);
        for (String n : names) {
            if (!n.startsWith(".") && new File(new File(root(), n), "manifest.json").isFile()) {
                out.add(n);
            }
        }
        return out;
    }

    /** The bundle's manifest; refused when it needs a newer ExecuTorch runtime than this build carries,
     * or a runner other than LlmModule (a static-kv NPU program). */
    BundleManifest manifest(String bundleId) throws BundleManifest.ManifestException {
        BundleManifest m = BundleManifest.read(dir(bundleId));
        String refusal = RuntimeVersion.refusal(m.bundleId, m.runtimeExecutorch, m.minRuntime,
                BuildConfig.EXECUTORCH_VERSION);
        if (refusal == null) {
            refusal = RuntimeVersion.runnerRefusal(m.bundleId, m.runner, m.graphContract, m.graphIo);
        }
        if (refusal != null) {
            throw new BundleManifest.ManifestException(refusal);
        }
        return m;
    }

    /** Copy an embedded bundle out of the APK (once); returns its id or null if none is embedded. */
    String extractEmbedded() throws IOException, BundleManifest.ManifestException {
        AssetManager assets = context.getAssets();
        String[] files = assets.list("bundle");
        if (files == null || files.length == 0) {
            return null;
        }
        BundleManifest m = BundleManifest.parse(new String(
                Files.readStream(assets.open("bundle/manifest.json")), "UTF-8"));
        File dir = dir(m.bundleId);
        if (new File(dir, "manifest.json").isFile()) {
            return m.bundleId;
        }
        for (BundleManifest.FileEntry f : m.files) {
            Files.copyAtomically(assets.open("bundle/" + f.path), new File(dir, f.path));
        }
        Files.copyAtomically(assets.open("bundle/manifest.json"), new File(dir, "manifest.json"));
        return m.bundleId;
    }

    /** The build note recorded by the offline build, or null for a Gradle build. */
    String buildNote() {
        try {
            String json = new String(Files.readStream(context.getAssets().open(BUILD_INFO_ASSET)), "UTF-8");
            return new org.json.JSONObject(json).optString("note", null);
        } catch (IOException e) {
            return null;
        } catch (org.json.JSONException e) {
            return null;
        }
    }
}
