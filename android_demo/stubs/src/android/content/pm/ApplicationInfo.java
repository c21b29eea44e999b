package android.content.pm;

public class ApplicationInfo extends PackageItemInfo {
    public String nativeLibraryDir;
    public ApplicationInfo() { throw new RuntimeException("Stub!"); }
}
