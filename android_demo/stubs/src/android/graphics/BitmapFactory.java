package android.graphics;

public class BitmapFactory {
    public BitmapFactory() { throw new RuntimeException("Stub!"); }
    public static Bitmap decodeStream(java.io.InputStream is) { throw new RuntimeException("Stub!"); }
}
