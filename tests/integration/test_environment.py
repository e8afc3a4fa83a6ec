"""The machine the tool was not written on: a reader that stops early (``| head``), closed
standard streams, a terminal that is not UTF-8, odd ``COLUMNS``, file names that are not
UTF-8, numbers too large for the golden. Exit codes keep their meaning and nothing ends in
a traceback (cases found by an adversarial pass on the environment and the command line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_errors import assert_usage_error

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # the test's own terminal
    env.update(TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _tool(*args: object) -> list[str]:
    return [sys.executable, "-m", "snapshot_tool", *(str(a) for a in args)]


def _run(*args: object, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_tool(*args), capture_output=True, text=True, errors="replace",
                          env=_env(**env), timeout=300)


def _run_closed_reader(*args: object) -> tuple[int, str]:
    """Run with stdout a pipe whose reader is already gone, as ``tool ... | head -1`` once
    head has its line: every write the tool makes fails with EPIPE."""
    proc = subprocess.Popen(_tool(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=_env())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    return proc.wait(timeout=300), err


def test_a_reader_that_stops_early_changes_no_exit_code(dense_golden: Path,
                                                        dense_model: Path) -> None:
    # Exit 1 means "regression found": a passing compare piped into `head` must still say 0
    # (rich and click both turned the broken pipe into exit 1 before).
    for args in (("show", dense_golden), ("show", dense_golden, "--json"),
                 ("verify", dense_golden),
                 ("compare", dense_model, "--golden", dense_golden, "--no-latency")):
        code, err = _run_closed_reader(*args)
        assert (code, err) == (0, ""), (args, code, err)


def test_a_failing_compare_into_a_closed_pipe_still_exits_1(dense_golden: Path,
                                                            dense_changed: Path) -> None:
    code, err = _run_closed_reader("compare", dense_changed, "--golden", dense_golden,
                                   "--no-latency", "--no-save-obtained")
    assert code == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err


def _run_sh(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script, "sh", *_tool(*args)], capture_output=True,
                          text=True, env=_env(), timeout=300)


def test_closed_stdout_or_stderr(dense_golden: Path, tmp_path: Path) -> None:
    # `cmd >&-` starts the tool with no stdout at all (sys.stdout is None).
    res = _run_sh('exec "$@" >&-', "show", dense_golden)
    assert (res.returncode, res.stderr) == (0, ""), res
    res = _run_sh('exec "$@" >&-', "verify", tmp_path / "missing.h5")
    assert res.returncode == 2 and res.stderr.startswith("error: "), res
    # Without stderr the error line has nowhere to go; it must not land in stdout.
    res = _run_sh('exec "$@" 2>&-', "verify", tmp_path / "missing.h5")
    assert (res.returncode, res.stdout) == (2, ""), res


def test_closed_stderr_during_record_leaves_a_whole_golden(dense_model: Path,
                                                           tmp_path: Path) -> None:
    # With fd 2 closed, the next file opened would get fd 2, and whatever writes to stderr
    # (TensorFlow's C++ logging, a warning) would write into it: into the golden.
    golden = tmp_path / "g.h5"
    res = _run_sh('exec "$@" 2>&-', "record", dense_model, "--golden", golden, "--no-latency",
                  "--num-samples", "8")
    assert res.returncode == 0, res
    assert _run("verify", golden).returncode == 0


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_is_not_utf8(dense_golden: Path, tmp_path: Path,
                                     encoding: str) -> None:
    # A latin-1 or plain C locale on an old server: box drawing and "…" cannot be encoded.
    res = _run("show", dense_golden, PYTHONIOENCODING=encoding)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "logits" in res.stdout
    res = _run("verify", tmp_path / "gölden ✓.h5", PYTHONIOENCODING=encoding)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize("columns", ["0", "-3", "abc", "20", "500"])
def test_any_columns_value_prints_the_golden(dense_golden: Path, columns: str) -> None:
    # COLUMNS=0 (a CI runner without a terminal size) made rich print nothing at all.
    res = _run("show", dense_golden, COLUMNS=columns)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "logits" in res.stdout and "float32" in res.stdout, res.stdout


def _undecodable(folder: Path, name: bytes) -> Path:
    """A path whose bytes are not UTF-8 (a latin-1 file name on a Linux disk): Python holds
    them as surrogate escapes, which UTF-8 encoders refuse."""
    return folder / os.fsdecode(name)


def test_golden_and_inputs_whose_names_are_not_utf8(dense_model: Path, tmp_path: Path
                                                    ) -> None:
    import numpy as np

    folder = _undecodable(tmp_path, b"d\xe9j\xe0")
    folder.mkdir()
    inputs = _undecodable(folder, b"entr\xe9es.npz")
    np.savez(inputs, features=np.ones((4, 4), np.float32))
    golden = _undecodable(folder, b"r\xe9f.h5")
    # A real process: what it prints holds the name too, and a UTF-8 terminal must take it.
    res = _run("record", dense_model, "--golden", golden, "--inputs", inputs, "--no-latency")
    assert res.returncode == 0, res.stderr[-2000:]
    for args in (("show", golden), ("show", golden, "--json"), ("status", folder),
                 ("compare", dense_model, "--golden", golden, "--no-latency")):
        res = _run(*args)
        assert (res.returncode, res.stderr) == (0, ""), (args, res.stderr[-2000:])
    assert "entr\\xe9es.npz" in _run("show", golden).stdout  # stored readable, not lost
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_a_model_whose_path_is_not_utf8_says_so(cli, dense_model: Path,
                                                tmp_path: Path) -> None:
    import shutil

    model = _undecodable(tmp_path, b"mod\xe8le")
    shutil.copytree(dense_model, model)
    res = cli("record", model, "--golden", tmp_path / "g.h5", "--no-latency")
    assert res.code == 2 and res.stderr.startswith("error: "), res
    assert "UTF-8" in res.stderr and "mod\\xe8le" in res.stderr, res.stderr


def test_a_model_named_relative_to_a_folder_that_is_not_utf8(
        dense_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow is given the relative path, which is UTF-8: the folder's name is not. The
    reports that name the golden escape the folder's bytes (a real process: its stdout
    writes them back as bytes)."""
    import shutil

    folder = _undecodable(tmp_path, b"d\xe9p\xf4t")
    folder.mkdir()
    shutil.copytree(dense_model, folder / "model")
    monkeypatch.chdir(folder)
    res = _run("record", "model", "--golden", "g.h5", "--no-latency")
    assert res.returncode == 0, res.stderr[-2000:]
    report = tmp_path / "summary.md"
    res = _run("compare", "model", "--golden", folder / "g.h5", "--no-latency",
               "--markdown", report, GITHUB_STEP_SUMMARY=str(tmp_path / "step.md"))
    assert (res.returncode, res.stderr) == (0, ""), res.stderr[-2000:]
    for written in (report, tmp_path / "step.md"):
        assert "d\\xe9p\\xf4t" in written.read_text("utf-8"), written


@pytest.mark.parametrize("option", ["--batch-size", "--num-samples"])
def test_numbers_too_large_for_the_golden(cli, dense_model: Path, tmp_path: Path,
                                          option: str) -> None:
    res = cli("record", dense_model, "--golden", tmp_path / "g.h5", "--no-latency", option,
              str(10**21))
    assert res.code == 2 and res.stderr.startswith("error: "), res
    assert option in res.stderr and len(res.stderr.splitlines()) == 1, res.stderr
    assert not (tmp_path / "g.h5").exists()


def test_a_pipe_given_as_a_file_is_named_for_what_it_is(cli, dense_model: Path,
                                                        dense_golden: Path,
                                                        tmp_path: Path) -> None:
    # `--config <(...)` or a FIFO: it exists, so "not found" sent users looking for a typo.
    # Reading one could wait forever for a writer, so it stays refused.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    inputs = tmp_path / "in.npz"
    import numpy as np

    np.savez(inputs, features=np.ones((4, 4), np.float32))
    for args in (("record", dense_model, "--golden", tmp_path / "a.h5", "--inputs", fifo),
                 ("record", dense_model, "--golden", tmp_path / "b.h5", "--inputs", inputs,
                  "--labels", f"{fifo}:y"),
                 ("compare", dense_model, "--golden", dense_golden, "--config", fifo)):
        assert_usage_error(cli(*args, "--no-latency"), str(fifo), "not a regular file")


def test_labels_without_a_file_name(cli, dense_model: Path, tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "in.npz", features=np.ones((4, 4), np.float32), y=np.arange(4))
    assert_usage_error(cli("record", dense_model, "--golden", tmp_path / "g.h5", "--inputs",
                           tmp_path / "in.npz", "--labels", ":y", "--no-latency"),
                       "empty FILE")


STOP_OUTSIDE_A_COMMAND = """\
import os, signal, sys, time
from snapshot_tool import cli

def boom() -> None:
    os.kill(os.getpid(), signal.SIG{name})
    time.sleep(30)

cli.app.command("boom")(boom)
sys.argv = ["snapshot-tool", "boom"]
cli.main()
"""


@pytest.mark.parametrize(("name", "code"), [("TERM", 143), ("INT", 130)])
def test_a_stop_outside_the_commands_error_handling_keeps_its_exit_code(name: str,
                                                                        code: int) -> None:
    # A signal that lands where no command catches it (while the tool starts or prints)
    # went through typer, which calls every stop 130: a cancelled CI job's SIGTERM is 143.
    res = subprocess.run([sys.executable, "-c", STOP_OUTSIDE_A_COMMAND.format(name=name)],
                         capture_output=True, text=True, env=_env(), timeout=120)
    assert res.returncode == code, res
    assert "Traceback" not in res.stderr, res.stderr


def test_a_symlink_loop_is_not_replaced(cli, dense_model: Path, tmp_path: Path) -> None:
    # A loop has no destination to write through to; the link itself was replaced by a
    # plain file before, breaking the rule that a symlinked golden stays a link.
    (tmp_path / "a.h5").symlink_to("b.h5")
    (tmp_path / "b.h5").symlink_to("a.h5")
    assert_usage_error(cli("record", dense_model, "--golden", tmp_path / "a.h5", "--force",
                           "--no-latency"), "a.h5", "symlink loop")
    assert (tmp_path / "a.h5").is_symlink() and (tmp_path / "b.h5").is_symlink()


def test_a_signing_key_that_is_not_utf8(dense_model: Path, tmp_path: Path) -> None:
    # A key from a secrets store is bytes; the environment hands them over as they are.
    golden = tmp_path / "g.h5"
    key = os.fsdecode(b"k\xffey\xe9")
    env = {"SNAPSHOT_TOOL_HMAC_KEY": key}
    res = _run("record", dense_model, "--golden", golden, "--no-latency", "--num-samples", "4",
               "--sign", **env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _run("verify", golden, "--require-signature", **env).returncode == 0
    other = _run("verify", golden, "--require-signature",
                 SNAPSHOT_TOOL_HMAC_KEY=os.fsdecode(b"k\xfeey\xe9"))
    assert other.returncode == 2 and other.stderr.startswith("error: "), other.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_stdout_on_a_full_disk_is_an_error_not_a_traceback(dense_golden: Path) -> None:
    # `show G.h5 > listing.txt` on a full disk: the listing is incomplete, and says so.
    for args in (("show", dense_golden), ("show", dense_golden, "--json"),
                 ("verify", dense_golden)):
        res = _run_sh('exec "$@" > /dev/full', *args)
        assert res.returncode == 2, (args, res.stderr[-2000:])
        assert res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1, \
            res.stderr[-2000:]
        assert "standard output" in res.stderr
