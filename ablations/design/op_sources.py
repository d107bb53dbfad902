"""Where a study's augmentation ops come from: built in, a user's function by import path, an installed
package's entry point, or a library transform, each resolved to an `OpSource` and its parameters'
checks registered with the engine (simclr_core.op_schema), so a pipeline naming it is checked like any.

A study file names ops that are not built in under `ops:`

    ops:
      solarize: solarize_ops:solarize                     # module:function, beside the study file or on sys.path
      byol_solarize: ../examples/solarize_ops.py:solarize  # a file, from the study file's folder
      strong_solarize: {op: solarize_ops:solarize, threshold: 0.3}   # the same function, other defaults
      tv_solarize: {op: "tv:RandomSolarize", threshold: 0.5}          # torchvision.transforms.v2
      kornia_solarize: {op: "kornia:RandomSolarize"}                  # kornia.augmentation (the kornia extra)

and an installed package adds ops under the entry-point group `simclr_ablations.ops` (`name = module:function`),
which a study names like built-in ones. The light path first: a user's function is found and read from
its source (its signature and annotations, `op_schema.check_from_annotation`) without importing it, so
a bad parameter is refused before torch loads; a library transform needs its library, and so torch.
The engine's op registry is the process's: each study read starts again from the built-in ops.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import inspect
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from simclr_core import op_schema

ENTRY_POINT_GROUP = "simclr_ablations.ops"
LIBRARIES = {"tv": "torchvision", "kornia": "kornia"}
BUILTIN, USER, ENTRY_POINT = "built-in", "user", "entry point"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TARGET_PATTERN = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
# Or a file, relative to the study file's folder: `../examples/solarize_ops.py:solarize`.
FILE_TARGET_PATTERN = re.compile(r"[^:]+\.py:[A-Za-z_]\w*")


class OpSourceError(ValueError):
    """An op that cannot be found or read: `key` is where the study file names it (`ops.solarize`)."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class OpSource:
    """One op a study can name, and what identifies the code behind it."""

    name: str
    kind: str  # built-in | user | entry point | torchvision | kornia
    target: str  # `module:function`, `tv:Class`, `kornia:Class`; the name for a built-in op
    defaults: dict[str, Any] = field(default_factory=dict)  # its `ops:` entry's parameters
    path: str = ""  # the module's file (user, entry point)
    package: str = ""  # the distribution (entry point) or library
    version: str = ""
    sha256: str = ""  # of the module's file and the helper modules it imports from its folder (code_hash)
    checks: dict[str, tuple[Callable[[Any], bool], str]] = field(default_factory=dict, compare=False, repr=False)

    def record(self) -> dict[str, Any]:
        """The plain record a run keeps (MLflow tags, the Optuna study)."""
        plain = {"kind": self.kind, "target": self.target, "path": self.path, "package": self.package,
                 "version": self.version, "sha256": self.sha256, "defaults": self.defaults}
        return {key: value for key, value in plain.items() if value}

    def label(self) -> str:
        """One line: `user solarize_ops:solarize (examples/solarize_ops.py, sha256 1a2b3c4d5e6f)`."""
        if self.kind == BUILTIN:
            return BUILTIN
        where = ", ".join(filter(None, [self.path, f"{self.package} {self.version}".strip(),
                                        f"sha256 {self.sha256[:12]}" if self.sha256 else ""]))
        return f"{self.kind} {self.target}" + (f" ({where})" if where else "")


# The ops this process has registered with the engine for the study being read.
_REGISTERED: dict[str, OpSource] = {}


def begin_study() -> None:
    """Forget the ops of a study read before: a name is known only where this study declares it."""
    for name in list(_REGISTERED):
        op_schema.unregister_schema(name)
        augmentations = sys.modules.get("simclr_core.augmentations")
        if augmentations is not None:
            augmentations.unregister_op(name)
    _REGISTERED.clear()


def source_of(name: str) -> OpSource:
    """The source of an op the engine knows (built in, or registered for this study)."""
    return _REGISTERED.get(name) or OpSource(name, BUILTIN, name)


def declare(raw: Any, study_dir: Path) -> dict[str, OpSource]:
    """The `ops:` section: name -> target, or name -> {op: target, **defaults}. Registers each op's checks."""
    if not isinstance(raw, dict):
        raise OpSourceError("ops", "expected a mapping of name: module:function (or tv:Class, kornia:Class)")
    declared = {}
    for name, entry in raw.items():
        key = f"ops.{name}"
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise OpSourceError(key, "an op's name is letters, digits and _ (it names cells: crop+solarize)")
        if name in op_schema.BUILTIN_OPS:
            raise OpSourceError(key, f"{name} is a built-in op; give yours another name")
        target, defaults = (entry, {}) if isinstance(entry, str) else _entry_mapping(entry, key)
        declared[name] = _resolve(name, target, defaults, key, [str(study_dir), *sys.path])
        _register(declared[name])
    return declared


def find_entry_point(name: str, key: str) -> OpSource | None:
    """An installed package's op of this name (entry-point group simclr_ablations.ops), registered; None
    where no package adds one."""
    from importlib import metadata  # 20 ms of imports, only where a name is not built in nor declared

    found = [point for point in metadata.entry_points(group=ENTRY_POINT_GROUP) if point.name == name]
    if not found:
        return None
    packages = sorted({point.dist.name if point.dist else "?" for point in found})
    if len(packages) > 1:
        raise OpSourceError(key, f"the packages {', '.join(packages)} each add an op {name!r}; uninstall one, or "
                                 f"name the one you mean under ops: ({name}_2: module:function)")
    point = found[0]
    source = _resolve(name, point.value, {}, key, sys.path, kind=ENTRY_POINT)
    dist = point.dist
    source = OpSource(source.name, ENTRY_POINT, source.target, {}, source.path, dist.name if dist else "",
                      dist.version if dist else "", source.sha256, source.checks)
    _register(source)
    return source


def _entry_mapping(entry: Any, key: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, dict) or not isinstance(entry.get("op"), str):
        raise OpSourceError(key, f"{entry!r} is not allowed; expected module:function or {{op: module:function, "
                                 f"...parameters}}")
    return entry["op"], {name: value for name, value in entry.items() if name != "op"}


def _register(source: OpSource) -> None:
    op_schema.register_schema(source.name, source.checks)
    _REGISTERED[source.name] = source
    for name, value in source.defaults.items():
        check, allowed = source.checks[name]
        if not check(value):
            raise OpSourceError(f"ops.{source.name}.{name}", f"{value!r} is not allowed; expected {allowed}")


def _resolve(name: str, target: str, defaults: dict[str, Any], key: str, search: list[str],
             kind: str = USER) -> OpSource:
    prefix, _, rest = target.partition(":")
    if prefix in LIBRARIES:
        return _library(name, LIBRARIES[prefix], rest, target, defaults, key)
    if FILE_TARGET_PATTERN.fullmatch(target):
        file, function = target.rsplit(":", 1)
        path = (Path(search[0]) / file).resolve()
        if not path.is_file() or not re.fullmatch(r"[A-Za-z_]\w*", path.stem):
            raise OpSourceError(key, f"no file {path} (a path is read from the study file's folder, {search[0]}); "
                                     f"every worker and machine of the study needs it")
    elif TARGET_PATTERN.fullmatch(target):
        module, function = target.split(":")
        path = _find_module(module, search)
        if path is None:
            raise OpSourceError(key, f"no module {module!r} beside the study file or on sys.path ({search[0]}, ...); "
                                     f"every worker and machine of the study needs it")
    else:
        raise OpSourceError(key, f"{target!r} is not allowed; expected module:function (solarize_ops:solarize), "
                                 f"path/to/file.py:function (from the study file's folder), tv:Class "
                                 f"(torchvision.transforms.v2) or kornia:Class")
    text = path.read_bytes()
    parameters = _parameters_from_source(text.decode("utf-8", errors="replace"), function, path, key)
    checks = {}
    for parameter, annotation, default in parameters:
        if default is inspect.Parameter.empty and parameter not in defaults:
            raise OpSourceError(key, f"{function}'s parameter {parameter!r} has no default; give it one, or set it "
                                     f"here ({{op: {target}, {parameter}: ...}})")
        checks[parameter] = op_schema.check_from_annotation(annotation, default)
    unknown = [parameter for parameter in defaults if parameter not in checks]
    if unknown:
        raise OpSourceError(f"{key}.{unknown[0]}", f"unknown parameter; {function} takes {', '.join(checks) or 'none'}")
    package, version = _installed_from(target, path, search[0]) if kind == USER else ("", "")
    root, own_top = path.parent, None
    if not FILE_TARGET_PATTERN.fullmatch(target):  # module:function: imported from its search entry
        parts = target.split(":")[0].split(".")
        root = path.parents[len(parts) - (0 if path.name == "__init__.py" else 1)]
        own_top = None if root.resolve() == Path(search[0]).resolve() else parts[0]
    return OpSource(name, kind, target, dict(defaults), str(path), package, version,
                    code_hash(path, text, root, own_top), checks)


def code_hash(path: Path, text: bytes, root: Path | None = None, own_top: str | None = None) -> str:
    """The sha256 of the code behind an op: its module's file and the modules of its own that it imports,
    followed through their imports, read without importing anything. Its own: under `root`, the folder its
    module is imported from (the op file's folder, or the study file's), through absolute or relative
    imports; for a module found elsewhere on sys.path (an installed package), only its own top-level
    package's (`own_top`), never a library beside it. An op whose module imports only libraries hashes its
    file alone (the hash studies recorded before helpers counted)."""
    path = path.resolve()
    root = (root or path.parent).resolve()
    local = _local_imports(path, text, root, own_top)
    if not local:
        return hashlib.sha256(text).hexdigest()
    digest = hashlib.sha256()
    for file in [path, *sorted(local)]:
        digest.update(os.path.relpath(file, root).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def _local_imports(path: Path, text: bytes, root: Path, own_top: str | None) -> set[Path]:
    """The .py files of the op's own code (see `code_hash`) that its module imports, directly or through one
    another."""
    found: set[Path] = set()
    pending = [(path, text)]
    while pending:
        file, source = pending.pop()
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # the op's own file is checked by _parameters_from_source; a broken helper fails at import
        for node in ast.walk(tree):
            names: list[tuple[str, Path]] = []
            if isinstance(node, ast.Import):
                names = [(alias.name, root) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:  # relative: from the importing file's package
                base = file.parent
                for _ in range(node.level - 1):
                    base = base.parent
                names = ([(node.module, base)] if node.module else []) + [
                    (f"{node.module}.{alias.name}" if node.module else alias.name, base) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:  # absolute: from where the op is imported
                names = [(node.module, root)] + [(f"{node.module}.{alias.name}", root) for alias in node.names]
            for module, where in names:
                top = module.split(".")[0]
                if where == root and (own_top not in (None, top) or not (
                        (root / f"{top}.py").is_file() or (root / top / "__init__.py").is_file())):
                    continue  # a library, or another package beside an installed op's
                helper = _find_module(module, [str(where)])
                if helper is not None and helper.resolve() != path and helper.resolve() not in found:
                    found.add(helper.resolve())
                    pending.append((helper, helper.read_bytes()))
    return found


def _installed_from(target: str, path: Path, study_dir: str) -> tuple[str, str]:
    """The installed distribution (name, version) a module named by import path belongs to; ("", "") for a
    module of the user's own, beside the study file or named by its file."""
    if FILE_TARGET_PATTERN.fullmatch(target) or _find_module(target.split(":")[0], [study_dir]) == path:
        return "", ""
    from importlib import metadata

    names = metadata.packages_distributions().get(target.split(".")[0].split(":")[0], [])
    if not names:
        return "", ""
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return "", ""


def _find_module(module: str, search: list[str]) -> Path | None:
    """The file of `module` (dotted), found without importing it (a parent package's __init__ is not run)."""
    locations: list[str] | None = search
    spec = None
    for part in module.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, locations)
        if spec is None:
            return None
        locations = list(spec.submodule_search_locations or [])
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


def _parameters_from_source(text: str, function: str, path: Path, key: str) -> list[tuple[str, str | None, Any]]:
    """(name, annotation text, default) of each keyword parameter of `function` in a module's source."""
    try:
        tree = ast.parse(text, str(path))
    except SyntaxError as error:
        raise OpSourceError(key, f"{path} does not parse (line {error.lineno}: {error.msg})") from None
    found = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function]
    if not found:
        raise OpSourceError(key, f"{path} defines no function {function!r} at its top level (an op is a "
                                 f"`def {function}(images, generator, **params)`)")
    arguments = found[0].args
    positional = arguments.posonlyargs + arguments.args
    if len(positional) < 2:
        raise OpSourceError(key, f"{function} takes (images, generator, *, ...params); its signature has "
                                 f"{len(positional)} positional parameter(s)")
    defaults = [inspect.Parameter.empty] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    pairs = list(zip(positional, defaults))[2:] + list(zip(arguments.kwonlyargs, arguments.kw_defaults))
    parameters = []
    for argument, default in pairs:
        if default is not inspect.Parameter.empty and default is not None:
            try:
                default = ast.literal_eval(default)
            except ValueError:
                raise OpSourceError(key, f"{function}'s parameter {argument.arg!r} has a default that is not a "
                                         f"literal ({ast.unparse(default)}); use a number, string, tuple or None") from None
        annotation = ast.unparse(argument.annotation) if argument.annotation is not None else None
        parameters.append((argument.arg, annotation, default))
    return parameters


def _library(name: str, library: str, class_name: str, target: str, defaults: dict[str, Any], key: str) -> OpSource:
    """A torchvision or Kornia transform: its class is looked up, so the library (and torch) loads here."""
    from simclr_core import library_ops

    try:
        cls = (library_ops.torchvision_transform if library == "torchvision" else library_ops.kornia_augmentation)(
            class_name)
    except ValueError as error:
        raise OpSourceError(key, str(error)) from None
    parameters = library_ops.constructor_parameters(cls)
    unknown = [parameter for parameter in defaults if parameter not in parameters]
    if unknown:
        raise OpSourceError(f"{key}.{unknown[0]}", f"unknown parameter; {class_name} takes {', '.join(parameters)}")
    missing = [p for p, default in parameters.items() if default is inspect.Parameter.empty and p not in defaults]
    if missing:
        raise OpSourceError(key, f"{class_name} needs {', '.join(missing)}; give them here "
                                 f"({{op: {target}, {missing[0]}: ...}})")
    # The library checks its own values when the transform is built (the contract's first run).
    checks = {parameter: (lambda value: True, f"a value {class_name} accepts") for parameter in parameters}
    from importlib import metadata

    return OpSource(name, library, target, dict(defaults), package=library, version=metadata.version(library),
                    checks=checks)
