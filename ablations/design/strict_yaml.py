"""YAML as study files and `--set` read it: strict, and without YAML 1.1's surprises.

PyYAML implements YAML 1.1, where `on`, `off`, `yes` and `no` are booleans and `1e-3` is a string; the
documented values of augment.compile and train.channels_last are `on`/`off`, and learning rates are
written `1e-3`. `StrictLoader` reads scalars as YAML 1.2's core schema does, refuses a key given twice
in one mapping, and takes merge keys (`<<: *defaults`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently), and reads
    scalars as YAML 1.2 does: only true/false are booleans (YAML 1.1 reads the documented values `on` and
    `off` of augment.compile and train.channels_last, and yes/no, as booleans), and `1e-3` is a number
    (YAML 1.1 wants `1.0e-3`, and reads `1e-3` as a string)."""


_BOOL_TAG, _FLOAT_TAG = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_BOOL_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StrictLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# Added after the int resolver for the same first characters, so `10` stays an int.
StrictLoader.add_implicit_resolver(_FLOAT_TAG, re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # `<<: *defaults`: merged by construct_mapping; its keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
