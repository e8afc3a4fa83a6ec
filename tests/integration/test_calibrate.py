"""``calibrate`` on real models: a TFLite conversion and a mixed-float16 build of a Keras CNN
are declared acceptable; the proposed config must pass both and still fail a build with one
conv layer damaged."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from snapshot_tool.api import compare, record
from snapshot_tool.diagnose.calibrate import calibrate
from snapshot_tool.errors import InputsError
from tests.fixtures import diagnose as fx
from tests.fixtures.kinds import convert_tflite


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    d = tmp_path_factory.mktemp("calibrate")
    fx.build_cnn(d / "cnn.keras", d / "export")
    fx.build_cnn(d / "half.keras", d / "half", mixed_float16=True)
    fx.build_cnn(d / "broken.keras", d / "broken", damaged="conv_a")
    x = fx.cnn_inputs(64)
    # Labels the golden gets mostly right, so accuracy has room to drop.
    pred = np.argmax(keras.saving.load_model(str(d / "cnn.keras")).predict(x, verbose=0), 1)
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(pred.size) < 0.2, rng.integers(0, 10, pred.size), pred)
    np.savez(d / "data.npz", image=x, labels=labels)
    golden = d / "golden.h5"
    record(d / "export", golden, inputs=d / "data.npz", labels=f"{d / 'data.npz'}:labels",
           latency=False)
    return {"dir": d, "golden": golden, "tflite": convert_tflite(d / "export", d / "cnn.tflite"),
            "half": d / "half", "broken": d / "broken"}


def test_float16_outputs_are_accepted_with_allow_dtype_change(models: dict[str, Path]) -> None:
    fx.build_cnn(models["dir"] / "half_out.keras", models["dir"] / "half_out",
                 float16_output=True)
    proposed = models["dir"] / "half_out.toml"
    cal = calibrate(models["golden"], [models["dir"] / "half_out"], reject=[models["broken"]],
                    output=proposed)
    assert cal.consistent, cal.candidates
    out = tomllib.loads(proposed.read_text())["outputs"]["output_0"]
    assert out["allow_dtype_change"] is True
    # Judged like compare judges a precision change: never tighter than float16's defaults.
    assert out["rtol"] >= 1e-3
    assert "returns float16" in proposed.read_text()


def test_proposal_accepts_tflite_and_float16_and_still_fails_the_broken_build(
        models: dict[str, Path]) -> None:
    proposed = models["dir"] / "proposed.toml"
    cal = calibrate(models["golden"], [models["tflite"], models["half"]],
                    reject=[models["broken"]], output=proposed)
    assert cal.consistent, cal.candidates
    assert [c.passed for c in cal.candidates] == [True, True, False]
    effects = {(m.output, m.metric): dict(m.values) for m in cal.metric_effects}
    # The broken build's effect is on record beside the acceptable ones'.
    assert effects[("output_0", "top1_agreement")]["[r1]"] < 0.99
    assert effects[("output_0", "top1_agreement")]["[1]"] == 1.0
    text = proposed.read_text()
    assert text == cal.toml
    doc = tomllib.loads(text)
    out = doc["outputs"]["output_0"]
    # Mixed float16 moves softmax scores far beyond float32's default rtol of 1.3e-6.
    assert out["rtol"] > 1.3e-6 and out["atol"] >= 1e-5
    assert {"top1_agreement", "accuracy"} <= set(out["metrics"])
    # Every limit carries its evidence.
    assert all("#" in line for line in text.splitlines()
               if "=" in line and not line.startswith("#"))
    # The same verdicts through compare itself, as a user would run it.
    for name, want in (("tflite", True), ("half", True), ("broken", False)):
        result = compare(models[name], models["golden"], config=proposed, latency=False)
        assert result.passed is want, (name, result.outputs, result.metrics)
    # Under the default float32 tolerances the float16 build fails: calibration mattered.
    assert not compare(models["half"], models["golden"], latency=False).passed


def test_cost_table_shows_decisions_lost_at_large_errors(models: dict[str, Path]) -> None:
    cal = calibrate(models["golden"], [models["half"]], reject=[models["broken"]])
    assert cal.cost, "a classification output gets a cost table"
    assert sum(r.rows for r in cal.cost) == 2 * 64
    small = [r for r in cal.cost if r.level <= 1e-3]
    assert small and all(r.flips == 0 for r in small)
    assert any(r.flips > 0 for r in cal.cost if r.level > 1e-3)


def test_another_golden_of_the_same_inputs_is_a_candidate(models: dict[str, Path]) -> None:
    other = models["dir"] / "tflite_golden.h5"
    record(models["tflite"], other, inputs=models["dir"] / "data.npz", latency=False,
           force=True)
    from snapshot_tool.golden.io import read_golden
    from snapshot_tool.golden.sharded import write_sharded

    sharded = models["dir"] / "tflite_golden.h5.d"
    write_sharded(sharded, read_golden(other), 16)
    cal = calibrate(models["golden"], [other, sharded])
    assert [c.kind for c in cal.candidates] == ["golden", "golden"]
    assert all(c.passed for c in cal.candidates)


def test_bad_requests_are_input_errors(models: dict[str, Path]) -> None:
    with pytest.raises(InputsError, match="at least one candidate"):
        calibrate(models["golden"], [])
    with pytest.raises(InputsError, match="--margin"):
        calibrate(models["golden"], [models["half"]], margin=0.5)
    existing = models["dir"] / "exists.toml"
    existing.write_text("# mine\n")
    with pytest.raises(InputsError, match="--force"):
        calibrate(models["golden"], [models["half"]], output=existing)
    assert existing.read_text() == "# mine\n"
    odd = models["dir"] / "odd.h5"
    record(models["tflite"], odd, num_samples=8, latency=False, force=True)
    with pytest.raises(InputsError, match="other inputs"):
        calibrate(models["golden"], [odd])
