package android.content;

public class Intent implements android.os.Parcelable, Cloneable {
    public static final String ACTION_GET_CONTENT = "android.intent.action.GET_CONTENT";
    public Intent(String action) { throw new RuntimeException("Stub!"); }
    public Intent setType(String type) { throw new RuntimeException("Stub!"); }
    public android.net.Uri getData() { throw new RuntimeException("Stub!"); }
    public String getStringExtra(String name) { throw new RuntimeException("Stub!"); }
    public int getIntExtra(String name, int defaultValue) { throw new RuntimeException("Stub!"); }
    public <T extends android.os.Parcelable> T getParcelableExtra(String name) { throw new RuntimeException("Stub!"); }
}
