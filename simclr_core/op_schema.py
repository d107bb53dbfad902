"""The augmentation ops a pipeline may name, each op's parameters and what each parameter allows: the
schema `config.validate_pipeline` checks a configuration against, with no tensors (a study file is
checked before torch is loaded). Ops from outside the engine are registered here with their checks
(`register_schema`), which `check_from_annotation` reads from their signatures' annotations."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass
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


# --------------------------------------------------------------------------------------------------
# Ops from outside the engine: a user's own batched op, or a library transform wrapped as one. Each is
# registered with its parameters' checks (`register_schema`; `augmentations.register_op` registers the
# function too), read from its signature's annotations where it is not given them.
# --------------------------------------------------------------------------------------------------

BUILTIN_OPS = frozenset(OP_PARAMETERS)
# Registered op -> its parameters, each with (check, what is allowed). A built-in op's parameters are
# checked by name (PARAM_CHECKS); a registered op's belong to it (its `threshold` is not another's).
OP_CHECKS: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {}


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number parameter of a registered op, read from its annotation:
    `p: Annotated[float, Range(0, 1)] = 0.5`. None leaves that side open."""

    low: float | None = None
    high: float | None = None


def register_schema(name: str, checks: dict[str, tuple[Callable[[Any], bool], str]]) -> None:
    """Make `name` an op a pipeline may name, with its parameters' checks; registering a name again
    replaces it. A built-in op's name cannot be taken: a study naming `crop` gets the paper's crop."""
    if name in BUILTIN_OPS:
        raise ValueError(f"{name!r} is a built-in op; give the new op another name")
    OP_PARAMETERS[name] = tuple(checks)
    OP_CHECKS[name] = dict(checks)


def unregister_schema(name: str) -> None:
    if name not in BUILTIN_OPS:
        OP_PARAMETERS.pop(name, None)
        OP_CHECKS.pop(name, None)


def param_check(op: str, name: str) -> tuple[Callable[[Any], bool], str]:
    """The check of `op`'s parameter `name` and what it allows."""
    return OP_CHECKS[op][name] if op in OP_CHECKS else PARAM_CHECKS[name]


_ANY = (lambda value: True, "any value")
_SIMPLE = {
    "float": (_is_number, "a number"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
}


def check_from_annotation(annotation: str | None, default: Any = inspect.Parameter.empty
                          ) -> tuple[Callable[[Any], bool], str]:
    """A parameter's check from its annotation's source text (`float`, `int`, `bool`, `str`,
    `tuple[float, float]`, `X | None`, `Optional[X]`, `Literal['a', 'b']`, `Annotated[float, Range(0, 1)]`),
    or from its default's type where it has no annotation; any value where neither says. Read from
    text, so that a study file's op is checked from its source without importing it (or torch)."""
    if annotation is None:
        kind = type(default).__name__
        return _SIMPLE[kind] if kind in _SIMPLE and default is not None else _ANY
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return _ANY
    return _check_of(node)


def _name(node: ast.AST) -> str:
    # `typing.Optional` and `Optional` alike; `None` is a Constant.
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _check_of(node: ast.AST) -> tuple[Callable[[Any], bool], str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
        return check_from_annotation(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [node.left, node.right]
        rest = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None)]
        if len(rest) == 1:
            return _nullable(_check_of(rest[0]))
        return _ANY
    if _name(node) in _SIMPLE:
        return _SIMPLE[_name(node)]
    if not isinstance(node, ast.Subscript):
        return _ANY
    outer = _name(node.value)
    args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if outer == "Optional":
        return _nullable(_check_of(args[0]))
    if outer == "Literal":
        choices = [a.value for a in args if isinstance(a, ast.Constant)]
        return (lambda v: any(v == c and type(v) is type(c) for c in choices),
                "one of " + ", ".join(map(repr, choices)))
    if outer in ("tuple", "Tuple") and len(args) == 2 and all(_name(a) in ("float", "int") for a in args):
        return _is_pair, "a pair [low, high] of numbers"
    if outer == "Annotated" and args:
        check, allowed = _check_of(args[0])
        for extra in args[1:]:
            if isinstance(extra, ast.Call) and _name(extra.func) == "Range":
                bounds = _range_bounds(extra)
                if bounds is not None:
                    return _within(check, allowed, *bounds)
        return check, allowed
    return _ANY


def _range_bounds(call: ast.Call) -> tuple[float | None, float | None] | None:
    try:
        values = [ast.literal_eval(a) for a in call.args]
        values += [None] * (2 - len(values))
        for keyword in call.keywords:
            values[("low", "high").index(keyword.arg)] = ast.literal_eval(keyword.value)
        return values[0], values[1]
    except (ValueError, TypeError, IndexError):
        return None


def _within(check: Callable[[Any], bool], allowed: str, low: float | None, high: float | None
            ) -> tuple[Callable[[Any], bool], str]:
    def inside(value: Any) -> bool:
        numbers = value if _is_pair(value) else [value]
        return check(value) and all(_is_number(n) and (low is None or n >= low) and (high is None or n <= high)
                                    for n in numbers)
    span = (f"in [{low}, {high}]" if low is not None and high is not None
            else f">= {low}" if low is not None else f"<= {high}" if high is not None else "")
    return inside, f"{allowed} {span}".strip()


def _nullable(check: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    test, allowed = check
    return (lambda v: v is None or test(v)), f"null or {allowed}"
