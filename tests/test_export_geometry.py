"""The 3B model's geometry through ExecuTorch's own runners (what Android's `LlmModule` wraps).

One fp32 XNNPACK export of the `geometry` preset (378-px tiles of 14-px patches: 196 image tokens
a tile; 1024-token context) is shared. `MultimodalRunner` sends a whole image (196 embeddings) to
`text_decoder` in one call and `TextLLMRunner` a whole 300-token prompt to `forward`: both must
generate the same greedy tokens as our host runner and the eager model. A prompt longer than the
context fails with one line before the runtime is called.
"""

from __future__ import annotations

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.errors import ContextError
from bluelm_edge.export.host import PteDecoder
from bluelm_edge.generate import Sampling, generate
from bluelm_edge.session import EagerDecoder
from bluelm_edge.text.chat import Message, render

pytestmark = pytest.mark.slow
N_NEW = 12


@pytest.fixture(scope="session")
def pte(geometry_export):
    return PteDecoder(geometry_export[0].out / contract.MODEL_PTE)


def _greedy(decoder, ids, config, images=()):
    kw = dict(images=list(images), image_token=config.tokens.image) if images else {}
    return generate(decoder, ids, stop_ids=[config.tokens.eos], sampling=Sampling(max_new_tokens=N_NEW), **kw).tokens


def _gen_config():
    from executorch.extension.llm.runner import GenerationConfig

    return GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0)


def test_metadata_declares_whole_context_prefill(pte, geometry_export):
    config = geometry_export[2]
    assert config.image_tokens_per_tile == 196 and pte.constant("get_tokens_per_tile") == 196
    assert pte.constant("get_max_seq_len") == pte.max_prefill == pte.max_context == 1024
    assert pte.constant("enable_dynamic_shape") is True


def test_multimodal_runner_one_real_tile(geometry_export, pte, collect_pieces):
    from executorch.extension.llm.runner import MultimodalRunner, make_image_input, make_text_input

    result, model, config, tokenizer = geometry_export
    pixels = torch.randn(1, 3, 378, 378, generator=torch.Generator().manual_seed(3))
    msg = Message("user", "What is 17+25?", images=["x"])
    ids = render([msg], tokenizer, think=False, add_generation_prompt=True, image_tokens=[196]).ids
    ours = _greedy(pte, ids, config, [pixels])
    assert ours == _greedy(EagerDecoder(model), ids, config, [pixels])
    first, last = ids.index(config.tokens.image), len(ids) - 1 - ids[::-1].index(config.tokens.image)
    assert last - first + 1 == 196
    inputs = [make_text_input(tokenizer.decode(ids[:first])), make_image_input(pixels[0].contiguous()),
              make_text_input(tokenizer.decode(ids[last + 1 :]))]
    runner = MultimodalRunner(str(result.out / contract.MODEL_PTE), str(result.out / contract.TOKENIZER_JSON))
    pieces = collect_pieces(lambda cb: runner.generate(inputs, _gen_config(), token_callback=cb), tokenizer, ours)
    assert pieces and "".join(pieces) == tokenizer.decode(ours[: len(pieces)])


def _long_prompt(tokenizer, n_min: int) -> list[int]:
    text = "What is 17+25? Sort 9 4 7. "
    while True:
        ids = render([Message("user", text)], tokenizer, think=False, add_generation_prompt=True).ids
        if len(ids) >= n_min:
            return ids
        text += "What is 17+25? Sort 9 4 7. "


def test_text_runner_300_token_prompt(geometry_export, pte, collect_pieces):
    from executorch.extension.llm.runner import TextLLMRunner

    result, model, config, tokenizer = geometry_export
    ids = _long_prompt(tokenizer, 300)
    assert 300 <= len(ids) < 400 and tokenizer.encode(tokenizer.decode(ids)) == ids
    ours = _greedy(pte, ids, config)
    assert ours == _greedy(EagerDecoder(model), ids, config)
    runner = TextLLMRunner(str(result.out / contract.MODEL_PTE), str(result.out / contract.TOKENIZER_JSON))
    pieces = collect_pieces(lambda cb: runner.generate(tokenizer.decode(ids), _gen_config(), token_callback=cb),
                            tokenizer, ours)
    assert pieces and "".join(pieces) == tokenizer.decode(ours[: len(pieces)])


def test_prompt_longer_than_context_fails_before_the_runtime(geometry_export):
    result, _, config, tokenizer = geometry_export
    fresh = PteDecoder(result.out / contract.MODEL_PTE)
    ids = _long_prompt(tokenizer, 1030)
    with pytest.raises(ContextError, match=r"prompt is \d+ tokens but the context holds 1024"):
        _greedy(fresh, ids, config)
    assert fresh._methods == {}  # no method was loaded, let alone run


def test_cli_run_long_prompt_one_line(geometry_export):
    import os
    import subprocess
    import sys

    prompt = "What is 17+25? " * 400
    res = subprocess.run([sys.executable, "-m", "bluelm_edge.cli.main", "run", str(geometry_export[0].out),
                          "--prompt", prompt, "--no-think"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "BLUELM_DEBUG": ""})
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "context holds 1024" in lines[0] and "Traceback" not in res.stderr
