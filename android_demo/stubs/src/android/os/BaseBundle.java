package android.os;

public class BaseBundle {
    BaseBundle() { throw new RuntimeException("Stub!"); }
}
