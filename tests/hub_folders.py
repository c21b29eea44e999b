"""Real Hugging Face folders for the tests: tiny random transformers models, `save_pretrained`.

`make_folder(family, path)` writes what a Hub download holds: config.json, model.safetensors,
generation_config.json, tokenizer.json + tokenizer_config.json (+ chat_template.jinja, as
transformers 5 writes it). The tokenizer is a byte-level BPE built with `tokenizers`, carrying the
family's special tokens (Qwen3's `<think>`/`</think>` are added but not special, as in Qwen3's
own tokenizer); the chat templates are the published ones (`tests/vectors/templates/`).
"""

from __future__ import annotations

import json
from pathlib import Path

VECTORS = Path(__file__).parent / "vectors"
TEMPLATES = VECTORS / "templates"
VOCAB = 512

FAMILIES = {
    "qwen3": {
        "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "added": ["<think>", "</think>"],
        "template": "qwen3.jinja",
        "tokens": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None},
        "eos": ["<|im_end|>", "<|endoftext|>"],
    },
    "llama": {  # Llama 3 Instruct's special tokens and template
        "special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                    "<|eot_id|>"],
        "added": [],
        "template": "llama3.jinja",
        "tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
        "eos": ["<|eot_id|>", "<|end_of_text|>"],
    },
    "smollm2": {  # a LlamaForCausalLM with a ChatML template (SmolLM2-Instruct)
        "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "added": [],
        "template": "smollm2.jinja",
        "tokens": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"},
        "eos": ["<|im_end|>"],
    },
}

_CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is 17 + 25? It is 42.",
    "Hello! How are you today? I am fine, thank you. Let me think step by step.",
    "user assistant system You are a helpful assistant. Answer briefly, then stop.",
    "Considering the limited time by the user, I have to give the solution based on the thinking directly now.",
    "Paris is the capital of France. Two plus two is four. The sky is blue because of scattering.",
]


def build_tokenizer(family: str):
    """A `tokenizers.Tokenizer`: special tokens first, the byte alphabet, BPE merges to VOCAB."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    spec = FAMILIES[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - len(spec["added"]), special_tokens=spec["special"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec["added"]])
    return tok


def make_folder(family: str, path: Path, *, seed: int = 0) -> Path:
    """A tiny random model of `family` saved as a Hub folder at `path`."""
    import torch
    import transformers

    spec = FAMILIES[family]
    tok = build_tokenizer(family)
    ids = {t: tok.token_to_id(t) for t in spec["special"] + spec["added"]}
    eos = [ids[t] for t in spec["eos"]]
    bos = ids.get(spec["tokens"].get("bos_token") or "", None)
    common = dict(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=bos, eos_token_id=eos[0], initializer_range=0.2)
    if family == "qwen3":
        cfg = transformers.Qwen3Config(head_dim=16, tie_word_embeddings=True, rope_theta=1_000_000.0, **common)
        cls = transformers.Qwen3ForCausalLM
    else:
        cfg = transformers.LlamaConfig(tie_word_embeddings=family == "smollm2", rope_theta=500_000.0, **common)
        cls = transformers.LlamaForCausalLM
    torch.manual_seed(seed)
    model = cls(cfg).eval()
    _damp_partial_bytes(model, tok)
    model.generation_config = transformers.GenerationConfig(bos_token_id=bos, eos_token_id=eos,
                                                            pad_token_id=eos[0], do_sample=False)
    model.save_pretrained(path)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **spec["tokens"])
    fast.chat_template = (TEMPLATES / spec["template"]).read_text()
    fast.save_pretrained(path)
    return Path(path)


def _damp_partial_bytes(model, tok) -> None:
    """Shrink the output rows of tokens that are a lone UTF-8 byte, so random greedy text is whole
    characters (ExecuTorch's Python token callback cannot pass a partial character as str)."""
    import torch

    lone = [i for i in range(tok.get_vocab_size()) if "\ufffd" in tok.decode([i])]
    with torch.no_grad():
        model.get_output_embeddings().weight[lone] *= 0.01


def hf_tokenizer(path: Path):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(str(path))


def hf_model(path: Path):
    import transformers

    return transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype="float32").eval()


def renderer(family: str, template: str, tokens: dict):
    """The `text/segments.Renderer` a bundle of this test family gets (Qwen3: thinking switch and tags;
    SmolVLM: content as typed parts, as the Idefics3 family sets it)."""
    from bluelm_edge.text.segments import Renderer

    think = ("enable_thinking", "<think>", "</think>") if family == "qwen3" else (None, None, None)
    return Renderer(template, tokens, think[0], family == "smolvlm", think[1], think[2])


def read_vectors() -> dict:
    return json.loads((VECTORS / "hf_chat_templates.json").read_text())
