package android.content.pm;

public class PackageItemInfo {
    public PackageItemInfo() { throw new RuntimeException("Stub!"); }
}
