"""Two processes writing one golden at once: ``compare`` runs of one golden each writing
``G.obtained.h5``, and ``record`` runs of one golden. Every file left is a whole golden
(temp file of its own, atomic rename); an obtained golden names the run that wrote it, as
that run's report does, so a report can be matched with the file; a record without
--force never replaces a golden another process wrote meanwhile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from snapshot_tool.compare import CompareOptions, _compare_whole, obtained_state
from snapshot_tool.errors import GoldenError
from snapshot_tool.progress import no_progress


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CI", None)
    return env


def _start(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "snapshot_tool", *map(str, args)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _obtained_run(path: Path) -> str:
    with h5py.File(path) as f:
        return str(f.attrs["obtained_run"])


@pytest.fixture()
def golden(dense_golden: Path) -> Path:
    return dense_golden


@pytest.fixture(scope="module")
def dense_other(models_dir: Path) -> Path:
    from tests.fixtures.models import save_dense

    return save_dense(models_dir / "dense_other", scale=3.0)


@pytest.mark.slow  # two TensorFlow processes at once: ~30 s on the shared 2-core machine
def test_concurrent_compares_leave_one_whole_obtained_golden_naming_its_run(
        cli, golden: Path, dense_changed: Path, dense_other: Path, tmp_path: Path) -> None:
    reports = [tmp_path / "a.json", tmp_path / "b.json"]
    procs = [_start("compare", model, "--golden", golden, "--no-latency", "--save-obtained",
                    "--report-json", report)
             for model, report in zip((dense_changed, dense_other), reports, strict=True)]
    for proc in procs:
        code, err = _finish(proc)
        assert code == 1, err
    obtained = tmp_path / "g.obtained.h5"
    assert cli("verify", obtained).code == 0  # whole, whichever run wrote it last
    docs = [json.loads(r.read_text()) for r in reports]
    runs = [d["obtained_run"] for d in docs]
    assert runs[0] != runs[1] and all(d["obtained"] == str(obtained) for d in docs)
    kept = _obtained_run(obtained)
    assert kept in runs, (kept, runs)
    with h5py.File(obtained) as f:  # the file is the candidate of the run it names
        assert f.attrs["model_path"] == str((dense_changed, dense_other)[runs.index(kept)])
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    # accept shows the candidate and run of the file it would take.
    res = cli("accept", obtained, "--dry-run")
    assert res.code == 0 and kept in res.stdout.replace("\n", " "), res.stdout


def test_a_compare_that_replaces_a_newer_obtained_golden_says_so(
        cli, golden: Path, dense_changed: Path, dense_other: Path) -> None:
    """The later of two overlapping compares keeps its obtained golden and warns that the
    other run's report now names a file holding this run's candidate."""
    before = obtained_state(golden)  # none yet
    first = _compare_whole(dense_changed, golden, CompareOptions(
        latency=False, save_obtained="always"), no_progress)
    assert first.obtained_run and first.warnings == (), first.warnings
    second = _compare_whole(dense_other, golden, CompareOptions(
        latency=False, save_obtained="always"), no_progress, before=before)
    assert second.obtained == first.obtained and second.obtained_run != first.obtained_run
    warned = [w for w in second.warnings if "written by another compare" in w]
    assert warned and first.obtained_run in warned[0], second.warnings
    assert _obtained_run(Path(second.obtained)) == second.obtained_run
    # A compare that started after the obtained golden was written replaces it quietly.
    third = _compare_whole(dense_changed, golden, CompareOptions(
        latency=False, save_obtained="always"), no_progress)
    assert not any("written by another compare" in w for w in third.warnings)


def test_an_obtained_golden_dated_ahead_of_this_clock_is_replaced_quietly(
        golden: Path, dense_changed: Path) -> None:
    """A goldens folder on a file server whose clock runs ahead: the earlier run's obtained
    golden carries a modification time later than this run's start. The file is the one
    found at the start, so replacing it is no overlap."""
    options = CompareOptions(latency=False, save_obtained="always")
    first = _compare_whole(dense_changed, golden, options, no_progress)
    ahead = time.time() + 3600
    os.utime(first.obtained, (ahead, ahead))
    again = _compare_whole(dense_changed, golden, options, no_progress)
    assert not any("written by another compare" in w for w in again.warnings), again.warnings


@pytest.mark.slow  # two TensorFlow processes at once
def test_concurrent_records_replace_the_golden_whole(cli, dense_model: Path,
                                                     dense_changed: Path,
                                                     tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    models = (dense_model, dense_changed)
    procs = [_start("record", m, "--golden", golden, "--no-latency", "--force") for m in models]
    for proc in procs:
        code, err = _finish(proc)
        assert code == 0, err
    assert cli("verify", golden).code == 0
    with h5py.File(golden) as f:
        assert f.attrs["model_path"] in {str(m) for m in models}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]


def test_record_without_force_keeps_a_golden_written_meanwhile(
        dense_model: Path, dense_changed: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The race a late "does it exist?" check leaves open: another record puts its golden
    in place just after this one's last check. This one must fail and keep that golden."""
    from snapshot_tool.golden import io
    from snapshot_tool.record import record

    golden = tmp_path / "g.h5"
    real_check = io.check_writable
    checks = []

    def check_then_lose_the_race(path: Path, force: bool) -> None:
        real_check(path, force)
        checks.append(path)
        if len(checks) == 2:  # the late check, just before the rename: the other wins now
            monkeypatch.setattr(io, "check_writable", real_check)
            record(dense_changed, golden, latency=False, num_samples=8)

    monkeypatch.setattr(io, "check_writable", check_then_lose_the_race)
    with pytest.raises(GoldenError, match="written by another process"):
        record(dense_model, golden, latency=False, num_samples=8)
    with h5py.File(golden) as f:
        assert f.attrs["model_path"] == str(dense_changed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]
