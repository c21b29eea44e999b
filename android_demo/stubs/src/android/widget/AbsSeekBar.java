package android.widget;

public abstract class AbsSeekBar extends ProgressBar {
    AbsSeekBar() { throw new RuntimeException("Stub!"); }
}
