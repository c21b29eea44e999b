"""The tokenizer: a plain byte-level BPE `tokenizer.json` that ExecuTorch's C++ HF tokenizer reads.

Owns loading, checking, saving and training it. The format is kept to what the on-device
tokenizer (`pytorch_tokenizers` / ExecuTorch `HFTokenizer`) supports: a BPE model, the
pre-tokenizer `Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False)])`
(every digit its own pre-token, so arithmetic is learnable), a ByteLevel decoder, no normalizer
and no post-processor (no BOS is ever added by `encode`). The BlueLM special tokens
(`config.SPECIAL_TOKENS`) are added tokens with ids 0..10 in that order, checked on load.

The C++ tokenizer only learns BOS/EOS from a `tokenizer_config.json` beside `tokenizer.json`
when it is given the folder (its name-based guess would pick `<im_end>` for both); write one
with `Tokenizer.save_config`.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterable
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from bluelm_edge import validate
from bluelm_edge.errors import CheckpointError, UsageError
from bluelm_edge.io import atomic_write_text
from bluelm_edge.model.config import SPECIAL_TOKENS, SpecialTokenIds

ASSET_TOKENIZER = Path(__file__).resolve().parent.parent / "assets" / "bluelm-tiny" / "tokenizer.json"
DEFAULT_VOCAB_SIZE = 1024  # the tiny preset's vocabulary
_MIN_VOCAB = len(SPECIAL_TOKENS) + 256  # special tokens + the byte-level alphabet


class Tokenizer:
    """A `tokenizers.Tokenizer` and its special-token ids: BlueLM's (checked to be single ids
    0..10), or the ids another family's description found in it (`special`)."""

    def __init__(self, hf: tokenizers.Tokenizer, source: str = "tokenizer",
                 special: SpecialTokenIds | None = None) -> None:
        self._hf = hf
        self.special: SpecialTokenIds = special if special is not None else _check_special(hf, source)

    # ---- files -----------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Path | str, special: SpecialTokenIds | None = None) -> Tokenizer:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such tokenizer file; point to a checkpoint's tokenizer.json")
        text = validate.read_text(path, CheckpointError)
        try:
            hf = tokenizers.Tokenizer.from_str(text)
        except Exception as err:  # tokenizers raises a bare Exception on bad JSON
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"{path}: not a valid tokenizer.json ({first})") from None
        return cls(hf, str(path), special)

    @classmethod
    def from_json_str(cls, text: str) -> Tokenizer:
        return cls(tokenizers.Tokenizer.from_str(text), "tokenizer JSON")

    def to_json_str(self) -> str:
        return self._hf.to_str(pretty=True)

    def save(self, path: Path | str) -> None:
        """Write `tokenizer.json` atomically."""
        atomic_write_text(Path(path), self.to_json_str())

    def tokenizer_config(self) -> dict[str, str]:
        """What ExecuTorch's HF tokenizer reads from `tokenizer_config.json` to know BOS and EOS."""
        return {"bos_token": self.id_to_token(self.special.bos), "eos_token": self.id_to_token(self.special.eos)}

    def save_config(self, path: Path | str) -> None:
        """Write `tokenizer_config.json` atomically (put it beside `tokenizer.json`)."""
        atomic_write_text(Path(path), json.dumps(self.tokenizer_config(), indent=2) + "\n")

    # ---- encode / decode -------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Ids of `text`; special-token strings inside it become their single ids; no BOS added."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        return self._hf.decode(list(ids), skip_special_tokens=skip_special)

    def token_to_id(self, token: str) -> int | None:
        return self._hf.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._hf.id_to_token(i)

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size(with_added_tokens=True)

    @property
    def hf(self) -> tokenizers.Tokenizer:
        """The wrapped `tokenizers.Tokenizer` (read it; changing it skips the special-token check)."""
        return self._hf


def _check_special(hf: tokenizers.Tokenizer, source: str) -> SpecialTokenIds:
    """Each BlueLM special token must be one added special token with its fixed id."""
    added = {i: tok for i, tok in hf.get_added_tokens_decoder().items() if tok.special}
    for want, text in enumerate(SPECIAL_TOKENS):
        got = hf.token_to_id(text)
        if got != want or want not in added or added[want].content != text:
            raise CheckpointError(
                f"{source}: special token {text!r} has id {got}, expected the special token id {want} "
                "(BlueLM special tokens must take ids 0..10 in config.SPECIAL_TOKENS order); "
                "retrain it with bluelm_edge.text.tokenizer.train_tokenizer"
            )
    return SpecialTokenIds()


# ---- training --------------------------------------------------------------------------------
def _empty_tokenizer() -> tokenizers.Tokenizer:
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    hf.decoder = decoders.ByteLevel()
    return hf


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE tokenizer (deterministic for the same texts and size).

    The special tokens take ids 0..10, then the 256 byte symbols, then merges up to
    `vocab_size` (fewer if the texts run out of pairs to merge).
    """
    if vocab_size < _MIN_VOCAB:
        raise UsageError(f"vocab_size {vocab_size} is too small; it must be at least {_MIN_VOCAB}")
    hf = _empty_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator(list(texts), trainer=trainer)
    return Tokenizer(hf, "trained tokenizer")


@functools.lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    """The shipped tiny model's tokenizer, or one trained on the built-in corpus if none is shipped."""
    if ASSET_TOKENIZER.is_file():
        return Tokenizer.from_file(ASSET_TOKENIZER)
    return train_tokenizer(builtin_corpus(), DEFAULT_VOCAB_SIZE)


# ---- the built-in corpus (English, digits, the chat format) ----------------------------------
_WORDS = (
    "the a an of to and in is it that for on with as was at by be this are from or have not but "
    "what which when where who how why all can will one two three four five six seven eight nine "
    "ten zero number sum total add plus minus times divided equals answer question think step first "
    "then next so because therefore result check count left right top bottom red green blue yellow "
    "black white image picture shows there many each more less than between color shape circle "
    "square triangle big small large cat dog bird car house tree book apple water light time day "
    "please tell me about give find compute solve calculate value let us see we get need know make "
    "good great thank you hello world model phone fast answer is correct wait again look carefully "
    "grid tile row column object objects contains after before long short same different people "
    "small medium half double triple hundred thousand million minute hour year week month morning "
    "evening inside outside above below near far under over into onto through across around along "
    "reason explain because since although however maybe probably certainly exactly simply only "
    "table chair window door room street city country river mountain sky cloud rain snow sun moon "
    "star flower grass leaf stone paper pencil screen camera battery memory speed energy power "
    "chip token prompt reply budget stop start end begin finish fruit orange banana bread cup"
).split()
_CHAT = ("<s>[|Human|]:", "[|BlueThink|][|AI|]:", "<think>", "</think>", "</s>")


def builtin_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """A small deterministic corpus: sentences, arithmetic and chat-format lines."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        kind = i % 3
        if kind == 0:
            lines.append(words.capitalize() + rng.choice([".", "?", "!", ","]))
        elif kind == 1:
            lines.append(f"What is {a} + {b}? {a} + {b} = {a + b}. {a} * {b} = {a * b}")
        else:
            lines.append(f"{_CHAT[0]}{words}?{_CHAT[1]}{_CHAT[2]}{a}-{b}={a - b}{_CHAT[3]}{a - b}{_CHAT[4]}")
    return lines
