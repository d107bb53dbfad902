"""Study files' keys and values: `StudyError`, and the checks every part of a study file shares (a dotted
key naming a RunConfig field, a value coerced to its field's type, an op pipeline, a mapping with only
known keys). The engine's typed config defines keys, types and defaults; this module only names what it
refuses the study file's way (`base.train.epochs`, `search.grid.train.lr[1]`, `--set ...`)."""

from __future__ import annotations

from typing import Any

from ablations.design.plan import PIPELINE_KEY
from simclr_core.config import ConfigError, OpSpec, RunConfig, plain_type_name, validate_pipeline


class StudyError(ValueError):
    """A study file or override that cannot run: names the source, the dotted key and what is allowed."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


def check_dotted_key(key: Any, source: str, where: str) -> None:
    """`section.field` naming a RunConfig field; else StudyError listing what exists."""
    try:
        RunConfig.check_key(key)
    except ConfigError as error:
        raise StudyError(source, str(where), error.reason) from None


def coerce_value(key: str, value: Any, source: str, where: str) -> Any:
    """RunConfig.coerce (strict types), then the engine's op checks for a pipeline; a StudyError names
    the value by `where` (`base.train.epochs`, `search.grid.train.lr[1]`)."""
    try:
        value = RunConfig.coerce(key, value)
    except ConfigError as error:
        # error.key is `key` or, for a pipeline entry, `key[index]`: name it from `where` instead.
        raise StudyError(source, where + (error.key or key)[len(key):], error.reason) from None
    if key == PIPELINE_KEY:
        check_pipeline(value, source, where)
    return value


def check_pipeline(pipeline: list[OpSpec], source: str, where: str) -> None:
    """Op names and parameters, checked by the engine; its message names `where[index]`."""
    try:
        validate_pipeline(pipeline, key=where)
    except ConfigError as error:
        raise StudyError(source, "", str(error)) from None


def checked_mapping(raw: Any, source: str, key: str, allowed: tuple[str, ...], what: str) -> dict:
    """`raw` as a mapping whose keys are all in `allowed`; else a StudyError naming `key` (or its entry)."""
    if not isinstance(raw, dict):
        raise StudyError(source, key or "(top level)", f"expected a mapping of {what}, got {plain_type_name(raw)}")
    for name in raw:
        if name not in allowed:
            dotted = f"{key}.{name}" if key else str(name)
            raise StudyError(source, dotted, f"unknown key; allowed: {', '.join(allowed)}")
    return raw
