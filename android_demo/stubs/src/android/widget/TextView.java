package android.widget;

import android.content.Context;

public class TextView extends android.view.View {
    public TextView(Context context) { super(context); throw new RuntimeException("Stub!"); }
    public final void setText(CharSequence text) { throw new RuntimeException("Stub!"); }
    public final void append(CharSequence text) { throw new RuntimeException("Stub!"); }
    public CharSequence getText() { throw new RuntimeException("Stub!"); }
}
