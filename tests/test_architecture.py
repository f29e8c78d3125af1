"""The package layers (docs/design.md): the import-linter contract in pyproject.toml, no import cycles
between modules, and no imports inside functions except where start-up time or an optional dependency
needs them."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "noisy_labels"

#: Optional extras (pyproject's images/vision/tensorboard): imported only where used, so the core runs
#: without them. matplotlib.pyplot imports Pillow, so matplotlib counts here too.
OPTIONAL = ("PIL", "torchvision", "tensorboard", "torch.utils.tensorboard", "matplotlib")
#: Lazy imports kept for start-up time: ``noisy-labels`` imports cli, ``noisy_labels`` (for issues) and
#: ``_validation`` for every command, so these stay out of that path. None: any import.
LAZY_FOR_STARTUP: dict[str, tuple[str, ...] | None] = {
    "cli.py": None,  # every sub-command imports what it needs
    "_validation.py": ("sklearn",),  # check_class_target only (the estimator's input check)
    "issues.py": ("noisy_labels.sklearn",),  # the estimator pulls in scikit-learn
}


def _absolute(node: ast.Import | ast.ImportFrom, rel: str) -> list[str]:
    """The absolute module names an import statement in the package file ``rel`` names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    package = ["noisy_labels", *Path(rel).parent.parts]
    base = package[: len(package) - (node.level - 1)]
    return [".".join([*base, node.module] if node.module else base)]


def _allowed(rel: str, name: str) -> bool:
    if any(name == m or name.startswith(m + ".") for m in OPTIONAL):
        return True
    if rel not in LAZY_FOR_STARTUP:
        return False
    allowed = LAZY_FOR_STARTUP[rel]
    return allowed is None or any(name == m or name.startswith(m + ".") for m in allowed)


def in_function_imports() -> list[tuple[str, int, str]]:
    """(file, line, module) of every import inside a function that the allow-lists do not cover."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        seen = set()
        for function in functions:
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in seen:
                    seen.add(id(node))
                    found.extend(
                        (rel, node.lineno, name) for name in _absolute(node, rel) if not _allowed(rel, name)
                    )
    return sorted(found)


def test_no_imports_inside_functions():
    found = [f"{rel}:{line} imports {name}" for rel, line, name in in_function_imports()]
    assert not found, "move these imports to the top of their module:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def lint_imports() -> subprocess.CompletedProcess:
    pytest.importorskip("importlinter")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    command = (
        "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    )
    return subprocess.run(
        [sys.executable, "-c", command, "--no-cache"],
        cwd=ROOT,  # reads [tool.importlinter] from pyproject.toml
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layers_contract(lint_imports):
    assert lint_imports.returncode == 0, lint_imports.stdout + lint_imports.stderr


def test_no_import_cycles():
    """No module imports itself back through others (type-checking imports aside), packages included."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("noisy_labels", exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    assert sum(map(len, edges.values())) > 100  # the graph holds the package's imports
    assert {"a", "b"} in _strongly_connected({"a": {"b"}, "b": {"c", "a"}, "c": set()})  # finds a cycle
    cycles = [c for c in _strongly_connected(edges) if len(c) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in cycles)


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components
