package android.app;

import android.content.Context;
import android.content.DialogInterface;

public class AlertDialog extends Dialog {
    AlertDialog() { throw new RuntimeException("Stub!"); }

    public static class Builder {
        public Builder(Context context) { throw new RuntimeException("Stub!"); }
        public Builder setTitle(CharSequence title) { throw new RuntimeException("Stub!"); }
        public Builder setItems(CharSequence[] items, DialogInterface.OnClickListener listener) { throw new RuntimeException("Stub!"); }
        public AlertDialog show() { throw new RuntimeException("Stub!"); }
    }
}
