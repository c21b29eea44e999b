package android.os;

public class Build {
    public static final String HARDWARE = null;
    public static final String MODEL = null;
    public static final String SOC_MODEL = null;
    public Build() { throw new RuntimeException("Stub!"); }

    public static class VERSION {
        public static final int SDK_INT = Integer.valueOf(0).intValue();
        public VERSION() { throw new RuntimeException("Stub!"); }
    }
}
