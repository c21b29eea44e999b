"""The SoC catalogue: schema validation with one-line errors, matching phones, bundle fit."""

from __future__ import annotations

import json

import pytest

from bluelm_edge.paths import data_dir
from bluelm_edge.socs import CatalogueError, bundle_fits, load_catalogue, load_socs, match_soc, soc_choices

REQUIRED = {"SM8550": "v73", "SM8650": "v75", "SM8750": "v79", "SM8850": "v81", "SM7675": "v73",
            "mt6989": "APU 790", "mt6991": "NPU 890", "mt6993": "NPU 990", "cpu": None}


def test_catalogue_has_every_required_chip_with_its_npu_generation():
    socs = load_socs()
    assert {k: socs[k].npu_generation for k in REQUIRED} == REQUIRED
    assert socs["SM8650"].name == "Snapdragon 8 Gen 3" and socs["mt6989"].name == "Dimensity 9300"
    assert socs["SM8650"].memory_bandwidth_gbs == 76.8
    assert "16a4w_block" in socs["SM8750"].schemes and "a16w4" in socs["mt6991"].schemes


def test_soc_choices_per_backend():
    assert soc_choices("qnn") == ["SM8550", "SM8650", "SM8750", "SM8850", "SM7675"]
    assert soc_choices("mediatek") == ["mt6989", "mt6991", "mt6993"]
    assert len(soc_choices("xnnpack")) == 9


@pytest.mark.parametrize(("props", "expected"), [
    ({"ro.soc.model": "SM8650", "ro.board.platform": "pineapple", "ro.hardware": "qcom"}, "SM8650"),
    ({"ro.board.platform": "pineapple", "ro.hardware": "qcom"}, "SM8650"),  # Android < 12: no ro.soc.model
    ({"ro.soc.model": "MT6989", "ro.hardware": "mt6989"}, "mt6989"),
    ({"ro.hardware": "mt6991"}, "mt6991"),
    ({"ro.soc.model": "Tensor G3", "ro.board.platform": "zuma", "ro.hardware": "zuma"}, None),
])
def test_match_soc_from_getprop(props, expected):
    soc = match_soc(props)
    assert (soc.id if soc else None) == expected


def test_bundle_fits():
    socs = load_socs()
    assert bundle_fits({"backend": "xnnpack", "soc": None}, None)[0] is True
    assert bundle_fits({"backend": "qnn", "soc": "SM8650"}, socs["SM8650"]) == (True, "qnn bundle for SM8650")
    ok, reason = bundle_fits({"backend": "qnn", "soc": "SM8650"}, socs["SM8750"])
    assert not ok and "compiled for SM8650" in reason and "\n" not in reason
    assert "hexagon-htp v75" in reason and reason.endswith("re-export with --backend qnn --soc SM8750")
    ok, reason = bundle_fits({"backend": "qnn", "soc": "SM8650"}, socs["SM8550"])  # an S23: v73, not v75
    assert not ok and "v73" in reason and reason.endswith("--soc SM8550")
    assert bundle_fits({"backend": "qnn", "soc": "SM8650"}, socs["mt6989"])[0] is False
    assert bundle_fits({"backend": "mediatek", "soc": "mt6989"}, socs["mt6989"])[0] is True
    assert bundle_fits({"backend": "mediatek", "soc": "mt6989"}, None)[0] is False


def _broken(tmp_path, mutate) -> str:
    data = json.loads((data_dir("qnn_backends") / "socs.json").read_text())
    mutate(data["socs"][1])
    path = tmp_path / "socs.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_bad_entries_fail_with_one_line(tmp_path):
    assert _broken(tmp_path, lambda e: e.pop("backends")) == "socs.json.socs[1]: missing required key 'backends'"
    msg = _broken(tmp_path, lambda e: e.update(backends=["qnn", "tpu"]))
    assert msg.startswith('socs.json.socs[1].backends[1]: "tpu" is not one of')
    assert _broken(tmp_path, lambda e: e.update(memory_bandwidth_gbs="fast")) == (
        'socs.json.socs[1].memory_bandwidth_gbs: expected number or null, got "fast"')
    assert "unknown key 'tops'" in _broken(tmp_path, lambda e: e.update(tops=3))
    assert "appears twice" in _broken(tmp_path, lambda e: e.update(id="SM8550"))
