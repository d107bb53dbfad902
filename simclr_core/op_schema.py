"""The augmentation ops a pipeline may name, each op's parameters and what each parameter allows: the
schema `config.validate_pipeline` checks a configuration against, with no tensors (a study file is
checked before torch is loaded)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# The augmentation ops a pipeline may name: each op's parameters and what each parameter allows. The
# ops are `augmentations.OPS`, whose signatures hold the defaults (google-research/simclr's); the names
# are repeated here so that a configuration is checked without importing torch, and
# tests/test_augmentations.py holds this table to those signatures.

OP_PARAMETERS: dict[str, tuple[str, ...]] = {
    "crop": ("scale", "ratio"),
    "hflip": ("p",),
    "vflip": ("p",),
    "rotate": ("p",),
    "color_jitter": ("strength", "p", "brightness", "contrast", "saturation", "hue", "random_order"),
    "color_drop": ("p",),
    "color": ("strength", "jitter_prob", "drop_prob"),
    "cutout": ("side_fraction", "fill", "p"),
    "blur": ("sigma", "p"),
    "noise": ("std", "p"),
    "sobel": ("p",),
}


def _is_number(value: Any) -> bool:
    # bool is an int subclass; `p: true` in a study file is a mistake, not 1.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_number(v) for v in value)


# Each parameter name, whichever op takes it: its check and what is allowed.
PARAM_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "p": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "jitter_prob": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "drop_prob": (lambda v: _is_number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
    "strength": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "brightness": (lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "contrast": (lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "saturation": (lambda v: v is None or (_is_number(v) and v >= 0), "null or a number >= 0"),
    "hue": (lambda v: v is None or (_is_number(v) and 0 <= v <= 0.5), "null or a number in [0, 0.5]"),
    "random_order": (lambda v: isinstance(v, bool), "true or false"),
    "scale": (lambda v: _is_pair(v) and 0 < v[0] <= v[1] <= 1, "a pair [low, high] with 0 < low <= high <= 1"),
    "ratio": (lambda v: _is_pair(v) and 0 < v[0] <= v[1], "a pair [low, high] with 0 < low <= high"),
    "sigma": (lambda v: _is_pair(v) and 0 < v[0] <= v[1], "a pair [low, high] with 0 < low <= high"),
    "side_fraction": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "fill": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "std": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
}
