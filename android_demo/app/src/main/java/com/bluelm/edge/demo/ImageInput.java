package com.bluelm.edge.demo;

import android.graphics.Bitmap;
import com.bluelm.edge.core.BundleManifest;
import com.bluelm.edge.core.Tiling;
import java.util.ArrayList;
import java.util.List;

/** A picked or captured image cut into AnyRes tiles (thumbnail first) and normalised to CHW floats. */
final class ImageInput {

    private ImageInput() {
    }

    /** The tiles {@link #tiles} will cut from the bitmap (grid + thumbnail). */
    static int tileCount(Bitmap bitmap, BundleManifest m) {
        return Tiling.tileCount(Tiling.chooseGrid(bitmap.getWidth(), bitmap.getHeight(), m.maxTiles, m.tileSize));
    }

    static List<float[]> tiles(Bitmap bitmap, BundleManifest m) {
        List<float[]> out = new ArrayList<float[]>();
        if (bitmap == null) {
            return out;
        }
        int[] grid = Tiling.chooseGrid(bitmap.getWidth(), bitmap.getHeight(), m.maxTiles, m.tileSize);
        int s = m.tileSize;
        if (Tiling.tileCount(grid) > grid[0] * grid[1]) { // the global thumbnail goes first
            out.add(chw(Bitmap.createScaledBitmap(bitmap, s, s, true), m));
        }
        Bitmap resized = Bitmap.createScaledBitmap(bitmap, grid[0] * s, grid[1] * s, true);
        for (int r = 0; r < grid[1]; r++) {
            for (int c = 0; c < grid[0]; c++) {
                out.add(chw(Bitmap.createBitmap(resized, c * s, r * s, s, s), m));
            }
        }
        return out;
    }

    private static float[] chw(Bitmap tile, BundleManifest m) {
        int s = m.tileSize;
        int[] argb = new int[s * s];
        tile.getPixels(argb, 0, s, 0, 0, s, s);
        return Tiling.toChw(argb, s, s, m.mean, m.std);
    }
}
