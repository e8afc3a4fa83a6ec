"""The dependency rule of the layout: golden/, metrics/, report/, diff.py and dtypes.py never
import TensorFlow (or another model runtime) nor snapshot_tool.models, directly or through
another snapshot_tool module, whether at import time or lazily inside a function.

Checked two ways: statically over the source (every import statement, including the lazy
ones a call would run, but not ``if TYPE_CHECKING:`` blocks), and by importing the modules in
a fresh interpreter and looking at ``sys.modules``, as the ``--help`` test does.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "snapshot_tool"
PURE = ("golden", "metrics", "report", "diff", "diff_merge", "dtypes")
# Pure modules inside a package that also holds runtime code (diagnose/ traces models).
PURE_MODULES = ("snapshot_tool.diagnose.divergence", "snapshot_tool.diagnose.evidence",
                "snapshot_tool.diagnose.render")
RUNTIMES = ("tensorflow", "keras", "tf_keras", "ai_edge_litert", "tflite_runtime")
FORBIDDEN = (*RUNTIMES, "snapshot_tool.models")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _pure_modules() -> list[str]:
    return sorted(m for m in _sources()
                  if ("." in m and m.split(".")[1] in PURE) or m in PURE_MODULES)


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, module: str, *, lazy: bool = True) -> set[str]:
    """Every module an import statement in ``path`` names; with ``lazy``, also the ones
    inside functions, which run when the function is called."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if not lazy and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".")
                pkg = pkg[:len(pkg) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join([*pkg, base] if base else pkg)
            found.add(base)
            # "from snapshot_tool import models" names a module too.
            found.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _closure(start: str, sources: dict[str, Path]) -> dict[str, str]:
    """Every module reachable from ``start`` through snapshot_tool's own imports, each with
    the module that imports it (to say how a forbidden import was reached).

    Importing ``a.b.c`` runs the module-level code of the packages ``a`` and ``a.b`` too, but
    not their functions (``snapshot_tool.__getattr__`` loads the API only when asked), so a
    package reached only as a parent is scanned without its lazy imports.
    """
    seen = {start: ""}
    scanned: dict[str, bool] = {}
    todo = [(start, True)] + [(parent, False) for parent in _parents(start)]
    for parent in _parents(start):
        seen[parent] = start
    while todo:
        current, lazy = todo.pop()
        if scanned.get(current, False) or (current in scanned and not lazy):
            continue
        scanned[current] = lazy
        for name in _imports(sources[current], current, lazy=lazy):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                dotted = ".".join(parts[:i])
                if dotted.startswith("snapshot_tool") and dotted not in sources:
                    continue  # "from pkg import function" names no module
                seen.setdefault(dotted, current)
                if dotted in sources:
                    todo.append((dotted, i == len(parts)))
    return seen


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _chain(seen: dict[str, str], name: str) -> str:
    path = [name]
    while seen[path[-1]]:
        path.append(seen[path[-1]])
    return " <- ".join(path)


def test_the_pure_modules_exist() -> None:
    # A rename must not make the check below vacuous.
    mods = _pure_modules()
    for want in ("snapshot_tool.golden.io", "snapshot_tool.metrics.tasks",
                 "snapshot_tool.report.console", "snapshot_tool.diff", "snapshot_tool.dtypes",
                 *PURE_MODULES):
        assert want in mods


def test_the_walk_sees_a_forbidden_import() -> None:
    # Positive control: record.py loads models, and the walk must see it (also lazily).
    seen = _closure("snapshot_tool.record", _sources())
    assert "snapshot_tool.models.load" in seen
    assert "tensorflow" in seen  # models.base imports it inside import_tf


@pytest.mark.parametrize("module", _pure_modules())
def test_pure_module_never_imports_a_model_runtime(module: str) -> None:
    seen = _closure(module, _sources())
    bad = [name for name in seen
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, "; ".join(_chain(seen, b) for b in bad)


def test_importing_the_pure_modules_loads_no_model_runtime() -> None:
    code = (
        "import importlib, sys\n"
        f"for m in {_pure_modules()!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {RUNTIMES!r}\n"
        "             or m == 'snapshot_tool.models' or m.startswith('snapshot_tool.models.'))\n"
        "assert not bad, bad\n"
        "print('CLEAN')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 0 and "CLEAN" in proc.stdout, proc.stderr
