package android.os;

public final class Bundle extends BaseBundle implements Cloneable, Parcelable {
    public Bundle() { throw new RuntimeException("Stub!"); }
}
