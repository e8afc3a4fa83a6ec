"""Interface changes, bad option values, damaged files: exit 2 with one line, or the right
verdict, never a traceback (cases found by an adversarial review)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.fixtures.models import save_sum
from tests.integration.test_errors import assert_usage_error


@pytest.fixture(scope="module")
def sums(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sums")
    return {"base": save_sum(root / "base"),
            "wide": save_sum(root / "wide", width=7),
            "ints": save_sum(root / "ints", dtype="int32"),
            "half": save_sum(root / "half", dtype="float16"),
            "renamed": save_sum(root / "renamed", name="z")}


@pytest.fixture()
def golden(cli, sums, tmp_path: Path) -> Path:
    g = tmp_path / "g.h5"
    res = cli("record", sums["base"], "--golden", g, "--num-samples", "8", "--no-latency")
    assert res.code == 0, res
    return g


def test_candidate_with_other_input_shape_or_kind_is_an_input_error(cli, sums,
                                                                   golden: Path) -> None:
    assert_usage_error(cli("compare", sums["wide"], "--golden", golden, "--no-latency"),
                       "interface changed")
    assert_usage_error(cli("compare", sums["ints"], "--golden", golden, "--no-latency"),
                       "int32")


def test_same_kind_other_precision_is_cast_with_a_warning(cli, sums, golden: Path,
                                                          tmp_path: Path) -> None:
    res = cli("compare", sums["half"], "--golden", golden, "--no-latency",
              "--report-json", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert any("cast" in w for w in doc["warnings"]), doc["warnings"]
    assert res.code in (0, 1)


def test_renamed_lone_input_works_with_latency_on(cli, sums, tmp_path: Path) -> None:
    golden = tmp_path / "lat.h5"
    assert cli("record", sums["base"], "--golden", golden, "--num-samples", "8",
               "--latency-batch-sizes", "1").code == 0
    wide = tmp_path / "wide.toml"  # mechanics only; see test_latency_gate
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", sums["renamed"], "--golden", golden, "--config", wide,
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["latency"]["mode"] == "stored"
    assert any("'z'" in w for w in doc["warnings"])
    ab = cli("compare", sums["renamed"], "--golden", golden, "--baseline-model", sums["base"])
    assert ab.code in (0, 1) and "Traceback" not in ab.stderr
    assert "KeyError" not in ab.stderr


def test_baseline_model_with_other_interface(cli, sums, golden: Path,
                                             two_sig_model: Path) -> None:
    assert_usage_error(cli("compare", sums["base"], "--golden", golden, "--baseline-model",
                           two_sig_model), "baseline model")


@pytest.mark.parametrize("seed", ["-1", str(2**70)])
def test_seed_out_of_range(cli, sums, tmp_path: Path, seed: str) -> None:
    assert_usage_error(cli("record", sums["base"], "--golden", tmp_path / "g.h5",
                           "--no-latency", "--seed", seed), "--seed")
    assert not (tmp_path / "g.h5").exists()


def test_damaged_npz_inputs_and_labels(cli, sums, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    assert_usage_error(cli("record", sums["base"], "--golden", tmp_path / "g.h5",
                           "--no-latency", "--inputs", bad), "bad.npz")
    good = tmp_path / "good.npz"
    np.savez_compressed(good, x=np.ones((8, 4), np.float32))
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert_usage_error(cli("record", sums["base"], "--golden", tmp_path / "g.h5",
                           "--no-latency", "--inputs", tmp_path / "trunc.npz"), "trunc.npz")
    assert_usage_error(cli("record", sums["base"], "--golden", tmp_path / "g.h5",
                           "--no-latency", "--inputs", good, "--labels", bad), "bad.npz")


def test_pyproject_with_a_non_table_tool_key(cli, sums, golden: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('tool = "x"\n')
    monkeypatch.chdir(tmp_path)
    assert cli("compare", sums["base"], "--golden", golden, "--no-latency").code == 0
    assert_usage_error(cli("compare", sums["base"], "--golden", golden, "--no-latency",
                           "--config", tmp_path / "pyproject.toml"), "tool.snapshot-tool")


def _edit(golden: Path, how: str) -> None:
    with h5py.File(golden, "r+") as f:
        if how == "version_text":
            f.attrs["format_version"] = "abc"
        elif how == "group_in_inputs":
            f["inputs"].create_group("sub")
        elif how == "outputs_dataset":
            del f["outputs"]
            f["outputs"] = np.zeros(3)
        elif how == "metric_not_scalar":
            f.create_group("metrics/y")["accuracy"] = np.zeros(3)
        elif how == "latency_name":
            f.create_group("latency/batch_x")
        elif how == "batch_size_text":
            f.attrs["batch_size"] = "sixteen"


@pytest.mark.parametrize("how", ["version_text", "group_in_inputs", "outputs_dataset",
                                 "metric_not_scalar", "latency_name", "batch_size_text"])
def test_malformed_goldens_are_refused_cleanly(cli, sums, golden: Path, how: str) -> None:
    _edit(golden, how)
    for args in (("verify", golden), ("show", golden),
                 ("compare", sums["base"], "--golden", golden, "--no-latency")):
        res = cli(*args)
        if how == "batch_size_text" and args[0] == "show":
            continue  # show describes what is there; verify and compare refuse it
        assert_usage_error(res)


def test_paths_with_brackets_print_verbatim(cli, sums, tmp_path: Path) -> None:
    golden = tmp_path / "[/tmp]" / "[v2]g.h5"
    rec = cli("record", sums["base"], "--golden", golden, "--num-samples", "4", "--no-latency")
    assert rec.code == 0, rec
    assert "[v2]g.h5" in rec.stdout
    assert "[v2]g.h5" in cli("show", golden).stdout
    res = cli("compare", sums["base"], "--golden", golden, "--no-latency")
    assert res.code == 0 and "[v2]g.h5" in res.stdout


def test_non_utf8_pyproject_is_not_our_input(cli, sums, golden: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"name = '\xff\xfe'\n")
    monkeypatch.chdir(tmp_path)
    assert cli("compare", sums["base"], "--golden", golden, "--no-latency").code == 0


def test_bad_thread_setting_and_ignored_baseline(cli, sums, golden: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOT_TOOL_THREADS", "lots")
    assert_usage_error(cli("compare", sums["base"], "--golden", golden, "--no-latency"),
                       "SNAPSHOT_TOOL_THREADS")
    monkeypatch.delenv("SNAPSHOT_TOOL_THREADS")
    res = cli("compare", sums["base"], "--golden", golden, "--no-latency", "--baseline-model",
              sums["base"], "--report-json", tmp_path / "r.json")
    assert res.code == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert any("--baseline-model" in w for w in doc["warnings"])
