"""Goldens written by earlier releases must stay readable: a committed format-1 golden.

tests/goldens/dense_v1.h5 was recorded by snapshot-tool 0.1.0 from
``tests.fixtures.models.save_dense`` (16 synthesized samples, batch size 8, no latency).
It is never re-recorded: if a change to golden/ breaks reading it, that change breaks
every user's existing goldens too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from snapshot_tool.golden.io import read_golden
from snapshot_tool.golden.schema import FORMAT_VERSION

V1 = Path(__file__).parent.parent / "goldens" / "dense_v1.h5"


def test_committed_v1_golden_verifies_and_reads() -> None:
    g = read_golden(V1)
    assert g.attrs["format_version"] == 1 <= FORMAT_VERSION
    sg = g.signatures["serving_default"]
    assert sg.inputs["features"].shape == (16, 4)
    assert set(sg.outputs) == {"logits", "score"}


def test_committed_v1_golden_still_gates_its_model(cli, dense_model: Path, dense_changed: Path,
                                                    tmp_path: Path) -> None:
    golden = tmp_path / "v1.h5"
    shutil.copy(V1, golden)  # never let a test touch the committed file
    assert cli("verify", golden).code == 0
    assert cli("compare", dense_model, "--golden", golden, "--no-latency").code == 0
    assert cli("compare", dense_changed, "--golden", golden, "--no-latency").code == 1
