"""Matching and scoring of traced tensors (numpy only, hand-made traces)."""

from __future__ import annotations

import math

import numpy as np

from snapshot_tool.diagnose.divergence import (
    Node,
    Trace,
    display_name,
    locate,
    match,
    normalize,
    score,
)
from snapshot_tool.diagnose.render import localization_lines, localization_to_json


def _chain(kind: str, names: list[tuple[str, str]], values: list[np.ndarray],
           weight: np.ndarray | None = None) -> Trace:
    """x -> names[0] -> names[1] -> ..., the last one the output "y"; an optional weight
    parameter feeding the second op."""
    nodes = [Node("x", "Placeholder")]
    vals = {"x": values[0]}
    prev = "x"
    for i, ((name, op), v) in enumerate(zip(names, values[1:], strict=True)):
        ins: tuple[str, ...] = (prev,)
        if weight is not None and i == 1:
            nodes.append(Node("w", "Const", "layer1", parameter=True))
            vals["w"] = weight
            ins = (prev, "w")
        nodes.append(Node(name, op, f"layer{i}", ins))
        vals[name] = v
        prev = name
    return Trace(kind, tuple(nodes), vals, {"y": prev})


X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)


def test_normalize_strips_call_wrappers_and_output_index() -> None:
    assert normalize("StatefulPartitionedCall/StatefulPartitionedCall_1/m/d/MatMul:0") == \
        "m/d/MatMul"
    assert normalize("out:1") == "out:1"
    assert display_name("m/conv/Relu;m/conv/convolution#10") == "m/conv/Relu"


def test_match_by_name_then_position_keeps_order() -> None:
    g = _chain("saved_model", [("a", "MatMul"), ("Tanh", "Tanh"), ("b", "MatMul")],
               [X, X, X, X[:, :2]])
    c = _chain("saved_model", [("a", "MatMul"), ("Sigmoid", "Sigmoid"), ("b", "MatMul")],
               [X, X, X + 1, X[:, :2]])
    pairs = {p.golden.name: (p.candidate.name, p.matched_by) for p in match(g, c)}
    assert pairs["a"] == ("a", "name")
    assert pairs["Tanh"] == ("Sigmoid", "position")
    assert pairs["b"] == ("b", "name")


def test_position_match_needs_the_same_shape() -> None:
    g = _chain("saved_model", [("a", "A"), ("t", "T")], [X, X, X])
    c = _chain("saved_model", [("a", "A"), ("u", "U")], [X, X, X[:, :2]])
    assert "t" not in {p.golden.name for p in match(g, c)}


def test_cross_runtime_position_match_needs_the_same_op_family() -> None:
    g = _chain("saved_model", [("conv", "Conv2D"), ("relu", "Relu")], [X, X, X])
    c = _chain("tflite", [("fused#3", "CONV_2D"), ("other#4", "TANH")], [X, X, X])
    pairs = {p.golden.name: p.candidate.name for p in match(g, c)}
    assert pairs.get("conv") == "fused#3"
    assert "relu" not in pairs


def test_score_scales_atol_to_the_tensor_magnitude() -> None:
    g = np.array([100.0, -50.0])
    # Output magnitude 1, atol 1e-3 -> 0.1 allowed at magnitude 100.
    assert not score(g, g + 0.09, 1e-3, 0.0, 1.0).exceeded
    assert score(g, g + 0.11, 1e-3, 0.0, 1.0).exceeded
    s = score(g, g + 0.2, 1e-3, 0.0, 1.0)
    assert math.isclose(s.ratio, 2.0, rel_tol=1e-9)
    assert math.isclose(s.relative_error, 0.2 / 100.0, rel_tol=1e-9)


def test_score_handles_nan_shapes_strings_and_scalars() -> None:
    nan = np.array([np.nan, 1.0])
    assert not score(nan, nan.copy(), 1e-5, 0.0, 1.0).exceeded
    assert score(nan, np.array([0.0, 1.0]), 1e-5, 0.0, 1.0).exceeded
    assert score(X, X[:2], 1e-5, 0.0, 1.0).exceeded
    words = np.array([b"a", b"b"], dtype=object)
    assert score(words, np.array([b"a", b"c"], dtype=object), 0.0, 0.0, 1.0).exceeded
    assert not score(np.float32(2.0), np.float32(2.0), 1e-5, 0.0, 1.0).exceeded
    assert not score(X, X + 1.0, 1e-5, 0.0, 1.0, max_mismatch_fraction=1.0).exceeded


def test_locate_reports_first_diverging_tensor_path_and_changed_weight() -> None:
    w = np.ones((4, 4), np.float32)
    h = X * 2
    g = _chain("keras", [("dense_a", "Dense"), ("dense_b", "Dense"), ("out", "Softmax")],
               [X, h, h @ w, h @ w / 10], weight=w)
    c = _chain("keras", [("dense_a", "Dense"), ("dense_b", "Dense"), ("out", "Softmax")],
               [X, h, h @ (w * 2), h @ (w * 2) / 10], weight=w * 2)
    loc = locate(g, c, "y", 1e-5, 1.3e-6)
    assert loc.status == "localized"
    assert loc.first is not None and loc.first.name == "dense_b"
    assert [s.name for s in loc.path] == ["dense_b", "out"]
    assert loc.changed_parameters == ("w",)
    text = "\n".join(localization_lines(loc))
    assert "first diverging tensor: dense_b (Dense, layer layer1)" in text
    doc = localization_to_json(loc)
    assert doc["first"]["display_name"] == "dense_b"


def test_locate_without_divergence_and_without_output_says_why() -> None:
    g = _chain("keras", [("a", "Dense")], [X, X])
    loc = locate(g, g, "y", 1e-5, 0.0)
    assert loc.status == "no_divergence" and "no matched" in loc.reason
    assert locate(g, g, "nope", 1e-5, 0.0).status == "unsupported"
    assert localization_lines(loc)[0].startswith("localize y: not localized:")
