"""A sharded golden (G.h5.d/) reads, verifies and describes as the one golden it splits."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from snapshot_tool.errors import GoldenError
from snapshot_tool.golden import sharded
from snapshot_tool.golden.describe import describe_golden
from snapshot_tool.golden.io import read_golden, tensor_sha256, verify_golden
from snapshot_tool.golden.schema import Golden, OutputMetrics, SignatureGolden, StoredMetric

ROWS, BATCH = 22, 4


def _golden() -> Golden:
    rng = np.random.default_rng(0)
    sg = SignatureGolden(
        "serving_default",
        inputs={"x": rng.normal(size=(ROWS, 3)).astype(np.float32)},
        outputs={"y": rng.normal(size=(ROWS, 2)),
                 "half": rng.normal(size=ROWS).astype(ml_dtypes.bfloat16),
                 "words": np.array([b"w%d\x00" % i for i in range(ROWS)], dtype=object),
                 # one entry per batch: 6 batches of 4 rows (the last one short)
                 "per_batch": np.arange(6, dtype=np.int32)},
        output_attrs={"y": {"batched": True, "spread": 0.5}, "half": {"batched": True},
                      "words": {"batched": True}, "per_batch": {"batched": False}},
        labels=np.arange(ROWS) % 3, labels_source="labels.npz",
        metrics={"y": OutputMetrics("regression", 0.5, {"mae": StoredMetric(0.25, "lower")})})
    return Golden(Path("g.h5"), {"signature": "serving_default", "batch_size": BATCH,
                                 "seed": 0, "num_samples": ROWS,
                                 "environment": json.dumps({"python": "3.11"})},
                  {"serving_default": sg})


@pytest.fixture()
def sharded_dir(tmp_path: Path) -> Path:
    return sharded.write_sharded(tmp_path / "g.h5.d", _golden(), rows_per_shard=8)


def test_reads_as_the_one_golden_it_splits(sharded_dir: Path) -> None:
    whole = _golden().signatures["serving_default"]
    got = read_golden(sharded_dir)
    sg = got.signatures["serving_default"]
    for group in ("inputs", "outputs"):
        for name, arr in getattr(whole, group).items():
            assert tensor_sha256(getattr(sg, group)[name]) == tensor_sha256(arr), name
    assert sg.labels is not None and np.array_equal(sg.labels, whole.labels)
    assert sg.output_attrs == whole.output_attrs
    assert sg.metrics == whole.metrics and sg.labels_source == "labels.npz"
    assert got.attrs["num_samples"] == ROWS and got.attrs["shards"] == 3


def test_each_shard_is_a_golden_of_its_rows(sharded_dir: Path) -> None:
    shards = sorted(sharded_dir.glob("shard-*.h5"))
    assert [p.name for p in shards] == [sharded.shard_name(i, 3) for i in range(3)]
    last = read_golden(shards[2])
    assert last.attrs["row_start"] == 16 and last.attrs["num_samples"] == 6
    assert np.array_equal(last.signatures["serving_default"].outputs["per_batch"], [4, 5])
    assert verify_golden(shards[1])[0] == 6  # x, four outputs, labels


def test_verify_and_describe(sharded_dir: Path) -> None:
    assert verify_golden(sharded_dir)[:2] == (18, 2)  # tensors checked, format version
    info = describe_golden(sharded_dir)
    outs = {t["name"]: t for t in info["signatures"]["serving_default"]["outputs"]}
    assert outs["y"]["shape"] == [ROWS, 2] and outs["per_batch"]["shape"] == [6]
    assert info["signatures"]["serving_default"]["labels"]["shape"] == [ROWS]
    assert info["signatures"]["serving_default"]["metrics"]["y"]["task"] == "regression"
    assert len(info["shards"]) == 3 and "row_start" not in info["attrs"]
    assert info["attrs"]["environment"] == {"python": "3.11"}  # parsed, as for one file


def test_row_ranges_cover_the_golden(sharded_dir: Path, tmp_path: Path) -> None:
    ranges = sharded.row_ranges(sharded_dir, "serving_default", 1000)
    assert [(r.global_start, r.stop) for r in ranges] == [(0, 8), (8, 8), (16, 6)]
    parts = [sharded.read_range(r, BATCH) for r in ranges]
    whole = read_golden(sharded_dir).signatures["serving_default"]
    assert np.array_equal(np.concatenate([p.outputs["y"] for p in parts]), whole.outputs["y"])
    # A single-file golden splits into whole batches, read by slicing.
    single = sharded.read_range(sharded.RowRange(str(sharded_dir / sharded.shard_name(0, 3)),
                                                 "serving_default", 4, 8, 4), BATCH)
    assert np.array_equal(single.outputs["per_batch"], [1])
    assert np.array_equal(single.inputs["x"], whole.inputs["x"][4:8])


def _manifest(d: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((d / sharded.MANIFEST).read_text())
    return doc


@pytest.mark.parametrize("damage", ["shard_bytes", "shard_missing", "manifest_edit",
                                    "manifest_gone", "path_escape"])
def test_damage_is_refused(sharded_dir: Path, damage: str) -> None:
    shard = sharded_dir / sharded.shard_name(1, 3)
    if damage == "shard_bytes":
        data = bytearray(shard.read_bytes())
        data[-100] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "shard_missing":
        shard.unlink()
    elif damage == "manifest_edit":
        doc = _manifest(sharded_dir)
        doc["num_rows"] = 21
        (sharded_dir / sharded.MANIFEST).write_text(json.dumps(doc))
    elif damage == "manifest_gone":
        (sharded_dir / sharded.MANIFEST).unlink()
    else:
        doc = _manifest(sharded_dir)
        doc["shards"][0]["file"] = "../elsewhere.h5"  # type: ignore[index]
        body = {k: v for k, v in doc.items() if k != "sha256"}
        import hashlib

        doc["sha256"] = hashlib.sha256(sharded._canonical(body)).hexdigest()
        (sharded_dir / sharded.MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(GoldenError):
        verify_golden(sharded_dir)
    with pytest.raises(GoldenError):
        read_golden(sharded_dir)


def test_replaced_whole_and_only_with_force(sharded_dir: Path) -> None:
    with pytest.raises(GoldenError, match="--force"):
        sharded.write_sharded(sharded_dir, _golden(), rows_per_shard=8)
    sharded.write_sharded(sharded_dir, _golden(), rows_per_shard=12, force=True)
    assert sorted(p.name for p in sharded_dir.iterdir()) == [
        sharded.MANIFEST, sharded.shard_name(0, 2), sharded.shard_name(1, 2)]
    assert not [p for p in sharded_dir.parent.iterdir() if p.name.startswith(".")]


def test_a_record_losing_the_race_keeps_the_winners_golden(
        sharded_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two records --force of one sharded golden: this one moves the old golden aside, the
    other puts its own in place before this one's rename. This one fails (exit 2, not a
    bare OSError) and the other's golden stays whole; nothing is left beside it."""
    real_replace = sharded.os.replace
    other = _golden()

    def replace_then_lose(src: str | Path, dst: str | Path) -> None:
        real_replace(src, dst)
        if Path(src) == sharded_dir:  # the old golden just moved aside
            monkeypatch.setattr(sharded.os, "replace", real_replace)
            sharded.write_sharded(sharded_dir, other, rows_per_shard=12)

    monkeypatch.setattr(sharded.os, "replace", replace_then_lose)
    with pytest.raises(GoldenError, match="written by another process"):
        sharded.write_sharded(sharded_dir, _golden(), rows_per_shard=8, force=True)
    assert len(list(sharded_dir.glob("*.h5"))) == 2  # the other's two shards of 12 rows
    verify_golden(sharded_dir)
    assert not [p for p in sharded_dir.parent.iterdir() if p.name.startswith(".")]


def test_a_stop_between_the_two_renames_puts_the_old_golden_back(
        sharded_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (a cancelled CI job) after the old golden was moved aside and before the new
    one is renamed in: the old golden is back in place, whole, and nothing is left beside."""
    before = sorted(p.name for p in sharded_dir.iterdir())
    real_replace = sharded.os.replace

    def stop_at_rename_in(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == sharded_dir and Path(src).name != sharded_dir.name:
            raise KeyboardInterrupt  # the staging directory's rename, interrupted
        real_replace(src, dst)

    monkeypatch.setattr(sharded.os, "replace", stop_at_rename_in)
    with pytest.raises(KeyboardInterrupt):
        sharded.write_sharded(sharded_dir, _golden(), rows_per_shard=12, force=True)
    monkeypatch.undo()
    assert sorted(p.name for p in sharded_dir.iterdir()) == before
    verify_golden(sharded_dir)
    assert not [p for p in sharded_dir.parent.iterdir()
                if p.name.startswith(".") and p.name.endswith(".old")]


def test_in_process_write_over_a_sharded_golden_says_to_use_beam(sharded_dir: Path) -> None:
    # `record` without --runner beam cannot replace a G.h5.d/ directory; suggesting a file
    # inside it (G.h5.d/golden.h5) would nest a golden in the sharded one.
    from snapshot_tool.golden.io import check_writable

    with pytest.raises(GoldenError, match="--runner beam") as err:
        check_writable(sharded_dir, force=True)
    assert "golden.h5" not in str(err.value)
