"""Models other tools wrote, through the real CLI: old TF Serving exports without shapes, GPU
exports on a CPU runner, TFLite conversions without a SignatureDef, Flex-op TFLite files,
mixed-precision candidates, and string inputs stored in .npz (issue 10)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from tests.fixtures import kinds, wild
from tests.integration.test_errors import assert_usage_error


def _report(cli, *args: object) -> tuple[int, dict, str]:
    """compare with --report-json; returns the exit code, the report and stdout."""
    out = Path(str(args[2])).with_suffix(".report.json")
    res = cli("compare", *args, "--no-latency", "--report-json", out)
    assert res.code in (0, 1), res
    return res.code, json.loads(out.read_text()), res.stdout


def _outputs(doc: dict) -> dict[str, dict]:
    return {o["name"]: o for o in doc["outputs"]}


@pytest.fixture(scope="module")
def wild_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wild")


# --- item 2: TF1 signature_defs without tensor_shape ----------------------------------------


@pytest.fixture(scope="module")
def shapeless(wild_dir: Path) -> dict[str, Path]:
    return {"tf1": wild.save_tf1_without_shapes(wild_dir / "tf1_noshape"),
            "twin": wild.save_tf2_twin_of_tf1_without_shapes(wild_dir / "tf2_twin")}


def test_absent_tensor_shape_is_taken_from_the_graph(cli, shapeless: dict[str, Path]) -> None:
    res = cli("inspect", shapeless["tf1"], "--json")
    assert res.code == 0, res
    sig = json.loads(res.stdout)["signatures"]["serving_default"]
    assert sig["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 1],
                              "shape_source": "graph"}]
    assert sig["outputs"][0]["shape"] == [None, 1]
    # The shape-less placeholder: the graph does not know either, so the rank is unknown
    # (not 0, which is what an empty TensorShapeProto would mean).
    raw = json.loads(res.stdout)["signatures"]["raw"]
    assert raw["inputs"] == [{"name": "z", "dtype": "float32", "shape": None,
                              "shape_source": "unknown"}]
    text = cli("inspect", shapeless["tf1"])
    assert "x: float32[?, 1]" in text.stdout and "float32[]" not in text.stdout
    assert "no tensor_shape" in text.stdout and "graph" in text.stdout, text.stdout


def test_golden_from_a_re_export_gates_the_shapeless_export(cli, shapeless: dict[str, Path],
                                                            tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", shapeless["twin"], "--golden", golden, "--no-latency",
               "--num-samples", "64").code == 0
    with h5py.File(golden) as f:
        assert f["inputs/x"].shape == (64, 1)
    code, doc, _ = _report(cli, shapeless["tf1"], "--golden", golden)
    assert code == 0, doc
    # And the old export records its own golden from synthesized [?, 1] inputs.
    own = tmp_path / "own.h5"
    res = cli("record", shapeless["tf1"], "--golden", own, "--no-latency",
              "--num-samples", "10", "--batch-size", "4")
    assert res.code == 0, res
    with h5py.File(own) as f:
        x = f["inputs/x"][()]
        assert x.shape == (10, 1)
        # TF's multiply-add vs numpy's: a tolerance, not bitwise.
        np.testing.assert_allclose(f["outputs/y"][()], x * wild.SCALE + wild.SHIFT,
                                   rtol=1e-6, atol=1e-6)


def test_unknown_rank_input_records_from_a_file(cli, shapeless: dict[str, Path],
                                                tmp_path: Path) -> None:
    z = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.savez(tmp_path / "z.npz", z=z)
    golden = tmp_path / "raw.h5"
    res = cli("record", shapeless["tf1"], "--golden", golden, "--signature", "raw",
              "--inputs", tmp_path / "z.npz", "--batch-size", "3", "--no-latency")
    assert res.code == 0, res
    code, doc, _ = _report(cli, shapeless["tf1"], "--golden", golden)
    assert code == 0, doc


# --- item 3: a TF1 graph pinned to /device:GPU:0, run on a CPU ------------------------------


@pytest.fixture(scope="module")
def gpu_pinned(wild_dir: Path) -> Path:
    return wild.save_tf1_gpu_pinned(wild_dir / "tf1_gpu")


def test_gpu_pinned_export_runs_on_cpu(cli, gpu_pinned: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("this machine has a GPU: nothing to relax")
    res = cli("inspect", gpu_pinned)
    assert res.code == 0, res
    assert "x: float32[?, 3]" in res.stdout
    assert "/device:GPU:0" in res.stdout and "allow_soft_placement" in res.stdout, res.stdout
    doc = json.loads(cli("inspect", gpu_pinned, "--json").stdout)
    assert any("GPU:0" in n for n in doc["notes"]), doc

    golden = tmp_path / "g.h5"
    rec = cli("record", gpu_pinned, "--golden", golden, "--no-latency", "--num-samples", "8")
    assert rec.code == 0, rec
    with h5py.File(golden) as f:
        # TF's matmul vs numpy's: a tolerance, not bitwise.
        np.testing.assert_allclose(f["outputs/y"][()], wild.tf1_gpu_expected_y(
            f["inputs/x"][()]), rtol=1e-6, atol=1e-5)
    code, doc, _ = _report(cli, gpu_pinned, "--golden", golden)
    assert code == 0, doc
    assert any("allow_soft_placement" in w for w in doc["warnings"]), doc["warnings"]


# --- item 4: TFLite conversions that rename outputs -----------------------------------------


@pytest.fixture(scope="module")
def renamed(wild_dir: Path) -> dict[str, Path]:
    return {
        "one": wild.save_dense_named_y(wild_dir / "dense_y"),
        "two": wild.save_dense_named_y(wild_dir / "dense_yz", two_outputs=True),
        "cf": wild.convert_concrete_function_without_signature(wild_dir / "cf.tflite"),
        "cf2": wild.convert_concrete_function_without_signature(wild_dir / "cf2.tflite",
                                                                two_outputs=True),
    } | ({"keras": wild.convert_keras_model(wild_dir / "keras.tflite")}
         if wild.keras_converter_works() else {})


@pytest.fixture()
def golden_y(cli, renamed: dict[str, Path], tmp_path: Path) -> Path:
    golden = tmp_path / "dense_y.h5"
    assert cli("record", renamed["one"], "--golden", golden, "--no-latency",
               "--num-samples", "20", "--batch-size", "8").code == 0
    return golden


@pytest.mark.parametrize("kind", ["cf", "keras"])
def test_lone_output_renamed_by_the_converter_is_forgiven(cli, renamed: dict[str, Path],
                                                           golden_y: Path, kind: str) -> None:
    if kind not in renamed:
        pytest.skip("this TensorFlow's TFLite converter cannot convert a Keras 3 model")
    code, doc, _ = _report(cli, renamed[kind], "--golden", golden_y)
    assert code == 0, doc
    (out,) = doc["outputs"]
    assert out["name"] == "y" and out["status"] == "ok"
    # TFLite's kernels vs TensorFlow's: within the float32 default tolerance, not bitwise.
    assert out["max_abs_diff"] < 1e-5
    assert any("'output_0'" in w and "'y'" in w for w in doc["warnings"]), doc["warnings"]


def test_several_renamed_outputs_need_a_mapping(cli, renamed: dict[str, Path],
                                                tmp_path: Path) -> None:
    golden = tmp_path / "yz.h5"
    assert cli("record", renamed["two"], "--golden", golden, "--no-latency",
               "--num-samples", "12").code == 0
    code, doc, stdout = _report(cli, renamed["cf2"], "--golden", golden)
    assert code == 1
    assert {o["status"] for o in doc["outputs"]} == {"missing", "extra"}
    assert "--map" in stdout and "[rename]" in stdout, stdout

    code, doc, _ = _report(cli, renamed["cf2"], "--golden", golden,
                           "--map", "y=output_0", "--map", "z=output_1")
    assert code == 0, doc
    assert {o["name"]: o["status"] for o in doc["outputs"]} == {"y": "ok", "z": "ok"}

    cfg = tmp_path / "snapshot.toml"
    cfg.write_text('[rename]\ny = "output_0"\nz = "output_1"\n')
    code, doc, _ = _report(cli, renamed["cf2"], "--golden", golden, "--config", cfg)
    assert code == 0, doc
    # A mapping the wrong way round is caught: z's values are not y's.
    code, doc, _ = _report(cli, renamed["cf2"], "--golden", golden,
                           "--map", "y=output_1", "--map", "z=output_0")
    assert code == 1 and {o["status"] for o in doc["outputs"]} == {"mismatch"}


def _save_difference(path: Path, first: str, second: str) -> Path:
    """``d = first - second`` over two float32[?, 3] inputs with the given names."""
    import tensorflow as tf

    class Difference(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name=first),
                                      tf.TensorSpec([None, 3], tf.float32, name=second)])
        def serve(self, a: object, b: object) -> dict[str, object]:
            return {"d": a - b}

    m = Difference()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return path


def test_renamed_inputs_are_mapped_too(cli, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", _save_difference(tmp_path / "ab", "a", "b"), "--golden", golden,
               "--no-latency", "--num-samples", "6").code == 0
    renamed = _save_difference(tmp_path / "pq", "p", "q")
    assert_usage_error(cli("compare", renamed, "--golden", golden, "--no-latency"),
                       "interface changed")
    code, doc, _ = _report(cli, renamed, "--golden", golden, "--map", "a=p", "--map", "b=q")
    assert code == 0, doc
    # The mapping decides which recorded input feeds which: swapped, d changes sign.
    code, doc, _ = _report(cli, renamed, "--golden", golden, "--map", "a=q", "--map", "b=p")
    assert code == 1 and _outputs(doc)["d"]["status"] == "mismatch"


def test_bad_mappings_are_usage_errors(cli, renamed: dict[str, Path], golden_y: Path,
                                       tmp_path: Path) -> None:
    assert_usage_error(cli("compare", renamed["cf"], "--golden", golden_y, "--no-latency",
                           "--map", "y"), "--map", "OLD=NEW")
    assert_usage_error(cli("compare", renamed["cf"], "--golden", golden_y, "--no-latency",
                           "--map", "nope=output_0"), "'nope'", "y")
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[rename]\ny = 3\n")
    assert_usage_error(cli("compare", renamed["cf"], "--golden", golden_y, "--no-latency",
                           "--config", cfg), "rename")
    # A config may serve several goldens: a [rename] entry for another one only warns.
    cfg.write_text('[rename]\nlogits = "output_0"\n')
    code, doc, _ = _report(cli, renamed["cf"], "--golden", golden_y, "--config", cfg)
    assert code == 0 and any("'logits'" in w for w in doc["warnings"]), doc["warnings"]


# --- item 5: TFLite with TensorFlow (Flex) ops ---------------------------------------------


@pytest.fixture(scope="module")
def flex(wild_dir: Path) -> dict[str, Path]:
    saved = wild.save_parse_example(wild_dir / "parse")
    return {"saved": saved, "tflite": wild.convert_flex(saved, wild_dir / "flex.tflite")}


def _runs_flex(interpreter_class: Any, model: Path) -> bool:
    try:
        interpreter_class(model_path=str(model)).allocate_tensors()
    except (RuntimeError, ValueError):
        return False
    return True


def _tf_lite_runs_flex(model: Path) -> bool:
    """Whether this TensorFlow's own interpreter links the Flex delegate (pip packages up to
    2.19 do; 2.20 and later ship without it)."""
    import tensorflow as tf

    return _runs_flex(tf.lite.Interpreter, model)


def _litert_runs_flex(model: Path) -> bool:
    """Whether LiteRT itself runs Flex ops: ai-edge-litert 1.0 does when TensorFlow is
    loaded in the process (it picks up TensorFlow's Flex delegate); later releases do not."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return False
    return _runs_flex(Interpreter, model)


def test_flex_tflite_runs_with_tf_lite_or_says_why_not(cli, flex: dict[str, Path],
                                                       tmp_path: Path) -> None:
    x = np.random.default_rng(5).normal(size=(6, 3)).astype(np.float32)
    records = kinds.write_tfrecord(tmp_path / "ex.tfrecord", kinds.example_bytes(x))
    golden = tmp_path / "g.h5"
    assert cli("record", flex["saved"], "--golden", golden, "--inputs", records,
               "--no-latency").code == 0
    if _litert_runs_flex(flex["tflite"]):
        # The first interpreter runs it: nothing to fall back from, nothing to say.
        code, doc, _ = _report(cli, flex["tflite"], "--golden", golden)
        assert code == 0, doc
        assert not any("Flex" in w for w in doc["warnings"]), doc["warnings"]
    elif _tf_lite_runs_flex(flex["tflite"]):
        code, doc, _ = _report(cli, flex["tflite"], "--golden", golden)
        assert code == 0, doc
        assert any("tf.lite.Interpreter" in w and "FlexParseExampleV2" in w
                   for w in doc["warnings"]), doc["warnings"]
    else:
        res = cli("compare", flex["tflite"], "--golden", golden, "--no-latency")
        assert_usage_error(res, "FlexParseExampleV2", "LiteRT", "tf.lite.Interpreter",
                           "Flex delegate")
        assert_usage_error(cli("inspect", flex["tflite"]), "FlexParseExampleV2")


# --- item 6: a mixed_float16 candidate ------------------------------------------------------


@pytest.fixture(scope="module")
def mixed(wild_dir: Path) -> dict[str, Path]:
    f32, f16 = wild.build_mixed_precision_pair(wild_dir / "keras_f32", wild_dir / "keras_mixed")
    return {"float32": f32, "mixed": f16}


def test_mixed_precision_candidate_shows_numbers_and_needs_consent(
        cli, mixed: dict[str, Path], tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", mixed["float32"], "--golden", golden, "--no-latency",
               "--num-samples", "32").code == 0
    code, doc, stdout = _report(cli, mixed["mixed"], "--golden", golden)
    assert code == 1
    out = _outputs(doc)["output_0"]
    assert out["status"] == "dtype_changed"
    assert (out["golden_dtype"], out["candidate_dtype"]) == ("float32", "float16")
    # Compared in float32: how far float16 compute moved the values, and what would pass.
    assert 0 < out["max_abs_diff"] < 0.05 and out["required_atol"] is not None
    assert "allow_dtype_change" in stdout, stdout

    consent = tmp_path / "consent.toml"
    consent.write_text('[outputs.output_0]\nallow_dtype_change = true\n'
                       f'atol = {out["required_atol"] * 1.01 + 1e-7}\n')
    code, doc, _ = _report(cli, mixed["mixed"], "--golden", golden, "--config", consent)
    assert code == 0, doc
    out = _outputs(doc)["output_0"]
    assert out["status"] == "ok" and out["candidate_dtype"] == "float16"
    # Consent to the dtype is not consent to any values: a real change still fails.
    tight = tmp_path / "tight.toml"
    tight.write_text('[outputs.output_0]\nallow_dtype_change = true\natol = 0\nrtol = 0\n')
    code, doc, _ = _report(cli, mixed["mixed"], "--golden", golden, "--config", tight)
    assert code == 1 and _outputs(doc)["output_0"]["status"] == "mismatch"


# --- item 7: strings in .npz ----------------------------------------------------------------


def test_object_string_arrays_in_npz_say_how_to_store_strings(cli, flex: dict[str, Path],
                                                               tmp_path: Path) -> None:
    records = kinds.example_bytes(np.ones((4, 3), np.float32))
    np.savez(tmp_path / "objects.npz", examples=np.array(records, dtype=object))
    res = cli("record", flex["saved"], "--golden", tmp_path / "g.h5", "--no-latency",
              "--inputs", tmp_path / "objects.npz")
    assert_usage_error(res, "objects.npz", "'examples'", "object", "dtype='U'", ".h5",
                       ".tfrecord")
    # The advice works: serialized protos (binary, NUL bytes inside) record from a TFRecord.
    res = cli("record", flex["saved"], "--golden", tmp_path / "g.h5", "--no-latency",
              "--inputs", kinds.write_tfrecord(tmp_path / "ex.tfrecord", records))
    assert res.code == 0, res


# --- Keras files that cannot be loaded safely, inputs a model refuses ------------------------


@pytest.mark.parametrize("builder, fragments", [
    (wild.save_keras_lambda, ("Lambda", "safe mode on", "model.export(DIR)")),
    (wild.save_keras_custom_layer, ("'Doubler'",
                                    "register_keras_serializable", "model.export(DIR)")),
])
def test_keras_files_needing_python_code_say_to_export(cli, builder: Any,
                                                       fragments: tuple[str, ...],
                                                       tmp_path: Path) -> None:
    model = builder(tmp_path / "model.keras")
    for command in ("inspect", "record"):
        args = [command, model] + (["--golden", tmp_path / "g.h5"] if command == "record" else [])
        assert_usage_error(cli(*args), "cannot load Keras model", *fragments)
    assert not (tmp_path / "g.h5").exists()


def test_input_a_model_rejects_shows_the_reason_not_tf_noise(cli, tmp_path: Path) -> None:
    model = wild.export_embedding(tmp_path / "embed", vocabulary=50)
    ok = tmp_path / "ok.npz"
    np.savez(ok, tokens=np.arange(14, dtype=np.int32).reshape(2, 7))
    assert cli("record", model, "--golden", tmp_path / "g.h5", "--no-latency",
               "--inputs", ok).code == 0
    bad = tmp_path / "bad.npz"
    np.savez(bad, tokens=np.full((2, 7), 150, np.int32))
    res = cli("record", model, "--golden", tmp_path / "g2.h5", "--no-latency", "--inputs", bad)
    # The reason is TF's own words for the failing gather, not its "<stack traces ...>" line.
    assert_usage_error(res, "rejected its inputs", "150 is not in [0, 50)")
    assert "stack traces" not in res.stderr


# --- frozen graphs (a GraphDef .pb) ----------------------------------------------------------


def test_frozen_tf1_graph_gets_a_signature_of_placeholders_and_sinks(cli, tmp_path: Path) -> None:
    model = wild.freeze_tf1_graph(tmp_path / "frozen.pb")
    res = cli("inspect", model, "--json")
    assert res.code == 0, res
    doc = json.loads(res.stdout)
    assert doc["kind"] == "frozen_graph"
    sig = doc["signatures"]["serving_default"]
    names = {io: sorted(t["name"] for t in sig[io]) for io in ("inputs", "outputs")}
    # The training switch keeps its default; scopes are written with "." ("/" qualifies a
    # signature's outputs in a golden); split's two outputs keep their index.
    assert names == {"inputs": ["x"], "outputs": ["head.probs", "parts:0", "parts:1"]}
    assert any("is_training" in note for note in doc["notes"])

    golden = tmp_path / "g.h5"
    assert cli("record", model, "--golden", golden, "--no-latency").code == 0
    with h5py.File(golden) as f:
        x = f["inputs/x"][()]
        probs = f["outputs/head.probs"][()]
    # A softmax of a 4x3 matmul: each row sums to one (up to float32 rounding).
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert probs.shape == (x.shape[0], 3)
    code, doc, _ = _report(cli, model, "--golden", golden)
    assert code == 0 and doc["passed"] is True

    changed = wild.freeze_tf1_graph(tmp_path / "changed.pb", scale=1.5)
    code, doc, _ = _report(cli, changed, "--golden", golden)
    assert code == 1
    assert _outputs(doc)["head.probs"]["status"] == "mismatch"
    assert _outputs(doc)["parts:0"]["status"] == "ok"
    # --localize traces both frozen graphs and finds the changed weight.
    res = cli("compare", changed, "--golden", golden, "--no-latency", "--localize")
    assert res.code == 1, res
    assert "first diverging tensor: head/MatMul" in res.stdout
    assert "changed parameters: head/w" in res.stdout


def test_keras_model_frozen_by_a_converter_records_and_compares(cli, tmp_path: Path) -> None:
    model = wild.freeze_keras_model(tmp_path / "keras_frozen.pb")
    golden = tmp_path / "g.h5"
    res = cli("record", model, "--golden", golden, "--no-latency")
    assert res.code == 0, res
    code, doc, _ = _report(cli, model, "--golden", golden)
    assert code == 0 and [o["name"] for o in doc["outputs"]] == ["Identity"]


def test_files_that_are_not_frozen_graphs_are_usage_errors(cli, shapeless: dict[str, Path],
                                                           tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pb"
    garbage.write_bytes(b"\x07" * 300)
    assert_usage_error(cli("inspect", garbage), "cannot load frozen graph", "GraphDef")
    pb = shapeless["twin"] / "saved_model.pb"
    assert_usage_error(cli("inspect", pb), "graph file of a SavedModel", str(shapeless["twin"]))


# --- goldens that hold -inf, inf and NaN themselves (log(0), x/0) ----------------------------


def test_infinities_in_the_golden_keep_their_sign_in_every_report(cli, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    model = wild.save_log_of_zero(tmp_path / "model")
    assert cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "16").code == 0
    with h5py.File(golden) as f:
        log = f["outputs/log"][()]
        assert np.isneginf(log).any() and np.isfinite(log).any()
    # The same model: -inf == -inf and NaN == NaN (nan_equal), so it passes.
    assert cli("compare", model, "--golden", golden, "--no-latency").code == 0
    flipped = wild.save_log_of_zero(tmp_path / "flipped", flip=True)
    html = tmp_path / "report.html"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cli("compare", flipped, "--golden", golden, "--no-latency", "--html", html,
                  "--no-save-obtained")
    assert res.code == 1, res
    # The HTML report draws a golden with infinities without matplotlib complaining about
    # its axis limits (a warning the user would see on stderr).
    plots = [f"{w.filename}:{w.lineno} {w.message}" for w in caught if "report" in w.filename]
    assert plots == [], plots
    worst = [line for line in res.stdout.splitlines() if line.startswith("│ log")]
    # The worst element went from -inf to inf: the report must not print "inf → inf".
    assert worst and "-inf → inf" in worst[0], res.stdout
    assert html.exists()


# --- full-integer TFLite (int8 / uint8 inputs and outputs) against a float golden -------------


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_full_integer_tflite_against_a_float_golden_says_what_to_do(cli, io_type: str,
                                                                     tmp_path: Path) -> None:
    export = wild.export_small_classifier(tmp_path / "float")
    golden = tmp_path / "g.h5"
    assert cli("record", export, "--golden", golden, "--no-latency", "--num-samples", "8").code == 0
    quantized = wild.convert_full_integer(export, tmp_path / f"{io_type}.tflite", io_type)
    res = cli("compare", quantized, "--golden", golden, "--no-latency")
    # Casting the recorded reals (all in [0, 1)) to int8 would feed zeros: the error must
    # name the quantization instead of suggesting arr.astype(...).
    assert_usage_error(res, f"quantized {io_type}", "scale", "zero point",
                       "round(x / scale) + zero_point")
    assert "astype" not in res.stderr


@pytest.mark.parametrize("io_type", ["int8", "uint8"])
def test_full_integer_tflite_records_inputs_over_its_calibrated_range(
        cli, io_type: str, tmp_path: Path) -> None:
    """A golden recorded from the quantized model itself: its synthesized integers, read as
    the reals they stand for, cover the [0, 1) the converter calibrated on (in [0, 10) they
    were a sliver of it: [0, 0.035] for uint8), and the same seed gives the same inputs."""
    import h5py

    from snapshot_tool.models.load import load_model

    export = wild.export_small_classifier(tmp_path / "float")
    quantized = wild.convert_full_integer(export, tmp_path / f"{io_type}.tflite", io_type)
    with load_model(quantized) as model:
        (spec,) = next(iter(model.signatures.values())).inputs
    assert spec.quantization is not None
    scale, zero_point = spec.quantization
    recorded = []
    for name in ("a.h5", "b.h5"):
        assert cli("record", quantized, "--golden", tmp_path / name, "--no-latency",
                   "--num-samples", "64", "--seed", "4").code == 0
        with h5py.File(tmp_path / name) as f:
            recorded.append(f["inputs"][spec.name][()])
    np.testing.assert_array_equal(recorded[0], recorded[1])
    q = recorded[0]
    assert q.dtype == np.dtype(io_type)
    reals = scale * (q.astype(np.float64) - zero_point)
    # The calibrated range is about [0, 1]; uniform draws over the dtype reach both ends.
    assert reals.min() < 0.1 and reals.max() > 0.9, (reals.min(), reals.max())


# --- Keras models with several unnamed inputs --------------------------------------------------


def test_generated_input_names_error_says_how_to_map_them(cli, tmp_path: Path) -> None:
    export, keras_file = wild.save_keras_unnamed_inputs(tmp_path / "export",
                                                        tmp_path / "model.keras")
    golden = tmp_path / "g.h5"
    assert cli("record", export, "--golden", golden, "--no-latency", "--num-samples", "8").code == 0

    def inputs(model: Path) -> list[str]:
        doc = json.loads(cli("inspect", model, "--json").stdout)
        # Sorted by width, which both names describe: (4,) then (3,) in the model.
        ins = doc["signatures"]["serving_default"]["inputs"]
        return [i["name"] for i in sorted(ins, key=lambda i: -i["shape"][1])]

    golden_names, keras_names = inputs(export), inputs(keras_file)
    assert set(golden_names).isdisjoint(keras_names)  # generated names differ
    res = cli("compare", keras_file, "--golden", golden, "--no-latency")
    assert_usage_error(res, "interface changed", "--map", "[rename]")
    maps = [f"--map={g}={k}" for g, k in zip(golden_names, keras_names, strict=True)]
    res = cli("compare", keras_file, "--golden", golden, "--no-latency", *maps)
    assert res.code == 0, res


def test_accept_shows_an_infinity_that_became_nan_as_a_change(cli, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    model = wild.save_log_of_zero(tmp_path / "model")
    assert cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "16").code == 0
    nan = wild.save_log_of_zero(tmp_path / "nan", nan=True)
    assert cli("compare", nan, "--golden", golden, "--no-latency").code == 1
    res = cli("accept", tmp_path / "g.obtained.h5", "--dry-run")
    assert res.code == 0, res
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip()
            for line in res.stdout.splitlines() if line.startswith("│")}
    # -inf -> NaN has no finite size: the largest difference is not the 0 of the finite ones.
    assert rows["log"] == "inf", res.stdout


def test_calibrate_accepts_candidates_that_move_infinities(cli, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    model = wild.save_log_of_zero(tmp_path / "model")
    assert cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "16").code == 0
    flipped = wild.save_log_of_zero(tmp_path / "flipped", flip=True)
    toml = tmp_path / "snapshot.toml"
    res = cli("calibrate", golden, flipped, "--output", toml)
    # No finite atol accepts -inf -> inf: the elements that moved an infinity are a share
    # of mismatches to allow, and the finite ones still get their atol/rtol.
    assert res.code == 0, res
    assert "max_mismatch_fraction" in toml.read_text()
    res = cli("compare", flipped, "--golden", golden, "--no-latency", "--config", toml)
    assert res.code == 0, res


# --- legacy Keras HDF5 models (model.save("model.h5")) ----------------------------------------


def test_legacy_keras_h5_model_records_and_gates_its_keras_twin(cli, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(3)
    x = keras.Input(shape=(4,), name="x")
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.Dense(8, activation="relu")(x)))
    model.compile("adam", "mse")  # as a training script leaves it; a gate never compiles
    legacy = tmp_path / "model.h5"
    model.save(legacy)  # Keras's legacy HDF5 format
    model.save(tmp_path / "model.keras")
    res = cli("inspect", legacy, "--json")
    assert res.code == 0, res
    doc = json.loads(res.stdout)
    assert doc["kind"] == "keras", doc
    assert [i["name"] for i in doc["signatures"]["serving_default"]["inputs"]] == ["x"]
    golden = tmp_path / "g.h5"
    assert cli("record", legacy, "--golden", golden, "--no-latency", "--num-samples", "16"
               ).code == 0
    assert cli("verify", golden).code == 0
    # The same weights through the .keras loader: the same graph, so the default float32
    # tolerance holds (not asserted bitwise: another file format, another load path).
    code, doc, _ = _report(cli, tmp_path / "model.keras", "--golden", golden)
    assert code == 0, doc
    # A damaged copy fails.
    model.layers[-1].kernel.assign(model.layers[-1].kernel + 0.5)
    model.save(tmp_path / "bad.h5")
    code, doc, _ = _report(cli, tmp_path / "bad.h5", "--golden", golden)
    assert code == 1 and _outputs(doc)["output_0"]["status"] == "mismatch", doc


def test_legacy_keras_h5_that_is_not_a_model_says_what_it_is(cli, tmp_path: Path) -> None:
    import keras

    x = keras.Input(shape=(3,), name="x")
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0)(x)).save(tmp_path / "lambda.h5")
    # Safe mode stays on for a legacy file too: its Lambda holds Python bytecode.
    assert_usage_error(cli("inspect", tmp_path / "lambda.h5"), "Lambda", "safe mode",
                       "model.export(DIR)")
    dense = keras.Model(x, keras.layers.Dense(2)(x))
    dense.save_weights(tmp_path / "model.weights.h5")  # weights only: no model to run
    for command in ("inspect", "record"):
        args = [command, tmp_path / "model.weights.h5"] + (
            ["--golden", tmp_path / "g.h5"] if command == "record" else [])
        assert_usage_error(cli(*args), "HDF5", "no model in it", "model.save")
    assert not (tmp_path / "g.h5").exists()


# --- composite tensors (RaggedTensor, SparseTensor) in a signature ----------------------------


@pytest.fixture(scope="module")
def composite(wild_dir: Path) -> dict[str, Path]:
    return {"outputs": wild.save_composite_outputs(wild_dir / "composite_out"),
            "inputs": wild.save_composite_inputs(wild_dir / "composite_in")}


def test_ragged_and_sparse_outputs_are_refused_saying_how_to_densify(
        cli, composite: dict[str, Path], tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    # Texts of different word counts make a ragged output truly ragged; synthesized strings
    # (no spaces) would give one token per row, which must be refused all the same.
    np.savez(tmp_path / "text.npz", text=np.array(["a b c", "hello world", "x", ""], "U"))
    for extra in (["--inputs", tmp_path / "text.npz"], []):
        res = cli("record", composite["outputs"], "--golden", golden, "--no-latency", *extra)
        assert_usage_error(res, "'tokens'", "RaggedTensor", ".to_tensor(")
    res = cli("record", composite["outputs"], "--golden", golden, "--no-latency",
              "--signature", "sparse")
    assert_usage_error(res, "'active'", "SparseTensor", "tf.sparse.to_dense")
    assert not golden.exists()
    # inspect still describes the model, and says which outputs record would refuse.
    res = cli("inspect", composite["outputs"])
    assert res.code == 0, res
    assert "RaggedTensor" in res.stdout + res.stderr and "SparseTensor" in res.stdout + res.stderr


def test_ragged_and_sparse_inputs_are_refused_naming_their_components(
        cli, composite: dict[str, Path], tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    res = cli("record", composite["inputs"], "--golden", golden, "--no-latency")
    assert_usage_error(res, "RaggedTensor", "r, r_1 (values and row splits)")
    res = cli("record", composite["inputs"], "--golden", golden, "--no-latency",
              "--signature", "sparse")
    assert_usage_error(res, "SparseTensor", "s, s_1, s_2 (indices, values and dense shape)")
    assert not golden.exists()
    assert cli("inspect", composite["inputs"]).code == 0


# --- errors raised inside Keras layers, models saved without signatures ---------------------


def test_keras_layer_error_shows_its_reason_and_the_batch_to_use(cli, tmp_path: Path) -> None:
    model = wild.save_keras_stateful_rnn(tmp_path / "rnn.keras", batch=4)
    golden = tmp_path / "g.h5"
    # Not TensorFlow's "in user code:" header, but what the layer said.
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "8")
    assert_usage_error(res, "GRU", "stateful", "--batch-size 4")
    assert "in user code" not in res.stderr
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "8",
              "--batch-size", "4")
    assert res.code == 0, res


def test_module_saved_without_signatures_says_how_to_add_one(cli, tmp_path: Path) -> None:
    model = wild.save_module_without_signatures(tmp_path / "plain")
    res = cli("record", model, "--golden", tmp_path / "g.h5", "--no-latency")
    assert_usage_error(res, "no signatures", "signatures=")


# --- SavedModels copied without (all of) their variables -------------------------------------


@pytest.mark.parametrize("tf1", [False, True], ids=["tf2", "tf1"])
def test_saved_model_with_missing_or_cut_variables_says_so(cli, dense_model: Path,
                                                           shapeless: dict[str, Path],
                                                           tmp_path: Path, tf1: bool) -> None:
    import shutil

    source = shapeless["tf1"] if tf1 else dense_model
    missing, cut = tmp_path / "missing", tmp_path / "cut"
    for copy in (missing, cut):
        shutil.copytree(source, copy)
    shutil.rmtree(missing / "variables")
    for data in (cut / "variables").glob("variables.data-*"):
        data.write_bytes(data.read_bytes()[:2])  # an interrupted copy
    golden = tmp_path / "g.h5"
    assert_usage_error(cli("record", missing, "--golden", golden, "--no-latency"),
                       "variables are missing", "variables.index", "copy the whole directory")
    assert_usage_error(cli("record", cut, "--golden", golden, "--no-latency"),
                       "truncated or damaged", "copy the whole SavedModel directory")
    assert not golden.exists()


# --- signature keys an HDF5 path cannot hold ----------------------------------------------------


def test_output_named_with_a_slash_is_refused_not_stored_as_a_group(cli, tmp_path: Path) -> None:
    scoped = wild.save_slash_named_output(tmp_path / "scoped")
    golden = tmp_path / "g.h5"
    res = cli("record", scoped, "--golden", golden, "--no-latency", "--num-samples", "8")
    assert_usage_error(res, "'head/probs'", "cannot store", "'head.probs'")
    assert not golden.exists()
    # As a candidate it is judged (an extra output), but its obtained golden, which could
    # not be read back, is not written: a warning, and the verdict stays exit 1.
    plain = wild.save_slash_named_output(tmp_path / "plain", with_slash=False)
    assert cli("record", plain, "--golden", golden, "--no-latency", "--num-samples", "8"
               ).code == 0
    code, doc, _ = _report(cli, scoped, "--golden", golden)
    assert code == 1 and _outputs(doc)["head/probs"]["status"] == "extra"
    assert any("obtained golden not written" in w and "'head/probs'" in w
               for w in doc["warnings"]), doc["warnings"]
    assert not (tmp_path / "g.obtained.h5").exists()
    assert cli("verify", golden).code == 0


def test_model_calling_python_code_says_it_cannot_run_elsewhere(tmp_path: Path) -> None:
    import subprocess
    import sys

    model = wild.save_numpy_function(tmp_path / "pycode")
    # This process registered the callback when it built the model, so only another
    # process (the gate's) shows what a user sees.
    proc = subprocess.run([sys.executable, "-m", "snapshot_tool", "record", str(model),
                           "--golden", str(tmp_path / "g.h5"), "--no-latency",
                           "--num-samples", "4", "--allow-ops", "PyFunc"],
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "calls Python code" in lines[0], lines
    assert "tf.numpy_function" in lines[0] and "rejected its inputs" not in lines[0]
    assert not (tmp_path / "g.h5").exists()


def test_scalar_setting_in_a_tf1_signature_says_how_to_give_it(cli, tmp_path: Path) -> None:
    # Synthesis cannot guess a setting (keep_prob must be 1.0, not random): the error shows
    # the inputs file that records it (tests/integration/test_scalar_inputs.py has the rest).
    model = wild.save_tf1_keep_prob(tmp_path / "keep_prob")
    res = cli("record", model, "--golden", tmp_path / "g.h5", "--no-latency")
    assert_usage_error(res, "'keep_prob'", "scalar", "--inputs",
                       "np.savez('inputs.npz', x=x, keep_prob=np.float32(1.0))")


def test_empty_model_files_left_by_a_failed_conversion_say_so(cli, tmp_path: Path) -> None:
    # open(out, "wb").write(converter.convert()) opens the file before convert() raises.
    for name, fragments in (("model.tflite", ("empty (0 bytes)", "convert the model again")),
                            ("frozen.pb", ("no nodes", "the file is empty"))):
        (tmp_path / name).write_bytes(b"")
        assert_usage_error(cli("inspect", tmp_path / name), name, *fragments)


# --- outputs whose shape the inputs decide (tf.where, per-batch padding) -----------------------


def test_candidate_whose_hit_count_varies_by_batch_is_a_shape_change(cli, tmp_path: Path) -> None:
    # The golden's tf.where output has no batch dimension but the same number of hits in each
    # batch, so it is stored one entry per batch. A candidate with another threshold finds a
    # different number per batch: a regression of that output (exit 1), not an input error.
    inputs = tmp_path / "x.npz"
    np.savez(inputs, x=wild.HITS_X)
    golden = tmp_path / "g.h5"
    res = cli("record", wild.save_hits(tmp_path / "m"), "--golden", golden, "--no-latency",
              "--inputs", inputs, "--batch-size", "4")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert f["outputs/hits"].shape == (2, 2, 2)
    candidate = wild.save_hits(tmp_path / "c", threshold=0.15)
    for extra in ((), ("--save-obtained",)):  # streamed first, and in memory from the start
        code, doc, _ = _report(cli, candidate, "--golden", golden, *extra)
        hits = _outputs(doc)["hits"]
        assert code == 1 and hits["status"] == "shape_changed", hits
        assert "changes between batches" in hits["message"], hits["message"]
        assert "(2, 2) then (1, 2)" in hits["message"], hits["message"]
        assert _outputs(doc)["y"]["status"] == "ok"
        assert any("obtained golden not written" in w and "'hits'" in w
                   for w in doc["warnings"]), doc["warnings"]
    assert not (tmp_path / "g.obtained.h5").exists()


def test_candidate_padding_per_batch_against_a_fixed_padding_golden(cli, tmp_path: Path) -> None:
    inputs = tmp_path / "lengths.npz"
    np.savez(inputs, lengths=np.array([1, 2, 3, 4, 2, 2, 1, 1], np.int32))
    golden = tmp_path / "g.h5"
    per_batch = wild.save_padded_mask(tmp_path / "per_batch", per_batch=True)
    # A golden of a per-batch padded output needs one batch: the error says so.
    assert_usage_error(cli("record", per_batch, "--golden", golden, "--no-latency",
                           "--inputs", inputs, "--batch-size", "4"),
                       "'mask'", "per-sample shape", "--batch-size")
    assert cli("record", wild.save_padded_mask(tmp_path / "fixed"), "--golden", golden,
               "--no-latency", "--inputs", inputs, "--batch-size", "4").code == 0
    code, doc, _ = _report(cli, per_batch, "--golden", golden)
    mask = _outputs(doc)["mask"]
    assert code == 1 and mask["status"] == "shape_changed", mask
    assert "(4, 4) then (4, 2)" in mask["message"], mask["message"]


def test_time_major_output_with_a_short_last_batch_says_which_sizes_work(
        cli, tmp_path: Path) -> None:
    model = wild.save_time_major(tmp_path / "m")
    golden = tmp_path / "g.h5"
    # 10 rows in batches of 4: the last batch's states are (3, 2, 2), not (3, 4, 2).
    assert_usage_error(cli("record", model, "--golden", golden, "--no-latency",
                           "--num-samples", "10", "--batch-size", "4"),
                       "'states'", "dimension 1", "--num-samples that is a multiple of "
                       "--batch-size", "--batch-size equal to --num-samples")
    assert cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "12",
               "--batch-size", "4").code == 0
    with h5py.File(golden) as f:
        assert f["outputs/states"].shape == (3, 3, 4, 2)  # one entry per batch
    code, doc, _ = _report(cli, model, "--golden", golden)
    assert code == 0, doc


def test_synthesized_text_for_a_vocabulary_model_is_flagged(cli, tmp_path: Path) -> None:
    # Random letters are out-of-vocabulary for TextVectorization: nearly every row of the
    # golden is the same vector, so the record says to use real text.
    model = wild.export_text_classifier(tmp_path / "text")
    res = cli("record", model, "--golden", tmp_path / "g.h5", "--no-latency")
    assert res.code == 0, res
    assert "'sentence'" in res.stderr and "random letters" in res.stderr, res.stderr
    assert "--inputs" in res.stderr, res.stderr
    np.savez(tmp_path / "text.npz", sentence=np.array(["the cat sat", "a dog", "far away"]))
    res = cli("record", model, "--golden", tmp_path / "real.h5", "--no-latency",
              "--inputs", tmp_path / "text.npz")
    assert res.code == 0 and "random letters" not in res.stderr, res
    code, doc, _ = _report(cli, model, "--golden", tmp_path / "real.h5")
    assert code == 0, doc
    retrained = wild.export_text_classifier(tmp_path / "retrained", seed=12)
    code, doc, _ = _report(cli, retrained, "--golden", tmp_path / "real.h5")
    assert code == 1 and _outputs(doc)["output_0"]["status"] == "mismatch", doc


# --- signatures fixed to a batch of 1 -----------------------------------------------------------


def test_batch_one_scalar_output_keeps_its_batch_dimension_in_a_one_row_batch(
        cli, tmp_path: Path) -> None:
    """17 samples at batch 16: the last batch is one row. A per-row scalar output (no leading
    1) is stacked into rows there too, as in every other batch, and at --batch-size 1."""
    model = wild.save_fixed_batch_one(tmp_path / "m", with_sum=True)
    for batch in ("16", "1"):
        golden = tmp_path / f"g{batch}.h5"
        res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "17",
                  "--batch-size", batch)
        assert res.code == 0, res
        with h5py.File(golden) as f:
            x, s = f["inputs/x"][()], f["outputs/s"]
            assert s.shape == (17,) and s.attrs["batched"], dict(s.attrs)
            # TF's float32 sum against numpy's float64: a rounding apart.
            np.testing.assert_allclose(s[()], x.sum(axis=1), rtol=1e-5, atol=1e-6)
        assert cli("compare", model, "--golden", golden, "--no-latency").code == 0


def test_localize_traces_one_row_of_a_batch_one_model(cli, tmp_path: Path) -> None:
    model = wild.save_fixed_batch_one(tmp_path / "m")
    bad = wild.save_fixed_batch_one(tmp_path / "bad", shift=0.5)
    golden = tmp_path / "g.h5"
    assert cli("record", model, "--golden", golden, "--no-latency",
               "--num-samples", "20").code == 0
    res = cli("compare", bad, "--golden", golden, "--no-latency", "--localize",
              "--no-save-obtained")
    assert res.code == 1, res
    assert "Cannot feed" not in res.stdout and "not localized" not in res.stdout, res.stdout


def test_tf1_batch_one_graph_with_a_shapeless_setting(cli, tmp_path: Path) -> None:
    model = wild.save_tf1_fixed_batch_one_with_setting(tmp_path / "m")
    golden = tmp_path / "g.h5"
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "5",
              "--batch-size", "4", "--set", "scale=2.0")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        # TF's multiply against numpy's: one float32 rounding at most (a doubling is exact).
        np.testing.assert_allclose(f["outputs/y"][()], f["inputs/x"][()] * 2, rtol=1e-6)
        assert f["inputs/scale"].shape == ()
    assert cli("compare", model, "--golden", golden, "--no-latency").code == 0


def test_signature_fixed_to_batch_one_runs_row_by_row(cli, tmp_path: Path) -> None:
    model = wild.save_fixed_batch_one(tmp_path / "m")
    lite = kinds.convert_tflite(model, tmp_path / "m.tflite")
    bad = kinds.convert_tflite(wild.save_fixed_batch_one(tmp_path / "bad", shift=0.5),
                               tmp_path / "bad.tflite")
    golden = tmp_path / "g.h5"
    # The default batch size (16) against [1, 4]: each row is its own call.
    res = cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "20")
    assert res.code == 0, res
    assert "one row per call" in res.stderr, res.stderr
    with h5py.File(golden) as f:
        x, y = f["inputs/x"][()], f["outputs/y"][()]
    assert y.shape == (20, 4)
    # TF's matmul against numpy's in float64: a float32 rounding apart, not bitwise.
    np.testing.assert_allclose(y, wild.fixed_batch_one_expected_y(x), rtol=1e-5, atol=1e-6)
    config = tmp_path / "snapshot.toml"
    # TFLite's kernels against TF's: a few float32 ulps apart on these small products.
    config.write_text("[defaults]\natol = 1e-5\nrtol = 1e-4\n")
    code, doc, _ = _report(cli, lite, "--golden", golden, "--config", config)
    assert code == 0, doc
    code, doc, _ = _report(cli, bad, "--golden", golden, "--config", config)
    assert code == 1 and _outputs(doc)["y"]["status"] == "mismatch", doc
    assert _outputs(doc)["y"]["max_abs_diff"] == pytest.approx(0.5, rel=1e-3)  # the shift
    # And the TFLite file records its own golden, timed at batch sizes 1 and 2 (2 calls).
    res = cli("record", lite, "--golden", tmp_path / "lite.h5", "--num-samples", "4",
              "--batch-size", "2", "--latency-batch-sizes", "1,2")
    assert res.code == 0, res
    # The TF1 runtime too: the same graph frozen for batch 1, at the default batch size.
    frozen = wild.freeze_fixed_batch_one(tmp_path / "frozen.pb")
    res = cli("record", frozen, "--golden", tmp_path / "frozen.h5", "--no-latency",
              "--num-samples", "20")
    assert res.code == 0, res
    with h5py.File(tmp_path / "frozen.h5") as f:
        x, y = f["inputs/x"][()], f["outputs/y"][()]
    # As above: TF's float32 matmul against numpy's float64, not bitwise.
    np.testing.assert_allclose(y, wild.fixed_batch_one_expected_y(x), rtol=1e-5, atol=1e-6)
    # And a .keras file built with batch_size=1, against the SavedModel's golden.
    keras_file = wild.save_keras_fixed_batch_one(tmp_path / "one.keras")
    assert "one row per call" in cli("inspect", keras_file).stdout
    code, doc, _ = _report(cli, keras_file, "--golden", golden, "--config", config,
                           "--map", "y=output_0")
    assert code == 0, doc


# --- several signatures, none of them serving_default ------------------------------------------


def test_several_signatures_without_a_default_record_all_and_gate_tflite(
        cli, tmp_path: Path) -> None:
    model = wild.save_two_signatures(tmp_path / "m")
    golden = tmp_path / "g.h5"
    assert_usage_error(cli("record", model, "--golden", golden, "--no-latency"),
                       "no 'serving_default'", "decode, encode", "--signature all")
    assert cli("record", model, "--golden", golden, "--no-latency", "--signature", "all",
               "--num-samples", "16").code == 0
    lite = wild.convert_signatures(model, tmp_path / "m.tflite", ["encode", "decode"])
    config = tmp_path / "snapshot.toml"
    # TFLite's kernels against TF's: multiply-adds may round differently in the last ulp.
    config.write_text("[defaults]\natol = 1e-5\nrtol = 1e-5\n")
    code, doc, _ = _report(cli, lite, "--golden", golden, "--config", config)
    assert code == 0, doc
    assert set(_qualified(doc)) == {"decode/x_hat", "encode/code"}
    shifted = wild.convert_signatures(wild.save_two_signatures(tmp_path / "s", shift=0.25),
                                      tmp_path / "s.tflite", ["encode", "decode"])
    code, doc, _ = _report(cli, shifted, "--golden", golden, "--config", config)
    assert code == 1, doc
    assert _qualified(doc)["encode/code"]["status"] == "mismatch"
    assert _qualified(doc)["decode/x_hat"]["status"] == "ok"


def _qualified(doc: dict) -> dict[str, dict]:
    return {f"{o['signature']}/{o['name']}": o for o in doc["outputs"]}
