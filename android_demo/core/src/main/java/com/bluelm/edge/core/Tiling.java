package com.bluelm.edge.core;

/**
 * AnyRes tiling and normalisation, as in the Python {@code bluelm_edge/imaging.py}; both are
 * tested on {@code tests/vectors/tiling.json}. An image becomes cols x rows square tiles (row-major)
 * and, when that is more than one tile, a global thumbnail that goes FIRST.
 *
 * <p>Grid rule: candidates are all (cols, rows) with cols * rows &lt;= maxTiles; keep those whose
 * |ln(cols/rows) - ln(width/height)| is within 1e-9 of the smallest; among them the fewest tiles
 * that keep resolution (cols * tile &gt;= width and rows * tile &gt;= height), else the most
 * tiles; any remaining tie: more columns first.
 */
public final class Tiling {

    private static final double TIE = 1e-9;

    private Tiling() {
    }

    /** The grid {cols, rows} for an image of width x height and square tiles of tileSize. */
    public static int[] chooseGrid(int width, int height, int maxTiles, int tileSize) {
        if (width < 1 || height < 1 || maxTiles < 1 || tileSize < 1) {
            throw new IllegalArgumentException("bad grid request: " + width + "x" + height
                    + ", maxTiles=" + maxTiles + ", tileSize=" + tileSize);
        }
        double target = Math.log((double) width / height);
        double best = Double.MAX_VALUE;
        for (int c = 1; c <= maxTiles; c++) {
            for (int r = 1; c * r <= maxTiles; r++) {
                best = Math.min(best, Math.abs(Math.log((double) c / r) - target));
            }
        }
        int[] keep = null;
        int[] most = null;
        for (int c = 1; c <= maxTiles; c++) {
            for (int r = 1; c * r <= maxTiles; r++) {
                if (Math.abs(Math.log((double) c / r) - target) > best + TIE) {
                    continue;
                }
                boolean keeps = (long) c * tileSize >= width && (long) r * tileSize >= height;
                if (keeps && (keep == null || better(c, r, keep, true))) {
                    keep = new int[] {c, r};
                }
                if (most == null || better(c, r, most, false)) {
                    most = new int[] {c, r};
                }
            }
        }
        return keep != null ? keep : most;
    }

    /** Fewest (or most) tiles first, then more columns. */
    private static boolean better(int c, int r, int[] cur, boolean fewest) {
        int n = c * r;
        int m = cur[0] * cur[1];
        if (n != m) {
            return fewest ? n < m : n > m;
        }
        return c > cur[0];
    }

    /** Tiles fed to the vision encoder for a grid: cols * rows, plus the thumbnail if &gt; 1. */
    public static int tileCount(int[] grid) {
        int n = grid[0] * grid[1];
        return n + (n > 1 ? 1 : 0);
    }

    /** Normalise one 8-bit channel value: (v / 255 - mean) / std. */
    public static float normalise(int value, float mean, float std) {
        return (value / 255.0f - mean) / std;
    }

    /**
     * ARGB pixels (Android {@code Bitmap.getPixels} layout, row-major) of a tile to normalised
     * CHW floats, as {@code LlmModule.prefillImages(float[], ...)} takes them.
     */
    public static float[] toChw(int[] argb, int width, int height, float[] mean, float[] std) {
        int plane = width * height;
        float[] out = new float[3 * plane];
        for (int i = 0; i < plane; i++) {
            int p = argb[i];
            out[i] = normalise((p >> 16) & 0xff, mean[0], std[0]);
            out[plane + i] = normalise((p >> 8) & 0xff, mean[1], std[1]);
            out[2 * plane + i] = normalise(p & 0xff, mean[2], std[2]);
        }
        return out;
    }
}
