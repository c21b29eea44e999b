package com.bluelm.edge.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** Tiling against tests/vectors/tiling.json (the same cases as the Python imaging tests). */
public class TilingTest {

    @Test
    public void gridsMatchVectors() throws Exception {
        JSONObject v = Vectors.load("tiling.json");
        JSONArray cases = v.getJSONArray("cases");
        assertTrue("no cases in tiling.json", cases.length() > 0);
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            int tile = c.optInt("tile_size", v.optInt("tile_size", 378));
            int[] grid = Tiling.chooseGrid(c.getInt("width"), c.getInt("height"), c.getInt("max_tiles"), tile);
            String name = c.optString("name", c.getInt("width") + "x" + c.getInt("height"));
            JSONArray want = c.getJSONArray("grid");
            assertArrayEquals(name + ": grid", new int[] {want.getInt(0), want.getInt(1)}, grid);
            assertEquals(name + ": tiles", c.getInt("tiles"), Tiling.tileCount(grid));
        }
    }

    @Test
    public void normaliseMatchesVectors() throws Exception {
        JSONObject n = Vectors.load("tiling.json").getJSONObject("normalise");
        JSONArray mean = n.getJSONArray("mean");
        JSONArray std = n.getJSONArray("std");
        JSONArray in = n.getJSONArray("pixel_in");
        JSONArray out = n.getJSONArray("pixel_out");
        for (int c = 0; c < 3; c++) {
            float got = Tiling.normalise(in.getInt(c), (float) mean.getDouble(c), (float) std.getDouble(c));
            assertEquals("channel " + c, out.getDouble(c), got, 1e-5);
        }
    }

    @Test
    public void chwLayoutSplitsChannels() {
        int[] argb = {0xff102030, 0xff405060};
        float[] chw = Tiling.toChw(argb, 2, 1, new float[] {0f, 0f, 0f}, new float[] {1f, 1f, 1f});
        float[] want = {0x10 / 255f, 0x40 / 255f, 0x20 / 255f, 0x50 / 255f, 0x30 / 255f, 0x60 / 255f};
        assertArrayEquals(want, chw, 1e-7f);
    }
}
