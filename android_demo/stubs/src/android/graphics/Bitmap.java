package android.graphics;

public final class Bitmap implements android.os.Parcelable {
    Bitmap() { throw new RuntimeException("Stub!"); }
    public final int getWidth() { throw new RuntimeException("Stub!"); }
    public final int getHeight() { throw new RuntimeException("Stub!"); }
    public void getPixels(int[] pixels, int offset, int stride, int x, int y, int width, int height) { throw new RuntimeException("Stub!"); }
    public static Bitmap createScaledBitmap(Bitmap src, int dstWidth, int dstHeight, boolean filter) { throw new RuntimeException("Stub!"); }
    public static Bitmap createBitmap(Bitmap source, int x, int y, int width, int height) { throw new RuntimeException("Stub!"); }
}
