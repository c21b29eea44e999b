package android.content;

public abstract class Context {
    public Context() { throw new RuntimeException("Stub!"); }
    public abstract java.io.File getExternalFilesDir(String type);
    public abstract ContentResolver getContentResolver();
    public abstract android.content.res.AssetManager getAssets();
    public abstract android.content.pm.ApplicationInfo getApplicationInfo();
}
