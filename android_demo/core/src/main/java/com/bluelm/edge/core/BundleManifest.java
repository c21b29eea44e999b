package com.bluelm.edge.core;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * A bundle's {@code manifest.json} (schema_version 1, docs/contracts.md), read with Android's
 * {@code org.json}: what the app needs to load the program, render the chat and cap thinking.
 */
public final class BundleManifest {

    public static final int SCHEMA_VERSION = 1;
    private static final String[] BACKENDS = {"xnnpack", "qnn", "mediatek"};

    /** One file of the bundle, as listed in the manifest. */
    public static final class FileEntry {
        public final String path;
        public final long size;
        public final String sha256;

        FileEntry(String path, long size, String sha256) {
            this.path = path;
            this.size = size;
            this.sha256 = sha256;
        }
    }

    /** A manifest that cannot be used; the message is one line for the user. */
    public static final class ManifestException extends Exception {
        public ManifestException(String message) {
            super(message);
        }
    }

    public int schemaVersion;
    public String bundleId;
    public String modelId;
    public String backend;
    public String soc;
    public String recipe;
    public boolean lowered;
    public String program;
    public List<FileEntry> files = new ArrayList<FileEntry>();
    public int maxContext;
    public int vocabSize;
    public List<Integer> eosIds = new ArrayList<Integer>();
    public Map<String, String> tokens = new HashMap<String, String>();
    public Map<String, Integer> tokenIds = new HashMap<String, Integer>();
    public Integer defaultBudget;
    public String budgetMessage;
    public String waitMessage;
    /** {@code app.thinking.budget_suffix}: forced after {@code </think>} when the budget runs out (Qwen3: "\n\n"). */
    public String budgetSuffix = "";
    /** {@code app.chat.family}: the model family whose format the bundle's chat uses. */
    public String family = "bluelm";
    /** The family thinks (its format has a thinking block and the bundle names its tags). */
    public boolean thinks;
    /** How the chat is rendered: BlueLM's template or the checkpoint's, cut into segments. */
    public PromptFormat format;
    public int tileSize;
    public int maxTiles;
    public int tokensPerTile;
    public boolean thumbnail;
    public float[] mean = new float[3];
    public float[] std = new float[3];
    /** {@code runtime.executorch}: the exporter's ExecuTorch version (null in older bundles). */
    public String runtimeExecutorch;
    /** {@code runner}: null for an LlmModule program, "static-kv" for the NPU program (RuntimeVersion.runnerRefusal). */
    public String runner;
    /** {@code graph_contract} of a static-kv program (null otherwise). */
    public String graphContract;
    /** {@code graph_io} of a static-kv bundle: kv, full or float (what crosses the NPU boundary as integers). */
    public String graphIo;
    /** {@code runtime.min_runtime}: the oldest runtime that may load the program (see RuntimeVersion). */
    public String minRuntime;

    /** Parse and validate a manifest from its JSON text. */
    public static BundleManifest parse(String json) throws ManifestException {
        try {
            return fromJson(new JSONObject(json));
        } catch (JSONException e) {
            throw new ManifestException("manifest.json is not valid: " + e.getMessage());
        }
    }

    /** Read {@code dir/manifest.json}. */
    public static BundleManifest read(File dir) throws ManifestException {
        File f = new File(dir, "manifest.json");
        try {
            return parse(new String(readAll(f), "UTF-8"));
        } catch (IOException e) {
            throw new ManifestException(f + ": cannot read (" + e.getMessage() + "); push the bundle again");
        }
    }

    private static BundleManifest fromJson(JSONObject o) throws JSONException, ManifestException {
        BundleManifest m = new BundleManifest();
        m.schemaVersion = o.getInt("schema_version");
        if (m.schemaVersion != SCHEMA_VERSION) {
            throw new ManifestException("manifest schema_version " + m.schemaVersion
                    + " is not supported (this app reads " + SCHEMA_VERSION + "); update the app or re-export");
        }
        m.bundleId = o.getString("bundle_id");
        m.modelId = o.getString("model_id");
        m.backend = o.getString("backend");
        m.soc = o.isNull("soc") ? null : o.getString("soc");
        m.recipe = o.getString("recipe");
        m.lowered = o.getBoolean("lowered");
        m.program = o.getString("program");
        readFiles(m, o.getJSONArray("files"));
        readApp(m, o.getJSONObject("app"));
        m.runner = o.isNull("runner") ? null : o.optString("runner", null);
        m.graphContract = o.isNull("graph_contract") ? null : o.optString("graph_contract", null);
        m.graphIo = o.isNull("graph_io") ? null : o.optString("graph_io", null);
        JSONObject runtime = o.optJSONObject("runtime");
        if (runtime != null) {
            m.runtimeExecutorch = runtime.isNull("executorch") ? null : runtime.getString("executorch");
            m.minRuntime = runtime.isNull("min_runtime") ? null : runtime.getString("min_runtime");
        }
        m.validate();
        return m;
    }

    private static void readFiles(BundleManifest m, JSONArray arr) throws JSONException {
        for (int i = 0; i < arr.length(); i++) {
            JSONObject f = arr.getJSONObject(i);
            m.files.add(new FileEntry(f.getString("path"), f.getLong("size"), f.getString("sha256")));
        }
    }

    private static void readApp(BundleManifest m, JSONObject app) throws JSONException, ManifestException {
        m.maxContext = app.getInt("max_context");
        m.vocabSize = app.getInt("vocab_size");
        JSONArray eos = app.getJSONArray("eos_ids");
        for (int i = 0; i < eos.length(); i++) {
            m.eosIds.add(Integer.valueOf(eos.getInt(i)));
        }
        JSONObject tokens = app.getJSONObject("tokens");
        for (Iterator<?> it = tokens.keys(); it.hasNext();) {
            String k = (String) it.next();
            m.tokens.put(k, tokens.isNull(k) ? null : tokens.getString(k)); // null: the family has none
        }
        JSONObject ids = app.getJSONObject("token_ids");
        for (Iterator<?> it = ids.keys(); it.hasNext();) {
            String k = (String) it.next();
            m.tokenIds.put(k, Integer.valueOf(ids.getInt(k)));
        }
        JSONObject thinking = app.getJSONObject("thinking");
        m.defaultBudget = thinking.isNull("default_budget") ? null
                : Integer.valueOf(thinking.getInt("default_budget"));
        m.budgetMessage = thinking.getString("budget_message");
        m.waitMessage = thinking.getString("wait_message");
        m.budgetSuffix = thinking.optString("budget_suffix", "");
        readImage(m, app.getJSONObject("image"));
        readChat(m, app.optJSONObject("chat"));
    }

    /** {@code app.chat}: BlueLM's own format, or the checkpoint's template as segments (or why not). */
    private static void readChat(BundleManifest m, JSONObject chat) throws JSONException, ManifestException {
        boolean own = chat == null || chat.isNull("chat_template");
        m.family = chat == null ? "bluelm" : chat.optString("family", "bluelm");
        boolean declared = own || (chat.has("thinking") && !chat.isNull("thinking"));
        m.thinks = declared && m.tokens.get("think_start") != null && m.tokens.get("think_end") != null;
        if (own) {
            m.format = new ChatTemplate(m.tokens);
        } else if (chat.optJSONObject("segments") != null) {
            m.format = new TemplateSegments(chat.getJSONObject("segments"));
        } else {
            String why = chat.isNull("segments_problem") ? "the bundle carries no segments"
                    : chat.optString("segments_problem", "the bundle carries no segments");
            throw new ManifestException("the app cannot render " + m.family + "'s chat template (" + why
                    + "); chat with it on the host (bluelm-edge run)");
        }
    }

    private static void readImage(BundleManifest m, JSONObject img) throws JSONException {
        m.tileSize = img.getInt("tile_size");
        m.maxTiles = img.getInt("max_tiles");
        m.tokensPerTile = img.getInt("tokens_per_tile");
        m.thumbnail = img.getBoolean("thumbnail");
        JSONArray mean = img.getJSONArray("mean");
        JSONArray std = img.getJSONArray("std");
        for (int c = 0; c < 3; c++) {
            m.mean[c] = (float) mean.getDouble(c);
            m.std[c] = (float) std.getDouble(c);
        }
    }

    private void validate() throws ManifestException {
        boolean known = false;
        for (String b : BACKENDS) {
            known |= b.equals(backend);
        }
        require(known, "unknown backend '" + backend + "' (xnnpack, qnn or mediatek)");
        require(!files.isEmpty(), "lists no files; re-export the bundle");
        for (FileEntry f : files) {
            require(f.path.length() > 0 && !f.path.startsWith("/") && !f.path.contains(".."),
                    "file path '" + f.path + "' must be relative and inside the bundle");
            require(f.sha256.matches("[0-9a-f]{64}"), "file '" + f.path + "' has no valid sha256");
            require(f.size >= 0, "file '" + f.path + "' has a negative size");
            require(!f.path.equals("manifest.json"), "must not list itself");
        }
        require(!lowered || file(program) != null, "program '" + program + "' is not in files");
        require(tokens.get("eos") != null, "app.tokens needs eos");
        require(!(format instanceof ChatTemplate) || thinks, "app.tokens needs think_start and think_end");
        require(std[0] != 0 && std[1] != 0 && std[2] != 0, "app.image.std must not be 0");
    }

    private void require(boolean ok, String what) throws ManifestException {
        if (!ok) {
            throw new ManifestException("manifest of " + bundleId + ": " + what);
        }
    }

    /** The entry for {@code path}, or null. */
    public FileEntry file(String path) {
        for (FileEntry f : files) {
            if (f.path.equals(path)) {
                return f;
            }
        }
        return null;
    }

    /** Paths whose size or sha256 on disk differ from the manifest (empty when all match). */
    public List<String> verify(File dir) throws IOException {
        List<String> bad = new ArrayList<String>();
        for (FileEntry f : files) {
            File p = new File(dir, f.path);
            if (!p.isFile() || p.length() != f.size || !sha256(p).equals(f.sha256)) {
                bad.add(f.path);
            }
        }
        return Collections.unmodifiableList(bad);
    }

    /** Hex sha256 of a file. */
    public static String sha256(File file) throws IOException {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IOException("no SHA-256 on this platform");
        }
        InputStream in = new FileInputStream(file);
        try {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        } finally {
            in.close();
        }
        StringBuilder sb = new StringBuilder();
        for (byte b : md.digest()) {
            sb.append(String.format("%02x", b & 0xff));
        }
        return sb.toString();
    }

    static byte[] readAll(File f) throws IOException {
        InputStream in = new FileInputStream(f);
        try {
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } finally {
            in.close();
        }
    }
}
