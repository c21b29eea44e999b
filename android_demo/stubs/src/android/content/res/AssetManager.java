package android.content.res;

public final class AssetManager implements AutoCloseable {
    AssetManager() { throw new RuntimeException("Stub!"); }
    public final java.io.InputStream open(String fileName) throws java.io.IOException { throw new RuntimeException("Stub!"); }
    public String[] list(String path) throws java.io.IOException { throw new RuntimeException("Stub!"); }
    public void close() { throw new RuntimeException("Stub!"); }
}
