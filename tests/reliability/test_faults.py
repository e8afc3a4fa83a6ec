"""Faults lose nothing: a writer killed at any point, a full disk (``RLIMIT_FSIZE``), a golden
path that is a symlink or not a regular file, a long name. After each, the old golden is
byte-identical, no temp file is left once the next run is over, and the user gets exit 2
with one ``error:`` line."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from snapshot_tool.atomic import temp_path
from tests.reliability.harness import run_cli

# A writer that builds a golden big enough (~24 MB of incompressible float32) that the
# write takes a while, so kills land inside it. No TensorFlow: the write is what is tested.
# With a fourth argument (a marker path) it stops at the rename that would publish the
# golden: it creates the marker, then waits to be killed with its temp file complete. That
# kill lands inside the write on any machine, however fast or loaded.
WRITER = textwrap.dedent("""\
    import sys
    if len(sys.argv) > 4:
        import os, time
        def _hold(src, dst):
            open(sys.argv[4], "w").close()
            time.sleep(600)
        os.replace = _hold
    import numpy as np
    from snapshot_tool.golden.io import write_golden
    from snapshot_tool.golden.schema import SignatureGolden
    rng = np.random.default_rng(int(sys.argv[2]))
    x = rng.normal(size=(int(sys.argv[3]), 64)).astype(np.float32)
    sg = SignatureGolden("serving_default", {"x": x}, {"y": x * 2.0})
    write_golden(sys.argv[1], {"signature": "serving_default", "seed": 0}, {"serving_default": sg},
                 force=True)
""")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _write_small(path: Path, seed: int = 0) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(path), str(seed), "64"], check=True,
                   env=_env(), timeout=120)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _wait_for(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"the writer never {what}")
        time.sleep(0.002)


def _kill_during_write(golden: Path, rng: random.Random, rows: int, *, hold: bool) -> str:
    """Start a writer and kill -9 it: held at its rename (``hold``), or at a random point
    (half of those once its temp file exists). Says whether the golden was "replaced" or
    "kept", judged by the golden's inode after the writer is dead, not by when the kill
    was sent: a writer can finish between any check and the kill, and the rename is the
    only moment that matters."""
    inode = golden.stat().st_ino
    marker = golden.parent / "at_rename.marker"
    extra = [str(marker)] if hold else []
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(golden), "1", str(rows), *extra],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if hold:
            _wait_for("reached its rename", marker.exists, proc)
            assert proc.poll() is None, "the held writer exited"
        else:
            if rng.random() < 0.5:
                _wait_for("created its temp file", lambda: bool(_temps(golden.parent)), proc)
            time.sleep(rng.uniform(0.0, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        marker.unlink(missing_ok=True)
    return "replaced" if golden.stat().st_ino != inode else "kept"


def _kill_trials(tmp_path: Path, trials: int, seed: int) -> None:
    golden = tmp_path / "g.h5"
    _write_small(golden)
    rng = random.Random(seed)
    kept = 0
    for trial in range(trials):
        old = golden.read_bytes()
        hold = trial % 4 == 0
        outcome = _kill_during_write(golden, rng, rows=40_000, hold=hold)
        if outcome == "kept":
            kept += 1
            assert golden.read_bytes() == old, "a killed writer changed the old golden"
        else:
            # Renamed before the kill: the new golden must be whole.
            assert run_cli("verify", golden).code == 0, "a renamed golden is incomplete"
        if hold:
            assert outcome == "kept", "a writer held before its rename replaced the golden"
            assert _temps(tmp_path), "the writer held at its rename left no temp file"
        # The next run cleans what the dead writer left behind.
        _write_small(golden, seed=2)
        assert _temps(tmp_path) == [], "a dead writer's temp file survived the next run"
        assert run_cli("verify", golden).code == 0
    # The held trials alone are a quarter; the random ones add more on a slow machine.
    assert kept >= trials // 4, f"only {kept} of {trials} kills landed before the rename"


def test_kill_9_during_golden_write(tmp_path: Path) -> None:
    _kill_trials(tmp_path, trials=20, seed=11)


def _record_cmd(model: Path, golden: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snapshot_tool", "record", str(model), "--golden",
            str(golden), "--force", "--no-latency", *extra]


@pytest.mark.slow
def test_kill_9_during_record(dense_model: Path, tmp_path: Path) -> None:
    """The real CLI, killed at random points from start-up to the end of its write."""
    golden = tmp_path / "g.h5"
    assert run_cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    old = golden.read_bytes()
    rng = random.Random(7)
    start = time.monotonic()
    subprocess.run(_record_cmd(dense_model, tmp_path / "timing.h5", "--num-samples", "40000"),
                   env=_env(), check=True, capture_output=True, timeout=600)
    duration = time.monotonic() - start
    (tmp_path / "timing.h5").unlink()
    for _ in range(20):
        proc = subprocess.Popen(_record_cmd(dense_model, golden, "--num-samples", "40000"),
                                env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, duration * 0.98))
        done = proc.poll() is not None
        # Popen.kill skips a child that has already exited (and been reaped by poll):
        # os.kill on its pid raised ProcessLookupError whenever the record finished before
        # the chosen moment, which a faster record or a quieter machine makes common.
        proc.kill()
        proc.wait(timeout=60)
        if not done:
            assert golden.read_bytes() == old
        assert run_cli("record", dense_model, "--golden", golden, "--no-latency",
                       "--force").code == 0
        assert _temps(tmp_path) == []
        old = golden.read_bytes()


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _run_limited(cmd: list[str], limit: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: _limit_file_size(limit))


def _assert_one_error(res: subprocess.CompletedProcess[str], *fragments: str) -> None:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr[-2000:]
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


def test_disk_full_while_writing_golden(tmp_path: Path) -> None:
    """The golden writer under RLIMIT_FSIZE: the write fails (EFBIG), nothing is lost."""
    golden = tmp_path / "g.h5"
    _write_small(golden)
    old = golden.read_bytes()
    res = _run_limited([sys.executable, "-c", _cli_wrapped(WRITER), str(golden), "3", "20000"],
                       limit=len(old) + 4096)
    _assert_one_error(res, "g.h5")
    assert golden.read_bytes() == old
    assert _temps(tmp_path) == []


def _cli_wrapped(code: str) -> str:
    """``code`` run under the CLI's error handling, so failures print as the CLI's do."""
    return ("import sys\nfrom snapshot_tool.cli import user_errors\nimport typer\n"
            "try:\n    with user_errors():\n"
            + textwrap.indent(code, "        ")
            + "\nexcept typer.Exit as e:\n    sys.exit(e.exit_code)\n")


@pytest.mark.slow  # a fresh interpreter importing TensorFlow: ~20 s on a busy machine
def test_disk_full_during_record(dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert run_cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    old = golden.read_bytes()
    res = _run_limited(_record_cmd(dense_model, golden, "--num-samples", "20000"),
                       limit=len(old) + 4096)
    _assert_one_error(res)
    assert golden.read_bytes() == old
    assert _temps(tmp_path) == []


def test_disk_full_while_writing_a_report(tmp_path: Path) -> None:
    """The CLI's report writer under RLIMIT_FSIZE: exit 2, old report intact, no temp."""
    report = tmp_path / "report.json"
    report.write_text("{}\n")
    code = ("import sys\nfrom pathlib import Path\nfrom snapshot_tool.cli import _write_text\n"
            "_write_text(Path(sys.argv[1]), 'x' * 100000)\n")
    res = _run_limited([sys.executable, "-c", _cli_wrapped(code), str(report)], limit=4096)
    _assert_one_error(res, "report.json")
    assert report.read_text() == "{}\n"
    assert _temps(tmp_path) == []


@pytest.mark.slow  # a fresh interpreter importing TensorFlow: ~20 s on a busy machine
def test_disk_full_while_writing_reports(dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert run_cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    report = tmp_path / "report.json"
    report.write_text("{}\n")
    res = _run_limited([sys.executable, "-m", "snapshot_tool", "compare", str(dense_model),
                        "--golden", str(golden), "--no-latency", "--report-json",
                        str(report)], limit=16)
    _assert_one_error(res, "report.json")
    assert report.read_text() == "{}\n", "a failed report write must leave the old report"
    assert _temps(tmp_path) == []


def test_record_through_symlink_replaces_target(dense_model: Path, tmp_path: Path) -> None:
    real_dir = tmp_path / "store"
    real_dir.mkdir()
    target = real_dir / "real.h5"
    assert run_cli("record", dense_model, "--golden", target, "--no-latency").code == 0
    link = tmp_path / "link.h5"
    link.symlink_to(target)
    res = run_cli("record", dense_model, "--golden", link, "--no-latency", "--force",
                  "--num-samples", "8")
    assert res.code == 0, res
    assert link.is_symlink(), "the link was replaced by a plain file"
    assert run_cli("verify", target).code == 0
    assert run_cli("show", link, "--json").code == 0
    assert _temps(tmp_path) == [] and _temps(real_dir) == []


def test_record_refuses_non_regular_target(dense_model: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.h5"
    link.symlink_to(fifo)
    for path in (fifo, link):
        res = run_cli("record", dense_model, "--golden", path, "--no-latency", "--force")
        assert res.clean_error, res
        assert "not a regular file" in res.stderr
    assert fifo.exists() and not fifo.is_file() and link.is_symlink()


def test_long_golden_name(dense_model: Path, tmp_path: Path) -> None:
    golden = tmp_path / ("g" * 247 + ".h5")  # 250 characters: legal on every common fs
    res = run_cli("record", dense_model, "--golden", golden, "--no-latency")
    assert res.code == 0, res
    assert run_cli("verify", golden).code == 0
    assert _temps(tmp_path) == []


def test_stale_temp_of_live_writer_is_kept(tmp_path: Path) -> None:
    """Only dead writers' temp files are removed: a concurrent writer's is not touched."""
    golden = tmp_path / "g.h5"
    _write_small(golden)
    live = temp_path(golden)  # named as this (live) process's own temp file
    live.write_bytes(b"in progress")
    _write_small(golden, seed=3)
    assert live.exists()


def test_terminated_record_cleans_up_and_says_so(dense_model: Path, tmp_path: Path) -> None:
    """A CI job cancelled or timed out gets SIGTERM (docker stop, a runner's cancel,
    `timeout`): the run removes its temp file, keeps the old golden and ends with one error
    line and exit 143, as Ctrl-C does with 130 (it left its temp file behind before)."""
    golden = tmp_path / "g.h5"
    assert run_cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    old = golden.read_bytes()
    proc = subprocess.Popen(_record_cmd(dense_model, golden, "--num-samples", "3000000"),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    _wait_for("created its temp file", lambda: bool(_temps(tmp_path)), proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, (proc.returncode, stderr[-2000:])
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert lines and "no golden was written or changed" in lines[-1], stderr[-2000:]
    assert "Traceback" not in stderr
    assert golden.read_bytes() == old
    assert _temps(tmp_path) == []
