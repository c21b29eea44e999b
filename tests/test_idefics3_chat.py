"""Idefics3 / SmolVLM images through chat, run and the default (quantized) export.

A tiny random folder (tests/idefics3_folder.py) and formula images (tests/idefics3_vectors.py):
the template path renders images as transformers' processor does (ids equal, one and two images),
`chat DIR --image` gives transformers' greedy tokens, `run BUNDLE --image` on the fp32 bundle gives
the eager chat's, and the default export (8da4w, calibrated with image prompts through the same
path) runs in ExecuTorch's MultimodalRunner with our host runner's tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from bluelm_edge import contract
from bluelm_edge.cli.main import app
from bluelm_edge.text.chat import Message

pytestmark = pytest.mark.slow
transformers = pytest.importorskip("transformers")
N_NEW = 10
PROMPT = "Describe the picture."
SIZES = [(90, 130), (30, 130)]  # 2 x 2 tiles + global; 1 x 2 tiles + global


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from idefics3_folder import make_folder
    from idefics3_vectors import vector_image

    root = tmp_path_factory.mktemp("smolvlm-chat")
    hf, processor = make_folder(root / "SmolVLM-tiny")
    paths = []
    for i, (h, w) in enumerate(SIZES):
        paths.append(root / f"img{i}.png")
        vector_image(h, w).save(paths[-1])  # PNG: the same pixels back
    return root / "SmolVLM-tiny", hf, processor, paths


def _reference(hf, processor, n_images: int, text: str = PROMPT) -> tuple[list[int], list[int]]:
    """(prompt ids, greedy new tokens) of transformers' processor + generate on n images."""
    from idefics3_vectors import vector_image

    content = [{"type": "image"}] * n_images + [{"type": "text", "text": text}]
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    images = [vector_image(h, w) for h, w in SIZES[:n_images]] or None
    inputs = processor(text=prompt, images=images, return_tensors="pt")
    with torch.no_grad():
        out = hf.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, eos_token_id=None)[0].tolist()
    ids = inputs["input_ids"][0].tolist()
    return ids, out[len(ids):]


def _cli_tokens(*args: str) -> list[int]:
    out = CliRunner().invoke(app, [*args, "--prompt", PROMPT, "--max-new-tokens", str(N_NEW), "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output[out.output.index("{"):])["tokens"]


def _prompt_ids(chat, messages, prepared) -> list[int]:
    """The family's prompt ids, each image as its `PreparedImage` (what `ChatSession.ask` passes)."""
    return chat.prompt_ids(messages, think=False, image_tokens=[p.n_tokens for p in prepared],
                           image_prompts=[p.prompt for p in prepared])


def _images(paths, n: int) -> list[str]:
    return [a for p in paths[:n] for a in ("--image", str(p))]


# ---- the template path: ids equal the processor's ----------------------------------------------------
@pytest.mark.parametrize("n_images", [0, 1, 2])
def test_prompt_ids_equal_processor(folder, n_images):
    from bluelm_edge.families import open_folder

    path, hf, processor, paths = folder
    source = open_folder(path)
    read = source.image_reader()
    prepared = [read(p) for p in paths[:n_images]]
    ids = _prompt_ids(source.chat, [Message("user", PROMPT, images=paths[:n_images])], prepared)
    ref, _ = _reference(hf, processor, n_images)
    assert ids == ref
    assert ids.count(source.config.tokens.image) == sum(p.n_tokens for p in prepared) == [0, 80, 128][n_images]


def test_two_turns_equal_processor(folder):
    """History keeps its images; the assistant's answer goes back as a text part."""
    from idefics3_vectors import vector_image

    from bluelm_edge.families import open_folder

    path, _, processor, paths = folder
    source = open_folder(path)
    prepared = [source.image_reader()(p) for p in paths]
    messages = [Message("user", PROMPT, images=paths[:1]), Message("assistant", "A square."),
                Message("user", "And this one?", images=paths[1:])]
    ids = _prompt_ids(source.chat, messages, prepared)
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A square."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And this one?"}]}]
    text = processor.apply_chat_template(conv, add_generation_prompt=True)
    images = [vector_image(h, w) for h, w in SIZES]
    assert ids == processor(text=text, images=images, return_tensors="pt")["input_ids"][0].tolist()


# ---- chat and run: greedy tokens ------------------------------------------------------------------------
@pytest.mark.parametrize("n_images", [1, 2])
def test_chat_equals_transformers_generate(folder, n_images):
    path, hf, processor, paths = folder
    _, ref = _reference(hf, processor, n_images)
    assert _cli_tokens("chat", str(path), *_images(paths, n_images)) == ref


@pytest.fixture(scope="module")
def fp32_bundle(folder, tmp_path_factory):
    from bluelm_edge.export.pipeline import ExportOptions, run_export

    out = tmp_path_factory.mktemp("smolvlm-fp32") / "bundle"
    run_export(ExportOptions(model=folder[0], recipe="fp32", out=out, benchmark=False), show=False)
    return out


def test_bundle_carries_the_image_rules(folder, fp32_bundle):
    from bluelm_edge.imaging_idefics3 import PROCESSOR, Idefics3ImageRules, image_seq_len
    from bluelm_edge.io import sha256_file

    manifest = json.loads((fp32_bundle / contract.MANIFEST_JSON).read_text())
    entry = next(f for f in manifest["files"] if f["path"] == PROCESSOR)
    assert entry["sha256"] == sha256_file(fp32_bundle / PROCESSOR)
    assert Idefics3ImageRules.load(fp32_bundle) == Idefics3ImageRules.load(folder[0])
    assert image_seq_len(fp32_bundle) == image_seq_len(folder[0]) == 16


@pytest.mark.parametrize("n_images", [1, 2])
def test_run_bundle_equals_eager_chat(folder, fp32_bundle, n_images):
    path, hf, processor, paths = folder
    eager = _cli_tokens("chat", str(path), *_images(paths, n_images))
    assert _cli_tokens("run", str(fp32_bundle), *_images(paths, n_images)) == eager
    assert _cli_tokens("chat", str(fp32_bundle), *_images(paths, n_images)) == eager


def test_image_for_text_only_folder_is_one_line(folder, tmp_path):
    from hub_folders import make_folder

    text_only = make_folder("llama", tmp_path / "llama")
    res = subprocess.run([sys.executable, "-m", "bluelm_edge", "chat", str(text_only), "--image", str(folder[3][0]),
                          "--prompt", PROMPT, "--max-new-tokens", "2"], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "text-only model; it takes no images" in lines[0], res.stderr


@pytest.mark.parametrize("n_images", [0, 1])
def test_typed_image_token_is_one_line(folder, n_images):
    """A message that types `<image>` itself: the placeholders no longer match the images."""
    from bluelm_edge.errors import DataError
    from bluelm_edge.families import open_folder

    source = open_folder(folder[0])
    prepared = [source.image_reader()(p) for p in folder[3][:n_images]]
    with pytest.raises(DataError, match=f"has {n_images + 1} image placeholder.s. but {n_images} image"):
        _prompt_ids(source.chat, [Message("user", "<image> what?", images=folder[3][:n_images])], prepared)


# ---- the default export: 8da4w, calibrated on image prompts ----------------------------------------------
@pytest.fixture(scope="module")
def quantized(tmp_path_factory, folder):
    """A 64-wide decoder (the default recipe's group size is 32) exported without --recipe."""
    from idefics3_folder import make_folder

    from bluelm_edge.export.pipeline import ExportOptions, run_export

    root = tmp_path_factory.mktemp("smolvlm-8da4w")
    make_folder(root / "SmolVLM-64", hidden=64)
    result = run_export(ExportOptions(model=root / "SmolVLM-64", out=root / "bundle", benchmark=False), show=False)
    return root / "SmolVLM-64", result


def test_default_export_calibrates_on_images(quantized):
    from bluelm_edge.families import open_folder
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory

    path, result = quantized
    assert result.manifest["recipe"] == "xnnpack-8da4w" and result.manifest["app"]["chat"]["family"] == "idefics3"
    source = open_folder(path)
    samples = load_set(samples=8)
    calib = calibrate_in_memory(source.load_model(), source.tokenizer, source.config, samples, source.chat,
                                source.image_reader())
    with_images = [s for s, c in zip(samples, calib.samples, strict=True) if c["pixels"] is not None]
    assert with_images and len(with_images) == sum(any(m.images for m in s.messages) for s in samples)
    for c in calib.samples:  # every image's tiles fill exactly its <image> slots
        n = int((c["ids"] == source.config.tokens.image).sum())
        assert n == (0 if c["pixels"] is None else c["pixels"].shape[0] * 16)
    assert result.quality["top1_agreement"] >= 0.75


def _first_logits(session, paths) -> torch.Tensor:
    """Last-position logits [V] of the prompt with `paths`' images, through the session's decoder."""
    from bluelm_edge.generate import prompt_embeddings

    prepared = [session.read_image(p) for p in paths]
    ids = _prompt_ids(session.chat, [Message("user", PROMPT, images=paths)], prepared)
    with torch.no_grad():
        embeds = prompt_embeddings(session.decoder, ids, [p.pixels for p in prepared], session.config.tokens.image)
        session.decoder.reset()
        logits = session.decoder.text_decoder(embeds, torch.arange(embeds.shape[1]))
    return logits.reshape(-1, logits.shape[-1])[-1].float()


@pytest.mark.parametrize("n_images", [1, 2])
def test_quantized_bundle_in_multimodal_runner(folder, quantized, n_images):
    """MultimodalRunner gives our host runner's tokens on the 8da4w bundle, whose first-step logits
    are close to fp32 eager's (cosine 0.96 measured; the random model's top logits are too close
    together for 4-bit greedy tokens to stay equal)."""
    from executorch.extension.llm.runner import GenerationConfig, MultimodalRunner
    from test_idefics3_export import runner_inputs
    from tokenizers import Tokenizer

    from bluelm_edge.cli.common import load_for_generation
    from bluelm_edge.generate import Sampling

    path, result = quantized
    paths = folder[3][:n_images]
    eager = _first_logits(load_for_generation(path, None).session(), paths)
    quant = _first_logits(load_for_generation(result.out, None).session(), paths)
    assert float(torch.nn.functional.cosine_similarity(eager, quant, dim=0)) > 0.95
    host = load_for_generation(result.out, None).session()
    reply = host.ask(PROMPT, paths, sampling=Sampling(max_new_tokens=N_NEW))
    ids = _prompt_ids(host.chat, [Message("user", PROMPT, images=paths)], host.images)
    tokenizer = Tokenizer.from_file(str(result.out / contract.TOKENIZER_JSON))
    runner = MultimodalRunner(str(result.out / contract.MODEL_PTE), str(result.out / contract.TOKENIZER_JSON))
    pieces: list[str] = []
    pixels = torch.cat([p.pixels for p in host.images])
    config = GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0)
    runner.generate(runner_inputs(ids, pixels, host.config, tokenizer), config, token_callback=pieces.append)
    assert len(pieces) == N_NEW
    assert pieces == [tokenizer.decode([t], skip_special_tokens=False) for t in reply.tokens]
