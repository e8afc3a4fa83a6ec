"""models/: dispatch by path, loader choice, the TF1 session loader, TFLite and Keras wrappers."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from snapshot_tool.errors import ModelError, SignatureError
from snapshot_tool.models.base import (
    Model,
    SignatureInfo,
    TensorSpec,
    first_line,
    import_tf,
    method_name,
    parse_tags,
    to_numpy,
)
from snapshot_tool.models.keras import KerasModel, export_saved_model
from snapshot_tool.models.load import load_model
from snapshot_tool.models.savedmodel import SavedModelTF2
from snapshot_tool.models.tf1 import SavedModelTF1
from snapshot_tool.models.tflite import TFLiteModel
from tests.fixtures import kinds
from tests.fixtures.models import save_dense


class FakeModel(Model):
    kind = "fake"

    def __init__(self, names: list[str]) -> None:
        super().__init__(Path("fake"), 0.0)
        self._sigs = {n: SignatureInfo(n, (), ()) for n in names}

    @property
    def signatures(self) -> dict[str, SignatureInfo]:
        return self._sigs

    def run(self, signature: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("unit_models")
    export = d / "export"
    return {
        "tf1": kinds.save_tf1(d / "tf1"),
        "dense": save_dense(d / "dense"),
        "keras": kinds.build_keras(d / "m.keras", export),
        "export": export,
        "nosig": kinds.convert_tflite_without_signature(d / "nosig.tflite"),
    }


# --- pure helpers ----------------------------------------------------------------------------


def test_method_names() -> None:
    assert method_name("tensorflow/serving/predict") == "predict"
    assert method_name("tensorflow/serving/classify") == "classify"
    assert method_name("tensorflow/serving/regress") == "regress"
    assert method_name("my/custom") == "my/custom"
    assert method_name("") is None


def test_parse_tags() -> None:
    assert parse_tags("serve") == ["serve"]
    assert parse_tags(" serve , gpu ") == ["serve", "gpu"]
    with pytest.raises(ModelError, match="names no tag"):
        parse_tags(" , ")


def test_default_signature_resolution() -> None:
    assert FakeModel(["serve", "serving_default"]).signature(None).name == "serving_default"
    assert FakeModel(["serve", "double"]).signature(None).name == "serve"
    assert FakeModel(["only"]).signature(None).name == "only"
    with pytest.raises(SignatureError, match="--signature: a, b"):
        FakeModel(["a", "b"]).signature(None)
    with pytest.raises(SignatureError, match="available: serve"):
        FakeModel(["serve"]).signature("nope")


def test_notes_start_empty_and_are_per_instance() -> None:
    a, b = FakeModel(["x"]), FakeModel(["x"])
    a.notes.append("something")
    assert b.notes == []


def test_first_line_skips_graph_noise() -> None:
    msg = ("Graph execution error:\n\nDetected at node 'ParseExample/ParseExampleV2' defined "
           "at (most recent call last):\nNode: 'ParseExample/ParseExampleV2'\n"
           "Could not parse example input, value: 'abc'\n\t [[{{node ParseExample}}]]")
    assert first_line(RuntimeError(msg)) == "Could not parse example input, value: 'abc'"
    assert first_line(ValueError("just this\nand more")) == "just this"
    assert first_line(KeyError()) == "KeyError"
    # The saver's guess ("a mismatch between the current graph and the checkpoint") hides
    # the real reason on the line after it.
    restore = ("Restoring from checkpoint failed. This is most likely due to a mismatch "
               "between the current graph and the graph from the checkpoint. Original error:"
               "\n\nCannot assign a device for operation save/RestoreV2\n\t [[node x]]")
    assert first_line(RuntimeError(restore)) == (
        "Cannot assign a device for operation save/RestoreV2")


def test_scalar_string_outputs_stay_object_arrays() -> None:
    out = to_numpy(b"abc")
    assert out.dtype == object and out.shape == () and out[()] == b"abc"
    arr = to_numpy(np.array(["x", "yz"]))
    assert arr.dtype == object and list(arr) == [b"x", b"yz"]


# --- dispatch and load errors ------------------------------------------------------------------


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a SavedModel"):
        load_model(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ModelError,
                       match=r"weights\.bin.*\.tflite file, a \.keras file, a Keras \.h5 "
                             r"model or a frozen graph"):
        load_model(tmp_path / "weights.bin")
    (tmp_path / "bad.tflite").write_bytes(b"12345678 not a flatbuffer")
    with pytest.raises(ModelError, match="not a TFLite flatbuffer"):
        load_model(tmp_path / "bad.tflite")
    (tmp_path / "bad.keras").write_bytes(b"PK not really a zip")
    with pytest.raises(ModelError, match=r"cannot load Keras model .*bad\.keras"):
        load_model(tmp_path / "bad.keras")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\xff\xff not a protobuf")
    with pytest.raises(ModelError, match="cannot load SavedModel"):
        load_model(broken)


def test_tflite_is_recognised_by_content(built: dict[str, Path], tmp_path: Path) -> None:
    renamed = kinds.copy_model(built["nosig"], tmp_path / "model.bin")
    assert isinstance(load_model(renamed), TFLiteModel)


# --- SavedModels ----------------------------------------------------------------------------


def test_pure_tf1_export_uses_the_session_loader(built: dict[str, Path]) -> None:
    model = load_model(built["tf1"])
    assert isinstance(model, SavedModelTF1) and model.kind == "saved_model_tf1"
    assert model.notes == []
    sigs = model.signatures
    assert {k: s.method_name for k, s in sigs.items()} == {
        "serving_default": "predict", "regress": "regress", "classify": "classify"}
    assert sigs["serving_default"].input("x") == TensorSpec("x", "float32", (None, 3))
    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], np.float32)
    out = model.run("serving_default", {"x": x})
    # TF's matmul vs numpy's: different kernels per CPU, so a tolerance, never bitwise.
    np.testing.assert_allclose(out["y"], kinds.tf1_expected_y(x), rtol=1e-6, atol=1e-6)
    # floor(y) = 0, 3, 2 -> clipped bucket 0, 2, 2 -> words from the asset file.
    assert list(out["label"]) == [b"low", b"high", b"high"]
    ex = np.array(kinds.example_bytes(x), dtype=object)
    # Another subgraph (parse, then matmul) that Grappler may rewrite differently.
    np.testing.assert_allclose(model.run("regress", {"inputs": ex})["outputs"], out["y"],
                               rtol=1e-6, atol=1e-6)


def test_tf1_bad_examples_are_a_one_line_signature_error(built: dict[str, Path]) -> None:
    model = load_model(built["tf1"])
    with pytest.raises(SignatureError) as err:
        model.run("regress", {"inputs": np.array([b"\x0a\x02zz"], dtype=object)})
    text = str(err.value)
    assert "\n" not in text and "Graph execution error" not in text
    assert "'regress'" in text and "--inputs FILE.tfrecord" in text


def test_tag_sets(built: dict[str, Path]) -> None:
    x = np.ones((2, 3), np.float32)
    base = load_model(built["tf1"], tag="serve").run("serving_default", {"x": x})["y"]
    gpu = load_model(built["tf1"], tag="gpu,serve").run("serving_default", {"x": x})["y"]
    # Two MetaGraphs, two sessions: a tolerance, as for any two code paths.
    np.testing.assert_allclose(gpu, 2 * base, rtol=1e-6, atol=1e-6)
    with pytest.raises(ModelError, match=r"tag set 'tpu'; available: 'serve', 'serve,gpu'"):
        load_model(built["tf1"], tag="tpu")


def test_tf2_export_keeps_tf_saved_model_load_and_method_names(built: dict[str, Path]) -> None:
    model = load_model(built["dense"])
    assert isinstance(model, SavedModelTF2) and model.kind == "saved_model"
    assert model.signature(None).method_name == "predict"


def test_falls_back_to_the_session_loader(built: dict[str, Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tf = import_tf()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    want = load_model(built["dense"]).run("serving_default", {"features": x})

    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError("Shapes must be equal rank\nlong graph trace")

    monkeypatch.setattr(tf.saved_model, "load", refuse)
    model = load_model(built["dense"])
    assert isinstance(model, SavedModelTF1)
    assert model.notes and "Shapes must be equal rank" in model.notes[0]
    got = model.run("serving_default", {"features": x})
    for k in want:
        # TF2 function vs TF1 session: Grappler may fuse the two graphs differently.
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)


# --- TFLite ----------------------------------------------------------------------------------


def test_tflite_without_signature_runs_by_position(built: dict[str, Path]) -> None:
    model = load_model(built["nosig"])
    assert isinstance(model, TFLiteModel) and model.runtime == "ai_edge_litert"
    sig = model.signature(None)
    assert [s.name for s in sig.inputs] == ["a"] and [s.name for s in sig.outputs] == ["output_0"]
    assert model.notes and "by position" in model.notes[0]
    for rows in (2, 5, 1):  # fixed [2, 4] in the flatbuffer: resized each time
        a = np.full((rows, 4), 2.0, np.float32)
        # TFLite's kernels vs a constant: a tolerance, though 2 * 3 + 1 is exact anywhere.
        np.testing.assert_allclose(model.run("serving_default", {"a": a})["output_0"],
                                   np.full((rows, 4), 7.0, np.float32), rtol=1e-6)
    with pytest.raises(SignatureError, match="rejected its inputs"):
        model.run("serving_default", {"a": np.ones((2, 3), np.float32)})


def test_tflite_falls_back_to_tf_lite(built: dict[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import raise ImportError, as if LiteRT were absent.
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    model = load_model(built["nosig"])
    assert isinstance(model, TFLiteModel) and model.runtime == "tf.lite"
    out = model.run("serving_default", {"a": np.zeros((3, 4), np.float32)})["output_0"]
    np.testing.assert_allclose(out, np.ones((3, 4), np.float32), rtol=1e-6)  # TFLite kernels


class _NoFlexDelegate:
    """An interpreter that, like LiteRT (and TensorFlow 2.20+'s), cannot run Flex ops."""

    def __init__(self, model_path: str) -> None:
        self.model_path = model_path

    def allocate_tensors(self) -> None:
        raise RuntimeError("Select TensorFlow op(s), included in the given model, is(are) not "
                           "supported by this interpreter. Make sure you apply/link the Flex "
                           "delegate before inference.Node number 0 (FlexParseExampleV2) "
                           "failed to prepare.")


def test_flex_ops_fall_back_to_tf_lite(built: dict[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from snapshot_tool.models import tflite

    tf = import_tf()
    # LiteRT refuses the Flex op; TensorFlow's interpreter (linking the delegate) runs it.
    monkeypatch.setattr(tflite, "_interpreter_classes", lambda: [
        (_NoFlexDelegate, "ai_edge_litert"), (tf.lite.Interpreter, "tf.lite")])
    model = load_model(built["nosig"])
    assert isinstance(model, TFLiteModel) and model.runtime == "tf.lite"
    assert "FlexParseExampleV2" in model.notes[0] and "tf.lite.Interpreter" in model.notes[0]
    out = model.run("serving_default", {"a": np.zeros((2, 4), np.float32)})["output_0"]
    np.testing.assert_allclose(out, np.ones((2, 4), np.float32), rtol=1e-6)  # TFLite kernels

    # Neither links it: one error naming the op and the ways out.
    monkeypatch.setattr(tflite, "_interpreter_classes", lambda: [
        (_NoFlexDelegate, "ai_edge_litert"), (_NoFlexDelegate, "tf.lite")])
    with pytest.raises(ModelError) as err:
        load_model(built["nosig"])
    text = str(err.value)
    assert "FlexParseExampleV2" in text and "SELECT_TF_OPS" in text and "\n" not in text


# --- Keras -----------------------------------------------------------------------------------


def test_keras_signature_matches_its_export(built: dict[str, Path]) -> None:
    keras_model = load_model(built["keras"])
    export = load_model(built["export"])
    assert isinstance(keras_model, KerasModel) and keras_model.notes == []
    k, e = keras_model.signature(None), export.signature(None)
    assert (k.name, k.inputs, k.outputs) == (e.name, e.inputs, e.outputs)
    x = np.random.default_rng(0).random((4, 8)).astype(np.float32)
    np.testing.assert_allclose(keras_model.run(k.name, {"features": x})["output_0"],
                               export.run(e.name, {"features": x})["output_0"], atol=1e-6)


def test_export_saved_model_passes_verbose_only_where_keras_takes_it(tmp_path: Path) -> None:
    # Keras 3.6 added model.export(..., verbose=); 3.1-3.5 raise TypeError on it.
    calls: list[tuple[str, dict[str, object]]] = []

    class Keras35:
        def export(self, filepath: str, format: str = "tf_saved_model") -> None:
            calls.append((filepath, {}))

    class Keras36:
        def export(self, filepath: str, format: str = "tf_saved_model",
                   verbose: bool = True) -> None:
            calls.append((filepath, {"verbose": verbose}))

    export_saved_model(Keras35(), tmp_path / "a")
    export_saved_model(Keras36(), tmp_path / "b")
    assert calls == [(str(tmp_path / "a"), {}), (str(tmp_path / "b"), {"verbose": False})]


def test_keras_generated_input_names_are_noted(tmp_path: Path) -> None:
    import_tf()
    import keras

    inp = keras.Input((2,))
    keras.Model(inp, keras.layers.Dense(1)(inp)).save(str(tmp_path / "anon.keras"))
    model = load_model(tmp_path / "anon.keras")
    assert model.notes and "keras.Input(name=...)" in model.notes[0]


def test_first_line_of_an_error_raised_in_traced_python_code() -> None:
    # What a Keras layer's own check looks like through a tf.function: TensorFlow's header,
    # the traced stack, then the exception, which Keras wraps (and colours) once more.
    msg = ('in user code:\n\n    File "model.py", line 3, in serve  *\n        return m(x)\n'
           '    File "rnn.py", line 396, in call\n        raise ValueError(\n\n'
           '    ValueError: Exception encountered when calling GRU.call().\n    \n'
           '    \x1b[1mIf an RNN is stateful, the batch size must match. \n'
           '    - Expected batch size: 4\x1b[0m\n')
    assert first_line(ValueError(msg)) == "GRU: If an RNN is stateful, the batch size must match."
    plain = "in user code:\n\n    File \"m.py\", line 1\n\n    TypeError: bad argument x\n"
    assert first_line(TypeError(plain)) == "bad argument x"


def test_batch_hint_names_a_batch_the_inputs_fix_not_an_outputs_length() -> None:
    from snapshot_tool.models.base import batch_hint

    fixed = SignatureInfo("serving_default", (TensorSpec("x", "float32", (4, 3)),),
                          (TensorSpec("y", "float32", (4, 2)),))
    assert "--batch-size 4" in batch_hint(fixed, 16)
    # A variable batch beside a constant table of 10 rows: no batch is fixed.
    table = SignatureInfo("serving_default", (TensorSpec("x", "float32", (None, 4)),),
                          (TensorSpec("y", "float32", (None, 2)),
                           TensorSpec("vocab", "float32", (10,))))
    assert batch_hint(table, 16) == ""


def test_a_goldens_model_is_found_from_another_folder_and_only_if_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """record ran at the project root (`record models/m --golden goldens/g.h5`); a later run
    starts elsewhere (a Makefile in a subfolder, a CI job's own directory). The model is
    found through the golden's folders, and only with the recorded files."""
    from snapshot_tool.models.load import locate_recorded_model, model_digest

    root = tmp_path / "project"
    model = root / "models" / "m"
    model.mkdir(parents=True)
    (model / "weights").write_bytes(b"recorded")
    golden = root / "goldens" / "g.h5"
    golden.parent.mkdir()
    digest = model_digest(model)
    elsewhere = tmp_path / "ci"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found, state = locate_recorded_model("models/m", digest, golden)
    assert state == "matches" and found is not None and found.resolve() == model.resolve()
    assert locate_recorded_model(str(model), digest, golden)[1] == "matches"  # absolute
    assert locate_recorded_model("models/gone", digest, golden) == (None, "missing")
    assert locate_recorded_model("models/m", "", golden) == (None, "unknown")
    (model / "weights").write_bytes(b"retrained")
    assert locate_recorded_model("models/m", digest, golden) == (None, "changed")
