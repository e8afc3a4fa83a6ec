"""Goldens written by earlier releases must stay readable: a committed format-1 golden.

tests/goldens/dense_v1.h5 was recorded by snapshot-tool 0.1.0 from
``tests.fixtures.models.save_dense`` (16 synthesized samples, batch size 8, no latency).
It is never re-recorded: if a change to golden/ breaks reading it, that change breaks
every user's existing goldens too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

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


def _layout(path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """Every object of a golden: its kind, dtype, whether compressed, and its attributes'
    types."""
    import h5py

    out: dict[str, tuple[str, dict[str, str]]] = {}
    with h5py.File(path) as f:
        def visit(name: str, obj: Any) -> None:
            # Which filter compresses a tensor (gzip then, lzf now) is the writer's choice;
            # that it is compressed is part of the layout.
            kind = f"dataset {obj.dtype} compressed={obj.compression is not None}" \
                if isinstance(obj, h5py.Dataset) else "group"
            out[name] = (kind, {k: type(v).__name__ for k, v in obj.attrs.items()})
        visit("/", f)
        f.visititems(visit)
    return out


def test_recording_today_writes_what_the_v1_golden_holds(cli, dense_model: Path,
                                                         tmp_path: Path) -> None:
    """Apart from when, by which version and where, and what format 2 added (the root
    content digest), a golden recorded now from the model dense_v1.h5 came from is the same
    file: same objects, attributes and attribute types, the same inputs, and the same
    outputs up to float32 rounding (TF's kernels may sum in another order on another
    machine)."""
    import h5py
    import numpy as np

    golden = tmp_path / "now.h5"
    assert cli("record", dense_model, "--golden", golden, "--num-samples", "16",
               "--batch-size", "8", "--no-latency").code == 0
    now_layout, v1_layout = _layout(golden), _layout(V1)
    assert now_layout["/"][1].pop("content_digest") == "str"
    assert now_layout == v1_layout
    volatile = {"created", "tool_version", "environment", "model_path", "model_digest",
                "content_digest", "format_version"}
    with h5py.File(golden) as now, h5py.File(V1) as then:
        assert (now.attrs["format_version"], then.attrs["format_version"]) == (2, 1)
        assert {k: v for k, v in now.attrs.items() if k not in volatile} == \
            {k: v for k, v in then.attrs.items() if k not in volatile}
        np.testing.assert_array_equal(now["inputs/features"][()], then["inputs/features"][()])
        assert now["inputs/features"].attrs["sha256"] == then["inputs/features"].attrs["sha256"]
        for name in ("logits", "score"):
            np.testing.assert_allclose(now[f"outputs/{name}"][()], then[f"outputs/{name}"][()],
                                       rtol=1e-5, atol=1e-6)
            assert dict(now[f"outputs/{name}"].attrs)["batched"] == \
                dict(then[f"outputs/{name}"].attrs)["batched"]
