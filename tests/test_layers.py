"""The harness's folders are its layers (ablations/__init__.py): each module imports only from its own
layer and those below it, the imports between modules form no circle, and no module grows past 450 lines.
Read from the source's import statements (those inside functions too: a lazy import is still a
dependency), so the test needs nothing installed and fails on the line that climbs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ablations"
# Bottom to top: a module may import from its own layer and from every layer before it.
LAYERS = ["messages", "design", "stats", "stores", "report", "run"]
MAX_LINES = 450


def layer_of(module: str) -> str:
    """`ablations.stats.inference` -> `stats`; `ablations.messages` -> `messages`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of an `ablations` module in the file, relative ones resolved;
    `from ablations.stores import search` names `ablations.stores.search`."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("ablations")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith("ablations"):
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.append((node.lineno, sub if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                              or (ROOT.parent / sub.replace(".", "/")).is_dir() else module))
    return found


SOURCES = sorted(ROOT.rglob("*.py"))


def test_every_module_is_in_a_layer():
    strays = [str(p.relative_to(ROOT)) for p in SOURCES
              if layer_of(module_name(p)) not in LAYERS and p != ROOT / "__init__.py"]
    assert strays == [], f"modules outside the layers {LAYERS}: {strays}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path):
    own = layer_of(module_name(path))
    if own not in LAYERS:
        return
    climbs = [f"{path.relative_to(ROOT.parent)}:{line} imports {module} ({layer_of(module)} is above {own})"
              for line, module in imports_of(path)
              if layer_of(module) in LAYERS and LAYERS.index(layer_of(module)) > LAYERS.index(own)]
    assert climbs == []


def test_no_circles_between_modules():
    graph = {module_name(p): {m for _, m in imports_of(p)} - {module_name(p)} for p in SOURCES}
    # A package's __init__ re-exporting its own modules is not a cycle of roles: leave packages out.
    packages = {module_name(p) for p in SOURCES if p.name == "__init__.py"}
    graph = {m: {d for d in deps if d in graph and d not in packages} for m, deps in graph.items() if m not in packages}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)


def test_no_module_over_the_limit():
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_a_climb(tmp_path):
    # The walk above must find an upward import where there is one, lazy or relative.
    (tmp_path / "ablations" / "stats").mkdir(parents=True)
    bad = tmp_path / "ablations" / "stats" / "x.py"
    bad.write_text("def f():\n    from ablations.stores import search\n    from ..report import tables\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path / "ablations"
    try:
        assert [m for _, m in imports_of(bad)] == ["ablations.stores", "ablations.report"]
    finally:
        ROOT = saved
