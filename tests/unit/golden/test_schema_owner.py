"""golden/schema.py is the only module that names an HDF5 attribute of a golden.

Walked statically over every module of the package: an attribute mapping (``x.attrs``,
``attrs``, ``output_attrs``, ...) indexed, looked up, set or tested with a string literal, or
an HDF5 group or dataset created under a literal name, is a second place spelling the
format; it must use a name or a typed record from :mod:`snapshot_tool.golden.schema`.

Not caught: a literal reaching an attribute through a variable, or a group read as
``g["inputs"]`` (indistinguishable here from the JSON dicts ``show`` and the sharded
manifest are built from); those are left to review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "snapshot_tool"
OWNER = PACKAGE / "golden" / "schema.py"
# Mapping methods whose first argument is an attribute name.
_KEYED = frozenset({"get", "pop", "setdefault", "__getitem__", "__setitem__", "__delitem__",
                    "__contains__", "create", "modify", "require"})
_H5_CREATE = frozenset({"create_group", "require_group", "create_dataset", "require_dataset"})


def _is_attrs(node: ast.expr) -> bool:
    """An attribute mapping, or one entry of a mapping of them (``output_attrs[k]``,
    ``output_attrs.get(k, {})``)."""
    if isinstance(node, ast.Subscript):
        return _is_attrs(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("get", "__getitem__", "setdefault") and \
            _is_attrs(node.func.value)
    name = node.attr if isinstance(node, ast.Attribute) else \
        node.id if isinstance(node, ast.Name) else ""
    return name == "attrs" or name.endswith("_attrs")


def _literal(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _first_arg(call: ast.Call) -> ast.expr | None:
    """The name a call is about: its first argument, positional or ``name=``/``key=``."""
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg in ("name", "key")), None)


def spelled_attributes(source: str) -> list[tuple[int, str]]:
    """(line, code) of every place ``source`` spells an attribute or layout name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        hit = False
        if isinstance(node, ast.Subscript):
            hit = _is_attrs(node.value) and _literal(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, owner = node.func.attr, node.func.value
            keyed = method in _KEYED and _is_attrs(owner)
            hit = _literal(_first_arg(node)) and (keyed or method in _H5_CREATE)
        elif isinstance(node, ast.Compare):
            hit = _literal(node.left) and any(
                isinstance(op, (ast.In, ast.NotIn)) and _is_attrs(right)
                for op, right in zip(node.ops, node.comparators, strict=True))
        if hit:
            found.append((getattr(node, "lineno", 0), ast.unparse(node)))
    return found


@pytest.mark.parametrize("code", [
    'ds.attrs["dtype"] = label',
    'f.attrs["format"] = FORMAT',
    'version = f.attrs.get("format_version")',
    'stored = bg.attrs.get("batch_size", int(size))',
    'attrs["environment"] = json.loads(env)',
    'env = attrs.get("environment")',
    'spread = sg.output_attrs.get(name, {})["spread"]',
    'ds.attrs.__setitem__("sha256", digest)',
    'ds.attrs.create(name="shape", data="[1]")',
    'if "sha256" not in node.attrs: pass',
    'g_l = root.create_group("latency")',
    'ds = g.create_dataset("samples_ns", data=samples)',
])
def test_the_guard_catches_a_spelled_attribute(code: str) -> None:
    assert spelled_attributes(code), code


@pytest.mark.parametrize("code", [
    "ds.attrs[schema.DTYPE] = label",
    "env = attrs.get(schema.ENVIRONMENT)",
    "spread = sg.info(name).spread",
    "g = root.create_group(schema.LATENCY)",
    'entry["labels"] = {"shape": [1]}',  # show's JSON, not an HDF5 attribute
    'x = options.get("seed")',
])
def test_the_guard_passes_names_from_the_schema(code: str) -> None:
    assert not spelled_attributes(code), code


def test_only_the_schema_spells_an_attribute() -> None:
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {code}"
                 for path in sorted(PACKAGE.rglob("*.py")) if path != OWNER
                 for line, code in spelled_attributes(path.read_text(encoding="utf-8"))]
    assert not offenders, (
        "HDF5 attribute or layout names spelled outside snapshot_tool/golden/schema.py; "
        "name them there and use the constant or typed record:\n" + "\n".join(offenders))
