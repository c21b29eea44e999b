package com.bluelm.edge.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * The BlueLM chat format, rendered to text exactly like the Python template
 * ({@code bluelm_edge/text/chat.py}); both are tested on {@code tests/vectors/chat_template.json}.
 *
 * <pre>
 * &lt;s&gt;[|Human|]:&lt;im_start&gt;&lt;image&gt;xN&lt;im_end&gt;{user}[|BlueThink|][|AI|]:&lt;think&gt;{trace}&lt;/think&gt;{answer}&lt;/s&gt;
 * </pre>
 * {@code [|BlueThink|]} (after every user turn when thinking) switches thinking on; only a final
 * assistant turn keeps its thinking; the generation prompt ends with {@code [|AI|]:}, so the
 * model opens {@code <think>} itself.
 */
public final class ChatTemplate implements PromptFormat {

    /** One chat message; {@code thinking} is the assistant's trace or null. */
    public static final class Message {
        public final String role;
        public final String content;
        public final int nImages;
        public final String thinking;

        public Message(String role, String content, int nImages, String thinking) {
            this.role = role;
            this.content = content;
            this.nImages = nImages;
            this.thinking = thinking;
        }
    }

    private final Map<String, String> tokens;

    /** @param tokens special-token texts by name, as in the manifest's {@code app.tokens} */
    public ChatTemplate(Map<String, String> tokens) {
        this.tokens = tokens;
    }

    private String t(String name) {
        String s = tokens.get(name);
        if (s == null) {
            throw new IllegalArgumentException("chat template needs the '" + name + "' token");
        }
        return s;
    }

    /**
     * Render a conversation.
     *
     * @param imageTokens image-placeholder tokens for each image, in order of appearance
     * @param addGenerationPrompt the conversation ends with a user turn (which ends with the
     *     assistant prefix); otherwise it must end with an assistant turn
     */
    @Override
    public String render(List<Message> messages, boolean think, boolean addGenerationPrompt,
            List<Integer> imageTokens) {
        StringBuilder sb = new StringBuilder(t("bos"));
        int image = 0;
        int last = messages.size() - 1;
        checkTurns(messages, addGenerationPrompt);
        for (int i = 0; i < messages.size(); i++) {
            Message m = messages.get(i);
            if (m.role.equals("user")) {
                sb.append(t("human"));
                for (int k = 0; k < m.nImages; k++) {
                    appendImage(sb, imageTokens.get(image++).intValue());
                }
                sb.append(m.content);
                if (think) {
                    sb.append(t("blue_think"));
                }
                sb.append(t("ai"));
            } else {
                if (think && i == last) {
                    sb.append(t("think_start")).append(m.thinking == null ? "" : m.thinking).append(t("think_end"));
                }
                sb.append(m.content).append(t("eos"));
            }
        }
        return sb.toString();
    }

    /** {@code </s>} closes the cached answer, then the user turn without its {@code <s>}. */
    @Override
    public String continuation(String lastAnswer, String user) {
        String turn = render(single(user, 0), false, true, Collections.<Integer>emptyList());
        return t("eos") + turn.substring(t("bos").length());
    }

    @Override
    public boolean appImages() {
        return true;
    }

    /** The generation prompt never opens {@code <think>}: the model (or the controller) does. */
    public boolean promptOpensThinking() {
        return false;
    }

    private static void checkTurns(List<Message> messages, boolean addGenerationPrompt) {
        if (messages.isEmpty()) {
            throw new IllegalArgumentException("a conversation needs at least one user message");
        }
        for (int i = 0; i < messages.size(); i++) {
            String want = i % 2 == 0 ? "user" : "assistant";
            if (!messages.get(i).role.equals(want)) {
                throw new IllegalArgumentException("message " + i + " should be " + want + ": turns alternate");
            }
        }
        boolean endsWithUser = messages.size() % 2 == 1;
        if (endsWithUser != addGenerationPrompt) {
            throw new IllegalArgumentException(addGenerationPrompt
                    ? "add_generation_prompt needs the conversation to end with a user message"
                    : "the conversation ends with a user message: pass addGenerationPrompt");
        }
    }

    private void appendImage(StringBuilder sb, int n) {
        sb.append(t("im_start"));
        for (int k = 0; k < n; k++) {
            sb.append(t("image"));
        }
        sb.append(t("im_end"));
    }

    /** Convenience: one user turn, optionally with images. */
    public static List<Message> single(String user, int nImages) {
        List<Message> out = new ArrayList<Message>();
        out.add(new Message("user", user, nImages, null));
        return Collections.unmodifiableList(out);
    }
}
