"""matching.py: candidate outputs keyed by the golden's names, one rule for every run."""

from __future__ import annotations

import numpy as np

from snapshot_tool.golden.schema import SignatureGolden
from snapshot_tool.matching import golden_named


def _sg(*outputs: str) -> SignatureGolden:
    x = np.zeros((2, 1), np.float32)
    return SignatureGolden("serving_default", {"x": x}, {o: x for o in outputs})


def test_golden_named_applies_renames_then_pairs_a_lone_output() -> None:
    got, notes = golden_named(_sg("y", "z"), {"a": 1, "z": 2}, {"y": "a"})
    assert got == {"y": 1, "z": 2} and notes == []
    got, notes = golden_named(_sg("y"), {"output_0": 3}, {})
    assert got == {"y": 3} and "--map y=output_0" in notes[0]
    # Several renamed outputs are never guessed: kept under their own names, with a hint.
    got, notes = golden_named(_sg("y", "z"), {"a": 1, "b": 2}, {})
    assert got == {"a": 1, "b": 2} and "--map" in notes[0]


def test_a_candidate_that_changed_a_scalar_input_is_an_interface_change() -> None:
    """Compare says what the golden recorded (a scalar, or rows) and that the candidate
    changed, not record's advice on how to store an inputs file."""
    from types import SimpleNamespace

    import pytest

    from snapshot_tool.errors import SignatureError
    from snapshot_tool.matching import conform_inputs
    from snapshot_tool.models.base import SignatureInfo, TensorSpec

    model = SimpleNamespace(path="cand")
    scalar = SignatureInfo("s", (TensorSpec("t", "float32", ()),), ())
    batched = SignatureInfo("s", (TensorSpec("t", "float32", (None,)),), ())
    with pytest.raises(SignatureError) as rows:
        conform_inputs(scalar, {"t": np.ones(16, np.float32)}, model, "candidate")  # type: ignore[arg-type]
    with pytest.raises(SignatureError) as one:
        conform_inputs(batched, {"t": np.float32(2.0)}, model, "candidate")  # type: ignore[arg-type]
    assert "takes a scalar" in str(rows.value) and "recorded one row per sample" in str(rows.value)
    assert "has a sample dimension" in str(one.value) and "recorded a scalar" in str(one.value)
    for exc in (rows.value, one.value):
        assert "interface changed" in str(exc) and "store" not in str(exc)
