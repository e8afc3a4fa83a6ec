"""Every user error: one `error:` line on stderr, exit 2, no traceback, no data lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest


def assert_usage_error(res, *fragments: str) -> None:
    assert res.code == 2, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in res.stderr + res.stdout
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.fixture()
def golden(dense_golden: Path) -> Path:
    return dense_golden


def test_model_path_missing(cli, tmp_path: Path) -> None:
    res = cli("record", tmp_path / "nope", "--golden", tmp_path / "g.h5")
    assert_usage_error(res, "does not exist")
    assert not (tmp_path / "g.h5").exists()


def _exit_and_tensorflow(*args: object) -> tuple[str, str]:
    """(exit code, whether TensorFlow was imported) of one CLI run in a fresh process."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['snapshot-tool', *{[str(a) for a in args]!r}]\n"
            "try:\n    runpy.run_module('snapshot_tool', run_name='__main__')\n"
            "except SystemExit as exc:\n    print(exc.code, 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120).stdout.split()
    return out[0], out[1]


def test_a_mistyped_model_path_is_said_before_tensorflow_starts(tmp_path: Path,
                                                                 golden: Path) -> None:
    # TensorFlow's import takes seconds; a path that is not there needs none of it.
    missing = tmp_path / "modle"
    assert _exit_and_tensorflow("record", missing, "--golden", tmp_path / "g.h5") == \
        ("2", "False")
    assert _exit_and_tensorflow("compare", missing, "--golden", golden) == ("2", "False")


def test_model_path_not_a_saved_model(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_usage_error(cli("inspect", tmp_path / "empty"), "not a SavedModel")
    (tmp_path / "junk.bin").write_bytes(b"\x00junk")
    assert_usage_error(cli("record", tmp_path / "junk.bin", "--golden", tmp_path / "g.h5"),
                       "junk.bin")


def test_corrupt_saved_model(cli, tmp_path: Path) -> None:
    d = tmp_path / "broken"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(b"this is not a protobuf")
    assert_usage_error(cli("record", d, "--golden", tmp_path / "g.h5"), "cannot load")


def test_unknown_signature_lists_available(cli, two_sig_model: Path, tmp_path: Path) -> None:
    res = cli("record", two_sig_model, "--golden", tmp_path / "g.h5", "--signature", "nope")
    assert_usage_error(res, "'nope'", "embed", "serving_default")


def test_inputs_file_missing_an_input(cli, two_sig_model: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", dense=np.zeros((4, 3), np.float32))
    res = cli("record", two_sig_model, "--golden", tmp_path / "g.h5",
              "--inputs", tmp_path / "in.npz")
    assert_usage_error(res, "'ids'")


def test_inputs_file_wrong_dtype(cli, dense_model: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", features=np.zeros((4, 4), np.int64))
    res = cli("record", dense_model, "--golden", tmp_path / "g.h5",
              "--inputs", tmp_path / "in.npz")
    assert_usage_error(res, "int64", "float32")


def test_inputs_file_wrong_shape(cli, dense_model: Path, tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", features=np.zeros((4, 5), np.float32))
    assert_usage_error(cli("record", dense_model, "--golden", tmp_path / "g.h5",
                           "--inputs", tmp_path / "in.npz"), "(4, 5)")
    np.savez(tmp_path / "in2.npz", features=np.zeros((4,), np.float32))
    assert_usage_error(cli("record", dense_model, "--golden", tmp_path / "g.h5",
                           "--inputs", tmp_path / "in2.npz"), "rank 2")


def test_inputs_file_not_found_or_unreadable(cli, dense_model: Path, tmp_path: Path) -> None:
    assert_usage_error(cli("record", dense_model, "--golden", tmp_path / "g.h5",
                           "--inputs", tmp_path / "nope.npz"), "not found")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    assert_usage_error(cli("record", dense_model, "--golden", tmp_path / "g.h5",
                           "--inputs", tmp_path / "bad.npz"), "bad.npz")


def test_golden_missing(cli, dense_model: Path, tmp_path: Path) -> None:
    assert_usage_error(cli("compare", dense_model, "--golden", tmp_path / "nope.h5"),
                       "not found", "record")
    assert_usage_error(cli("verify", tmp_path / "nope.h5"), "not found")


def test_golden_not_hdf5(cli, dense_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_text("hello")
    assert_usage_error(cli("compare", dense_model, "--golden", bad), "not an HDF5 file")
    assert_usage_error(cli("show", bad), "not an HDF5 file")


def test_golden_wrong_format_or_version(cli, dense_model: Path, golden: Path,
                                        tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    assert_usage_error(cli("compare", dense_model, "--golden", other),
                       "not a snapshot-tool golden")
    with h5py.File(golden, "r+") as f:
        f.attrs["format_version"] = 99
    assert_usage_error(cli("compare", dense_model, "--golden", golden), "version 99")
    assert_usage_error(cli("verify", golden), "version 99")


def test_golden_failing_checksum(cli, dense_model: Path, golden: Path) -> None:
    with h5py.File(golden, "r+") as f:
        data = f["outputs/logits"][()]
        data[0, 0] += 1.0
        f["outputs/logits"][...] = data
    assert_usage_error(cli("verify", golden), "outputs/logits", "sha256")
    assert_usage_error(cli("compare", dense_model, "--golden", golden), "sha256")


def test_golden_missing_group(cli, golden: Path) -> None:
    with h5py.File(golden, "r+") as f:
        del f["inputs"]
    assert_usage_error(cli("verify", golden), "inputs")


def test_golden_external_link_refused(cli, golden: Path, tmp_path: Path) -> None:
    with h5py.File(tmp_path / "elsewhere.h5", "w") as f:
        f["data"] = np.zeros(2)
    with h5py.File(golden, "r+") as f:
        f["outputs/sneaky"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/data")
    assert_usage_error(cli("verify", golden), "link")


def test_config_unknown_key(cli, dense_model: Path, golden: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "snapshot.toml"
    cfg.write_text("[defaults]\natoll = 1e-4\n")
    assert_usage_error(cli("compare", dense_model, "--golden", golden, "--config", cfg),
                       "'atoll'")


def test_config_bad_values(cli, dense_model: Path, golden: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "snapshot.toml"
    for text, frag in (('[defaults]\natol = "big"\n', "atol must be a number"),
                       ("[defaults]\nrtol = -1\n", "rtol must be >= 0"),
                       ('[outputs."x"]\nmax_mismatch_fraction = 2\n', "between 0 and 1"),
                       ("[defaults\n", "not valid TOML")):
        cfg.write_text(text)
        assert_usage_error(cli("compare", dense_model, "--golden", golden, "--config", cfg),
                           frag)
    assert_usage_error(cli("compare", dense_model, "--golden", golden, "--config",
                           tmp_path / "missing.toml"), "not found")


def test_record_refuses_overwrite_and_leaves_golden_identical(cli, dense_model: Path,
                                                              golden: Path) -> None:
    before = golden.read_bytes()
    res = cli("record", dense_model, "--golden", golden, "--no-latency")
    assert_usage_error(res, "already exists", "--force")
    assert golden.read_bytes() == before
    assert cli("record", dense_model, "--golden", golden, "--no-latency", "--force").code == 0


def test_failed_record_keeps_old_golden(cli, dense_model: Path, golden: Path,
                                        tmp_path: Path) -> None:
    before = golden.read_bytes()
    np.savez(tmp_path / "in.npz", features=np.zeros((4, 5), np.float32))
    res = cli("record", dense_model, "--golden", golden, "--force", "--inputs",
              tmp_path / "in.npz")
    assert res.code == 2
    assert golden.read_bytes() == before
    assert not [p for p in golden.parent.iterdir() if p.name.endswith(".tmp")]


def test_compare_candidate_with_different_inputs(cli, two_sig_model: Path, golden: Path
                                                 ) -> None:
    res = cli("compare", two_sig_model, "--golden", golden, "--no-latency")
    assert_usage_error(res, "features")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_help_does_not_import_tensorflow() -> None:
    code = ("import sys\n"
            "from snapshot_tool.cli import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported by --help'\n"
            "assert 'h5py' not in sys.modules\nprint('CLEAN')\n")
    proc = _run("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "CLEAN" in proc.stdout and "record" in proc.stdout


def test_python_dash_m_is_the_same_app(tmp_path: Path) -> None:
    proc = _run("-m", "snapshot_tool", "verify", str(tmp_path / "missing.h5"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
