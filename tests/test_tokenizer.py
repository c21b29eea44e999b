"""Tokenizer: special ids, round trips, determinism, files, parity with ExecuTorch's C++ HF tokenizer."""

from __future__ import annotations

import json

import pytest

from bluelm_edge.errors import CheckpointError, UsageError
from bluelm_edge.model.config import SPECIAL_TOKENS, SpecialTokenIds
from bluelm_edge.text.tokenizer import Tokenizer, builtin_corpus, default_tokenizer, train_tokenizer

SAMPLES = [
    "Hello world",
    "What is 1234 + 5678? It is 6912.",
    "<s>[|Human|]:<im_start><image><image><im_end>How many?[|BlueThink|][|AI|]:<think>3+4=7</think>7</s>",
    "  leading and  double  spaces\n\nnew lines\ttabs ",
    "unicode: héllo wörld, 日本語, emoji 🙂, math ∑x²",
    "",
    "Time is up, so the answer is:\n42",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return default_tokenizer()


def test_special_tokens_are_single_ids_0_to_10(tok):
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(11))
    assert [tok.id_to_token(i) for i in range(11)] == list(SPECIAL_TOKENS)
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.encode(t) == [i]
        ids = tok.encode(f"ab{t}cd")
        assert ids.count(i) == 1 and tok.decode(ids) == f"ab{t}cd"
    assert tok.special == SpecialTokenIds()


def test_builtin_tokenizer_is_1024_tokens_and_deterministic():
    first = train_tokenizer(builtin_corpus(), 1024)
    assert first.vocab_size == 1024
    assert train_tokenizer(builtin_corpus(), 1024).to_json_str() == first.to_json_str()


def test_default_tokenizer_is_the_shipped_one_when_present(tok):
    from bluelm_edge.paths import DEFAULT_MODEL_DIR

    shipped = DEFAULT_MODEL_DIR / "tokenizer.json"
    if shipped.is_file():
        assert tok.to_json_str() == Tokenizer.from_file(shipped).to_json_str()
    else:
        assert tok.vocab_size == 1024


def test_round_trip(tok):
    for s in SAMPLES:
        assert tok.decode(tok.encode(s)) == s


def test_no_bos_added_and_skip_special(tok):
    ids = tok.encode("hi")
    assert tok.special.bos not in ids
    full = tok.encode("<s>[|Human|]:hi[|AI|]:yo</s>")
    assert full[0] == 1 and full[-1] == 2
    assert tok.decode(full, skip_special=True) == "hiyo"


def test_digits_are_single_tokens(tok):
    ids = tok.encode("12345")
    assert len(ids) == 5
    assert [tok.decode([i]) for i in ids] == list("12345")
    # a digit is never merged with the letters or spaces around it
    assert [tok.decode([i]) for i in tok.encode(" 7x")][:2] == [" ", "7"]


def test_any_byte_encodes_without_unknowns():
    small = train_tokenizer(["abc abc abc"], 300)
    text = "zzz ÿ 🙂 \x00\x7f"
    assert small.decode(small.encode(text)) == text


def test_save_load_round_trip(tmp_path, tok):
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    loaded = Tokenizer.from_file(path)
    assert loaded.to_json_str() == tok.to_json_str()
    assert [loaded.encode(s) for s in SAMPLES] == [tok.encode(s) for s in SAMPLES]
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file


def test_plain_format_for_executorch(tok):
    d = json.loads(tok.to_json_str())
    assert d["model"]["type"] == "BPE"
    assert d["normalizer"] is None and d["post_processor"] is None
    pre = d["pre_tokenizer"]
    assert pre["type"] == "Sequence"
    assert [p["type"] for p in pre["pretokenizers"]] == ["Digits", "ByteLevel"]
    assert pre["pretokenizers"][0]["individual_digits"] is True
    assert pre["pretokenizers"][1]["add_prefix_space"] is False
    assert d["decoder"]["type"] == "ByteLevel"


def test_bad_special_token_order_is_one_line_error(tmp_path, tok):
    d = json.loads(tok.to_json_str())
    a, b = d["added_tokens"][6], d["added_tokens"][7]  # swap <think> and </think>
    a["content"], b["content"] = b["content"], a["content"]
    vocab = d["model"]["vocab"]
    vocab["<think>"], vocab["</think>"] = vocab["</think>"], vocab["<think>"]
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(d))
    with pytest.raises(CheckpointError) as err:
        Tokenizer.from_file(path)
    assert "'<think>' has id 7, expected the special token id 6" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_special_token_and_bad_files(tmp_path):
    plain = train_tokenizer(["hello"], 300).hf
    plain.add_tokens(["<extra>"])  # fine: the check is only on ids 0..10
    Tokenizer(plain)
    import tokenizers

    bare = tokenizers.Tokenizer(tokenizers.models.BPE())
    with pytest.raises(CheckpointError, match="'<pad>' has id None"):
        Tokenizer(bare)
    with pytest.raises(CheckpointError, match="no such tokenizer file"):
        Tokenizer.from_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid tokenizer.json"):
        Tokenizer.from_file(broken)
    with pytest.raises(UsageError, match="at least 267"):
        train_tokenizer(["x"], 100)


def test_tokenizer_config_names_bos_and_eos(tmp_path, tok):
    tok.save_config(tmp_path / "tokenizer_config.json")
    written = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert written == {"bos_token": "<s>", "eos_token": "</s>"}


# ---- parity with ExecuTorch's on-device tokenizer ----------------------------------------------
@pytest.fixture(scope="module")
def cpp_tok(tmp_path_factory, tok):
    pt = pytest.importorskip("pytorch_tokenizers")
    folder = tmp_path_factory.mktemp("tok")
    tok.save(folder / "tokenizer.json")
    tok.save_config(folder / "tokenizer_config.json")
    cpp = pt.CppHFTokenizer()
    cpp.load(str(folder))
    return cpp


def test_cpp_hf_tokenizer_parity(tok, cpp_tok):
    assert cpp_tok.vocab_size() == tok.vocab_size
    assert (cpp_tok.bos_tok(), cpp_tok.eos_tok()) == (1, 2)  # read from tokenizer_config.json
    corpus = builtin_corpus(60, seed=7) + SAMPLES
    for s in corpus:
        assert list(cpp_tok.encode(s, 0, 0)) == tok.encode(s), s


def test_cpp_hf_tokenizer_decodes_ascii_pieces(tok, cpp_tok):
    for s in builtin_corpus(30, seed=3):
        ids = tok.encode(s)
        assert "".join(cpp_tok.decode(i) for i in ids) == tok.decode(ids)


def test_python_pytorch_tokenizers_parity(tmp_path, tok):
    pt = pytest.importorskip("pytorch_tokenizers")
    tok.save(tmp_path / "tokenizer.json")
    py = pt.get_tokenizer(str(tmp_path / "tokenizer.json"))
    for s in SAMPLES:
        assert py.encode(s, bos=False, eos=False) == tok.encode(s)
        assert py.decode(tok.encode(s)) == tok.decode(tok.encode(s), skip_special=True)  # it skips specials
