package android.content;

public class ContextWrapper extends Context {
    public ContextWrapper(Context base) { throw new RuntimeException("Stub!"); }
    public java.io.File getExternalFilesDir(String type) { throw new RuntimeException("Stub!"); }
    public ContentResolver getContentResolver() { throw new RuntimeException("Stub!"); }
    public android.content.res.AssetManager getAssets() { throw new RuntimeException("Stub!"); }
    public android.content.pm.ApplicationInfo getApplicationInfo() { throw new RuntimeException("Stub!"); }
}
