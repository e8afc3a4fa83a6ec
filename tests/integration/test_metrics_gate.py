"""Task metrics recorded with labels and gated at compare time, on models trained here."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.fixtures.trained import (
    damage,
    digits,
    export,
    train_diabetes_regressor,
    train_digits_classifier,
)


@pytest.fixture(scope="module")
def digits_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("digits")
    base = train_digits_classifier(seed=1)
    retrained = train_digits_classifier(seed=2)
    _, x_test, _, y_test = digits()
    np.savez(root / "test.npz", pixels=x_test, labels=y_test)
    return {"base": export(base, root / "base"),
            "retrained": export(retrained, root / "retrained"),
            "damaged": export(damage(base), root / "damaged"),
            "data": root / "test.npz"}


def _metrics(doc: dict) -> dict[str, dict]:
    return {m["name"]: m for m in doc["metrics"]}


def test_record_stores_metrics_and_labels(cli, digits_models, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    res = cli("record", digits_models["base"], "--golden", golden, "--inputs",
              digits_models["data"], "--labels", f"{digits_models['data']}:labels",
              "--no-latency")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        assert "labels" not in f["inputs"]  # the labels key is not fed to the model
        assert f["labels"].shape == (300,)
        acc = f["metrics/output_0/accuracy"]
        assert acc.attrs["direction"] == "higher" and 0.85 < acc[()] <= 1.0
        assert f["metrics/output_0"].attrs["task"] == "classification"
        assert f["metrics/output_0/log_loss"].attrs["direction"] == "lower"
        assert "top3_accuracy" in f["metrics/output_0"]
    shown = cli("show", golden)
    assert "accuracy" in shown.stdout and "log_loss" in shown.stdout


def test_retrained_candidate_is_judged_on_accuracy(cli, digits_models, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", digits_models["base"], "--golden", golden, "--inputs",
               digits_models["data"], "--labels", f"{digits_models['data']}:labels",
               "--no-latency").code == 0
    # Element-wise, a retrained model is a different function: default tolerances fail it.
    strict = cli("compare", digits_models["retrained"], "--golden", golden, "--no-latency")
    assert strict.code == 1
    loose = tmp_path / "loose.toml"
    loose.write_text("[defaults]\natol = 1.0\n[metrics]\naccuracy = { max_drop = 0.05 }\n")
    res = cli("compare", digits_models["retrained"], "--golden", golden, "--no-latency",
              "--config", loose, "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    acc = _metrics(doc)["accuracy"]
    assert acc["limit"] == "drop <= 0.05" and acc["passed"]
    assert acc["delta"] == pytest.approx(acc["candidate"] - acc["golden"])
    assert acc["golden"] != acc["candidate"] or doc["outputs"][0]["max_abs_diff"] > 0
    # The same candidate under a limit it cannot meet fails on the metric alone (exit 1).
    tight = tmp_path / "tight.toml"
    tight.write_text("[defaults]\natol = 1.0\n[metrics]\naccuracy = { min = 1.01 }\n")
    res = cli("compare", digits_models["retrained"], "--golden", golden, "--no-latency",
              "--config", tight, "--report-json", tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert all(o["passed"] for o in doc["outputs"])
    assert res.code == 1 and not _metrics(doc)["accuracy"]["passed"]


def test_damaged_candidate_fails_accuracy_and_agreement(cli, digits_models,
                                                        tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", digits_models["base"], "--golden", golden, "--inputs",
               digits_models["data"], "--labels", f"{digits_models['data']}:labels",
               "--no-latency").code == 0
    cfg = tmp_path / "gate.toml"
    cfg.write_text("[defaults]\natol = 1.0\n"  # only the metrics may decide here
                   "[metrics]\naccuracy = { max_drop = 0.02 }\n"
                   "top1_agreement = { min = 0.97 }\n")
    res = cli("compare", digits_models["damaged"], "--golden", golden, "--no-latency",
              "--config", cfg, "--report-json", tmp_path / "r.json")
    assert res.code == 1, res
    doc = json.loads((tmp_path / "r.json").read_text())
    assert all(o["passed"] for o in doc["outputs"])
    m = _metrics(doc)
    assert not m["accuracy"]["passed"] and not m["top1_agreement"]["passed"]
    assert m["top1_agreement"]["golden"] is None and m["top1_agreement"]["candidate"] < 0.97
    assert m["balanced_accuracy"]["passed"] and m["balanced_accuracy"]["limit"] is None
    for key in ("output", "name", "golden", "candidate", "delta", "passed", "limit"):
        assert key in m["accuracy"]
    # the unchanged model passes the same gate with perfect agreement
    same = cli("compare", digits_models["base"], "--golden", golden, "--no-latency",
               "--config", cfg, "--report-json", tmp_path / "s.json")
    assert same.code == 0, same
    assert _metrics(json.loads((tmp_path / "s.json").read_text()))["top1_agreement"][
        "candidate"] == 1.0


def test_regression_model_fails_on_mae(cli, tmp_path: Path) -> None:
    model, x, y = train_diabetes_regressor()
    export(model, tmp_path / "base")
    w = model.layers[-1].bias
    w.assign(w.numpy() + 0.5)  # every prediction off by 0.5
    export(model, tmp_path / "shifted")
    np.savez(tmp_path / "d.npz", features=x, target=y)
    golden = tmp_path / "g.h5"
    assert cli("record", tmp_path / "base", "--golden", golden, "--inputs", tmp_path / "d.npz",
               "--labels", f"{tmp_path / 'd.npz'}:target", "--no-latency").code == 0
    with h5py.File(golden) as f:
        assert f["metrics/output_0"].attrs["task"] == "regression"
        assert f["metrics/output_0/mae"].attrs["direction"] == "lower"
    cfg = tmp_path / "gate.toml"
    cfg.write_text("[defaults]\natol = 10.0\n[metrics]\nmae = { max_relative_drop = 0.1 }\n"
                   "correlation = { min = 0.99 }\n")
    res = cli("compare", tmp_path / "shifted", "--golden", golden, "--no-latency",
              "--config", cfg, "--report-json", tmp_path / "r.json")
    assert res.code == 1, res
    m = _metrics(json.loads((tmp_path / "r.json").read_text()))
    assert not m["mae"]["passed"] and m["mae"]["delta"] > 0
    assert m["correlation"]["passed"]  # a constant shift keeps the correlation at 1
    assert cli("compare", tmp_path / "base", "--golden", golden, "--no-latency",
               "--config", cfg).code == 0


def test_threshold_for_unknown_metric_is_an_error(cli, digits_models, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", digits_models["base"], "--golden", golden, "--inputs",
               digits_models["data"], "--no-latency").code == 0  # no labels: no task metrics
    cfg = tmp_path / "c.toml"
    cfg.write_text("[metrics]\nacuracy = { max_drop = 0.01 }\n")
    res = cli("compare", digits_models["base"], "--golden", golden, "--no-latency",
              "--config", cfg)
    assert res.code == 2 and "acuracy" in res.stderr and "accuracy" in res.stderr
    cfg.write_text("[metrics]\naccuracy = { max_drop = 0.01 }\n")  # needs labels
    res = cli("compare", digits_models["base"], "--golden", golden, "--no-latency",
              "--config", cfg)
    assert res.code == 2 and "accuracy" in res.stderr, res


def test_labels_errors(cli, digits_models, tmp_path: Path) -> None:
    data = digits_models["data"]
    res = cli("record", digits_models["base"], "--golden", tmp_path / "g.h5", "--inputs", data,
              "--labels", f"{data}:nope", "--no-latency")
    assert res.code == 2 and "'nope'" in res.stderr
    np.savez(tmp_path / "short.npz", labels=np.zeros(5, np.int64))
    res = cli("record", digits_models["base"], "--golden", tmp_path / "g.h5", "--inputs", data,
              "--labels", tmp_path / "short.npz", "--no-latency")
    assert res.code == 2 and "5 rows" in res.stderr
    assert not (tmp_path / "g.h5").exists()
