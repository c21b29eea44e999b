package org.pytorch.executorch.extension.llm;

public final class LlmModule implements java.io.Closeable {
    public static final int MODEL_TYPE_TEXT = 1;
    public static final int MODEL_TYPE_TEXT_VISION = 2;
    public static final int MODEL_TYPE_MULTIMODAL = 2;
    public LlmModule(int modelType, String modulePath, String tokenizerPath, float temperature) { throw new RuntimeException("Stub!"); }
    public final void load() { throw new RuntimeException("Stub!"); }
    public final void generate(String prompt, int seqLen, LlmCallback llmCallback, boolean echo) { throw new RuntimeException("Stub!"); }
    public final void generate(String prompt, int seqLen, LlmCallback llmCallback, boolean echo, float temperature, int numBos, int numEos) { throw new RuntimeException("Stub!"); }
    public final void prefillImages(float[] image, int width, int height, int channels) { throw new RuntimeException("Stub!"); }
    public final void prefillPrompt(String prompt) { throw new RuntimeException("Stub!"); }
    public final void resetContext() { throw new RuntimeException("Stub!"); }
    public final void stop() { throw new RuntimeException("Stub!"); }
    public void close() { throw new RuntimeException("Stub!"); }
}
