package com.bluelm.edge.core;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.junit.Assume;

/** Loads the JSON vectors shared with the Python tests; the folder comes from -Dbluelm.vectors;
 * with -Dbluelm.vectors.strict=true a missing file fails instead of skipping. */
final class Vectors {

    private Vectors() {
    }

    static File dir() {
        String d = System.getProperty("bluelm.vectors", "../../tests/vectors");
        return new File(d);
    }

    /** The named vector file, or the test is skipped (with the reason) if it is not there. */
    static JSONObject load(String name) throws IOException, JSONException {
        File f = new File(dir(), name);
        if (Boolean.getBoolean("bluelm.vectors.strict")) {
            if (!f.isFile()) {
                throw new IOException("vector file " + f + " is missing");
            }
        } else {
            Assume.assumeTrue("vector file " + f + " does not exist yet", f.isFile());
        }
        return new JSONObject(new String(BundleManifest.readAll(f), "UTF-8"));
    }

    static List<Integer> ints(JSONArray arr) throws JSONException {
        List<Integer> out = new ArrayList<Integer>();
        for (int i = 0; i < arr.length(); i++) {
            out.add(Integer.valueOf(arr.getInt(i)));
        }
        return out;
    }

    static List<String> strings(JSONArray arr) throws JSONException {
        List<String> out = new ArrayList<String>();
        for (int i = 0; i < arr.length(); i++) {
            out.add(arr.getString(i));
        }
        return out;
    }
}
