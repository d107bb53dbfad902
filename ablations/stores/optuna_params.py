"""A study's configurations as Optuna params, so that Optuna's own tools (importance, optuna-dashboard's
slice, contour and rank plots) read them: a grid trial's values with their distributions, a tpe/random
trial's draws, and non-scalar choices (pipelines) as JSON strings."""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from ablations.design.plan import StudySpec, plain_value


def grid_params(spec: StudySpec, attrs: dict[str, Any]) -> dict[str, tuple[Any, CategoricalDistribution]]:
    """A planned grid trial's configuration as Optuna params: name -> (value, distribution). A pair study's
    cells as `first` and `second`, each over the study's ops; every grid key under its dotted name, over
    the file's values (pipelines and other lists as JSON, as `suggest` gives them). In a study with an
    untrained floor, every param also takes None, the floor's value: Optuna's importance reads only the
    params that all its complete trials share. A value the file no longer lists is left out."""
    floor = [None] if spec.floor else []
    varied = attrs.get("varied", {})
    params: dict[str, tuple[Any, CategoricalDistribution]] = {}
    if spec.search.pairs:
        subset = [op for pair in spec.search.pair_subset for op in pair]
        ops = list(dict.fromkeys(subset or spec.search.pairs))
        pair = attrs.get("pair") or (None, None)
        for name, value in zip(("first", "second"), pair if not attrs.get("floor") else (None, None)):
            params[name] = (value, CategoricalDistribution(ops + floor))
    for key, values in spec.search.grid.items():
        value = None if attrs.get("floor") else encode_choice(varied.get(key))
        params[key] = (value, CategoricalDistribution([encode_choice(v) for v in values] + floor))
    return {name: (value, dist) for name, (value, dist) in params.items() if value in dist.choices}


def suggest(trial: optuna.Trial, param) -> Any:
    """Sample one ParamSpec. Categorical choices that are not scalars (pipelines) go to Optuna as
    JSON strings, so optuna-dashboard shows them, and come back decoded."""
    if param.type == "float":
        return trial.suggest_float(param.key, param.low, param.high, log=param.log)
    if param.type == "int":
        return trial.suggest_int(param.key, param.low, param.high, step=param.step or 1, log=param.log)
    encoded = [encode_choice(c) for c in param.choices]
    picked = trial.suggest_categorical(param.key, encoded)
    return param.choices[encoded.index(picked)]


def encode_choice(value: Any) -> Any:
    plain = plain_value(value)
    if plain is None or isinstance(plain, (bool, int, float, str)):
        return plain
    return json.dumps(plain, separators=(",", ":"))
