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
