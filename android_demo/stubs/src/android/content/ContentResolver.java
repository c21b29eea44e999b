package android.content;

public abstract class ContentResolver {
    public ContentResolver(Context context) { throw new RuntimeException("Stub!"); }
    public final java.io.InputStream openInputStream(android.net.Uri uri) throws java.io.FileNotFoundException { throw new RuntimeException("Stub!"); }
}
