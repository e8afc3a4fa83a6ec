"""Each case issue 9 reported, one test each: damaged goldens that hung, crashed or changed
a verdict behind verify's back, signing, and the small input errors."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.reliability.harness import Outcome, run_cli

# A real golden (format 1) with 64-512 zeroed bytes of metadata, found by the fuzz test:
# opening it sends HDF5 into an endless loop inside the first attribute read.
HANGS = Path(__file__).parent.parent / "goldens" / "hangs_hdf5_v1.h5"
KEY_ENV = "SNAPSHOT_TOOL_HMAC_KEY"


def _clean(res: Outcome, *fragments: str) -> None:
    assert res.clean_error, res
    for frag in fragments:
        assert frag in res.stderr, (frag, res.stderr)


@pytest.fixture(scope="session")
def pristine(dense_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A format-2 golden with labels, metrics and latency, recorded once."""
    root = tmp_path_factory.mktemp("reported")
    g = root / "g.h5"
    np.savez(root / "d.npz", features=np.linspace(-1, 1, 64, dtype=np.float32).reshape(16, 4),
             labels=np.arange(16) % 3)
    res = run_cli("record", dense_model, "--golden", g, "--inputs", root / "d.npz",
                  "--labels", f"{root / 'd.npz'}:labels", "--latency-batch-sizes", "1",
                  "--batch-size", "8")
    assert res.code == 0, res
    return g


@pytest.fixture()
def golden(pristine: Path, tmp_path: Path) -> Path:
    g = tmp_path / "g.h5"
    g.write_bytes(pristine.read_bytes())
    return g


def test_a_golden_that_hangs_hdf5_ends_in_time(dense_model: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPSHOT_TOOL_READ_TIMEOUT", "3")
    golden = tmp_path / "g.h5"
    golden.write_bytes(HANGS.read_bytes())
    for args in (("verify", golden), ("show", golden),
                 ("compare", dense_model, "--golden", golden, "--no-latency")):
        start = time.monotonic()
        res = run_cli(*args)
        _clean(res, "did not finish within 3 s")
        assert time.monotonic() - start < 30


@pytest.mark.parametrize("version", ["1", 1.9, True, np.int64(3)])
def test_format_version_must_be_a_known_integer(golden: Path, version: object) -> None:
    with h5py.File(golden, "r+") as f:
        f.attrs["format_version"] = version
    _clean(run_cli("verify", golden), "format version")


def test_declared_huge_dataset_is_refused_fast(golden: Path) -> None:
    with h5py.File(golden, "r+") as f:
        attrs = dict(f["outputs/score"].attrs)
        del f["outputs/score"]
        ds = f.create_dataset("outputs/score", shape=(10**12,), dtype="f4", chunks=(2**20,))
        ds.attrs.update(attrs)
    start = time.monotonic()
    _clean(run_cli("verify", golden), "declares 4000000000000 bytes")
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("edit", ["spread", "metric", "latency_sample", "model_digest",
                                  "environment", "threshold", "rename_output"])
def test_verdict_relevant_edits_fail_verify_and_compare(golden: Path, dense_model: Path,
                                                       edit: str) -> None:
    with h5py.File(golden, "r+") as f:
        if edit == "spread":
            f["outputs/logits"].attrs["spread"] = 1e30
        elif edit == "metric":
            ds = f["metrics/logits/accuracy"]
            ds[()] = np.float64(ds[()]) + 0.4
        elif edit == "latency_sample":
            ds = f["latency/batch_1/samples_ns"]
            ds[0] = ds[0] * 48_000
        elif edit == "threshold":
            f["metrics/logits"].attrs["threshold"] = 0.9
        elif edit == "rename_output":
            f.move("outputs/score", "outputs/scor")
        else:
            f.attrs[edit] = "edited"
    _clean(run_cli("verify", golden), "re-record")
    _clean(run_cli("compare", dense_model, "--golden", golden, "--no-latency"))


def test_attribute_of_the_wrong_type_is_a_clean_error(golden: Path) -> None:
    """Format 1 has no digest: its attributes are checked for type and range."""
    v1 = Path(__file__).parent.parent / "goldens" / "dense_v1.h5"
    for attr, value in (("spread", "abc"), ("batched", "yes")):
        target = golden.with_name(f"{attr}.h5")
        target.write_bytes(v1.read_bytes())
        with h5py.File(target, "r+") as f:
            f["outputs/logits"].attrs[attr] = value
        _clean(run_cli("verify", target), attr)


def test_sign_and_require_signature(golden: Path, dense_model: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    signed = tmp_path / "signed.h5"
    monkeypatch.delenv(KEY_ENV, raising=False)
    _clean(run_cli("record", dense_model, "--golden", signed, "--sign", "--no-latency"),
           KEY_ENV)
    assert not signed.exists()
    monkeypatch.setenv(KEY_ENV, "ci-secret")
    assert run_cli("record", dense_model, "--golden", signed, "--sign",
                   "--no-latency").code == 0
    res = run_cli("verify", signed, "--require-signature")
    assert res.code == 0 and "signed" in res.stdout, res
    assert run_cli("compare", dense_model, "--golden", signed, "--no-latency",
                   "--require-signature").code == 0
    _clean(run_cli("compare", dense_model, "--golden", golden, "--no-latency",
                   "--require-signature"), "not signed")
    monkeypatch.setenv(KEY_ENV, "another key")
    _clean(run_cli("verify", signed), "signature does not match")
    monkeypatch.delenv(KEY_ENV)
    _clean(run_cli("verify", signed, "--require-signature"), KEY_ENV)
    assert run_cli("verify", signed).code == 0  # digest still checked without the key


def test_config_nested_arrays_and_infinite_tolerance(golden: Path, dense_model: Path,
                                                     tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    _clean(run_cli("compare", dense_model, "--golden", golden, "--config", deep,
                   "--no-latency"), "deep.toml")
    inf = tmp_path / "inf.toml"
    inf.write_text("[defaults]\natol = inf\n")
    _clean(run_cli("compare", dense_model, "--golden", golden, "--config", inf,
                   "--no-latency"), "atol")


def test_random_keras_file_says_what_it_is(tmp_path: Path) -> None:
    junk = tmp_path / "model.keras"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    res = run_cli("inspect", junk)
    _clean(res, "not a .keras file")
    assert "File not found" not in res.stderr
