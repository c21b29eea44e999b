"""Recipe files, their schema validation and the SoC-aware block-quantization rule."""

from __future__ import annotations

import json
import shutil

import pytest

from bluelm_edge.errors import BlueLMError
from bluelm_edge.quant import vendor
from bluelm_edge.quant.recipes import RecipeError, all_recipes, get_recipe, recipes_dir


@pytest.fixture(autouse=True)
def _no_sdk(monkeypatch):
    monkeypatch.setenv("QNN_SDK_ROOT", "")


def test_shipped_recipes_load_with_their_schemes():
    r = all_recipes()
    assert set(r) >= {"xnnpack-8da4w", "qnn-16a4w", "mediatek-a16w4"}
    x = r["xnnpack-8da4w"].part("decoder_linears")
    assert (x["scheme"], x["granularity"], x["group_size"]) == ("8da4w", "per_group", 32)
    q = r["qnn-16a4w"]
    assert q.part("decoder_linears")["granularity"] == "per_block" and q.part("kv_cache")["scheme"] == "8bit"
    assert q.part("vision")["scheme"] == "16a8w"
    m = r["mediatek-a16w4"]
    assert (m.part("decoder_linears")["scheme"], m.part("vision")["scheme"]) == ("a16w4", "a16w8")


def test_block_quant_follows_the_htp_generation_from_executorch():
    assert vendor.qnn_htp_arch("SM8650") == 75 and vendor.qnn_htp_arch("SM8450") == 69
    assert vendor.qnn_htp_arch("SM8350") == 68
    q = get_recipe("qnn-16a4w")
    assert q.for_soc(69).part("decoder_linears")["granularity"] == "per_block"
    old = q.for_soc(vendor.qnn_htp_arch("SM8350")).part("decoder_linears")
    assert old == {"scheme": "16a4w", "granularity": "per_channel"}


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(RecipeError, match="valid recipes: mediatek-a16w4, qnn-16a4w, xnnpack-8da4w"):
        get_recipe("qnn-16a2w")
    with pytest.raises(BlueLMError, match="unknown Qualcomm SoC 'SM9999'; executorch knows: .*SM8650"):
        vendor.qnn_chipset("SM9999")


def _copy(tmp_path):
    folder = tmp_path / "recipes"
    shutil.copytree(recipes_dir(), folder)
    return folder


def test_adding_a_recipe_is_adding_a_file(tmp_path):
    folder = _copy(tmp_path)
    d = json.loads((folder / "qnn-16a4w.json").read_text())
    d["name"] = "qnn-8a8w"
    d["submodels"]["decoder_linears"] = {"scheme": "8a8w", "granularity": "per_channel"}
    (folder / "qnn-8a8w.json").write_text(json.dumps(d))
    assert get_recipe("qnn-8a8w", folder).part("decoder_linears")["scheme"] == "8a8w"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["submodels"]["vision"].update(scheme="a16w8"),
         "submodels.vision.scheme is 'a16w8', not a qnn scheme; valid: fp32, 16a4w, 16a8w"),
        (lambda d: d["submodels"]["vision"].update(granularity="rows"),
         'submodels.vision.granularity is "rows"; valid: per_tensor, per_channel, per_group, per_block'),
        (lambda d: d["submodels"].pop("kv_cache"), "submodels: missing required key 'kv_cache'"),
        (lambda d: d.update(backend="coreml"), 'backend is "coreml"; valid: xnnpack, qnn, mediatek'),
        (lambda d: d.update(extra=1), "unknown key 'extra'"),
        (lambda d: d["submodels"]["decoder_linears"].pop("block_size"), "per_block needs block_size"),
    ],
)
def test_invalid_recipe_files_fail_with_one_line(tmp_path, edit, message):
    folder = _copy(tmp_path)
    d = json.loads((folder / "qnn-16a4w.json").read_text())
    edit(d)
    (folder / "qnn-16a4w.json").write_text(json.dumps(d))
    with pytest.raises(RecipeError) as err:
        all_recipes(folder)
    assert message in str(err.value) and "qnn-16a4w.json" in str(err.value) and "\n" not in str(err.value)


def test_bad_json_names_the_line(tmp_path):
    folder = _copy(tmp_path)
    (folder / "broken.json").write_text('{\n "name": "broken",\n oops\n}')
    with pytest.raises(RecipeError, match=r"broken.json: invalid JSON at line 3"):
        all_recipes(folder)


def test_quantize_list_recipes_cli():
    from typer.testing import CliRunner

    from bluelm_edge.cli.main import app

    res = CliRunner().invoke(app, ["quantize", "--list-recipes", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["qnn-16a4w"]["submodels"]["decoder_linears"]["block_size"] == 64
