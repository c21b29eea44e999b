"""Hugging Face text folders (Qwen3, Llama 3, SmolLM2) through the families registry and the CLI.

Real folders: tiny random `transformers` models + `tokenizers` tokenizers saved with
`save_pretrained` (tests/hub_folders.py). Checked against transformers itself: the chat templates
(shared vectors), prompt ids, prefill logits, greedy `generate`; the thinking budget with Qwen3's
tags and message; `info` on Qwen3-4B's published config; one-line errors for unsupported or
incomplete folders. The slow part exports bundles and runs ExecuTorch's own TextLLMRunner.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import torch
from hub_folders import FAMILIES, TEMPLATES, hf_model, hf_tokenizer, make_folder, read_vectors, renderer
from typer.testing import CliRunner

from bluelm_edge.cli.main import app
from bluelm_edge.errors import ConfigError
from bluelm_edge.families import open_folder
from bluelm_edge.families.hub_text import QWEN3_BUDGET_MESSAGE
from bluelm_edge.generate import Sampling
from bluelm_edge.session import ChatSession, EagerDecoder
from bluelm_edge.text.chat import Message
from bluelm_edge.text.template import render_template

N_NEW = 24
QUESTION = "Hello! What is 17 + 25?"


@pytest.fixture(scope="session")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    return {name: make_folder(name, root / name) for name in FAMILIES}


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _hf_generate(folder: Path, text: str, n: int = N_NEW) -> list[int]:
    tok, model = hf_tokenizer(folder), hf_model(folder)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    return model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)[0, len(ids):].tolist()


def _hf_prompt(folder: Path, messages: list[dict], think: bool) -> str:
    return hf_tokenizer(folder).apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                    enable_thinking=think)


# ---- chat templates: shared vectors, ours == transformers ------------------------------------------
def test_template_vectors_equal_ours_and_transformers(folders):
    from idefics3_folder import make_processor

    cases = read_vectors()["cases"]
    assert len(cases) == 73 and {c["family"] for c in cases} == {*FAMILIES, "smolvlm"}
    processor = make_processor()
    for case in cases:
        template = (TEMPLATES / case["template"]).read_text()
        ours = render_template(template, case["messages"], add_generation_prompt=case["add_generation_prompt"],
                               special=case["tokens"], **case["variables"])
        assert ours == case["expected"], (case["family"], case["case"], case["variables"])
        hf = processor if case["family"] == "smolvlm" else hf_tokenizer(folders[case["family"]])
        theirs = hf.apply_chat_template(  # the case's own template (not only the folder's)
            case["messages"], tokenize=False, add_generation_prompt=case["add_generation_prompt"],
            chat_template=template, **case["variables"])
        assert theirs == case["expected"], (case["family"], case["case"])


def test_segments_are_derived_and_render_every_vector():
    """The app's form of each template (text/segments) is what the vectors hold, and renders every case."""
    from bluelm_edge.text import segments

    vectors = read_vectors()
    families = {c["template"]: (c["family"], c["tokens"]) for c in vectors["cases"]}
    for name, (family, tokens) in families.items():
        assert segments.derive(renderer(family, (TEMPLATES / name).read_text(), tokens)) == vectors["segments"][name]
    for case in vectors["cases"]:
        now = datetime.fromisoformat(case["now"]) if "now" in case else None  # a dated template's day
        got = segments.render(vectors["segments"][case["template"]], case["turns"],
                              think=case["variables"].get("enable_thinking", True),
                              add_generation_prompt=case["add_generation_prompt"], now=now)
        assert got == case["expected"], (case["family"], case["case"], case["variables"])


def test_a_dated_template_keeps_its_date_as_a_marker():
    """Llama 3.2-style "Today Date": the segments hold a marker, not the export day; a format the app
    cannot mirror is refused."""
    from bluelm_edge.text import segments

    seg = read_vectors()["segments"]["llama3_2_style.jinja"]
    assert "Today Date: \u27e6DATE:%d %b %Y\u27e7" in seg["begin"]["user"]
    odd = "{{ bos_token }}{{ strftime_now('%j') }}{% for m in messages %}{{ m.content }}{% endfor %}"
    seg, why = segments.derive_or_reason(segments.Renderer(odd, {"bos_token": "<s>"}))
    assert seg is None and "uses %j" in why


def test_a_template_the_app_cannot_mirror_gets_no_segments():
    """A template whose headers depend on the turn number cannot be cut: no segments, and why."""
    from bluelm_edge.text import segments

    numbered = "{% for m in messages %}[{{ loop.index }}] {{ m.role }}: {{ m.content }}\n{% endfor %}" \
               "{% if add_generation_prompt %}assistant:{% endif %}"
    seg, why = segments.derive_or_reason(segments.Renderer(numbered, {}))
    assert seg is None and why.startswith("they do not reproduce the template")


def test_qwen3_thinking_switch_is_the_templates_own():
    cases = {(c["case"], json.dumps(c["variables"])): c["expected"] for c in read_vectors()["cases"]
             if c["family"] == "qwen3"}
    off = cases[("one_turn", '{"enable_thinking": false}')]
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert cases[("one_turn", '{"enable_thinking": true}')].endswith("<|im_start|>assistant\n")
    earlier = cases[("earlier_thinking", '{"enable_thinking": true}')]
    assert "17 + 25 = 42" not in earlier and "It is 42." in earlier  # earlier turns lose their thinking


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prompt_ids_equal_apply_chat_template(folders, family):
    source = open_folder(folders[family])
    tok = hf_tokenizer(folders[family])
    messages = [Message("user", QUESTION), Message("assistant", "It is 42."), Message("user", "Why?")]
    for think in (True, False):
        ref = tok.apply_chat_template([{"role": m.role, "content": m.content} for m in messages], tokenize=True,
                                      add_generation_prompt=True, enable_thinking=think)
        ref = ref["input_ids"] if not isinstance(ref, list) else ref
        assert source.chat.prompt_ids(messages, think=think) == list(ref)


# ---- the model: one loader, parity with transformers -------------------------------------------------
@pytest.mark.parametrize("family", list(FAMILIES))
def test_prefill_logits_match_transformers(folders, family):
    source = open_folder(folders[family])
    model, ref_model = source.load_model(), hf_model(folders[family])
    ids = torch.tensor([source.chat.prompt_ids([Message("user", QUESTION)], think=True)])
    with torch.no_grad():
        ref = ref_model(ids).logits[0, -1]
        got = model.text_decoder(model.token_embedding(ids), torch.arange(ids.shape[1]))[0]
    assert float((got - ref).abs().max()) < 1e-4


def test_families_and_their_tokens(folders):
    qwen3, llama = open_folder(folders["qwen3"]), open_folder(folders["llama"])
    tok = hf_tokenizer(folders["qwen3"])
    assert qwen3.family.name == "qwen3" and llama.family.name == "llama"
    assert open_folder(folders["smollm2"]).family.name == "llama"  # SmolLM2 is a LlamaForCausalLM
    t = qwen3.config.tokens
    assert (t.think_start, t.think_end) == (tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>"))
    assert t.eos_ids == [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    assert qwen3.chat.thinking.budget_message == QWEN3_BUDGET_MESSAGE and llama.chat.thinking is None
    assert qwen3.config.vision is None and qwen3.config.image_tokens_per_tile == 0


# ---- CLI: info, chat, thinking budget ---------------------------------------------------------------
def test_info_counts_the_transformers_parameters(folders):
    for family in FAMILIES:
        out = _cli("info", str(folders[family]), "--json")
        assert out.exit_code == 0, out.output
        report = json.loads(out.output)
        assert report["parameters"]["total"] == hf_model(folders[family]).num_parameters()
        assert report["parameters"]["vision"] == 0 and report["weights"] == "checked"


def test_info_on_qwen3_4b_published_config_is_4_02b(tmp_path):
    vector = json.loads((Path(__file__).parent / "vectors" / "qwen3_4b_config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in vector.items() if not k.startswith("_")}))
    out = _cli("info", str(tmp_path), "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    p = report["parameters"]
    assert report["family"] == "qwen3" and report["weights"] == "none (config only)"
    assert abs(p["total"] - vector["_published_parameters"]) <= 0.01 * vector["_published_parameters"]
    non_embedding = p["total"] - p["decoder_embedding"]
    assert abs(non_embedding - vector["_published_non_embedding"]) <= 0.01 * vector["_published_non_embedding"]


def test_chat_one_turn_equals_transformers_generate(folders):
    """Non-thinking mode: greedy chat answers exactly what transformers generates after the same prompt."""
    for family in ("qwen3", "llama"):
        out = _cli("chat", str(folders[family]), "--prompt", QUESTION, "--no-think", "--json",
                   "--max-new-tokens", str(N_NEW))
        assert out.exit_code == 0, out.output
        reply = json.loads(out.output[out.output.index("{"):])
        text = _hf_prompt(folders[family], [{"role": "user", "content": QUESTION}], think=False)
        ref = _hf_generate(folders[family], text)
        assert reply["answer"] == hf_tokenizer(folders[family]).decode(ref, skip_special_tokens=True).strip()


def test_thinking_budget_caps_thinking_with_qwen3_message(folders):
    source = open_folder(folders["qwen3"])
    session = ChatSession(EagerDecoder(source.load_model()), source.tokenizer, source.config, source.chat)
    n = 5
    reply = session.ask(QUESTION, think=True, budget=n, sampling=Sampling(max_new_tokens=40))
    t, tok = source.config.tokens, source.tokenizer
    start = reply.tokens.index(t.think_start)
    body = reply.tokens[start + 1 : start + 1 + n]
    forced = tok.encode(QWEN3_BUDGET_MESSAGE) + [t.think_end] + tok.encode("\n\n")
    after = reply.tokens[start + 1 + n : start + 1 + n + len(forced)]
    assert after == forced and all(reply.forced[start + 1 + n : start + 1 + n + len(forced)])
    assert not any(reply.forced[start + 1 : start + 1 + n]) and t.think_end not in body
    assert reply.stats.thinking_tokens == n and reply.tokens.count(t.think_end) == 1
    out = _cli("chat", str(folders["qwen3"]), "--prompt", QUESTION, "--thinking-budget", str(n), "--json",
               "--max-new-tokens", "40")
    assert out.exit_code == 0, out.output
    cli = json.loads(out.output[out.output.index("{"):])
    assert cli["stats"]["thinking_tokens"] == n and cli["answer"] == reply.answer
    assert cli["thinking"].endswith(QWEN3_BUDGET_MESSAGE)  # streamed as forced thinking text


# ---- one-line errors ----------------------------------------------------------------------------------
def test_unsupported_architecture_is_one_line_listing_the_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["MambaForCausalLM"], "model_type": "mamba"}))
    for command in (["info", str(tmp_path)], ["export", "--model", str(tmp_path), "--out", str(tmp_path / "b")]):
        out = _cli(*command)
        assert out.exit_code != 0 and isinstance(out.exception, ConfigError)
        message = str(out.exception)
        assert "\n" not in message and "MambaForCausalLM" in message
        assert "Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM" in message


@pytest.mark.parametrize("gone", ["tokenizer.json", "model.safetensors", "tokenizer_config.json"])
def test_incomplete_folder_is_one_line_naming_what_is_missing(folders, tmp_path, gone):
    folder = tmp_path / "qwen3"
    shutil.copytree(folders["qwen3"], folder)
    (folder / gone).unlink()
    for command in (["chat", str(folder), "--prompt", "hi"], ["export", "--model", str(folder), "--out",
                                                              str(tmp_path / "b")]):
        out = _cli(*command)
        assert out.exit_code != 0 and isinstance(out.exception, ConfigError), out.output
        message = str(out.exception)
        assert "\n" not in message and f"missing {gone}" in message and "incomplete qwen3 folder" in message


# ---- export (XNNPACK) and ExecuTorch's own runner ---------------------------------------------------
@pytest.fixture(scope="session")
def hub_bundles(folders, tmp_path_factory) -> dict[str, Path]:
    from bluelm_edge.export.pipeline import ExportOptions, run_export

    root = tmp_path_factory.mktemp("hub-bundles")
    out = {}
    for family in ("qwen3", "llama"):
        opts = ExportOptions(model=folders[family], recipe="fp32", max_context=256, out=root / family, benchmark=False)
        out[family] = run_export(opts, show=False).out
    return out


def _runner_text(bundle: Path, prompt: str) -> str:
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    from bluelm_edge.graphs.xnnpack import load_custom_ops

    load_custom_ops()
    pieces: list[str] = []
    runner = TextLLMRunner(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))
    runner.generate(prompt, GenerationConfig(echo=False, max_new_tokens=N_NEW, temperature=0.0, num_bos=0),
                    token_callback=pieces.append)
    return "".join(pieces)


@pytest.mark.slow
@pytest.mark.parametrize("family,think", [("qwen3", True), ("qwen3", False), ("llama", False)])
def test_text_runner_on_the_bundle_equals_transformers_generate(folders, hub_bundles, family, think):
    """ExecuTorch's TextLLMRunner on our bundle, greedy, gives transformers' `generate` text for the
    same templated prompt; our host runner gives the same token ids."""
    from bluelm_edge.export.host import load_bundle
    from bluelm_edge.generate import generate

    text = _hf_prompt(folders[family], [{"role": "user", "content": QUESTION}], think=think)
    ref = _hf_generate(folders[family], text)
    decoder, _, config, _ = load_bundle(hub_bundles[family])
    ids = hf_tokenizer(folders[family])(text, add_special_tokens=False)["input_ids"]
    ours = generate(decoder, ids, stop_ids=config.tokens.eos_ids, sampling=Sampling(max_new_tokens=N_NEW)).tokens
    assert ours == ref
    assert _runner_text(hub_bundles[family], text) == hf_tokenizer(folders[family]).decode(ref)


@pytest.mark.slow
def test_bundle_manifest_carries_the_family(hub_bundles):
    app = json.loads((hub_bundles["qwen3"] / "manifest.json").read_text())["app"]
    assert app["chat"]["family"] == "qwen3"
    assert app["chat"]["chat_template"] == (TEMPLATES / "qwen3.jinja").read_text()
    assert app["thinking"]["budget_message"] == QWEN3_BUDGET_MESSAGE and app["thinking"]["budget_suffix"] == "\n\n"
    assert app["tokens"]["think_start"] == "<think>" and app["token_ids"]["image"] == -1
    assert json.loads((hub_bundles["llama"] / "manifest.json").read_text())["app"]["chat"]["thinking"] is None
    assert app["chat"]["segments"] == read_vectors()["segments"]["qwen3.jinja"]
    assert app["chat"]["segments_problem"] is None


@pytest.mark.slow
def test_app_vectors_hold_this_exporters_app_section(hub_bundles):
    """chat_engine_hub.json (the Java ChatEngine's family cases) carries what this exporter writes."""
    from hub_folders import VECTORS

    sets = {s["family"]: s for s in json.loads((VECTORS / "chat_engine_hub.json").read_text())["sets"]}
    app = json.loads((hub_bundles["qwen3"] / "manifest.json").read_text())["app"]
    vec = sets["qwen3"]["manifest"]["app"]
    assert {k: app[k] for k in ("chat", "tokens", "token_ids", "thinking", "eos_ids")} == \
        {k: vec[k] for k in ("chat", "tokens", "token_ids", "thinking", "eos_ids")}


@pytest.mark.slow
def test_run_on_the_bundle_caps_thinking_like_the_eager_chat(folders, hub_bundles):
    """`run BUNDLE --thinking-budget N` (template and message from the manifest) == `chat DIR`."""
    args = ["--prompt", QUESTION, "--thinking-budget", "4", "--max-new-tokens", "32", "--json"]
    ran, chatted = _cli("run", str(hub_bundles["qwen3"]), *args), _cli("chat", str(folders["qwen3"]), *args)
    assert ran.exit_code == 0 and chatted.exit_code == 0, ran.output + chatted.output
    ran_j = json.loads(ran.output[ran.output.index("{"):])
    chat_j = json.loads(chatted.output[chatted.output.index("{"):])
    assert ran_j["stats"]["thinking_tokens"] == 4 and ran_j["thinking"].endswith(QWEN3_BUDGET_MESSAGE)
    assert (ran_j["thinking"], ran_j["answer"]) == (chat_j["thinking"], chat_j["answer"])


def test_eval_on_a_text_only_folder_runs_the_text_tasks(folders):
    """`eval DIR` on a Hub folder: the synthetic text tasks only (a random model scores ~0)."""
    out = _cli("eval", str(folders["llama"]), "--limit", "1", "--thinking-budget", "0", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output[out.output.index("{"):])
    from bluelm_edge.datasets.tasks import get_tasks

    text_tasks = {t.name for t in get_tasks(None) if t.kind == "text"}
    assert {r["task"] for r in report["results"]} == text_tasks


def test_calibrate_and_quantize_take_a_hub_folder(folders, tmp_path):
    """`calibrate DIR` and `quantize DIR` read the folder through its family (Qwen3's own template;
    the shipped set's image samples skipped for a text-only model) and quantize its text methods."""
    calib, out = tmp_path / "calib", tmp_path / "q"
    res = _cli("calibrate", str(folders["qwen3"]), "--samples", "8", "--out", str(calib), "--json")
    assert res.exit_code == 0, res.output
    meta = json.loads(res.stdout)
    assert meta["images"] == 0 and 0 < meta["samples"] <= 8
    res = _cli("quantize", str(folders["qwen3"]), "--recipe", "xnnpack-8da4w", "--calibration", str(calib),
               "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads((out / "quantize.json").read_text())
    assert info["methods"] == ["token_embedding", "text_decoder", "forward"]


def test_export_warns_when_the_app_cannot_render_the_template(folders, tmp_path):
    """A template whose headers count the turns cannot be cut into segments: the bundle says why and
    the export warns in one line (the bundle still runs on the host)."""
    import shutil

    from test_cli import cli

    folder = tmp_path / "numbered"
    shutil.copytree(folders["smollm2"], folder)
    (folder / "chat_template.jinja").write_text(
        "{% for m in messages %}[{{ loop.index }}] {{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}")
    res = cli("export", "--model", str(folder), "--recipe", "fp32", "--max-context", "128", "--no-benchmark",
              "--out", str(tmp_path / "bundle"))
    assert res.returncode == 0, res.stderr[-2000:]
    warnings = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1 and "cannot render llama's chat template (they do not reproduce" in warnings[0]
    chat = json.loads((tmp_path / "bundle" / "manifest.json").read_text())["app"]["chat"]
    assert chat["segments"] is None and chat["segments_problem"].startswith("they do not reproduce")
