"""Writes bpe_tokenizer.json: Hugging Face `tokenizers` encoding and decoding text, for the Java BpeTokenizer.

Run: .venv/bin/python tests/vectors/make_bpe_tokenizer.py  (needs `tokenizers`; no network; deterministic).
Tokenizers (each embedded whole as tokenizer.json, or as a `base` plus top-level `replace`ments, model
`model_replace`ments and `vocab_add`itions: tests/test_bpe_tokenizer_vectors.py::materialize, which the
Java BpeTokenizerTest mirrors):
- bluelm_tiny: the shipped stand-in (Sequence[Digits individual, ByteLevel], BPE, `[|Human|]:` ... specials);
- qwen2_style: a tiny BPE trained here: NFC, Split(Qwen2's regex, Isolated) + ByteLevel(use_regex=False),
  `<|im_start|>`-style specials after the vocab, an lstrip/rstrip special, a normalized non-special token
  (written decomposed) and a single_word one;
- llama3_style: the same vocab with Llama-3's regex (`\\p{N}{1,3}`), no normalizer, ignore_merges and a
  vocab entry no merge reaches; mismatched_added_ids: added tokens whose ids the file gets wrong;
- split_*: the same vocab with the other Split behaviours, invert, a String pattern, Digits(contiguous),
  ByteLevel's own regex with add_prefix_space, and a NFKC+Lowercase normalizer; legacy_merges: merges as
  "a b" strings; unk_fused / unk_unfused: no ByteLevel, so what is not in the vocab is `<unk>`.
Each case: name, text, ids (`encode(text, add_special_tokens=False).ids`) and decoded
(`decode(ids, skip_special_tokens=False)`); decode_cases: ids that cut multi-byte characters (U+FFFD).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_bpe_tokenizer_vectors import materialize  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "bpe_tokenizer.json"
BLUELM_TINY = ROOT / "bluelm_edge" / "assets" / "bluelm-tiny" / "tokenizer.json"

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = QWEN2_REGEX.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>"]

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. Hello world, this is a small test of the tokenizer.
What is the capital of France? Paris is the capital of France, and it is a beautiful city.
I don't think it's going to rain today; we'll see. They've been there, I'm sure you'd agree.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 2.71828 1,000,000 $19.99 50% 7:30 pm.
def tokenize(text):
    # split the text into words and count them
    words = text.split()
    return {word: len(word) for word in words}

for i in range(10):
    print(i, i * i)
Café crème brûlée, naïve façade, Ångström, jalapeño, über, señor, garçon, déjà vu.
中文分词测试，你好世界！今天天气很好，我们去公园散步吧。机器学习和自然语言处理。
日本語のテキストです。こんにちは、世界。한국어 문장입니다. 안녕하세요.
Emoji: 🙂 😀 🎉 👍 🚀 ❤️ 👩‍💻 and more emoji 🙂🙂.
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
Hello! What is 17 + 25?<|im_end|>
<|im_start|>assistant
<think>
17 + 25 = 42
</think>

It is 42.<|im_end|>
The model thinks step by step before it answers the question, then it gives a short answer.
Tokenizers split text into pieces; byte-level BPE merges the most frequent pairs of bytes first.
    Indented line with    several   spaces and\ttabs\tbetween words.
Line one

Line two
Hello hello HELLO Hello, world! World world WORLD.
"""

CASES = [
    ("ascii_sentence", "Hello world, this is a test."),
    ("question", "What is the capital of France?"),
    ("digits_run", "12345"),
    ("decimals", "pi is 3.14, e is 2.71828"),
    ("money_and_year", "In 2024 it cost $1,299.99!"),
    ("multiple_spaces", "a  b   c    d"),
    ("tabs", "col1\tcol2\t\tcol3"),
    ("newlines", "line one\n\nline two\n"),
    ("crlf", "a\r\nb\r\n\r\nc"),
    ("leading_trailing_spaces", "   padded text   "),
    ("only_spaces", "    "),
    ("contractions", "don't you think it's fine? I'LL go, we'Re done, they'VE left"),
    ("cjk", "中文分词测试，你好世界！"),
    ("japanese_korean", "日本語のテキスト と 한국어 문장"),
    ("emoji", "Nice 🙂 work 🎉🎉"),
    ("zwj_emoji", "coder: 👩‍💻 family: 👨‍👩‍👧 flag: 🇫🇷"),
    ("accented", "Café crème brûlée, naïve façade, Ångström"),
    ("combining", "Cafe\u0301 cre\u0300me A\u030angstro\u0308m"),
    ("compatibility", "ﬁne ① ｆｕｌｌ width ΣΑΣ İstanbul"),
    ("unicode_spaces", "a\u00a0b\u3000c\u2009d \u0085e"),
    ("code", "def f(x):\n    return x**2  # square\n"),
    ("punctuation", "Wait... what?!?! (yes) [no] {maybe} <tag/>"),
    ("special_think", "<think>\nhi</think>"),
    ("special_bluelm", "[|Human|]: hi [|AI|]:"),
    ("special_qwen", "<|im_start|>user\nhi<|im_end|>"),
    ("special_adjacent", "<think></think><think>"),
    ("special_partial", "<thin k> <|im_star </think"),
    ("empty", ""),
]
QWEN2_EXTRA = [  # the extra added tokens of qwen2_style
    ("lstrip_rstrip_token", "fill  <mask>  here\n<mask>x"),
    ("normalized_token", "a café, a cafe\u0301 and cafés"),
    ("single_word_token", "qwen qwenlm, (qwen) xqwen qwen"),
]
LLAMA3_EXTRA = [("ignore_merges_word", "Hi BlueLM! BlueLMs"), ("digit_groups", "1234567 12 3")]
SPLIT_CASES = [c for c in CASES if c[0] in {"ascii_sentence", "money_and_year", "multiple_spaces", "newlines",
                                            "leading_trailing_spaces", "contractions", "cjk", "compatibility",
                                            "special_qwen", "empty"}]

BLUELM_CHAT = ("<s>[|Human|]:<im_start><image><image><im_end>What is in the picture? Be brief."
               "[|BlueThink|][|AI|]:<think>\nA cat on a mat, 2 of them.\n</think>\n\nTwo cats.</s>"
               "[|Human|]:And 17 + 25?[|AI|]:")
QWEN_CHAT = ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello! What is 17 + 25?<|im_end|>\n"
             "<|im_start|>assistant\n<think>\n\n</think>\n\nIt is 42.<|im_end|>\n<|im_start|>user\n"
             "Why?<|im_end|>\n<|im_start|>assistant\n")


def long_prompt(chat: str, n: int = 2000) -> str:
    """About n characters of mixed prose, code, numbers and CJK, wrapped in the chat format."""
    body = TRAINING_TEXT.replace("<|im_start|>", "").replace("<|im_end|>", "")
    text = (body * (n // len(body) + 1))[: n - len(chat)]
    return chat.replace("Hello! What is 17 + 25?", text).replace("And 17 + 25?", text)


def qwen2_style() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=560, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT.splitlines(keepends=True), trainer=trainer)
    tok.add_special_tokens(QWEN2_SPECIALS)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("cafe\u0301", normalized=True, special=False),
                    AddedToken("qwen", single_word=True, normalized=False, special=False)])
    return tok


def variants(qwen: dict) -> list[dict]:
    """Tokenizers that share qwen2_style's vocab: a base name plus what they change."""
    def split(pattern: dict, behavior: str, invert: bool = False) -> dict:
        return {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}

    def shifted(by: int) -> list[dict]:
        return [{**t, "id": t["id"] + by} for t in qwen["added_tokens"]]

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    words = {"Regex": r"\p{L}+|\p{N}+"}
    out = [{"name": "llama3_style", "base": "qwen2_style",
            "replace": {"normalizer": None, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                split({"Regex": LLAMA3_REGEX}, "Isolated"), byte_level]}},
            "model_replace": {"ignore_merges": True}, "vocab_add": {"ĠBlueLM": len(qwen["model"]["vocab"])}}]
    out[0]["replace"]["added_tokens"] = shifted(1)  # after the new vocab entry, as a well-formed file has them
    out.append({"name": "mismatched_added_ids", "base": "qwen2_style", "replace": {"added_tokens": shifted(100)},
                "special": "<|im_end|>"})  # `tokenizers` gives them the next free ids, not these
    for name, pre in (("split_removed_invert", split(words, "Removed", invert=True)),
                      ("split_merged_with_previous", split({"String": " "}, "MergedWithPrevious")),
                      ("split_merged_with_next", split({"Regex": r"\s+"}, "MergedWithNext")),
                      ("split_contiguous", split({"Regex": r"[\p{P}\s]"}, "Contiguous")),
                      ("split_isolated_invert", split(words, "Isolated", invert=True)),
                      ("digits_contiguous", {"type": "Digits", "individual_digits": False})):
        out.append({"name": name, "base": "qwen2_style", "replace": {
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [pre, byte_level]}}})
    out.append({"name": "byte_level_prefix_space", "base": "qwen2_style", "replace": {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}}})
    out.append({"name": "legacy_merges", "base": "qwen2_style",
                "model_replace": {"merges": [f"{a} {b}" for a, b in qwen["model"]["merges"]]}})
    # no ByteLevel: a space or a CJK char is not in the vocab, so it is the unk token (fused, then not)
    out.append({"name": "unk_fused", "base": "qwen2_style", "replace": {
        "pre_tokenizer": split({"Regex": QWEN2_REGEX}, "Isolated"), "added_tokens": shifted(1)},
        "model_replace": {"unk_token": "<unk>", "fuse_unk": True}, "vocab_add": {"<unk>": len(qwen["model"]["vocab"])}})
    out.append({"name": "unk_unfused", "base": "unk_fused", "model_replace": {"fuse_unk": False}})
    return out


def encode_cases(tok: Tokenizer, cases: list[tuple[str, str]]) -> list[dict]:
    out = []
    for name, text in cases:
        ids = tok.encode(text, add_special_tokens=False).ids
        out.append({"name": name, "text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return out


def decode_cases(tok: Tokenizer, special: str) -> list[dict]:
    """Ids that cut or break UTF-8: what `decode` makes of them (U+FFFD, as bytes.decode(errors='replace'))."""
    vocab = tok.get_vocab()
    byte_char = {b: c for c, b in _char_bytes().items()}

    def ids(data: bytes) -> list[int]:
        return [vocab[byte_char[b]] for b in data]

    zhong, smile = "中".encode(), "🙂".encode()
    raw = {"first_byte_of_cjk": ids(zhong[:1]), "two_of_three_cjk_bytes": ids(zhong[:2]),
           "continuation_bytes_alone": ids(zhong[1:]) + ids(b"a"), "three_of_four_emoji_bytes": ids(smile[:3]),
           "emoji_without_lead_byte": ids(smile[1:]), "invalid_bytes": ids(b"\xff\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80"),
           "cut_around_special": ids(zhong[:1]) + [vocab[special]] + ids(zhong[1:]),
           "unknown_id_is_skipped": ids(b"ok") + [len(vocab) + 1000] + ids(b"!")}
    return [{"name": n, "ids": i, "decoded": tok.decode(i, skip_special_tokens=False)} for n, i in raw.items()]


def _char_bytes() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted."""
    bs = [*range(33, 127), *range(161, 173), *range(174, 256)]
    cs, n = list(bs), 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def build() -> dict:
    qwen = json.loads(qwen2_style().to_str())
    entries = [{"name": "bluelm_tiny", "tokenizer": json.loads(BLUELM_TINY.read_text(encoding="utf-8")),
                "cases": [*CASES, ("chat_prompt", BLUELM_CHAT), ("long_prompt", long_prompt(BLUELM_CHAT))],
                "special": "<think>"},
               {"name": "qwen2_style", "tokenizer": qwen,
                "cases": [*CASES, *QWEN2_EXTRA, ("chat_prompt", QWEN_CHAT), ("long_prompt", long_prompt(QWEN_CHAT))],
                "special": "<|im_end|>"}]
    extra = {"llama3_style": LLAMA3_EXTRA, "mismatched_added_ids": QWEN2_EXTRA}
    for v in variants(qwen):
        v["cases"] = [*SPLIT_CASES, *extra.get(v["name"], [])]
        entries.append(v)
    by_name = {e["name"]: e for e in entries}
    for e in entries:
        tok = Tokenizer.from_str(json.dumps(materialize(e, by_name)))
        e["vocab_size"] = tok.get_vocab_size()
        e["cases"] = encode_cases(tok, e["cases"])
        special = e.pop("special", None)
        if special:
            e["special_id"] = {"content": special, "id": tok.token_to_id(special)}
            e["decode_cases"] = decode_cases(tok, special)
    return {"about": "Hugging Face tokenizers on these texts; written by tests/vectors/make_bpe_tokenizer.py",
            "tokenizers": entries}


def dump(value, indent: str = "") -> str:
    """JSON with one line per list of scalars (a case's ids, a merge) and per scalar field."""
    if isinstance(value, dict) and value:
        inner = indent + " "
        body = ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump(v, inner)}" for k, v in value.items())
        return "{\n" + body + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        inner = indent + " "
        return "[\n" + ",\n".join(inner + dump(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def main() -> None:
    OUT.write_text(dump(build()) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
