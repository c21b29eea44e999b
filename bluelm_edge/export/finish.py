"""`bluelm-edge lower BUNDLE`: finish a lowering-ready QNN / MediaTek bundle where the SDK exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bluelm_edge import contract
from bluelm_edge.export import archive, bundle
from bluelm_edge.export.pipeline import SdkMissingError, Stages, vendor_module, write_text_files


def lower_bundle(bundle_dir: Path, soc: str | None = None, show: bool = True) -> dict[str, Any]:
    """Finish a lowering-ready bundle where the vendor SDK exists; the bundle is rewritten atomically.

    Works from a fresh process: the archive is checked (graph contract, ExecuTorch version) and
    loaded with the quantized op libraries registered, and the backend's passes up to the SDK call
    run (QNN: its pass pipeline, `to_edge`, the shard split, its preprocess passes and a builder
    check; MediaTek: `to_edge` and the chunk split) before a missing SDK is reported."""
    from bluelm_edge.export.host import bundle_text
    from bluelm_edge.families import by_name

    bundle_dir = Path(bundle_dir)
    manifest = bundle.read_manifest(bundle_dir)
    if manifest["lowered"]:
        return manifest
    vendor = vendor_module(manifest["backend"])
    target = soc or manifest["soc"]
    st = Stages(show)
    with st.progress:
        with st.stage("load program.pt2"):
            progs, info = archive.load_programs(bundle_dir / contract.PROGRAM_PT2)
        with st.stage(f"{manifest['backend']} passes up to the SDK"):
            vendor.passes_up_to_sdk(progs, target, info["constants"])
        missing = vendor.missing_sdk()
        if missing:
            raise SdkMissingError(missing.replace("BUNDLE", str(bundle_dir)))
        with st.stage(f"lower ({manifest['backend']})"):
            pte = vendor.lower(progs, info["constants"], target)
    config, tokenizer, chat = bundle_text(bundle_dir, manifest)

    def fill(tmp: Path) -> None:
        (tmp / contract.MODEL_PTE).write_bytes(pte)
        write_text_files(tmp, config, tokenizer)
        by_name(chat.name).write_bundle_files(bundle_dir, tmp)

    args = {"cfg": config, "backend": manifest["backend"], "soc": target, "recipe": manifest["recipe"],
            "lowered": True, "vision_batch": manifest["app"]["image"]["vision_batch"],
            "chat": chat.manifest(),
            "extra": {k: manifest[k] for k in contract.npu_manifest(0) if k in manifest}}
    return bundle.write_bundle(bundle_dir, fill, args)
