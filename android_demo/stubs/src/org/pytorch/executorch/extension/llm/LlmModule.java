package org.pytorch.executorch.extension.llm;

public class LlmModule {
    public static final int MODEL_TYPE_TEXT = 1;
    public static final int MODEL_TYPE_TEXT_VISION = 2;
    public static final int MODEL_TYPE_MULTIMODAL = 2;
    public LlmModule(int modelType, String modulePath, String tokenizerPath, float temperature) { throw new RuntimeException("Stub!"); }
    public native int generate(String prompt, int seqLen, LlmCallback llmCallback, boolean echo);
    public long prefillImages(float[] image, int width, int height, int channels) { throw new RuntimeException("Stub!"); }
    public long prefillPrompt(String prompt) { throw new RuntimeException("Stub!"); }
    public native void resetContext();
    public native void stop();
    public native int load();
    public void resetNative() { throw new RuntimeException("Stub!"); }
}
