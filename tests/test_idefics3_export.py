"""A tiny random SmolVLM-style folder (save_pretrained) exported to an XNNPACK `.pte` and run by our
host runner and ExecuTorch's own `MultimodalRunner`: the same greedy tokens as transformers'
`generate` on a chat prompt with an image (2 x 2 tiles + the global image).

The export goes through the stages `export/pipeline.py` runs for fp32 XNNPACK (graph form,
`torch.export` of the contract methods, `lower_xnnpack.lower`) on the model `load_idefics3`
builds; `export --model DIR` reaches it once the family registry dispatches Idefics3 folders.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from bluelm_edge import contract
from bluelm_edge.generate import Sampling, generate

pytestmark = pytest.mark.slow
transformers = pytest.importorskip("transformers")
N_NEW = 10


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from idefics3_folder import make_folder
    from idefics3_vectors import vector_image
    from tokenizers import Tokenizer

    from bluelm_edge.export import lower_xnnpack
    from bluelm_edge.graphs import methods
    from bluelm_edge.graphs.forms import graph_source
    from bluelm_edge.imaging_idefics3 import Idefics3ImageRules, expand_prompt, image_seq_len, preprocess
    from bluelm_edge.model.idefics3 import load_idefics3

    root = tmp_path_factory.mktemp("idefics3")
    hf, processor = make_folder(root / "hf")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the picture."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = vector_image(90, 130)
    inputs = processor(text=text, images=[image], return_tensors="pt")
    with torch.no_grad():
        ref = hf.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, eos_token_id=None)
    model, cfg = load_idefics3(root / "hf", max_seq_len=256)
    names = [m for m in contract.METHODS if m != contract.FORWARD]  # forward is composed by the lowering
    progs = methods.export_methods(model, 256, 1, modules=methods.wrappers(graph_source("xnnpack", model), names))
    lower_xnnpack.lower(progs, contract.metadata(cfg, 256, 1), root / contract.MODEL_PTE)
    shutil.copyfile(root / "hf" / "tokenizer.json", root / contract.TOKENIZER_JSON)
    img = preprocess(image, Idefics3ImageRules.load(root / "hf"))
    tokenizer = Tokenizer.from_file(str(root / contract.TOKENIZER_JSON))
    ids = tokenizer.encode(expand_prompt(text, [img], image_seq_len(root / "hf"))).ids
    assert ids == inputs["input_ids"][0].tolist()
    return root, model, cfg, tokenizer, ids, img, ref[0, len(ids):].tolist()


def test_host_runner_equals_generate(exported):
    from bluelm_edge.export.host import PteDecoder

    root, model, cfg, _, ids, img, ref = exported
    pte = PteDecoder(root / contract.MODEL_PTE)
    with torch.no_grad():
        eager = model.vision_encoder(img.pixels)
    scale = eager.abs().max()  # XNNPACK's fp32 kernels sum in another order: compare relative to the size
    assert scale > 1.0 and (pte.vision_encoder(img.pixels) - eager).abs().max() < 1e-3 * scale
    out = generate(pte, ids, stop_ids=[], sampling=Sampling(max_new_tokens=N_NEW), images=[img.pixels],
                   image_token=cfg.tokens.image)
    assert out.tokens == ref


def test_multimodal_runner_equals_generate(exported):
    from executorch.extension.llm.runner import GenerationConfig, MultimodalRunner

    root, _, cfg, tokenizer, ids, img, ref = exported
    runner = MultimodalRunner(str(root / contract.MODEL_PTE), str(root / contract.TOKENIZER_JSON))
    pieces: list[str] = []
    config = GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0)
    runner.generate(runner_inputs(ids, img.pixels, cfg, tokenizer), config, token_callback=pieces.append)
    assert pieces == [tokenizer.decode([t], skip_special_tokens=False) for t in ref]


def runner_inputs(ids, pixels, cfg, tokenizer):
    """The prompt as MultimodalRunner inputs: the text between image-token runs, one image input a tile."""
    from executorch.extension.llm.runner import make_image_input, make_text_input

    inputs, text, tile, i = [], [], 0, 0
    while i < len(ids):
        if ids[i] != cfg.tokens.image:
            text.append(ids[i])
            i += 1
            continue
        if text:
            inputs.append(make_text_input(tokenizer.decode(text, skip_special_tokens=False)))
            text = []
        inputs.append(make_image_input(pixels[tile].contiguous()))
        tile, i = tile + 1, i + cfg.image_tokens_per_tile
    assert tile == pixels.shape[0]
    return inputs + ([make_text_input(tokenizer.decode(text, skip_special_tokens=False))] if text else [])
