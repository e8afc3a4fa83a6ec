"""record and compare through the real CLI on every kind of model a user has: TF1 SavedModels
(tag sets, reference variables, assets, tf.Example signatures fed from TFRecords), every
dtype, a signature without inputs, Keras .keras files and TFLite conversions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.fixtures import kinds


def _report(cli, *args: object) -> tuple[int, dict]:
    """Run compare with --report-json and return the exit code and the parsed report."""
    out = Path(str(args[2])).with_suffix(".report.json")
    res = cli("compare", *args, "--no-latency", "--report-json", out)
    assert res.code in (0, 1), res
    return res.code, json.loads(out.read_text())


def _outputs(doc: dict) -> dict[str, dict]:
    return {o["name"]: o for o in doc["outputs"]}


@pytest.fixture(scope="module")
def kinds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kinds")


@pytest.fixture(scope="module")
def tf1_model(kinds_dir: Path) -> Path:
    return kinds.save_tf1(kinds_dir / "tf1")


@pytest.fixture(scope="module")
def tf1_scaled(kinds_dir: Path) -> Path:
    return kinds.save_tf1(kinds_dir / "tf1_scaled", scale=1.01)


@pytest.fixture(scope="module")
def keras_models(kinds_dir: Path) -> dict[str, Path]:
    """The same Keras model as a .keras file, as its model.export() and as TFLite, plus a
    .keras candidate with one bias nudged."""
    export = kinds_dir / "keras_export"
    keras_file = kinds.build_keras(kinds_dir / "model.keras", export)
    nudged = kinds.build_keras(kinds_dir / "nudged.keras", nudge=0.01)
    tflite = kinds.convert_tflite(export, kinds_dir / "model.tflite")
    return {"export": export, "keras": keras_file, "nudged": nudged, "tflite": tflite}


# --- TF1 SavedModels ----------------------------------------------------------------------


def test_tf1_predict_signature_record_and_compare(cli, tf1_model: Path, tf1_scaled: Path,
                                                  tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    rec = cli("record", tf1_model, "--golden", golden, "--no-latency",
              "--num-samples", "12", "--batch-size", "5")
    assert rec.code == 0, rec
    with h5py.File(golden) as f:
        assert f.attrs["model_kind"] == "saved_model_tf1"
        x = f["inputs/x"][()]
        # TF's and numpy's matmul kernels may add the products in different orders (TF's
        # split varies with threads): equal up to float32 rounding, not bit for bit.
        np.testing.assert_allclose(f["outputs/y"][()], kinds.tf1_expected_y(x),
                                   rtol=1e-6, atol=1e-6)
        # label comes from a vocabulary table initialized from the export's asset file.
        labels = {bytes(v) for v in f["outputs/label"][()]}
        assert labels <= {w.encode() for w in kinds.TF1_VOCAB} and labels
    same, doc = _report(cli, tf1_model, "--golden", golden)
    assert same == 0 and doc["passed"], doc
    moved, doc = _report(cli, tf1_scaled, "--golden", golden)
    assert moved == 1
    assert _outputs(doc)["y"]["status"] == "mismatch"


def test_tf1_tag_set_chooses_the_meta_graph(cli, tf1_model: Path, tmp_path: Path) -> None:
    serve, gpu = tmp_path / "serve.h5", tmp_path / "gpu.h5"
    assert cli("record", tf1_model, "--golden", serve, "--no-latency",
               "--num-samples", "6").code == 0
    res = cli("record", tf1_model, "--golden", gpu, "--no-latency", "--num-samples", "6",
              "--tag", "serve,gpu")
    assert res.code == 0, res
    with h5py.File(serve) as fs, h5py.File(gpu) as fg:
        # Two MetaGraphs, two runs: atol too, for values near zero where rtol alone is tight.
        np.testing.assert_allclose(fg["outputs/y"][()], 2 * fs["outputs/y"][()],
                                   rtol=1e-6, atol=1e-6)
    # Tag order does not matter (a tag set); the other graph is a different model.
    assert cli("compare", tf1_model, "--golden", gpu, "--no-latency",
               "--tag", "gpu, serve").code == 0
    # Without --tag, compare uses the tag set the golden was recorded with...
    assert cli("compare", tf1_model, "--golden", gpu, "--no-latency").code == 0
    # ...and naming the other graph compares a different model.
    assert cli("compare", tf1_model, "--golden", gpu, "--no-latency", "--tag", "serve").code == 1
    bad = cli("inspect", tf1_model, "--tag", "train")
    assert bad.code == 2 and "'serve,gpu'" in bad.stderr and "--tag" in bad.stderr, bad


def test_tf1_regress_and_classify_from_tfrecord(cli, tf1_model: Path, tf1_scaled: Path,
                                                tmp_path: Path) -> None:
    x = np.random.default_rng(3).normal(size=(9, 3)).astype(np.float32)
    records = kinds.example_bytes(x)
    tfrecord = kinds.write_tfrecord(tmp_path / "examples.tfrecord", records)
    golden = tmp_path / "regress.h5"
    res = cli("record", tf1_model, "--golden", golden, "--signature", "regress",
              "--inputs", tfrecord, "--batch-size", "4", "--no-latency")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert f["inputs/inputs"].attrs["dtype"] == "string"
        assert [bytes(r) for r in f["inputs/inputs"][()]] == records  # the exact bytes fed
        # TF vs numpy matmul (different kernels); atol for outputs that cancel to near zero.
        np.testing.assert_allclose(f["outputs/outputs"][()], kinds.tf1_expected_y(x),
                                   rtol=1e-6, atol=1e-6)
        assert f.attrs["num_samples"] == 9
    same, _ = _report(cli, tf1_model, "--golden", golden)
    assert same == 0
    moved, doc = _report(cli, tf1_scaled, "--golden", golden)
    assert moved == 1 and _outputs(doc)["outputs"]["status"] == "mismatch"

    classify = tmp_path / "classify.h5"
    res = cli("record", tf1_model, "--golden", classify, "--signature", "classify",
              "--inputs", tfrecord, "--no-latency")
    assert res.code == 0, res
    with h5py.File(classify) as f:
        assert f["outputs/classes"].shape == (9, 2)
        assert bytes(f["outputs/classes"][0, 1]) == b"pos"
    assert cli("compare", tf1_model, "--golden", classify, "--no-latency").code == 0


def test_example_signature_without_tfrecord_asks_for_one(cli, tf1_model: Path,
                                                         tmp_path: Path) -> None:
    res = cli("record", tf1_model, "--golden", tmp_path / "g.h5", "--signature", "regress",
              "--no-latency")
    assert res.code == 2, res
    assert "--inputs FILE.tfrecord" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "g.h5").exists()


def test_tfrecord_for_a_numeric_signature_is_refused(cli, tf1_model: Path,
                                                     tmp_path: Path) -> None:
    tfrecord = kinds.write_tfrecord(tmp_path / "e.tfrecord",
                                    kinds.example_bytes(np.zeros((2, 3))))
    res = cli("record", tf1_model, "--golden", tmp_path / "g.h5", "--inputs", tfrecord,
              "--no-latency")
    assert res.code == 2, res
    assert "TFRecord" in res.stderr and "x: float32[?, 3]" in res.stderr


def test_inspect_tf1_shows_kind_and_methods(cli, tf1_model: Path) -> None:
    res = cli("inspect", tf1_model, "--json")
    assert res.code == 0, res
    doc = json.loads(res.stdout)
    assert doc["kind"] == "saved_model_tf1"
    methods = {k: s["method_name"] for k, s in doc["signatures"].items()}
    assert methods == {"serving_default": "predict", "regress": "regress",
                       "classify": "classify"}


# --- dtypes and shapes ----------------------------------------------------------------------


def test_every_dtype_round_trips(cli, kinds_dir: Path, tmp_path: Path) -> None:
    model = kinds.save_all_dtypes(tmp_path / "dtypes")
    shifted = kinds.save_all_dtypes(tmp_path / "dtypes_shifted", shift=1)
    golden = tmp_path / "g.h5"
    # 10 samples in batches of 4: batches of 4, 4 and 2 rows.
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "10",
              "--batch-size", "4")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        for d in kinds.ALL_DTYPES:
            assert f[f"inputs/in_{d}"].attrs["dtype"] == d
            assert f[f"outputs/out_{d}"].attrs["dtype"] == d
            assert f[f"outputs/out_{d}"].shape == (10, 5)
        assert f["outputs/out_bfloat16"].dtype == np.uint16  # raw bfloat16 bits
        assert bytes(f["outputs/out_string"][0, 0]).endswith(b"!")
        # No batch dimension: one entry per batch, stacked.
        assert f["outputs/total"].shape == (3,)
        assert f["outputs/column_mean"].shape == (3, 5)
        # TF's reduce_sum and numpy's pairwise sum add in different orders: a tolerance,
        # with atol for sums that cancel to near zero.
        np.testing.assert_allclose(f["outputs/total"][0], f["inputs/in_float32"][:4].sum(),
                                   rtol=1e-5, atol=1e-5)
    same, doc = _report(cli, model, "--golden", golden)
    assert same == 0, doc
    assert all(o["status"] == "ok" for o in doc["outputs"])
    moved, doc = _report(cli, shifted, "--golden", golden)
    assert moved == 1
    assert {o["name"] for o in doc["outputs"] if not o["passed"]} == {"out_int32"}


def test_signature_without_inputs_runs_once(cli, tmp_path: Path) -> None:
    model = kinds.save_counter(tmp_path / "counter")
    golden = tmp_path / "g.h5"
    res = cli("record", model, "--golden", golden, "--no-latency")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert len(f["inputs"]) == 0
        np.testing.assert_array_equal(f["outputs/count"][()], [42])
        np.testing.assert_array_equal(f["outputs/table"][()], [[0.5, 1.5, 2.5]])
    assert cli("verify", golden).code == 0
    same, doc = _report(cli, model, "--golden", golden)
    assert same == 0, doc
    moved, doc = _report(cli, kinds.save_counter(tmp_path / "counter2", start=7),
                         "--golden", golden)
    assert moved == 1 and _outputs(doc)["count"]["status"] == "mismatch"


def test_serve_signature_is_the_default_without_serving_default(cli, tmp_path: Path) -> None:
    model = kinds.save_serve_only(tmp_path / "serve_only")
    golden = tmp_path / "g.h5"
    assert cli("record", model, "--golden", golden, "--no-latency").code == 0
    with h5py.File(golden) as f:
        assert f.attrs["signature"] == "serve"
    assert cli("compare", model, "--golden", golden, "--no-latency").code == 0


# --- TFLite and Keras candidates -----------------------------------------------------------


def test_tflite_candidate_reports_its_real_error(cli, keras_models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", keras_models["export"], "--golden", golden, "--no-latency",
               "--num-samples", "40", "--batch-size", "16").code == 0
    cfg = tmp_path / "snapshot.toml"
    cfg.write_text("[defaults]\natol = 1e-4\nrtol = 1e-4\n")
    code, doc = _report(cli, keras_models["tflite"], "--golden", golden, "--config", cfg)
    out = _outputs(doc)["output_0"]
    print(f"TFLite vs SavedModel golden: max_abs_diff={out['max_abs_diff']!r} "
          f"max_rel_diff={out['max_rel_diff']!r}")
    assert out["max_abs_diff"] is not None and math.isfinite(out["max_abs_diff"])
    assert out["max_abs_diff"] < 1e-4
    assert code == 0 and out["status"] == "ok", doc


def test_tflite_as_recorded_model(cli, keras_models: dict[str, Path], tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    res = cli("record", keras_models["tflite"], "--golden", golden, "--no-latency",
              "--num-samples", "10", "--batch-size", "3")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert f.attrs["model_kind"] == "tflite"
        assert f["outputs/output_0"].shape == (10, 3)
    code, doc = _report(cli, keras_models["tflite"], "--golden", golden)
    # Exactly equal on purpose: the same file, runtime and batch sizes (compare replays the
    # recorded ones) on the same machine compute both sides with the same code.
    assert code == 0 and _outputs(doc)["output_0"]["max_abs_diff"] == 0.0


def test_tflite_without_signature_matches_by_position(cli, tmp_path: Path) -> None:
    model = kinds.convert_tflite_without_signature(tmp_path / "nosig.tflite")
    golden = tmp_path / "g.h5"
    # The flatbuffer's input is fixed at [2, 4]; a last batch of 1 row needs a resize.
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "5",
              "--batch-size", "2")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        # TFLite may fuse a * 3 + 1 into one rounding, numpy rounds twice: a tolerance,
        # with atol for results near zero.
        np.testing.assert_allclose(f["outputs/output_0"][()], f["inputs/a"][()] * 3 + 1,
                                   rtol=1e-6, atol=1e-6)
    assert cli("compare", model, "--golden", golden, "--no-latency").code == 0


def test_tflite_without_signature_names_scoped_inputs_as_a_golden_can_store(
        cli, tmp_path: Path) -> None:
    """A session/frozen-graph conversion keeps the graph's scopes in tensor names
    (``inputs/a``), which a golden cannot store as a name ('/' is HDF5's separator): the
    tool names the input as it names a frozen graph's (``inputs.a``) instead of refusing."""
    model = kinds.convert_tflite_without_signature(tmp_path / "scoped.tflite", "inputs")
    golden = tmp_path / "g.h5"
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "4",
              "--batch-size", "2")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert list(f["inputs"]) == ["inputs.a"]
    assert cli("compare", model, "--golden", golden, "--no-latency").code == 0


def test_keras_file_against_its_export_and_back(cli, keras_models: dict[str, Path],
                                                tmp_path: Path) -> None:
    from_export = tmp_path / "export.h5"
    assert cli("record", keras_models["export"], "--golden", from_export, "--no-latency",
               "--num-samples", "20").code == 0
    code, doc = _report(cli, keras_models["keras"], "--golden", from_export)
    assert code == 0, doc
    print(f".keras vs export: max_abs_diff={_outputs(doc)['output_0']['max_abs_diff']!r}")
    nudged, doc = _report(cli, keras_models["nudged"], "--golden", from_export)
    assert nudged == 1 and _outputs(doc)["output_0"]["status"] == "mismatch"

    from_keras = tmp_path / "keras.h5"
    res = cli("record", keras_models["keras"], "--golden", from_keras, "--no-latency",
              "--num-samples", "20")
    assert res.code == 0, res
    with h5py.File(from_keras) as f:
        assert f.attrs["model_kind"] == "keras"
        assert set(f["inputs"]) == {"features"} and set(f["outputs"]) == {"output_0"}
    assert cli("compare", keras_models["export"], "--golden", from_keras,
               "--no-latency").code == 0


def test_unloadable_model_files_are_one_line_errors(cli, tmp_path: Path) -> None:
    for name, fragment in (("junk.tflite", "not a TFLite flatbuffer"),
                           ("junk.keras", "cannot load Keras model"),
                           ("notes.txt", "a Keras .h5 model or a frozen graph .pb")):
        (tmp_path / name).write_bytes(b"\x00 not a model at all")
        res = cli("inspect", tmp_path / name)
        assert res.code == 2, res
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
        assert name in lines[0] and fragment in lines[0], lines[0]


def test_other_runtime_against_stored_timings_is_advisory(cli, keras_models: dict[str, Path],
                                                          tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", keras_models["export"], "--golden", golden, "--num-samples", "8",
               "--latency-batch-sizes", "1").code == 0
    for kind in ("keras", "tflite"):
        res = cli("compare", keras_models[kind], "--golden", golden, "--config",
                  _loose(tmp_path), "--report-json", tmp_path / f"{kind}.json")
        doc = json.loads((tmp_path / f"{kind}.json").read_text())
        assert doc["latency"]["verdict"] == "advisory", doc["latency"]
        assert "different runtimes" in doc["latency"]["batches"][0]["note"]
        assert res.code == 0, res


def _loose(tmp_path: Path) -> Path:
    cfg = tmp_path / "loose.toml"
    cfg.write_text("[defaults]\natol = 1e-4\nrtol = 1e-4\n")
    return cfg
