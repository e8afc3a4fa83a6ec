"""The record/compare loop end to end through the real CLI on models the fixtures build."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from tests.fixtures.models import save_float16, save_two_signatures


def test_unchanged_model_passes(cli, dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    rec = cli("record", dense_model, "--golden", golden, "--no-latency")
    assert rec.code == 0, rec
    assert "recorded" in rec.stdout and "2 output(s)" in rec.stdout
    res = cli("compare", dense_model, "--golden", golden, "--no-latency",
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["passed"] is True
    assert {o["name"] for o in doc["outputs"]} == {"logits", "score"}
    for o in doc["outputs"]:
        # Exactly equal on purpose: the same model, batch sizes and machine run the same
        # kernels for record and compare; any difference would be nondeterminism.
        assert o["status"] == "ok" and o["max_abs_diff"] == 0.0
        for key in ("max_rel_diff", "mismatch_count", "mismatch_fraction", "atol", "rtol",
                    "required_atol"):
            assert key in o


def test_one_changed_weight_fails_naming_the_output(cli, dense_model: Path, dense_changed: Path,
                                                    tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency",
              "--report-json", tmp_path / "r.json")
    assert res.code == 1, res
    doc = json.loads((tmp_path / "r.json").read_text())
    by_name = {o["name"]: o for o in doc["outputs"]}
    # kernel[1, 2] changed: only logits column 2 (and the score summing it) move.
    assert by_name["logits"]["status"] == "mismatch"
    assert by_name["logits"]["mismatch_fraction"] <= 1 / 3 + 1e-9
    assert by_name["score"]["status"] == "mismatch"
    assert "logits" in res.stdout and "FAIL" in res.stdout
    # The suggested atol really accepts the change.
    atol = by_name["logits"]["required_atol"]
    cfg = tmp_path / "snapshot.toml"
    cfg.write_text(f'[outputs."*"]\natol = {atol * 1.0001 + 1e-6}\n')
    ok = cli("compare", dense_changed, "--golden", golden, "--no-latency", "--config", cfg)
    assert ok.code == 0, ok


def test_float16_within_dtype_tolerance_passes(cli, models_dir: Path, tmp_path: Path) -> None:
    base = save_float16(tmp_path / "half")
    nudged = save_float16(tmp_path / "half_nudged", ulps=1)
    far = save_float16(tmp_path / "half_far", ulps=20)
    golden = tmp_path / "g.h5"
    assert cli("record", base, "--golden", golden, "--no-latency").code == 0
    with h5py.File(golden) as f:
        assert f["outputs/y"].dtype == np.float16
        assert f["outputs/y"].attrs["dtype"] == "float16"
    res = cli("compare", nudged, "--golden", golden, "--no-latency",
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["outputs"][0]["rtol"] == 1e-3  # float16's own default, not float32's
    assert doc["outputs"][0]["max_abs_diff"] > 0  # it really moved
    assert cli("compare", far, "--golden", golden, "--no-latency").code == 1
    # The same one-ulp move judged by float32's defaults would fail: the dtype matters.
    strict = tmp_path / "strict.toml"
    strict.write_text("[defaults]\nrtol = 1.3e-6\natol = 1e-5\n")
    assert cli("compare", nudged, "--golden", golden, "--no-latency",
               "--config", strict).code == 1


def test_two_signatures_record_and_compare_each(cli, two_sig_model: Path,
                                                tmp_path: Path) -> None:
    moved = save_two_signatures(tmp_path / "moved", offset=0.5)
    for sig, outputs in (("serving_default", {"projection", "bucket", "positive"}),
                         ("embed", {"embedding"})):
        golden = tmp_path / f"{sig}.h5"
        rec = cli("record", two_sig_model, "--golden", golden, "--signature", sig,
                  "--no-latency", "--num-samples", "20", "--batch-size", "8")
        assert rec.code == 0, rec
        shown = json.loads(cli("show", golden, "--json").stdout)
        assert shown["attrs"]["signature"] == sig
        assert {o["name"] for o in shown["signatures"][sig]["outputs"]} == outputs
        same = cli("compare", two_sig_model, "--golden", golden, "--no-latency",
                   "--report-json", tmp_path / "same.json")
        assert same.code == 0, same
        diff = cli("compare", moved, "--golden", golden, "--no-latency",
                   "--report-json", tmp_path / "moved.json")
        assert diff.code == 1, diff
        doc = json.loads((tmp_path / "moved.json").read_text())
        failing = {o["name"] for o in doc["outputs"] if not o["passed"]}
        if sig == "embed":
            assert failing == {"embedding"}
        else:
            # ids-derived bucket is integer-exact and independent of the offset.
            assert "projection" in failing and "bucket" not in failing


def test_inputs_file_is_replayed_exactly(cli, dense_model: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(5).normal(size=(10, 4)).astype(np.float64)
    np.savez(tmp_path / "in.npz", whatever=x)  # single input: the only array is taken
    golden = tmp_path / "g.h5"
    res = cli("record", dense_model, "--golden", golden, "--inputs", tmp_path / "in.npz",
              "--batch-size", "3", "--no-latency")
    assert res.code == 0, res
    with h5py.File(golden) as f:
        env = json.loads(f.attrs["environment"])  # provenance even without latency
        for key in ("python", "numpy", "tensorflow", "h5py", "platform", "cpu_model",
                    "logical_cpus", "threads"):
            assert key in env, key
        assert len(f.attrs["model_digest"]) == 64 and f.attrs["format_version"] == 2
        np.testing.assert_array_equal(f["inputs/features"][()], x.astype(np.float32))
        assert f["outputs/logits"].shape == (10, 3)
        assert f.attrs["batch_size"] == 3
    assert cli("compare", dense_model, "--golden", golden, "--no-latency").code == 0


def test_inspect_lists_signatures(cli, two_sig_model: Path) -> None:
    res = cli("inspect", two_sig_model, "--json")
    assert res.code == 0, res
    doc = json.loads(res.stdout)
    assert set(doc["signatures"]) == {"serving_default", "embed"}
    ins = {i["name"]: i for i in doc["signatures"]["serving_default"]["inputs"]}
    assert ins["ids"]["dtype"] == "int32" and ins["dense"]["shape"] == [None, 3]
    human = cli("inspect", two_sig_model)
    assert "embed" in human.stdout and "dense: float32[?, 3]" in human.stdout


def test_verify_and_show(cli, dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    v = cli("verify", golden)
    assert v.code == 0 and "intact" in v.stdout
    s = cli("show", golden)
    assert s.code == 0 and "logits" in s.stdout and "features" in s.stdout


def test_signature_all_records_every_signature_in_one_golden(cli, two_sig_model: Path,
                                                             tmp_path: Path) -> None:
    golden = tmp_path / "all.h5"
    rec = cli("record", two_sig_model, "--golden", golden, "--signature", "all",
              "--no-latency", "--num-samples", "12")
    assert rec.code == 0, rec
    with h5py.File(golden) as f:
        assert f.attrs["signature"] == "all"
        assert set(f["signatures"]) == {"serving_default", "embed"}
        assert "embedding" in f["signatures/embed/outputs"]
    assert cli("verify", golden).code == 0
    same = cli("compare", two_sig_model, "--golden", golden, "--no-latency",
               "--report-json", tmp_path / "same.json")
    assert same.code == 0, same
    doc = json.loads((tmp_path / "same.json").read_text())
    assert set(doc["signatures"]) == {"serving_default", "embed"}
    assert {(o["signature"], o["name"]) for o in doc["outputs"]} == {
        ("serving_default", "projection"), ("serving_default", "bucket"),
        ("serving_default", "positive"), ("embed", "embedding")}
    moved = save_two_signatures(tmp_path / "moved", offset=0.5)
    res = cli("compare", moved, "--golden", golden, "--no-latency",
              "--report-json", tmp_path / "moved.json")
    assert res.code == 1
    # every report names an output of a multi-signature golden "signature/output"
    assert "embed/embedding" in res.stdout and "serving_default/projection" in res.stdout
    doc = json.loads((tmp_path / "moved.json").read_text())
    failing = {(o["signature"], o["name"]) for o in doc["outputs"] if not o["passed"]}
    assert ("embed", "embedding") in failing and ("serving_default", "projection") in failing
    # one signature of a multi-signature golden can be checked alone
    only = cli("compare", moved, "--golden", golden, "--no-latency", "--signature", "embed",
               "--report-json", tmp_path / "only.json")
    assert only.code == 1
    assert {o["signature"] for o in json.loads((tmp_path / "only.json").read_text())[
        "outputs"]} == {"embed"}


def test_config_names_outputs_per_signature_and_flags_typos(cli, two_sig_model: Path,
                                                            tmp_path: Path) -> None:
    golden = tmp_path / "all.h5"
    assert cli("record", two_sig_model, "--golden", golden, "--signature", "all",
               "--no-latency", "--num-samples", "12").code == 0
    moved = save_two_signatures(tmp_path / "moved", offset=0.5)
    cfg = tmp_path / "snapshot.toml"
    # Loosen only embed's output and serving_default's projection, by qualified name.
    cfg.write_text('[outputs."embed/embedding"]\natol = 10.0\n'
                   '[outputs."serving_default/projection"]\natol = 10.0\n'
                   '[outputs."serving_default/positive"]\nmax_mismatch_fraction = 1.0\n'
                   '[outputs."logitz"]\natol = 1.0\n')
    res = cli("compare", moved, "--golden", golden, "--no-latency", "--config", cfg,
              "--report-json", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert all(o["passed"] for o in doc["outputs"]), doc["outputs"]
    assert res.code == 0, res
    assert any("'logitz'" in w and "matches no output" in w for w in doc["warnings"])


def test_failure_hint_speaks_of_the_config_in_use(cli, dense_model: Path, dense_changed: Path,
                                                  tmp_path: Path, monkeypatch) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    (tmp_path / "pyproject.toml").write_text("[tool.snapshot-tool.defaults]\nrtol = 1e-6\n")
    monkeypatch.chdir(tmp_path)
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency")
    assert res.code == 1
    assert "accept it in pyproject.toml" in res.stdout
    assert '[tool.snapshot-tool.outputs."logits"]' in res.stdout
