"""record and compare with --runner beam: the sharded golden, and a verdict equal to the
in-process one field by field.

Two layers. The drivers and the per-range work run here without Apache Beam, through
``snapshot_tool.beam.work.run_local`` (what the pipeline computes, in this process, ranges
merged in reverse order): these run in every ``make test``. The pipeline itself runs on
Beam's DirectRunner when apache-beam is installed (``make test-beam``): a fast smoke test
in one process, and the field-by-field test on two worker processes, marked slow.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snapshot_tool.beam import work
from snapshot_tool.beam.compare import compare_beam
from snapshot_tool.beam.record import record_beam
from snapshot_tool.compare import CompareOptions, ComparisonResult, compare
from snapshot_tool.diff import ErrorSummary
from snapshot_tool.golden.io import read_golden, verify_golden
from snapshot_tool.record import RecordOptions, record

HAS_BEAM = importlib.util.find_spec("apache_beam") is not None
TWO_WORKERS = ["direct_num_workers=2", "direct_running_mode=multi_processing"]
NO_LATENCY = CompareOptions(latency=False)


@pytest.fixture()
def local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drivers run their pipeline through run_local: no Beam needed."""
    monkeypatch.setattr(work, "run_pipeline", lambda job, items, flags: work.run_local(job, items))
    monkeypatch.setattr("snapshot_tool.beam.compare.require_beam", lambda: None)
    monkeypatch.setattr("snapshot_tool.beam.record.require_beam", lambda: None)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs and class labels for the dense model (features of 4, classes 0..2)."""
    d = tmp_path_factory.mktemp("beam_data")
    rng = np.random.default_rng(5)
    np.savez(d / "data.npz", features=rng.normal(size=(90, 4)).astype(np.float32),
             labels=rng.integers(0, 3, 90))
    return d / "data.npz"


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (a != a and b != b)
    if isinstance(a, ErrorSummary) and isinstance(b, ErrorSummary):
        # Worst rows compare by rank: which of several tied rows make the list is arbitrary
        # in-process too (a partition of each chunk).
        rank = [(r.mismatched, r.max_abs_diff) for r in a.worst_rows]
        return rank == [(r.mismatched, r.max_abs_diff) for r in b.worst_rows] and all(
            _close(getattr(a, f.name), getattr(b, f.name))
            for f in dataclasses.fields(a) if f.name != "worst_rows")
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_same_verdict(beam: ComparisonResult, inproc: ComparisonResult) -> None:
    """Every field equal, except: the golden path (a sharded directory beside a file), and
    floats that are sums over rows (a mean error, a metric), which Beam adds range by range
    and numpy over the whole array: equal up to the last bits, never in a verdict."""
    assert beam.passed == inproc.passed
    for f in dataclasses.fields(ComparisonResult):
        if f.name in ("golden", "outputs", "metrics"):
            continue
        assert getattr(beam, f.name) == getattr(inproc, f.name), f.name
    assert len(beam.outputs) == len(inproc.outputs)
    for b, i in zip(beam.outputs, inproc.outputs, strict=True):
        for f in dataclasses.fields(b):
            assert _close(getattr(b, f.name), getattr(i, f.name)), (b.name, f.name)
    assert len(beam.metrics) == len(inproc.metrics)
    for bm, im in zip(beam.metrics, inproc.metrics, strict=True):
        for f in dataclasses.fields(bm):
            assert _close(getattr(bm, f.name), getattr(im, f.name)), (bm.name, f.name)


def _goldens(model: Path, data: Path, tmp: Path, flags: list[str]) -> tuple[Path, Path]:
    """The same recording twice: sharded through the Beam driver, one file in-process."""
    labels = f"{data}:labels"
    sharded = record_beam(model, tmp / "g.h5.d", RecordOptions(
        inputs=data, labels=labels, batch_size=8, latency=False), shards=4,
        beam_args=flags).golden
    single = record(model, tmp / "g.h5", inputs=data, labels=labels, batch_size=8,
                    latency=False).golden
    return sharded, single


def _check_recorded(sharded: Path, single: Path) -> None:
    a, b = read_golden(sharded), read_golden(single)
    for name, sg in b.signatures.items():
        got = a.signatures[name]
        for out, arr in sg.outputs.items():
            # Same model, same batches, same process kind: the very same outputs.
            assert np.array_equal(got.outputs[out], arr), out
        assert got.output_attrs == sg.output_attrs
        assert got.metrics.keys() == sg.metrics.keys()
        for out, om in sg.metrics.items():
            assert got.metrics[out].task == om.task
            assert got.metrics[out].values.keys() == om.values.keys()
            for m, v in om.values.items():
                assert _close(got.metrics[out].values[m].value, v.value), (out, m)


# --- without Beam: the drivers and the per-range work ---------------------------------------


def test_local_record_writes_the_golden_in_process_record_writes(
        local: None, dense_model: Path, data: Path, tmp_path: Path) -> None:
    sharded, single = _goldens(dense_model, data, tmp_path, [])
    assert verify_golden(sharded)[0] == 4 * 4  # 4 shards x (input, 2 outputs, labels)
    _check_recorded(sharded, single)


@pytest.mark.parametrize("candidate", ["dense_model", "dense_changed"])
def test_local_compare_verdict_equals_in_process(
        local: None, request: pytest.FixtureRequest, candidate: str, dense_model: Path,
        data: Path, tmp_path: Path) -> None:
    sharded, single = _goldens(dense_model, data, tmp_path, [])
    model = request.getfixturevalue(candidate)
    inproc = compare(model, single, latency=False)
    assert inproc.passed == (candidate == "dense_model")
    assert inproc.metrics and any(m.kind == "task" for m in inproc.metrics)
    assert_same_verdict(compare_beam(model, sharded, NO_LATENCY), inproc)
    # A single-file golden split into row ranges gives the same verdict too.
    assert_same_verdict(compare_beam(model, single, NO_LATENCY, ranges=5), inproc)


def test_local_compare_of_every_model_kind(local: None, tmp_path: Path) -> None:
    from tests.fixtures import kinds

    export = tmp_path / "keras_export"
    models = {"keras": kinds.build_keras(tmp_path / "m.keras", export),
              "tf1": kinds.save_tf1(tmp_path / "tf1")}
    models["tflite"] = kinds.convert_tflite(export, tmp_path / "m.tflite")
    for kind, model in models.items():
        golden = record(model, tmp_path / f"{kind}.h5", num_samples=30, batch_size=4,
                        latency=False).golden
        assert_same_verdict(compare_beam(model, golden, NO_LATENCY, ranges=3),
                            compare(model, golden, latency=False))


def test_local_renames_and_precision_changes_as_in_process(local: None, tmp_path: Path
                                                            ) -> None:
    """Converter-renamed outputs (matched alone, or by --map) and a mixed-precision
    candidate (diffed in the wider dtype, with and without consent) judged as in-process."""
    from tests.fixtures import wild

    one = wild.save_dense_named_y(tmp_path / "y")
    two = wild.save_dense_named_y(tmp_path / "yz", two_outputs=True)
    cf = wild.convert_concrete_function_without_signature(tmp_path / "cf.tflite")
    cf2 = wild.convert_concrete_function_without_signature(tmp_path / "cf2.tflite",
                                                           two_outputs=True)
    f32, mixed = wild.build_mixed_precision_pair(tmp_path / "f32", tmp_path / "mixed")
    allow = tmp_path / "allow.toml"
    allow.write_text("[outputs.output_0]\nallow_dtype_change = true\n")
    cases: list[tuple[Path, Path, dict[str, str], Path | None]] = [
        (one, cf, {}, None), (two, cf2, {}, None),
        (two, cf2, {"y": "output_0", "z": "output_1"}, None),
        (f32, mixed, {}, None), (f32, mixed, {}, allow)]
    for i, (ref, cand, rename, config) in enumerate(cases):
        golden = record(ref, tmp_path / f"g{i}.h5", num_samples=20, batch_size=8,
                        latency=False).golden
        inproc = compare(cand, golden, latency=False, rename=rename, config=config)
        assert_same_verdict(compare_beam(cand, golden, CompareOptions(
            latency=False, rename=rename, config=config), ranges=3), inproc)
    # The cases cover what they name: a forgiven lone rename, an unmatched pair, a mapping,
    # a precision change refused with numbers and one accepted.
    assert "allowed; compared in float32" in inproc.outputs[0].message


def test_local_every_signature(local: None, two_sig_model: Path, tmp_path: Path) -> None:
    """--signature all: outputs named "sig/out" for the config, one shard set for both."""
    from tests.fixtures.models import save_two_signatures

    sharded = record_beam(two_sig_model, tmp_path / "g.h5.d", RecordOptions(
        signature="all", num_samples=24, batch_size=8, latency=False), shards=3).golden
    single = record(two_sig_model, tmp_path / "g.h5", signature="all", num_samples=24,
                    batch_size=8, latency=False).golden
    _check_recorded(sharded, single)
    moved = save_two_signatures(tmp_path / "moved", offset=0.01)
    config = tmp_path / "c.toml"
    config.write_text('[outputs."embed/embedding"]\natol = 0.1\n')
    for model in (two_sig_model, moved):
        inproc = compare(model, single, latency=False, config=config)
        options = CompareOptions(latency=False, config=config)
        assert_same_verdict(compare_beam(model, sharded, options), inproc)
    assert {d.name: d.status for d in inproc.outputs}["embedding"] == "ok"  # the config's


def test_local_latency_is_skipped_with_a_note(local: None, dense_model: Path,
                                              tmp_path: Path) -> None:
    golden = record(dense_model, tmp_path / "g.h5", num_samples=16, batch_size=8,
                    latency=False).golden
    result = compare_beam(dense_model, golden)
    assert result.latency == () and any("single-machine" in w for w in result.warnings)


def test_local_worker_error_is_one_user_error(local: None, dense_model: Path,
                                              tmp_path: Path) -> None:
    from snapshot_tool.errors import SnapshotToolError
    from snapshot_tool.golden import sharded as sh

    golden = record_beam(dense_model, tmp_path / "g.h5.d", RecordOptions(
        num_samples=32, batch_size=8, latency=False), shards=2).golden
    # Damage a shard after the manifest was written: the worker that reads it refuses it.
    shard = golden / sh.shard_name(1, 2)
    data = bytearray(shard.read_bytes())
    data[-64] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(SnapshotToolError, match="does not match the digest"):
        compare_beam(dense_model, golden, NO_LATENCY)


def test_local_scalar_inputs_are_refused_before_any_worker(local: None, tmp_path: Path
                                                           ) -> None:
    from snapshot_tool.errors import SnapshotToolError
    from tests.fixtures import wild

    model = wild.save_tf1_keep_prob(tmp_path / "keep_prob")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.ones((8, 4), np.float32), keep_prob=np.float32(1.0))
    # Shards store and readers join row ranges; a scalar setting has none (yet).
    with pytest.raises(SnapshotToolError, match=r"--runner beam does not take scalar "
                                                r"\(rank-0\) inputs yet.*'keep_prob'"):
        record_beam(model, tmp_path / "g.h5.d", RecordOptions(inputs=data, latency=False))
    assert not (tmp_path / "g.h5.d").exists()
    golden = record(model, tmp_path / "g.h5", inputs=data, latency=False).golden
    with pytest.raises(SnapshotToolError, match="in-process"):
        compare_beam(model, golden, NO_LATENCY)


def test_local_candidate_output_changing_shape_between_batches(local: None, tmp_path: Path
                                                                ) -> None:
    from tests.fixtures import wild

    data = tmp_path / "x.npz"
    np.savez(data, x=wild.HITS_X)
    golden = record(wild.save_hits(tmp_path / "m"), tmp_path / "g.h5", inputs=data,
                    batch_size=4, latency=False).golden
    candidate = wild.save_hits(tmp_path / "c", threshold=0.15)
    inproc = compare(candidate, golden, latency=False)
    hits = next(d for d in inproc.outputs if d.name == "hits")
    assert hits.status == "shape_changed" and "(2, 2) then (1, 2)" in hits.message
    # One range of both batches: its worker sees the change as in-process does.
    assert_same_verdict(compare_beam(candidate, golden, NO_LATENCY, ranges=1), inproc)
    # Ranges of one batch each see one shape apiece, which the merge finds changed.
    split = compare_beam(candidate, golden, NO_LATENCY, ranges=2)
    assert not split.passed
    assert next(d for d in split.outputs if d.name == "hits").status == "shape_changed"


def test_cli_runner_errors(cli: Any, dense_model: Path, tmp_path: Path) -> None:
    res = cli("record", dense_model, "--golden", tmp_path / "g.h5", "--runner", "spark")
    assert res.code == 2 and "expected one of in-process, beam" in res.stderr
    res = cli("record", dense_model, "--golden", tmp_path / "g.h5", "--beam-arg", "a=b")
    assert res.code == 2 and "--beam-arg needs --runner beam" in res.stderr
    if not HAS_BEAM:
        res = cli("compare", dense_model, "--golden", tmp_path / "g.h5", "--runner", "beam")
        # The package of that name on PyPI is not this project: the hint installs Beam itself.
        assert res.code == 2 and "pip install 'apache-beam>=2.77'" in res.stderr
        assert "snapshot-tool[beam]" not in res.stderr
    assert not (tmp_path / "g.h5").exists()


# --- on Beam's DirectRunner ----------------------------------------------------------------


def test_beam_smoke_through_the_cli(cli: Any, dense_model: Path, dense_changed: Path,
                                    tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    golden = tmp_path / "g.h5.d"
    res = cli("record", dense_model, "--golden", golden, "--runner", "beam", "--shards", "3",
              "--num-samples", "40", "--batch-size", "8")
    assert res.code == 0, res
    assert "latency not measured" in res.stderr
    assert cli("verify", golden).code == 0
    shown = json.loads(cli("show", golden, "--json").stdout)
    assert len(shown["shards"]) == 3
    assert cli("compare", dense_model, "--golden", golden, "--runner", "beam").code == 0
    report = tmp_path / "r.json"
    res = cli("compare", dense_changed, "--golden", golden, "--runner", "beam",
              "--report-json", report)
    assert res.code == 1, res
    assert "no obtained golden was written" in res.stdout + res.stderr
    # The in-process compare reads the sharded golden as one golden, with the same verdict.
    assert cli("compare", dense_changed, "--golden", golden, "--no-latency").code == 1


@pytest.mark.slow
def test_beam_two_workers_verdict_equals_in_process(dense_model: Path, dense_changed: Path,
                                                    data: Path, tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    sharded, single = _goldens(dense_model, data, tmp_path, TWO_WORKERS)
    _check_recorded(sharded, single)
    for model in (dense_model, dense_changed):
        assert_same_verdict(compare_beam(model, sharded, NO_LATENCY,
                                         beam_args=TWO_WORKERS),
                            compare(model, single, latency=False))
