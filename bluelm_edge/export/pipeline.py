"""The staged export: checkpoint -> calibrate -> quantize -> export -> lower -> bundle -> check.

Each stage reports through a rich progress display. The expensive result (the `.pte`, or the
lowering-ready `program.pt2` + `coverage.json` without a vendor SDK, plus the quality numbers) is
cached in `.<out>.cache/<key>/`, keyed by the sha256 of everything it depends on (weights,
tokenizer, config, recipe, backend, SoC, context, calibration set, bluelm-edge version); a rerun
reuses it and `force=True` redoes it. The bundle itself is always written atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bluelm_edge import __version__, contract
from bluelm_edge.errors import BlueLMError, UsageError
from bluelm_edge.export import archive, bundle
from bluelm_edge.export.quality import fp32_reference, measure_quality, npu_quality
from bluelm_edge.graphs import methods
from bluelm_edge.graphs.forms import FORM_VERSION
from bluelm_edge.io import atomic_dir, check_output_dir, sha256_file

DEFAULT_RECIPES = {"xnnpack": "xnnpack-8da4w", "qnn": "qnn-16a4w", "mediatek": "mediatek-a16w4"}
DEFAULT_SOCS = {"qnn": "SM8650", "mediatek": "mt6989"}
FP32 = "fp32"  # XNNPACK without quantization


class SdkMissingError(BlueLMError):
    """The vendor SDK needed to finish lowering is missing; the lowering-ready bundle was written."""

    exit_code = 3


@dataclass
class ExportOptions:
    model: Path | None = None  # checkpoint folder; None: the shipped tiny stand-in
    preset: str | None = None  # random weights of a preset instead (seeded)
    backend: str = "xnnpack"
    soc: str | None = None
    recipe: str | None = None  # None: the backend's default; "fp32" for unquantized XNNPACK
    max_context: int | None = None
    out: Path = Path("bluelm-bundle")
    force: bool = False
    calibration: Path | None = None  # calibration set (default: the shipped one)
    samples: int | None = 16
    prefill_chunk: int | None = None  # XNNPACK: longest text_decoder call (None: the whole context)
    vision_batch: int = contract.DEFAULT_VISION_BATCH
    shards: str | int = "auto"  # qnn/mediatek: decoder contexts/chunks ("auto": from the SoC's budget)
    graph_io: str | None = None  # qnn: kv (default), full or float (quant_io.GRAPH_IO); mediatek: float
    text_only: bool = False  # no vision_encoder method (text-only checkpoints, peers benchmarks)
    seed: int = 0
    benchmark: bool = True


@dataclass
class ExportResult:
    out: Path
    manifest: dict[str, Any]
    cached: bool
    quality: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] | None = None
    missing: str | None = None  # what the vendor SDK lacks (lowering-ready bundle only)
    stage_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"out": str(self.out), "bundle_id": self.manifest["bundle_id"], "lowered": self.manifest["lowered"],
                "backend": self.manifest["backend"], "soc": self.manifest["soc"], "recipe": self.manifest["recipe"],
                "files": [{"path": f["path"], "size": f["size"]} for f in self.manifest["files"]],
                "cached": self.cached, "missing": self.missing, "quality": self.quality, "host": self.host,
                "stage_s": self.stage_s}


# ---- stages and progress -----------------------------------------------------------------------
class Stages:
    """A rich progress display, one row per stage, with its wall time."""

    def __init__(self, show: bool) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 disable=not show, transient=False)
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[Callable[[str], None]]:
        """One stage; the block gets `note(text)`, which shows what the stage is doing now."""
        task = self.progress.add_task(name, total=1)
        t0 = time.perf_counter()
        yield lambda text: self.progress.update(task, description=f"{name} [dim]{text}")
        self.times[name] = round(time.perf_counter() - t0, 2)
        self.progress.update(task, completed=1, description=f"{name} [green]done")

    def skip(self, name: str, why: str) -> None:
        self.progress.add_task(f"{name} [dim]({why})", total=1, completed=1)


def resolve(opts: ExportOptions) -> ExportOptions:
    """Fill defaults (recipe, SoC) and check option combinations; one-line UsageErrors."""
    if opts.backend not in contract.BACKENDS:
        raise UsageError(f"--backend {opts.backend!r}: choose one of {', '.join(contract.BACKENDS)}")
    opts.recipe = opts.recipe or DEFAULT_RECIPES[opts.backend]
    if opts.recipe == FP32 and opts.backend != "xnnpack":
        raise UsageError(f"--recipe fp32 is XNNPACK only; {opts.backend} needs a quantized recipe")
    if opts.recipe != FP32:
        from bluelm_edge.quant.recipes import get_recipe

        backend = get_recipe(opts.recipe).backend
        if backend != opts.backend:
            raise UsageError(f"recipe {opts.recipe} is for {backend}, not {opts.backend}; pick a {opts.backend} recipe")
    if opts.backend == "xnnpack" and opts.soc:
        raise UsageError("--soc applies to qnn and mediatek; XNNPACK bundles run on any CPU")
    opts.soc = opts.soc or DEFAULT_SOCS.get(opts.backend)
    from bluelm_edge.export import shards

    opts.shards = shards.parse(opts.shards)
    if opts.backend == "xnnpack" and opts.shards != shards.AUTO:
        raise UsageError("--shards applies to qnn and mediatek; an XNNPACK program is one CPU graph")
    opts.graph_io = _graph_io(opts)
    if opts.model is None and opts.preset is None:
        from bluelm_edge.paths import DEFAULT_MODEL_DIR

        opts.model = DEFAULT_MODEL_DIR
    return opts


def load_source(opts: ExportOptions) -> tuple[Any, Any, Any, Any]:
    """(model, config, tokenizer, chat format) from the checkpoint (any registered family) or the
    seeded preset; the chat format's manifest form goes into the bundle."""
    from bluelm_edge.text.formats import BlueLMFormat
    from bluelm_edge.text.tokenizer import default_tokenizer

    if opts.preset is not None:
        from bluelm_edge.model.checkpoint import build_model
        from bluelm_edge.model.config import preset

        tokenizer = default_tokenizer()
        config = preset(opts.preset)
        config.decoder.vocab_size = tokenizer.vocab_size
        torch.manual_seed(opts.seed)
        model = build_model(config.validate(), "cpu").eval()
        model.decoder.init_buffers(torch.float32, None)
        return model, config, tokenizer, BlueLMFormat(tokenizer)
    from bluelm_edge.families import open_folder

    if not (Path(opts.model) / contract.CONFIG_JSON).is_file():
        raise UsageError(f"{opts.model}: not a checkpoint folder (no config.json); pass --model DIR or --preset tiny")
    source = open_folder(Path(opts.model))
    return source.load_model(), source.config, source.tokenizer, source.chat


def cache_key(opts: ExportOptions, config: Any) -> str:
    """sha256 over everything the lowered artifact depends on."""
    parts: dict[str, Any] = {"version": __version__, "config": config.to_dict(), "backend": opts.backend,
                             "soc": opts.soc, "recipe": _recipe_dict(opts.recipe), "chunk": prefill_chunk(opts, config),
                             "vision_batch": opts.vision_batch, "samples": opts.samples, "text_only": opts.text_only,
                             "graph": FORM_VERSION, "shards": opts.shards,
                             "graph_io": opts.graph_io}
    if opts.preset is not None:
        parts["preset"] = [opts.preset, opts.seed]
    else:
        parts["weights"] = [sha256_file(p) for p in sorted(Path(opts.model).glob("*.safetensors"))]
        parts["tokenizer"] = sha256_file(Path(opts.model) / contract.TOKENIZER_JSON)
    if opts.recipe != FP32:
        parts["calibration"] = _folder_digest(opts.calibration)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _recipe_dict(name: str) -> Any:
    if name == FP32:
        return FP32
    from bluelm_edge.quant.recipes import get_recipe

    return get_recipe(name).to_dict()


def _folder_digest(path: Path | None) -> str:
    from bluelm_edge.quant.calibration import default_set_dir

    path = Path(path) if path is not None else default_set_dir()
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    return hashlib.sha256("".join(sha256_file(p) for p in files).encode()).hexdigest()


def cache_dir(opts: ExportOptions, key: str) -> Path:
    out = Path(opts.out).resolve()
    return out.parent / f".{out.name}.cache" / key[:16]


# ---- the run ---------------------------------------------------------------------------------------
def run_export(opts: ExportOptions, show: bool = True) -> ExportResult:
    """Run every stage (reusing the cached artifact when its key matches) and write the bundle."""
    opts = resolve(opts)
    check_output_dir(Path(opts.out))  # before the pipeline runs: never replace the user's files
    st = Stages(show)
    with st.progress:
        with st.stage("load checkpoint"):
            model, config, tokenizer, chat = load_source(opts)
            opts.text_only = opts.text_only or config.vision is None
            if opts.max_context:
                methods.set_max_context(model, opts.max_context)
        key = cache_key(opts, config)
        cdir = cache_dir(opts, key)
        cached = (cdir / "done.json").is_file() and not opts.force
        if cached:
            st.skip("calibrate, quantize, export, lower", f"reused cache {cdir.name}")
        else:
            build_artifacts(opts, model, config, tokenizer, st, cdir, chat)
        done = json.loads((cdir / "done.json").read_text())
        with st.stage("write bundle"):
            manifest = write_from_cache(opts, config, tokenizer, cdir, chat)
        result = ExportResult(Path(opts.out), manifest, cached, done.get("quality", {}))
        result.missing = done.get("missing")
        if manifest["lowered"] and opts.backend == "xnnpack" and opts.benchmark:
            with st.stage("host benchmark"):
                result.host = host_decode_speed(Path(opts.out))
    result.stage_s = st.times
    return result


def prefill_chunk(opts: ExportOptions, config: Any) -> int:
    """XNNPACK: one dynamic call of up to the whole context (what ExecuTorch's runners send);
    NPU backends: the static `prefill` graph's tokens (default 128, as upstream)."""
    default = config.decoder.max_seq_len if opts.backend == "xnnpack" else contract.NPU_PREFILL_CHUNK
    return min(opts.prefill_chunk or default, config.decoder.max_seq_len)


def method_names(opts: ExportOptions) -> list[str]:
    names = contract.METHODS if opts.backend == "xnnpack" else contract.NPU_METHODS
    return [m for m in names if not (opts.text_only and m == contract.VISION_ENCODER)]


def build_artifacts(opts: ExportOptions, model: Any, config: Any, tokenizer: Any, st: Stages, cdir: Path,
                    chat: Any = None) -> None:
    """Calibrate (in the family's chat format `chat`, default BlueLM's), quantize, transform, export
    and lower into the cache folder (atomically)."""
    from bluelm_edge.graphs.forms import graph_source

    chunk, names = prefill_chunk(opts, config), method_names(opts)
    if opts.backend != "xnnpack":
        return build_npu_artifacts(opts, model, config, tokenizer, st, cdir, chat)
    modules, calib, reference = None, None, None
    if opts.recipe != FP32:
        with st.stage("calibrate"):
            calib = _calibrate(opts, model, config, tokenizer, chat)
            reference = fp32_reference(model, calib, chunk)
        with st.stage(f"quantize ({opts.recipe})"):
            from bluelm_edge.quant.api import quantize_for_backend

            modules = quantize_for_backend(model, config, opts.recipe, calib, soc=opts.soc, prefill_chunk=chunk,
                                           vision_batch=opts.vision_batch, methods=names).modules
    if modules is None:  # fp32 XNNPACK: the source transform (quantize_for_backend does it otherwise)
        modules = methods.wrappers(graph_source(opts.backend, model), names)
    if opts.backend == "xnnpack":  # forward is composed from the lowered embedding + decoder
        modules = {k: v for k, v in modules.items() if k != contract.FORWARD}
    with st.stage("torch.export"):
        progs = methods.export_methods(model, chunk, opts.vision_batch, modules=modules)
    meta = contract.metadata(config, chunk, opts.vision_batch)
    with atomic_dir(cdir, ours=lambda p: (p / "done.json").is_file()) as tmp:
        with st.stage(f"lower ({opts.backend})") as note:
            missing = lower_into(tmp, opts, progs, meta, note)
        quality = {}
        if reference is not None:
            with st.stage("quality vs fp32"):
                quality = measure_quality(tmp, reference, modules, chunk)
        (tmp / "done.json").write_text(json.dumps({"quality": quality, "missing": missing}, indent=2))


def build_npu_artifacts(opts: ExportOptions, model: Any, config: Any, tokenizer: Any, st: Stages,
                        cdir: Path, chat: Any = None) -> None:
    """QNN / MediaTek: the static prefill/decode program (`graphs.static`), vendor-quantized with
    calibration through the host NPU runner, unused weights stripped, into the cache folder."""
    from bluelm_edge.export import shards
    from bluelm_edge.export.npu_quant import quantize_npu
    from bluelm_edge.graphs.static import export_npu

    if opts.shards != shards.AUTO:  # before minutes of quantization
        shards.check(int(opts.shards), config.decoder.layers)
    chunk, names = prefill_chunk(opts, config), method_names(opts)
    with st.stage("calibrate"):
        calib = _calibrate(opts, model, config, tokenizer, chat)
        reference = fp32_reference(model, calib, chunk)
    with st.stage(f"quantize ({opts.recipe}, static prefill {chunk} + decode)"):
        modules = quantize_npu(model, opts.recipe, calib, soc=opts.soc, chunk=chunk,
                               vision_batch=opts.vision_batch, names=names)
    with st.stage("torch.export"):
        progs = export_npu(modules, config, chunk, opts.vision_batch)
    meta = contract.npu_metadata(config, chunk, opts.vision_batch, npu_io(opts, progs, config.decoder.layers))
    with atomic_dir(cdir, ours=lambda p: (p / "done.json").is_file()) as tmp:
        with st.stage(f"lower ({opts.backend})") as note:
            missing = lower_into(tmp, opts, progs, meta, note)
        with st.stage("quality vs fp32 (host NPU runner)"):
            quality = npu_quality(modules, meta, reference)
        (tmp / "done.json").write_text(json.dumps({"quality": quality, "missing": missing}, indent=2))


def _graph_io(opts: ExportOptions) -> str | None:
    """`--graph-io`, checked against the backend: qnn kv (default) / full / float; mediatek float."""
    from bluelm_edge.export.quant_io import GRAPH_IO

    defaults = {"qnn": "kv", "mediatek": "float"}
    if opts.graph_io is None:
        return defaults.get(opts.backend)
    if opts.backend == "xnnpack":
        raise UsageError("--graph-io applies to qnn and mediatek (static NPU programs); "
                         "an XNNPACK program keeps its cache inside")
    if opts.graph_io not in GRAPH_IO:
        raise UsageError(f"--graph-io {opts.graph_io} is not one of {', '.join(GRAPH_IO)}")
    if opts.backend == "mediatek" and opts.graph_io != "float":
        raise UsageError(f"--graph-io {opts.graph_io} applies to qnn; "
                         "mediatek programs take fp32 I/O (--graph-io float)")
    return opts.graph_io


def npu_io(opts: ExportOptions, progs: dict, layers: int) -> dict:
    """The decoder's graph I/O encodings as metadata, as `--graph-io` keeps them (QNN; all fp32 for
    `float` and MediaTek, whose converter takes float inputs)."""
    from bluelm_edge.export import quant_io

    mode = opts.graph_io or "kv"
    if opts.backend != "qnn" or mode == "float" or contract.PREFILL not in progs:
        return quant_io.fp32_metadata(layers)
    return quant_io.metadata(quant_io.select(quant_io.encodings(progs), mode))


def _calibrate(opts: ExportOptions, model: Any, config: Any, tokenizer: Any, chat: Any) -> Any:
    from bluelm_edge.quant.calibration import load_set
    from bluelm_edge.quant.capture import calibrate_in_memory

    family = folder_family(opts)  # a preset: BlueLM's AnyRes; a folder: its family's image rules
    images = family.image_reader(Path(opts.model), config) if family else None
    return calibrate_in_memory(model, tokenizer, config, load_set(opts.calibration, opts.samples), chat, images)


def folder_family(opts: ExportOptions) -> Any:
    """The model folder's family (None for a preset)."""
    from bluelm_edge.families import detect

    return detect(Path(opts.model)) if opts.model is not None and opts.preset is None else None


def lower_into(folder: Path, opts: ExportOptions, progs: dict, meta: dict,
               note: Callable[[str], None] | None = None) -> str | None:
    """Write model.pte (SDK present / XNNPACK) or program.pt2 + coverage.json; return what is missing.
    `note` hears what the lowering is doing (shown beside the stage)."""
    from bluelm_edge.io import atomic_write_bytes, atomic_write_text

    if opts.backend == "xnnpack":
        from bluelm_edge.export import lower_xnnpack

        lower_xnnpack.lower(progs, meta, folder / contract.MODEL_PTE, note=note)
        return None
    from bluelm_edge.export import coverage, shards

    vendor = vendor_module(opts.backend)
    n_layers = int(meta["get_n_layers"])
    meta["get_num_shards"] = shards.resolve(opts.shards, progs[contract.PREFILL], n_layers, opts.soc) \
        if contract.PREFILL in progs else 1
    edge = _edge_programs(opts.backend, progs, opts.soc, n_layers, meta["get_num_shards"], meta)
    supported = coverage.qnn_supported_ops() if opts.backend == "qnn" else None
    folded = coverage.qnn_folded_ops() if opts.backend == "qnn" else None
    cov = coverage.report(opts.backend, edge, supported, folded)
    cov["shards"] = {"count": meta["get_num_shards"], "requested": opts.shards,
                     "layers_per_shard": shards.layer_counts(n_layers, meta["get_num_shards"])}
    coverage.require_decoder_on_npu(cov, opts.soc)
    atomic_write_text(folder / contract.COVERAGE_JSON, json.dumps(cov, indent=2) + "\n")
    info = {"backend": opts.backend, "soc": opts.soc, "recipe": opts.recipe,
            **archive.versions(contract.NPU_GRAPH_CONTRACT)}
    archive.save_programs(folder / contract.PROGRAM_PT2, progs, meta, info)
    missing = vendor.missing_sdk()
    if missing is None:
        atomic_write_bytes(folder / contract.MODEL_PTE, vendor.lower(progs, meta, opts.soc))
    return missing


def _edge_programs(backend: str, progs: dict, soc: str, layers: int, shards: int, meta: dict) -> dict:
    """The backend's passes up to its partitioner (what it would see, the decoder cut into
    `shards`, its I/O as `meta` declares), without the SDK."""
    return vendor_module(backend).edge_programs(progs, soc, layers, shards, meta)


def vendor_module(backend: str) -> Any:
    if backend == "qnn":
        from bluelm_edge.export import lower_qnn

        return lower_qnn
    from bluelm_edge.export import lower_mediatek

    return lower_mediatek


# ---- bundle ------------------------------------------------------------------------------------
def write_from_cache(opts: ExportOptions, config: Any, tokenizer: Any, cdir: Path, chat: Any = None) -> dict[str, Any]:
    """The bundle from the cached artifact; `chat` (the family's ChatFormat, default BlueLM's) goes
    into the manifest."""
    lowered = (cdir / contract.MODEL_PTE).is_file()

    def fill(tmp: Path) -> None:
        names = [contract.MODEL_PTE] if lowered else [contract.PROGRAM_PT2, contract.COVERAGE_JSON]
        for name in names:
            shutil.copyfile(cdir / name, tmp / name)
        write_text_files(tmp, config, tokenizer)
        if family := folder_family(opts):  # the family's own files (image rules)
            family.write_bundle_files(Path(opts.model), tmp)

    args = {"cfg": config, "backend": opts.backend, "soc": opts.soc if opts.backend != "xnnpack" else None,
            "recipe": opts.recipe, "lowered": lowered, "vision_batch": opts.vision_batch,
            "chat": chat.manifest() if chat else None}
    if opts.backend != "xnnpack":
        cov = json.loads((cdir / contract.COVERAGE_JSON).read_text())
        args["extra"] = contract.npu_manifest(prefill_chunk(opts, config), cov["shards"]["count"], _graph_io(opts))
    return bundle.write_bundle(Path(opts.out), fill, args)


def write_text_files(folder: Path, config: Any, tokenizer: Any) -> None:
    tokenizer.save(folder / contract.TOKENIZER_JSON)
    tokenizer.save_config(folder / contract.TOKENIZER_CONFIG_JSON)
    config.save(folder / contract.CONFIG_JSON)


def host_decode_speed(bundle_dir: Path, prompt: str = "What is 17+25?") -> dict[str, Any]:
    from bluelm_edge.export.host import benchmark_host

    run = benchmark_host(bundle_dir, [prompt], runs=1, thinking_budget=None, max_new_tokens=64)["runs"][0]
    return {k: round(run[k], 2) for k in ("ttft_ms", "prefill_tok_s", "decode_tok_s", "decode_tokens")}


def options_dict(opts: ExportOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
