"""Scalar (rank-0) signature inputs, a TF1 ``keep_prob`` or a temperature, through the real
CLI: given as 0-d arrays in the inputs file, fed unchanged with every batch, stored in the
golden and replayed by every compare path."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from snapshot_tool.compare import CompareOptions, _compare_whole
from snapshot_tool.compare_stream import compare_streaming
from tests.fixtures import models, wild
from tests.integration.test_errors import assert_usage_error

ROWS = 40  # 3 batches of 16, the last one short


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scalar_models")
    return {"keep_prob": wild.save_tf1_keep_prob(d / "keep_prob"),
            "keep_prob_changed": wild.save_tf1_keep_prob(d / "keep_prob_changed", scale=1.5),
            "tempered": models.save_tempered(d / "tempered"),
            "tempered_changed": models.save_tempered(d / "tempered_changed", scale=1.5)}


def _x(rows: int = ROWS) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(rows, 4)).astype(np.float32)


def test_tf1_keep_prob_round_trip(cli, built: dict[str, Path], tmp_path: Path) -> None:
    data, golden = tmp_path / "data.npz", tmp_path / "g.h5"
    np.savez(data, x=_x(), keep_prob=np.float32(1.0))
    res = cli("record", built["keep_prob"], "--golden", golden, "--inputs", data,
              "--no-latency")
    assert res.code == 0, res
    # Plain h5py: the scalar is a scalar dataset beside the batched input, with its checksum.
    with h5py.File(golden, "r") as f:
        kp, x = f["inputs/keep_prob"], f["inputs/x"]
        assert kp.shape == () and kp.dtype == np.float32 and kp[()] == np.float32(1.0)
        assert len(kp.attrs["sha256"]) == 64 and x.shape == (ROWS, 4)
        # TensorFlow's matmul against numpy's: equal to rounding, not bitwise.
        np.testing.assert_allclose(f["outputs/y"][()], wild.keep_prob_expected_y(_x()),
                                   rtol=1e-5, atol=1e-6)
    assert cli("verify", golden).code == 0
    assert cli("compare", built["keep_prob"], "--golden", golden, "--no-latency").code == 0
    res = cli("compare", built["keep_prob_changed"], "--golden", golden, "--no-latency",
              "--no-save-obtained")
    assert res.code == 1, res
    shown = json.loads(cli("show", golden, "--json").stdout)
    inputs = {t["name"]: t for t in shown["signatures"]["serving_default"]["inputs"]}
    assert inputs["keep_prob"]["shape"] == [] and inputs["keep_prob"]["value"] == 1.0
    assert "value" not in inputs["x"]
    assert "() = 1.0" in cli("show", golden).stdout


def test_scalar_dataset_in_an_h5_inputs_file(cli, built: dict[str, Path], tmp_path: Path
                                             ) -> None:
    np.savez(tmp_path / "data.npz", x=_x(), keep_prob=np.float32(1.0))
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["x"] = _x()
        f["keep_prob"] = np.float64(1.0)  # cast within its kind, as any input is
    for name in ("data.npz", "data.h5"):
        assert cli("record", built["keep_prob"], "--golden", tmp_path / f"{name}.golden.h5",
                   "--inputs", tmp_path / name, "--no-latency").code == 0
    with h5py.File(tmp_path / "data.npz.golden.h5") as a, \
            h5py.File(tmp_path / "data.h5.golden.h5") as b:
        # The same stored inputs: the same arrays after the same cast, hashed alike.
        for k in ("x", "keep_prob"):
            assert a["inputs"][k].attrs["sha256"] == b["inputs"][k].attrs["sha256"], k


@pytest.mark.parametrize(("arrays", "fragments"), [
    ({"x": _x()}, ("no array for input 'keep_prob'", "keep_prob=np.float32(1.0)")),
    ({"x": np.float32(1.0), "keep_prob": np.float32(1.0)},
     ("'x' has a sample dimension", "is a scalar (0-d)", "one row per sample")),
    ({"x": _x(), "keep_prob": np.ones(ROWS, np.float32)},
     ("'keep_prob' takes a scalar", "has shape (40,)", "0-d array")),
])
def test_inputs_that_do_not_fit_are_usage_errors(cli, built: dict[str, Path], tmp_path: Path,
                                                 arrays: dict[str, np.ndarray],
                                                 fragments: tuple[str, ...]) -> None:
    np.savez(tmp_path / "data.npz", **arrays)
    res = cli("record", built["keep_prob"], "--golden", tmp_path / "g.h5", "--inputs",
              tmp_path / "data.npz", "--no-latency")
    assert_usage_error(res, *fragments)
    assert not (tmp_path / "g.h5").exists()


def test_synthesis_refuses_a_scalar_and_shows_the_inputs_file(cli, built: dict[str, Path],
                                                              tmp_path: Path) -> None:
    res = cli("record", built["tempered"], "--golden", tmp_path / "g.h5", "--no-latency")
    assert_usage_error(res, "'temperature'", "cannot be synthesized", "--set temperature=1.0",
                       "np.savez('inputs.npz', x=x, temperature=np.float32(1.0))",
                       "--inputs inputs.npz")
    assert not (tmp_path / "g.h5").exists()
    text = cli("inspect", built["tempered"]).stdout
    assert "temperature: float32[]" in text and "0-d array in --inputs" in text


def test_compare_replays_the_goldens_own_scalar(cli, built: dict[str, Path], tmp_path: Path
                                                ) -> None:
    goldens = {}
    for t in (0.5, 2.0):
        data = tmp_path / f"t{t}.npz"
        np.savez(data, x=_x(), temperature=np.float32(t))
        goldens[t] = tmp_path / f"t{t}.h5"
        assert cli("record", built["tempered"], "--golden", goldens[t], "--inputs", data,
                   "--no-latency").code == 0
        # The inputs file changes after record: compare replays the golden, never the file.
        np.savez(data, x=_x(), temperature=np.float32(7.0))
    with h5py.File(goldens[0.5]) as a, h5py.File(goldens[2.0]) as b:
        assert a["inputs/temperature"][()] == 0.5 and b["inputs/temperature"][()] == 2.0
        # The temperature matters: the two goldens' outputs are far apart.
        assert np.abs(a["outputs/probs"][()] - b["outputs/probs"][()]).max() > 0.05
    for golden in goldens.values():
        # Each passes only if it is fed the temperature it was recorded with.
        assert cli("compare", built["tempered"], "--golden", golden, "--no-latency").code == 0
        assert cli("compare", built["tempered_changed"], "--golden", golden, "--no-latency",
                   "--no-save-obtained").code == 1


@pytest.mark.parametrize("candidate", ["tempered", "tempered_changed"])
def test_streamed_compare_equals_in_memory(built: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, candidate: str
                                           ) -> None:
    import snapshot_tool.compare_stream as cs
    from snapshot_tool import api

    data, golden = tmp_path / "data.npz", tmp_path / "g.h5"
    np.savez(data, x=_x(200), temperature=np.float32(2.0))
    api.record(built["tempered"], golden, inputs=data, batch_size=16, latency=False)
    # Blocks of two batches: the scalar is read once and fed to every batch of every block.
    monkeypatch.setattr(cs, "row_block", lambda tensors, batch: 2 * batch)
    options = CompareOptions(latency=False, error_summaries=False)
    streamed = compare_streaming(built[candidate], golden, options, lambda *a: None)
    whole = _compare_whole(built[candidate], golden, options, lambda *a: None)
    assert streamed.passed == whole.passed == (candidate == "tempered")
    (s,), (w,) = streamed.outputs, whole.outputs
    assert (s.status, s.mismatch_count, s.worst_index) == (w.status, w.mismatch_count,
                                                           w.worst_index)
    # Means are sums in another order on the two paths: equal to rounding.
    assert s.max_abs_diff == pytest.approx(w.max_abs_diff, rel=1e-9, abs=1e-12)
    assert s.mean_abs_diff == pytest.approx(w.mean_abs_diff, rel=1e-9, abs=1e-12)


def test_latency_slices_only_the_batched_inputs(cli, built: dict[str, Path], tmp_path: Path
                                                ) -> None:
    data, golden = tmp_path / "data.npz", tmp_path / "g.h5"
    np.savez(data, x=_x(), keep_prob=np.float32(1.0))
    res = cli("record", built["keep_prob"], "--golden", golden, "--inputs", data,
              "--latency-batch-sizes", "4")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert list(f["latency"]) == ["batch_4"]
    res = cli("compare", built["keep_prob"], "--golden", golden, "--no-self-check",
              "--report-json", tmp_path / "r.json")
    assert res.code in (0, 1), res  # a busy shared machine may time it slower
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [c["batch_size"] for c in doc["latency"]["batches"]] == [4]
    assert all(o["passed"] for o in doc["outputs"])


def test_localize_feeds_the_scalar_with_its_batch(cli, built: dict[str, Path], tmp_path: Path
                                                  ) -> None:
    data, golden = tmp_path / "data.npz", tmp_path / "g.h5"
    np.savez(data, x=_x(), temperature=np.float32(2.0))
    assert cli("record", built["tempered"], "--golden", golden, "--inputs", data,
               "--no-latency").code == 0
    res = cli("compare", built["tempered_changed"], "--golden", golden, "--no-latency",
              "--no-save-obtained", "--localize")
    assert res.code == 1, res
    assert "MatMul" in res.stdout and "Traceback" not in res.stdout + res.stderr


def test_an_edited_scalar_is_refused(cli, built: dict[str, Path], tmp_path: Path) -> None:
    data, golden = tmp_path / "data.npz", tmp_path / "g.h5"
    np.savez(data, x=_x(), keep_prob=np.float32(1.0))
    assert cli("record", built["keep_prob"], "--golden", golden, "--inputs", data,
               "--no-latency").code == 0
    with h5py.File(golden, "r+") as f:
        f["inputs/keep_prob"][()] = np.float32(0.5)  # its sha256 still says 1.0
    for args in (("verify", golden), ("compare", built["keep_prob"], "--golden", golden,
                                      "--no-latency")):
        assert_usage_error(cli(*args), "keep_prob")


def test_show_json_of_a_non_finite_scalar_is_strict_json(cli, built: dict[str, Path],
                                                         tmp_path: Path) -> None:
    # JSON has no NaN: a strict parser (jq, JavaScript) must be able to read show --json.
    data, golden = tmp_path / "data.npz", tmp_path / "g.h5"
    np.savez(data, x=_x(), temperature=np.float32(np.nan))
    assert cli("record", built["tempered"], "--golden", golden, "--inputs", data,
               "--no-latency").code == 0

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    shown = json.loads(cli("show", golden, "--json").stdout, parse_constant=refuse)
    inputs = {t["name"]: t for t in shown["signatures"]["serving_default"]["inputs"]}
    assert inputs["temperature"]["value"] is None
    assert "() = nan" in cli("show", golden).stdout


def test_set_gives_the_scalar_with_synthesized_inputs(cli, built: dict[str, Path],
                                                      tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    res = cli("record", built["tempered"], "--golden", golden, "--set", "temperature=2.0",
              "--num-samples", "24", "--no-latency")
    assert res.code == 0, res
    with h5py.File(golden, "r") as f:
        t = f["inputs/temperature"]
        assert t.shape == () and t.dtype == np.float32 and t[()] == np.float32(2.0)
        assert f["inputs/x"].shape[0] == 24
        assert f.attrs["inputs_source"] == "synthesized(seed=0) with temperature=2.0"
    assert cli("verify", golden).code == 0
    assert cli("compare", built["tempered"], "--golden", golden, "--no-latency").code == 0
    res = cli("compare", built["tempered_changed"], "--golden", golden, "--no-latency",
              "--no-save-obtained")
    assert res.code == 1, res


def test_set_beside_an_inputs_file_equals_the_scalar_in_the_file(
        cli, built: dict[str, Path], tmp_path: Path) -> None:
    rows_only, with_scalar = tmp_path / "rows.npz", tmp_path / "both.npz"
    np.savez(rows_only, x=_x())
    np.savez(with_scalar, x=_x(), keep_prob=np.float32(1.0))
    by_set, by_file = tmp_path / "set.h5", tmp_path / "file.h5"
    assert cli("record", built["keep_prob"], "--golden", by_set, "--inputs", rows_only,
               "--set", "keep_prob=1", "--no-latency").code == 0
    assert cli("record", built["keep_prob"], "--golden", by_file, "--inputs", with_scalar,
               "--no-latency").code == 0
    with h5py.File(by_set, "r") as a, h5py.File(by_file, "r") as b:
        for name in ("inputs/keep_prob", "inputs/x"):
            # The same arrays fed through the same code: the stored bytes and checksums agree.
            assert a[name].attrs["sha256"] == b[name].attrs["sha256"], name
    # Each golden judges the model the other recorded, outputs included.
    assert cli("compare", built["keep_prob"], "--golden", by_set, "--no-latency").code == 0


@pytest.mark.parametrize(("args", "fragments"), [
    (("--set", "keep_prob"), ("expected NAME=VALUE",)),
    (("--set", "keep_prb=1.0"), ("no input 'keep_prb'", "scalar inputs: keep_prob")),
    (("--set", "x=1.0"), ("'x'", "sample dimension", "scalar (rank-0) inputs only")),
    (("--set", "keep_prob=high"), ("'high' is not a value", "float32")),
    (("--set", "keep_prob=1e39"), ("overflow float32",)),
    (("--set", "keep_prob=1", "--set", "keep_prob=0.5"), ("twice",)),
])
def test_set_mistakes_are_usage_errors(cli, built: dict[str, Path], tmp_path: Path,
                                       args: tuple[str, ...], fragments: tuple[str, ...]
                                       ) -> None:
    res = cli("record", built["keep_prob"], "--golden", tmp_path / "g.h5", *args,
              "--no-latency")
    assert_usage_error(res, *fragments)
    assert not (tmp_path / "g.h5").exists()


def test_set_and_the_inputs_file_must_not_both_give_a_scalar(cli, built: dict[str, Path],
                                                             tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", x=_x(), keep_prob=np.float32(1.0))
    res = cli("record", built["keep_prob"], "--golden", tmp_path / "g.h5", "--inputs",
              tmp_path / "data.npz", "--set", "keep_prob=0.5", "--no-latency")
    assert_usage_error(res, "'keep_prob'", "both by --set and in inputs file")


def test_api_settings_are_the_cli_set(built: dict[str, Path], tmp_path: Path) -> None:
    from snapshot_tool.api import record

    result = record(built["tempered"], tmp_path / "g.h5", num_samples=8, latency=False,
                    settings={"temperature": np.float32(2.0)})
    assert result.num_samples == 8
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert f["inputs/temperature"][()] == np.float32(2.0)
