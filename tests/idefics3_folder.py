"""A tiny random Idefics3 / SmolVLM folder in the Hub's layout, made with transformers + tokenizers.

`make_folder(path)` writes what `save_pretrained` writes for a SmolVLM: config.json,
model.safetensors, generation_config.json, tokenizer.json + tokenizer_config.json (a byte-level BPE
trained here, carrying SmolVLM's special tokens and a SmolVLM-style chat template),
preprocessor_config.json and processor_config.json. Returns (model, processor).
"""

from __future__ import annotations

from pathlib import Path

import torch

TEMPLATE = (Path(__file__).parent / "vectors" / "templates" / "smolvlm.jinja").read_text()  # SmolVLM-Instruct's
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<global-img>",
            *[f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)], "<image>"]
CORPUS = ["User: What is in this image?\nAssistant: A red square on a blue field.",
          "User:Describe the picture.\nAssistant: There are three shapes: a circle, a square and a line."] * 20
SEQ, TILE, LONGEST = 16, 64, 128  # image tokens per tile (64-px tiles, 8-px patches, scale 2); up to 2 x 2 tiles


def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # the corpus's characters only (ASCII): every token is whole UTF-8, so ExecuTorch's runner can
    # stream any token random weights pick (a lone byte >= 0x80 cannot cross its Python callback)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS)
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   extra_special_tokens={"image_token": "<image>"})


def make_processor():
    """The folder's processor alone (tokenizer + image processor + chat template), for the template vectors."""
    import transformers

    image_proc = transformers.Idefics3ImageProcessor(
        size={"longest_edge": LONGEST}, max_image_size={"longest_edge": TILE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    return transformers.Idefics3Processor(image_proc, tokenizer(), image_seq_len=SEQ, chat_template=TEMPLATE)


def make_folder(path: Path, seed: int = 0, tied: bool = False, hidden: int = 48):
    """`hidden`: the decoder width (64 suits the default recipe's group size 32; 48 does not)."""
    import transformers

    processor = make_processor()
    tok = processor.tokenizer
    ids = tok.convert_tokens_to_ids
    cfg = transformers.Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=TILE, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, rope_theta=1e5, bos_token_id=ids("<|im_start|>"),
                         eos_token_id=ids("<end_of_utterance>"), pad_token_id=ids("<|endoftext|>"),
                         tie_word_embeddings=tied),
        scale_factor=2, image_token_id=ids("<image>"), tie_word_embeddings=tied,
    )
    torch.manual_seed(seed)
    model = transformers.Idefics3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.2)
            elif p.dim() == 2:  # larger than the 0.02 init, so the logits are far from flat
                p.mul_(4.0)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return model, processor
