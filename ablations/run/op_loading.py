"""A study's ops from outside the engine, loaded and checked before its first trial (and in --dry-run).

`load_ops` imports each op the study file found (`spec.op_sources`: a user's module, an installed
package's entry point, a torchvision or Kornia transform wrapped by simclr_core.library_ops), hands it
to the engine (`augmentations.register_op`) and runs the op contract (`simclr_core.op_contract`) on a
small batch for every distinct use of it. A module that cannot be imported, or an op that breaks a
clause, is one StudyError naming the op, and nothing trains. Every worker process does this at its start,
so a worker on a machine that lacks the module refuses to start, naming it.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablations.messages import one_line
from ablations.run.study_file import StudyError
from ablations.design.op_sources import BUILTIN, ENTRY_POINT, OpSource
from ablations.design.plan import StudySpec


def load_ops(spec: StudySpec) -> None:
    """Import and register the study's ops that are not built in, then check each use against the contract."""
    from simclr_core import augmentations
    from simclr_core.op_contract import OpContractError, check_op

    for name, source in spec.ops.items():
        if source.kind == BUILTIN:
            continue
        function = _function(source, spec)
        augmentations.register_op(name, functools.partial(function, **source.defaults) if source.defaults
                                  else function, checks=source.checks)
    for op, params in distinct_uses(spec):
        if spec.ops[op].kind == BUILTIN:  # the engine's own tests hold these to the contract
            continue
        try:
            check_op(op, params)
        except OpContractError as error:
            where = "" if spec.ops[op].kind == ENTRY_POINT else f"ops.{op}"
            raise StudyError(spec.source, where, f"{error} ({spec.ops[op].label()}); nothing was trained") from None


def distinct_uses(spec: StudySpec) -> list[tuple[str, dict[str, Any]]]:
    """Each (op, parameters) the study's pipelines use, once."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for pipeline in spec.pipelines():
        for entry in pipeline:
            seen.setdefault(json.dumps([entry.op, entry.params], sort_keys=True), (entry.op, dict(entry.params)))
    return list(seen.values())


def _function(source: OpSource, spec: StudySpec) -> Callable[..., Any]:
    from simclr_core import library_ops

    if source.kind in ("torchvision", "kornia"):
        class_name = source.target.partition(":")[2]
        if source.kind == "torchvision":
            return library_ops.torchvision_op(library_ops.torchvision_transform(class_name))
        return library_ops.kornia_op(library_ops.kornia_augmentation(class_name))
    module_name, _, function_name = source.target.rpartition(":")
    path = Path(source.path)
    if module_name.endswith(".py"):  # a file named from the study file's folder: imported from its own
        module_name, folder = path.stem, path.parent
    else:
        folder = Path(spec.source).resolve().parent
    module = _import(module_name, path, folder, source, spec)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise StudyError(spec.source, f"ops.{source.name}", f"{module_name} has no function {function_name!r} once "
                                                            f"imported")
    return function


# Modules imported here for a study's ops: only these may be imported again from another file (a process
# that reads several studies, each with its own my_ops.py); any other module of the name is left alone.
_IMPORTED: set[str] = set()


def _import(module_name: str, path: Path, study_dir: Path, source: OpSource, spec: StudySpec) -> Any:
    """The module at `path` (found beside the study file or on sys.path) under its own name."""
    loaded = sys.modules.get(module_name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
        return loaded
    if loaded is not None and module_name not in _IMPORTED:
        raise StudyError(spec.source, f"ops.{source.name}", f"a module named {module_name} is already imported from "
                                                            f"{getattr(loaded, '__file__', None) or 'elsewhere'}, not "
                                                            f"{path}; give your module another name")
    for name in [name for name in sys.modules if name == module_name or name.startswith(module_name + ".")]:
        del sys.modules[name]
    sys.path.insert(0, str(study_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's module, whatever it raises on import: one line naming it
        raise StudyError(spec.source, f"ops.{source.name}", f"importing {module_name} ({path}) failed: "
                                                            f"{one_line(error, limit=300, with_type=True)}") from None
    finally:
        sys.path.remove(str(study_dir))
    _IMPORTED.add(module_name)
    return module
