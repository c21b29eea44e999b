package com.bluelm.edge.core;

import java.util.List;

/**
 * How a bundle's model family turns a conversation into prompt text: {@link ChatTemplate}
 * (BlueLM's own format) or {@link TemplateSegments} (a checkpoint's chat template, cut into
 * segments by the exporter). {@link BundleManifest#format} picks it from {@code app.chat}, so
 * nothing here knows a model name.
 */
public interface PromptFormat {

    /**
     * The conversation as text.
     *
     * @param imageTokens image-placeholder tokens for each image, in order (formats whose image
     *     text is expanded later ignore it)
     * @param addGenerationPrompt the conversation ends with a user turn and the prompt asks for the
     *     assistant's; otherwise it ends with an assistant turn
     */
    String render(List<ChatTemplate.Message> messages, boolean think, boolean addGenerationPrompt,
            List<Integer> imageTokens);

    /**
     * The text that continues a KV cache ending right after {@code lastAnswer} (a non-thinking
     * answer that ended with EOS, which is never cached) with a new non-thinking user turn, so that
     * cache + text equals the whole conversation rendered again; null when this format cannot.
     */
    String continuation(String lastAnswer, String user);

    /** True when the app can prepare this family's images (its image prompt layout is known here). */
    boolean appImages();
}
