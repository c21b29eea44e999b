package com.bluelm.edge.core;

/**
 * AnyRes tiling and normalisation, as in the Python {@code bluelm_edge/imaging.py}; both are
 * tested on {@code tests/vectors/tiling.json}. An image is cut into cols x rows square tiles of
 * the grid that keeps the most of its resolution (then wastes the least), plus a global
 * thumbnail when the grid has more than one tile.
 */
public final class Tiling {

    private Tiling() {
    }

    /**
     * The best grid {cols, rows} with cols * rows &lt;= maxTiles for an image of width x height
     * when each tile is tileSize pixels square.
     */
    public static int[] chooseGrid(int width, int height, int maxTiles, int tileSize) {
        if (width <= 0 || height <= 0 || maxTiles < 1 || tileSize < 1) {
            throw new IllegalArgumentException("bad image or tiling size");
        }
        int[] best = {1, 1};
        long bestEffective = -1;
        long bestWaste = Long.MAX_VALUE;
        for (int rows = 1; rows <= maxTiles; rows++) {
            for (int cols = 1; cols * rows <= maxTiles; cols++) {
                long gw = (long) cols * tileSize;
                long gh = (long) rows * tileSize;
                double scale = Math.min((double) gw / width, (double) gh / height);
                long dw = (long) Math.floor(width * scale);
                long dh = (long) Math.floor(height * scale);
                long effective = Math.min(dw * dh, (long) width * height);
                long waste = gw * gh - effective;
                if (effective > bestEffective || (effective == bestEffective && waste < bestWaste)) {
                    best = new int[] {cols, rows};
                    bestEffective = effective;
                    bestWaste = waste;
                }
            }
        }
        return best;
    }

    /** Tiles fed to the vision encoder for a grid: cols * rows, plus the thumbnail if &gt; 1. */
    public static int tileCount(int[] grid, boolean thumbnail) {
        int n = grid[0] * grid[1];
        return n + (thumbnail && n > 1 ? 1 : 0);
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
