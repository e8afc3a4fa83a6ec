"""record.py's orchestration on a numpy-only model: no TensorFlow, milliseconds per case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from snapshot_tool.config import parse_config
from snapshot_tool.errors import InputsError
from snapshot_tool.golden.io import read_golden
from snapshot_tool.record import record
from tests.fakes import FakeModel, fake_model_dir, use_fake_models


@pytest.fixture()
def models(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Keyword arguments of the FakeModel loaded from a folder, by the folder's name."""
    kwargs: dict[str, dict[str, Any]] = {}
    use_fake_models(monkeypatch, lambda p: FakeModel(p, **kwargs.get(p.name, {})))
    return kwargs


def _record(tmp_path: Path, **options: Any) -> Path:
    path = fake_model_dir(tmp_path)
    golden = tmp_path / "g.h5"
    record(path, golden, **{"latency": False, "num_samples": 10, "batch_size": 4, **options})
    return golden


def test_records_outputs_and_root_info(models: dict[str, dict[str, Any]],
                                       tmp_path: Path) -> None:
    g = read_golden(_record(tmp_path, seed=3))
    sg = g.signatures["serving_default"]
    assert sg.inputs["x"].shape == (10, 3)
    # score is y summed by the same numpy code at record time: exact
    np.testing.assert_array_equal(sg.outputs["score"], sg.outputs["y"].sum(axis=1))
    assert sg.output_attrs["y"]["batched"] and "nondeterministic" not in sg.output_attrs["y"]
    a = g.attrs
    assert (a["model_kind"], a["seed"], a["num_samples"], a["batch_size"]) == ("fake", 3, 10, 4)
    assert a["inputs_source"] == "synthesized(seed=3)" and a["signature"] == "serving_default"
    assert json.loads(a["environment"])["threads"] == {"inter_op_parallelism_threads": 1,
                                                       "intra_op_parallelism_threads": 1}


def test_a_nondeterministic_reference_records_its_spread(models: dict[str, dict[str, Any]],
                                                        tmp_path: Path) -> None:
    models["fake"] = {"noise": 1e-3}
    g = read_golden(_record(tmp_path))
    attrs = g.signatures["serving_default"].output_attrs["y"]
    assert attrs["nondeterministic"] and 0 < attrs["spread"] < 0.1


def test_signature_all_records_every_signature(models: dict[str, dict[str, Any]],
                                               tmp_path: Path) -> None:
    models["fake"] = {"signatures": ("a", "b")}
    g = read_golden(_record(tmp_path, signature="all"))
    assert set(g.signatures) == {"a", "b"} and g.attrs["signature"] == "all"


def test_labels_give_task_metrics(models: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    x = np.random.default_rng(1).random((12, 3), dtype=np.float32)
    labels = (x @ np.array([0.5, 0.25, 1.0], np.float32) - 0.2).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, labels=labels)
    config = parse_config({"outputs": {"y": {"task": "none"}}})
    golden = _record(tmp_path, inputs=tmp_path / "data.npz",
                     labels=f"{tmp_path / 'data.npz'}:labels", config=config)
    sg = read_golden(golden).signatures["serving_default"]
    assert sg.labels is not None and sg.labels.shape == (12,)
    assert set(sg.metrics) == {"score"} and sg.metrics["score"].task == "regression"
    assert sg.metrics["score"].values["mae"].direction == "lower"


def test_labels_must_fit_the_samples(models: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    np.savez(tmp_path / "data.npz", x=np.ones((6, 3), np.float32), labels=np.zeros(5))
    with pytest.raises(InputsError, match="5 rows but the inputs have 6"):
        _record(tmp_path, inputs=tmp_path / "data.npz",
                labels=f"{tmp_path / 'data.npz'}:labels")


@pytest.mark.parametrize("options, message", [
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"seed": -1}, "--seed must be between"),
    ({"labels": "l.npz"}, "--labels needs --inputs"),
])
def test_options_are_checked_before_any_model_loads(options: dict[str, Any], message: str,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def never(path: Path) -> FakeModel:
        raise AssertionError("a model was loaded")

    use_fake_models(monkeypatch, never)
    with pytest.raises(InputsError, match=message):
        _record(tmp_path, **options)


def test_latency_is_timed_on_a_fresh_copy(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    loaded: list[FakeModel] = []

    def make(path: Path) -> FakeModel:
        loaded.append(FakeModel(path))
        return loaded[-1]

    use_fake_models(monkeypatch, make)
    _record(tmp_path, num_samples=2, batch_size=4, latency=True)
    sg = read_golden(tmp_path / "g.h5").signatures["serving_default"]
    # batch size 4 cannot be cut from 2 samples: only batch 1 is timed, on a second copy
    assert sorted(sg.latency) == [1] and len(loaded) == 2 and loaded[1].calls > 0
    rec = sg.latency[1]
    assert rec.samples_ns.size >= 5 and 0 < rec.attrs["p50"] <= rec.attrs["p99"]
