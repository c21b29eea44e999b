package android.widget;

public class SeekBar extends AbsSeekBar {
    SeekBar() { throw new RuntimeException("Stub!"); }
    public void setOnSeekBarChangeListener(OnSeekBarChangeListener l) { throw new RuntimeException("Stub!"); }

    public interface OnSeekBarChangeListener {
        void onProgressChanged(SeekBar seekBar, int progress, boolean fromUser);
        void onStartTrackingTouch(SeekBar seekBar);
        void onStopTrackingTouch(SeekBar seekBar);
    }
}
