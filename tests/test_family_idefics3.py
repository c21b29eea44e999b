"""The Idefics3 / SmolVLM family through the registry: a tiny random folder saved by transformers
goes through `info` and `export --model DIR` (fp32 XNNPACK) to a bundle whose program, run by
ExecuTorch's own `MultimodalRunner`, gives transformers' greedy tokens on a chat prompt with an image."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bluelm_edge import contract

pytestmark = pytest.mark.slow
transformers = pytest.importorskip("transformers")
N_NEW = 10


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from idefics3_folder import make_folder

    path = tmp_path_factory.mktemp("smolvlm") / "SmolVLM-tiny"
    hf, processor = make_folder(path)
    return path, hf, processor


def _info(path):
    import json

    res = subprocess.run([sys.executable, "-m", "bluelm_edge", "info", str(path), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_detected_and_described(folder):
    from bluelm_edge.families import open_folder

    path, hf, _ = folder
    source = open_folder(path)
    assert source.family.name == "idefics3" and source.config.adapter.kind == "linear"
    info = _info(path)
    assert (info["family"], info["weights"]) == ("idefics3", "checked")
    assert info["parameters"]["total"] == sum(p.numel() for p in hf.parameters())


@pytest.mark.parametrize(("name", "total"), [("SMOLVLM_256M", 256_484_928), ("SMOLVLM_2B", 2_246_272_880)])
def test_info_on_published_configs(tmp_path, name, total):
    """Config-only folders of SmolVLM-256M's and SmolVLM-2.2B's shapes: the published sizes (256M, 2.25B)."""
    import json

    import test_idefics3

    (tmp_path / "config.json").write_text(json.dumps(getattr(test_idefics3, name)))
    info = _info(tmp_path)
    assert info["weights"] == "none (config only)" and info["parameters"]["total"] == total


def test_incomplete_folder_is_one_line(folder, tmp_path):
    import shutil

    path = tmp_path / "partial"
    shutil.copytree(folder[0], path)
    (path / "processor_config.json").unlink()
    res = subprocess.run([sys.executable, "-m", "bluelm_edge", "export", "--model", str(path), "--recipe", "fp32",
                          "--out", str(tmp_path / "bundle")], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and not (tmp_path / "bundle").exists() and "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "preprocessor_config.json (or processor_config.json)" in lines[0]


def test_export_bundle_multimodal_runner_equals_generate(folder, tmp_path):
    from executorch.extension.llm.runner import GenerationConfig, MultimodalRunner
    from idefics3_vectors import vector_image
    from test_idefics3_export import runner_inputs
    from tokenizers import Tokenizer

    from bluelm_edge.export.pipeline import ExportOptions, run_export
    from bluelm_edge.imaging_idefics3 import Idefics3ImageRules, expand_prompt, image_seq_len, preprocess
    from bluelm_edge.model.idefics3 import read_config

    path, hf, processor = folder
    result = run_export(ExportOptions(model=path, recipe="fp32", out=tmp_path / "bundle", benchmark=False), show=False)
    assert result.manifest["app"]["chat"]["family"] == "idefics3"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the picture."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = vector_image(90, 130)
    inputs = processor(text=text, images=[image], return_tensors="pt")
    with torch.no_grad():
        ref = hf.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, eos_token_id=None)[0]
    img = preprocess(image, Idefics3ImageRules.load(path))
    tokenizer = Tokenizer.from_file(str(result.out / contract.TOKENIZER_JSON))
    ids = tokenizer.encode(expand_prompt(text, [img], image_seq_len(path))).ids
    assert ids == inputs["input_ids"][0].tolist()
    runner = MultimodalRunner(str(result.out / contract.MODEL_PTE), str(result.out / contract.TOKENIZER_JSON))
    pieces: list[str] = []
    config = GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0)
    runner.generate(runner_inputs(ids, img.pixels, read_config(path), tokenizer), config, token_callback=pieces.append)
    assert pieces == [tokenizer.decode([t], skip_special_tokens=False) for t in ref[len(ids):].tolist()]
