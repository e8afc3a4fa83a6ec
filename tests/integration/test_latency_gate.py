"""Latency baselines in the golden and both gate modes, through the CLI."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from snapshot_tool.golden.schema import CALIBRATION_CPU, CPU_SAMPLES, SAMPLES, LatencyRecord
from tests.fixtures.models import save_matmul_chain


class _SteadyClock:
    """Stands in for ``time`` in snapshot_tool.latency.measure (every timed call, warm-up and
    calibration reads it): each reading advances 10 ms, so every call "takes" 10 ms whatever
    the machine's load. The models still run for real; only their timings are fixed, so
    the latency plumbing (record, show, stored compare, self-check) is checked with exact
    verdicts. Real timings of this ~0.3 ms call under a load average of 10-17 on 2 cores
    are mostly the machine's queue, and the verdicts these tests asserted then flickered.
    """

    STEP_NS = 10_000_000

    def __init__(self) -> None:
        self.ns = 0
        self.cpu_ns = 0

    def perf_counter_ns(self) -> int:
        self.ns += self.STEP_NS
        return self.ns

    def process_time_ns(self) -> int:
        # Its own reading, so each timed call also "takes" one step of CPU time.
        self.cpu_ns += self.STEP_NS
        return self.cpu_ns


@pytest.fixture
def steady_clock(monkeypatch: pytest.MonkeyPatch) -> _SteadyClock:
    from snapshot_tool.latency import measure as measure_mod

    clock = _SteadyClock()
    monkeypatch.setattr(measure_mod, "time", clock)
    return clock


class _CpuClock:
    """``time`` for snapshot_tool.latency.measure reading this process's CPU time: other
    processes on a loaded machine preempt the models without advancing it, so the gate
    sees the models' work, not the machine's queue. (Wall-clock ABBA rounds under a load
    average of 10-17 on 2 cores were often too contaminated for a verdict either way.)"""

    @staticmethod
    def perf_counter_ns() -> int:
        return time.process_time_ns()

    @staticmethod
    def process_time_ns() -> int:
        return time.process_time_ns()


@pytest.fixture
def cpu_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from snapshot_tool.latency import measure as measure_mod

    monkeypatch.setattr(measure_mod, "time", _CpuClock())


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chains")
    return {"base": save_matmul_chain(root / "base", depth=4),
            # ~6x the base's CPU time at batch 1, ~10x at batch 8 (see save_matmul_chain)
            "slow": save_matmul_chain(root / "slow", depth=40, width=512)}


def test_record_stores_latency_baselines(cli, chains, tmp_path: Path,
                                        steady_clock: _SteadyClock) -> None:
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
            assert ds.attrs["p50"] == pytest.approx(_SteadyClock.STEP_NS)  # the clock's call
        env = json.loads(f.attrs["environment"])
        for key in ("cpu_model", "logical_cpus", "tensorflow", "threads"):
            assert key in env
    shown = cli("show", golden)
    assert "latency" in shown.stdout and "p50 ms" in shown.stdout
    # Stored mode on the same machine. The steady clock makes record and compare time the
    # same 10 ms per call, so the verdict is exactly a pass; the 10x limit checks that the
    # config reaches the gate. The gate's error rates under real load are measured by
    # benchmarks/latency_gate.py, not asserted by a timed test.
    cfg = tmp_path / "wide.toml"
    cfg.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", chains["base"], "--golden", golden, "--report-json", tmp_path / "r.json",
              "--config", cfg)
    assert res.code == 0, res
    lat = json.loads((tmp_path / "r.json").read_text())["latency"]
    assert lat["mode"] == "stored" and lat["verdict"] == "pass", lat
    assert {b["batch_size"] for b in lat["batches"]} == {1, 8}
    for b in lat["batches"]:
        for key in ("ratio", "ci_low", "ci_high", "p_value", "limit"):
            assert key in b
        assert b["limit"] == pytest.approx(10.0)
        assert b["ratio"] == pytest.approx(1.0)


def test_side_by_side_gate_catches_a_slowdown(cli, chains, tmp_path: Path,
                                              cpu_clock: None) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "16",
               "--batch-size", "8", "--no-latency").code == 0
    # Identical outputs, 6-10x the time: outputs pass, latency fails at every batch size.
    # Timed in CPU time (cpu_clock), which load does not inflate. A run the gate calls
    # inconclusive at some batch size (noise it rightly refuses to judge) is repeated, up to
    # 3 runs; a pass at any batch size is the gate missing a 6x slowdown and fails at once,
    # and so does never getting a verdict.
    for _ in range(3):
        res = cli("compare", chains["slow"], "--golden", golden, "--baseline-model",
                  chains["base"], "--report-json", tmp_path / "slow.json")
        doc = json.loads((tmp_path / "slow.json").read_text())
        assert all(o["passed"] for o in doc["outputs"])
        lat = doc["latency"]
        assert lat["mode"] == "side_by_side"
        verdicts = [b["verdict"] for b in lat["batches"]]
        assert "pass" not in verdicts, f"the gate passed a 6x slowdown: {lat}"
        assert res.code == (1 if "fail" in verdicts else 0), res  # only a fail fails
        if set(verdicts) == {"fail"}:
            break
    else:
        pytest.fail(f"3 runs of a 6x slowdown never failed at every batch size: {lat}")
    assert lat["verdict"] == "fail"
    assert all(b["ci_low"] > b["limit"] for b in lat["batches"])
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


def test_multi_signature_latency_names_its_signature(cli, two_sig_model: Path, tmp_path: Path,
                                                     steady_clock: _SteadyClock) -> None:
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


def test_self_check_reports_the_machine_factor(cli, chains, tmp_path: Path,
                                               steady_clock: _SteadyClock) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "8",
               "--batch-size", "8", "--latency-batch-sizes", "1").code == 0
    wide = tmp_path / "wide.toml"  # mechanics only: the numbers are the benchmark's job
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", chains["slow"], "--golden", golden, "--self-check", "--config", wide,
              "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    (b,) = json.loads((tmp_path / "r.json").read_text())["latency"]["batches"]
    # Steady clock: every call of either model "takes" the same time, now as at record.
    assert b["machine_factor"] == pytest.approx(1.0)
    assert b["calibration_ratio"] == pytest.approx(1.0)
    assert b["uncorrected_ratio"] == pytest.approx(1.0) and b["uncorrected_verdict"] == "pass"
    assert b["rounds"] >= 30  # ABBA rounds against the golden's own model
    assert "self-check" in b["note"] and "vs the stored samples" in b["note"]


def test_self_check_is_the_default_while_the_golden_model_is_on_disk(
        cli, chains, tmp_path: Path, steady_clock: _SteadyClock) -> None:
    """Without --self-check or --no-self-check, stored mode re-times the golden's own model
    whenever it is still on disk, unchanged, and says so in every report; the plain
    stored gate's figures stay beside it. --no-self-check judges on the stored samples."""
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "8",
               "--batch-size", "8", "--latency-batch-sizes", "1").code == 0
    wide = tmp_path / "wide.toml"  # mechanics only: the numbers are the benchmark's job
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")

    def batch(*flags: str) -> tuple[dict[str, object], str, list[str]]:
        report, md = tmp_path / "r.json", tmp_path / "r.md"
        res = cli("compare", chains["slow"], "--golden", golden, "--config", wide,
                  "--report-json", report, "--markdown", md, *flags)
        assert res.code == 0, res
        doc = json.loads(report.read_text())
        (b,) = doc["latency"]["batches"]
        return b, md.read_text(), doc["warnings"]

    b, md, warnings = batch()
    assert b["self_checked"] is True and b["machine_factor"] == pytest.approx(1.0)
    assert b["uncorrected_verdict"] == "pass" and b["rounds"] >= 30
    assert "self-check (wall)" in md and "plain stored 1.000" in md
    assert not any("self-check" in w for w in warnings)
    b, md, warnings = batch("--no-self-check")
    assert b["self_checked"] is False and b["machine_factor"] is None and b["basis"] == "cpu"
    assert "self-check (wall" not in md and not any("self-check" in w for w in warnings)


def test_self_check_finds_a_relative_model_path_from_another_folder(
        cli, chains, tmp_path: Path, steady_clock: _SteadyClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """record ran at the project root with a relative path (`record models/base --golden
    goldens/g.h5`); compare runs from another folder (a CI job's, a Makefile's). The
    golden's model is found through the golden's folders, not reported gone."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(chains["base"], project / "models" / "base")
    (project / "goldens").mkdir()
    monkeypatch.chdir(project)
    assert cli("record", "models/base", "--golden", "goldens/g.h5", "--num-samples", "8",
               "--batch-size", "8", "--latency-batch-sizes", "1").code == 0
    elsewhere = tmp_path / "ci"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    wide = tmp_path / "wide.toml"  # mechanics only: the numbers are the benchmark's job
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", chains["slow"], "--golden", project / "goldens" / "g.h5",
              "--config", wide, "--report-json", tmp_path / "r.json")
    assert res.code == 0, res
    doc = json.loads((tmp_path / "r.json").read_text())
    (b,) = doc["latency"]["batches"]
    assert b["self_checked"] is True, doc["warnings"]
    assert not any("self-check" in w for w in doc["warnings"])


def test_stored_compare_times_every_batch_size_before_the_self_check(
        cli, chains, tmp_path: Path, steady_clock: _SteadyClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidate's plain measurements run back to back, before the golden's model is
    loaded or timed, as record timed the golden's model: the golden's model loaded beside
    it and ABBA rounds at batch 1 must not precede the plain measurement at batch 8."""
    import importlib

    from snapshot_tool.latency import gate as gate_mod
    from snapshot_tool.latency import measure as measure_mod

    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "8",
               "--batch-size", "8", "--latency-batch-sizes", "1,8").code == 0
    # The module, not the function snapshot_tool.compare that the package exports.
    compare_mod = importlib.import_module("snapshot_tool.compare")
    events: list[str] = []
    real_measure, real_sbs = measure_mod.measure, gate_mod.gate_side_by_side
    real_load = compare_mod.load_model

    def spy_measure(fn: object, batch_size: int, **kw: object) -> object:
        events.append(f"plain {batch_size}")
        return real_measure(fn, batch_size, **kw)  # type: ignore[arg-type]

    def spy_sbs(a: object, b: object, batch_size: int, *args: object, **kw: object) -> object:
        events.append(f"self-check {batch_size}")
        return real_sbs(a, b, batch_size, *args, **kw)  # type: ignore[arg-type]

    def spy_load(path: object, **kw: object) -> object:
        events.append(f"load {Path(str(path)).name}")
        return real_load(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(measure_mod, "measure", spy_measure)
    monkeypatch.setattr(gate_mod, "gate_side_by_side", spy_sbs)
    monkeypatch.setattr(compare_mod, "load_model", spy_load)
    wide = tmp_path / "wide.toml"
    wide.write_text("[latency]\nstored_max_drift = 9.0\n")
    res = cli("compare", chains["slow"], "--golden", golden, "--config", wide)
    assert res.code == 0, res
    timed = events[events.index("plain 1"):]
    assert timed == ["plain 1", "plain 8", "load base", "self-check 1", "self-check 8"], events


def test_self_check_without_the_golden_model_falls_back(cli, tmp_path: Path,
                                                        steady_clock: _SteadyClock) -> None:
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
    # Not asked for: the default self-check that could not run says what the plain verdict
    # then carries.
    res = cli("compare", keep, "--golden", golden, "--config", wide,
              "--report-json", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert any("without a self-check" in w and "no longer on disk" in w
               and "calibration_cpu_ratio" in w for w in doc["warnings"]), doc["warnings"]
    assert not any("--self-check skipped" in w for w in doc["warnings"])


def test_self_check_refuses_a_changed_golden_model(cli, tmp_path: Path,
                                                  steady_clock: _SteadyClock) -> None:
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


def _rewritten(golden: Path, out: Path, *, keep_cpu: bool, wall_scale: float) -> Path:
    """``golden`` rewritten whole (as accept rewrites one) with its wall-time samples times
    ``wall_scale``: a record session on a machine that was that much less loaded. Without
    ``keep_cpu`` it is the golden an older snapshot-tool wrote: no CPU samples, no CPU
    calibration."""
    from snapshot_tool.golden.io import read_golden, write_golden

    g = read_golden(golden)

    def older(rec: LatencyRecord) -> LatencyRecord:
        attrs = {k: v for k, v in rec.attrs.items() if keep_cpu or k != CALIBRATION_CPU}
        wall = (rec.samples_ns * wall_scale).astype(np.int64)
        return replace(rec, samples_ns=wall, attrs=attrs,
                       cpu_ns=rec.cpu_ns if keep_cpu else None)

    sigs = {name: replace(sg, latency={bs: older(r) for bs, r in sg.latency.items()})
            for name, sg in g.signatures.items()}
    return write_golden(out, g.attrs, sigs)


def test_golden_stores_cpu_time_and_an_old_golden_still_gates_on_wall_time(
        cli, chains, tmp_path: Path, steady_clock: _SteadyClock) -> None:
    """The golden keeps each timed call's process CPU time beside its wall time; the
    stored gate judges on CPU time, and a golden without CPU samples (an older
    snapshot-tool's) is judged on wall time as before, saying so. On the steady clock every
    call takes one 10 ms step of each clock, so the record session's wall samples are
    halved by hand to stand for a quieter machine at record: the candidate's wall time is
    then 2x the golden's while its CPU time is the same."""
    golden = tmp_path / "g.h5"
    assert cli("record", chains["base"], "--golden", golden, "--num-samples", "16",
               "--batch-size", "8", "--latency-batch-sizes", "1,8").code == 0
    with h5py.File(golden) as f:
        for bs in (1, 8):
            wall = f[f"latency/batch_{bs}/{SAMPLES}"]
            cpu = f[f"latency/batch_{bs}/{CPU_SAMPLES}"]
            assert cpu.dtype == np.int64 and cpu.shape == wall.shape
            assert np.all(cpu[()] == _SteadyClock.STEP_NS)
            assert wall.attrs[CALIBRATION_CPU] > 0 and "sha256" in cpu.attrs
    assert cli("verify", golden).code == 0

    def stored(g: Path) -> dict[int, dict[str, object]]:
        report = tmp_path / f"{g.stem}.json"
        # --no-self-check: the plain stored gate is what this checks (the golden's model is
        # on disk, so by default its self-check would judge instead).
        res = cli("compare", chains["base"], "--golden", g, "--report-json", report,
                  "--no-self-check")
        doc = json.loads(report.read_text())
        assert res.code == (0 if doc["passed"] else 1), res
        return {b["batch_size"]: b for b in doc["latency"]["batches"]}

    for b in stored(_rewritten(golden, tmp_path / "quiet.h5", keep_cpu=True,
                               wall_scale=0.5)).values():
        assert b["basis"] == "cpu" and b["verdict"] == "pass", b
        assert b["cpu_ratio"] == pytest.approx(1.0) and b["ratio"] == pytest.approx(1.0)
        assert b["wall_ratio"] == pytest.approx(2.0)  # reported, not judged
        assert b["calibration_cpu_ratio"] is not None
    old = _rewritten(golden, tmp_path / "old.h5", keep_cpu=False, wall_scale=0.5)
    assert cli("verify", old).code == 0
    for b in stored(old).values():
        # Still a real gate (not advisory): 2x the wall time fails the 1.25x limit.
        assert b["basis"] == "wall" and b["verdict"] == "fail", b
        assert b["ratio"] == pytest.approx(2.0) and b["cpu_ratio"] is None
        assert "no CPU-time samples" in str(b["note"])
