"""Reaching the vendor quantizers without vendor SDKs and without any network access.

Owns the two import tricks the executorch 1.5 wheel needs (see ../shared/EXECUTORCH-NOTES.md):

- Qualcomm: creating a `QnnQuantizer` with `QNN_SDK_ROOT` unset makes the wheel try to download
  the QNN SDK. We set `QNN_SDK_ROOT=""` when the user has not set it; the quantizer then skips its
  op-constraint checks, and lowering later needs a real SDK (`bluelm-edge lower` says so).
- MediaTek: `import executorch.backends.mediatek` imports the partitioner, which needs the
  `mtk_converter` SDK. The quantizer itself is pure Python, so we register a placeholder parent
  package in `sys.modules` (pointing at the real folder) and import only the quantizer submodule.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

from bluelm_edge.errors import BlueLMError

_MTK_PACKAGE = "executorch.backends.mediatek"


def prepare_qnn_env() -> bool:
    """Set `QNN_SDK_ROOT=""` if unset; return True when a real SDK path was already given."""
    if "QNN_SDK_ROOT" not in os.environ:
        os.environ["QNN_SDK_ROOT"] = ""
    return bool(os.environ["QNN_SDK_ROOT"])


def qnn_quantizer_module() -> Any:
    """Return `executorch.backends.qualcomm.quantizer.quantizer` with the SDK download disabled."""
    prepare_qnn_env()
    return _import("executorch.backends.qualcomm.quantizer.quantizer", "Qualcomm")


def qnn_recipe_module() -> Any:
    """Return `executorch.backends.qualcomm.quantizer.quant_recipe` (QuantRecipe, QuantGranularity)."""
    prepare_qnn_env()
    return _import("executorch.backends.qualcomm.quantizer.quant_recipe", "Qualcomm")


def qnn_chipset(name: str) -> Any:
    """Return the `QcomChipset` member for an SoC name like "SM8650", or a one-line error."""
    prepare_qnn_env()
    schema = _import("executorch.backends.qualcomm.serialization.qc_schema", "Qualcomm")
    try:
        return schema.QcomChipset[name.upper()]
    except KeyError:
        valid = ", ".join(sorted(schema.QcomChipset.__members__))
        raise UnknownSocError(f"unknown Qualcomm SoC {name!r}; executorch knows: {valid}") from None


def qnn_htp_arch(name: str) -> int:
    """HTP generation (69, 73, 75, 79, 81, ...) of a Qualcomm SoC, from executorch's own table."""
    schema = _import("executorch.backends.qualcomm.serialization.qc_schema", "Qualcomm")
    return int(schema._soc_info_table[qnn_chipset(name)].htp_info.htp_arch)


def mediatek_quantizer_module() -> Any:
    """Return `executorch.backends.mediatek.quantizer` without importing the SDK-bound package init."""
    parent = sys.modules.get(_MTK_PACKAGE)
    if parent is None:
        spec = importlib.util.find_spec("executorch.backends")
        if spec is None or not spec.submodule_search_locations:
            raise BlueLMError("executorch is not installed; run: pip install executorch==1.5.1")
        folder = os.path.join(list(spec.submodule_search_locations)[0], "mediatek")
        placeholder = types.ModuleType(_MTK_PACKAGE)
        placeholder.__path__ = [folder]  # submodules resolve from the real folder
        placeholder.__doc__ = "placeholder parent package registered by bluelm_edge.quant.vendor"
        sys.modules[_MTK_PACKAGE] = placeholder
    return _import(f"{_MTK_PACKAGE}.quantizer", "MediaTek")


class UnknownSocError(BlueLMError):
    """A SoC name the vendor quantizer does not know."""


def _import(name: str, vendor: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise BlueLMError(
            f"cannot import the {vendor} quantizer ({err}); reinstall executorch==1.5.1"
        ) from None
