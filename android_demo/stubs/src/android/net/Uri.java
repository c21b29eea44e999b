package android.net;

public abstract class Uri implements android.os.Parcelable, Comparable<Uri> {
    Uri() { throw new RuntimeException("Stub!"); }
}
