package android.app;

public class Dialog implements android.content.DialogInterface {
    Dialog() { throw new RuntimeException("Stub!"); }
}
