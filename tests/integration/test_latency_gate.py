"""Latency baselines in the golden and both gate modes, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.fixtures.models import save_matmul_chain


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chains")
    return {"base": save_matmul_chain(root / "base", depth=4),
            "slow": save_matmul_chain(root / "slow", depth=40)}


def test_record_stores_latency_baselines(cli, chains, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    res = cli("record", chains["base"], "--golden", golden, "--num-samples", "32",
              "--batch-size", "8", "--latency-batch-sizes", "1,8")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        for bs in (1, 8):
            ds = f[f"latency/batch_{bs}/samples_ns"]
            assert ds.dtype == np.int64 and ds.shape[0] >= 30
            for attr in ("p50", "p90", "p99", "mean", "std", "warmup_calls", "cold_load_s",
                         "first_call_s", "calibration"):
                assert attr in ds.attrs, attr
            assert ds.attrs["warmup_calls"] >= 10
            assert ds.attrs["p50"] <= ds.attrs["p90"] <= ds.attrs["p99"]
        env = json.loads(f.attrs["environment"])
        for key in ("cpu_model", "logical_cpus", "tensorflow", "threads"):
            assert key in env
    shown = cli("show", golden)
    assert "latency" in shown.stdout and "p50 ms" in shown.stdout
    # Stored mode on the same machine. The limit is widened to 10x here (a loaded 2-core box
    # has shown 2x between sessions): this test checks the mechanics (modes, fields, verdict
    # plumbing); the gate's error rates under load are measured by benchmarks/latency_gate.py,
    # not asserted by a timed test.
    cfg = tmp_path / "wide.toml"
    cfg.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", chains["base"], "--golden", golden, "--report-json", tmp_path / "r.json",
              "--config", cfg)
    assert res.code == 0, res
    lat = json.loads((tmp_path / "r.json").read_text())["latency"]
    assert lat["mode"] == "stored" and lat["verdict"] in ("pass", "inconclusive", "advisory")
    assert {b["batch_size"] for b in lat["batches"]} == {1, 8}
    for b in lat["batches"]:
        for key in ("ratio", "ci_low", "ci_high", "p_value", "limit"):
            assert key in b
        assert b["limit"] == pytest.approx(10.0)


def test_side_by_side_gate_catches_a_slowdown(cli, chains, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "16",
               "--batch-size", "8", "--no-latency").code == 0
    # Identical outputs, several times the work: outputs pass, latency fails.
    res = cli("compare", chains["slow"], "--golden", golden, "--baseline-model", chains["base"],
              "--report-json", tmp_path / "slow.json")
    doc = json.loads((tmp_path / "slow.json").read_text())
    assert all(o["passed"] for o in doc["outputs"])
    assert doc["latency"]["mode"] == "side_by_side"
    assert doc["latency"]["verdict"] == "fail", doc["latency"]
    assert res.code == 1
    assert all(b["ci_low"] > b["limit"] for b in doc["latency"]["batches"])
    # The baseline against itself never fails.
    same = cli("compare", chains["base"], "--golden", golden, "--baseline-model",
               chains["base"], "--report-json", tmp_path / "same.json")
    assert same.code == 0, same
    assert json.loads((tmp_path / "same.json").read_text())["latency"]["verdict"] != "fail"


def test_no_latency_skips_measuring(cli, chains, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "8",
               "--no-latency").code == 0
    with h5py.File(golden) as f:
        assert "latency" not in f
    res = cli("compare", chains["base"], "--golden", golden, "--report-json",
              tmp_path / "r.json")
    assert res.code == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["latency"] is None
    assert any("no latency baseline" in w for w in doc["warnings"])


def test_bad_latency_batch_sizes(cli, chains, tmp_path: Path) -> None:
    res = cli("record", chains["base"], "--golden", tmp_path / "g.h5",
              "--latency-batch-sizes", "1,x")
    assert res.code == 2 and res.stderr.startswith("error: ")


def test_multi_signature_latency_names_its_signature(cli, two_sig_model: Path,
                                                     tmp_path: Path) -> None:
    golden = tmp_path / "all.h5"
    assert cli("record", two_sig_model, "--golden", golden, "--signature", "all",
               "--num-samples", "8", "--latency-batch-sizes", "1").code == 0
    wide = tmp_path / "wide.toml"  # mechanics only, as above
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", two_sig_model, "--golden", golden, "--report-json",
              tmp_path / "r.json", "--junit", tmp_path / "j.xml", "--config", wide)
    assert res.code == 0, res
    batches = json.loads((tmp_path / "r.json").read_text())["latency"]["batches"]
    assert sorted(b["signature"] for b in batches) == ["embed", "serving_default"]
    junit = (tmp_path / "j.xml").read_text()
    assert 'name="embed/batch_1"' in junit and 'name="serving_default/batch_1"' in junit


def test_self_check_reports_the_machine_factor(cli, chains, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "8",
               "--batch-size", "8", "--latency-batch-sizes", "1").code == 0
    wide = tmp_path / "wide.toml"  # mechanics only: the numbers are the benchmark's job
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", chains["slow"], "--golden", golden, "--self-check", "--config", wide,
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    (b,) = json.loads((tmp_path / "r.json").read_text())["latency"]["batches"]
    assert b["machine_factor"] > 0 and b["calibration_ratio"] > 0
    assert b["uncorrected_ratio"] > 0 and b["uncorrected_verdict"] in ("pass", "inconclusive")
    assert b["rounds"] >= 30  # ABBA rounds against the golden's own model
    assert "self-check" in b["note"] and "as recorded" in b["note"]


def test_self_check_without_the_golden_model_falls_back(cli, tmp_path: Path) -> None:
    from tests.fixtures.models import save_matmul_chain

    model = save_matmul_chain(tmp_path / "gone", depth=2)
    keep = save_matmul_chain(tmp_path / "kept", depth=2)
    golden = tmp_path / "g.h5"
    assert cli("record", model, "--golden", golden, "--num-samples", "8",
               "--latency-batch-sizes", "1").code == 0
    import shutil

    shutil.rmtree(model)
    wide = tmp_path / "wide.toml"
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", keep, "--golden", golden, "--self-check", "--config", wide,
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    assert any("--self-check skipped" in w and "no longer on disk" in w
               for w in doc["warnings"])
    assert doc["latency"]["batches"][0]["machine_factor"] is None


def test_self_check_refuses_a_changed_golden_model(cli, tmp_path: Path) -> None:
    from tests.fixtures.models import save_matmul_chain

    model = save_matmul_chain(tmp_path / "m", depth=2)
    golden = tmp_path / "g.h5"
    assert cli("record", model, "--golden", golden, "--num-samples", "8",
               "--latency-batch-sizes", "1").code == 0
    # Another file in the SavedModel directory changes its digest: re-exported or retrained
    # in place, it is no longer the model the stored samples describe.
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "note.txt").write_text("changed after record\n")
    wide = tmp_path / "wide.toml"
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", model, "--golden", golden, "--self-check", "--config", wide,
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    assert any("--self-check skipped" in w and "sha256 differs" in w for w in doc["warnings"])
