"""``localize`` on real models: it must name the layer, op or tensor a fixture changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from snapshot_tool.diagnose.localize import localize
from tests.fixtures import diagnose as fx
from tests.fixtures.kinds import convert_tflite


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("localize")
    np.savez(d / "images.npz", image=fx.cnn_inputs(48))
    return d


def _golden(model: Path, work: Path, inputs: bool = False) -> Path:
    from snapshot_tool.api import record

    golden = work / f"{model.name}.h5"
    record(model, golden, inputs=work / "images.npz" if inputs else None, num_samples=32,
           latency=False, force=True)
    return golden


@pytest.fixture(scope="module")
def cnn(work: Path) -> dict[str, Path]:
    return {
        "keras": fx.build_cnn(work / "cnn.keras", work / "cnn_export"),
        "export": work / "cnn_export",
        "damaged": fx.build_cnn(work / "damaged.keras", work / "damaged_export",
                                damaged="conv_b"),
        "damaged_export": work / "damaged_export",
    }


def test_keras_file_with_one_conv_changed_names_that_layer(cnn: dict[str, Path],
                                                           work: Path) -> None:
    golden = _golden(cnn["keras"], work, inputs=True)
    loc = localize(cnn["damaged"], golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None
    assert (loc.first.name, loc.first.op_type, loc.first.layer) == ("conv_b", "Conv2D",
                                                                      "conv_b")
    assert loc.changed_parameters == ("conv_b/kernel",)
    assert loc.path[-1].name == "probs"
    assert loc.golden_kind == loc.candidate_kind == "keras"


def test_keras_export_with_one_conv_changed_names_that_layer(cnn: dict[str, Path],
                                                             work: Path) -> None:
    golden = _golden(cnn["export"], work, inputs=True)
    loc = localize(cnn["damaged_export"], golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None
    # The export keeps Keras' layer name scopes (uniquified: "conv_b_1") in op names.
    assert "conv_b" in loc.first.layer and loc.first.op_type == "Conv2D"
    assert all("conv_a" not in s.layer for s in loc.path)


def test_tflite_candidate_against_the_export_names_the_layer(cnn: dict[str, Path],
                                                             work: Path) -> None:
    golden = _golden(cnn["export"], work, inputs=True)
    damaged = convert_tflite(cnn["damaged_export"], work / "damaged.tflite")
    loc = localize(damaged, golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None and "conv_b" in loc.first.layer
    assert (loc.golden_kind, loc.candidate_kind) == ("saved_model", "tflite")
    assert any("across runtimes" in n for n in loc.notes)


def test_tf_module_with_middle_op_changed_names_that_op(work: Path) -> None:
    golden = _golden(fx.save_module_chain(work / "chain"), work)
    loc = localize(fx.save_module_chain(work / "chain_sigmoid", "sigmoid"), golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None
    assert (loc.first.op_type, loc.first.candidate_op_type) == ("Tanh", "Sigmoid")
    assert loc.first.matched_by == "position"
    assert loc.changed_parameters == ()


def test_tf1_graph_names_the_tensor(work: Path) -> None:
    golden = _golden(fx.save_tf1_chain(work / "tf1"), work)
    loc = localize(fx.save_tf1_chain(work / "tf1_changed", second_scale=1.5), golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None and loc.first.name == "output/MatMul:0"
    assert loc.changed_parameters == ("output/kernel",)
    assert [s.name for s in loc.path] == ["output/MatMul:0", "output/add:0"]


def test_passing_candidate_and_missing_golden_model_say_why(work: Path) -> None:
    model = fx.save_tf1_chain(work / "tf1_moved")
    golden = _golden(model, work)
    assert localize(model, golden).status == "passed"
    candidate = shutil.copytree(model, work / "tf1_copy")
    shutil.rmtree(model)  # the golden's recorded model_path is gone
    loc = localize(candidate, golden)
    assert loc.status == "unsupported" and "--baseline-model" in loc.reason
    assert localize(candidate, golden, baseline_model=candidate).status == "passed"


def test_keras_file_against_its_export_matches_layers_to_scopes(cnn: dict[str, Path],
                                                                work: Path) -> None:
    # A golden recorded from the .keras file, a candidate shipped as the export (and the
    # other way round): layer outputs pair with the last op of each layer's scope.
    golden = _golden(cnn["keras"], work, inputs=True)
    loc = localize(cnn["damaged_export"], golden)
    assert loc.first is not None and loc.first.name == "conv_b", loc
    assert loc.first.matched_by == "layer" and loc.changed_parameters == ()
    golden = _golden(cnn["export"], work, inputs=True)
    loc = localize(cnn["damaged"], golden)
    assert loc.first is not None and "conv_b" in loc.first.layer
    assert loc.first.candidate_name == "conv_b"


def test_control_flow_is_traced_and_an_untraceable_graph_says_why(work: Path) -> None:
    golden = _golden(fx.save_loop(work / "loop"), work)
    loc = localize(fx.save_loop(work / "loop_changed", factor=1.5), golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None and "while" in loc.first.name  # inside the loop, not after
    golden = _golden(fx.save_table(work / "table"), work)
    loc = localize(fx.save_table(work / "table_changed", scale=2.0), golden)
    assert loc.status == "unsupported"
    assert "cannot be evaluated in the traced graph" in loc.reason


def test_quantized_tflite_intermediates_are_dequantized(cnn: dict[str, Path],
                                                         work: Path) -> None:
    golden = _golden(cnn["export"], work, inputs=True)
    quantized = fx.convert_tflite_int8(cnn["export"], work / "int8.tflite", fx.cnn_inputs(16))
    loc = localize(quantized, golden)
    assert loc.status == "localized", loc.reason
    assert loc.first is not None and "conv_a" in loc.first.layer  # quantization starts there
    # Compared as the real numbers the int8 values stand for: a small relative error, not
    # the raw integers against floats.
    assert loc.first.relative_error is not None and loc.first.relative_error < 0.05
