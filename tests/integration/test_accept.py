"""Obtained goldens and `accept`: fail -> obtained -> accept -> pass, `--only` keeping every
other dataset byte-identical, and the refusals (other inputs, CI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest


def _datasets(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes, dict[str, Any]]]:
    """Every dataset's stored dtype, shape, raw bytes and attributes."""
    found: dict[str, tuple[str, tuple[int, ...], bytes, dict[str, Any]]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            raw = obj[()]
            data = raw.tobytes() if isinstance(raw, np.ndarray) and raw.dtype.kind != "O" \
                else repr(raw).encode()
            attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                     for k, v in obj.attrs.items()}
            found[name] = (str(obj.dtype), obj.shape, data, attrs)

    with h5py.File(path) as f:
        f.visititems(visit)
    return found


@pytest.fixture()
def failed(cli, dense_model: Path, dense_changed: Path, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A golden of the dense model and the obtained golden of a failing candidate."""
    monkeypatch.delenv("CI", raising=False)
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency",
               "--num-samples", "16").code == 0
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency")
    assert res.code == 1, res
    obtained = tmp_path / "g.obtained.h5"
    assert obtained.exists()
    assert "g.obtained.h5" in res.stdout and "snapshot-tool accept" in res.stdout
    return golden, obtained


def test_fail_obtained_accept_pass(cli, failed: tuple[Path, Path], dense_changed: Path) -> None:
    golden, obtained = failed
    assert cli("verify", obtained).code == 0  # a complete, valid golden of the candidate
    res = cli("accept", obtained, "--reason", "kernel 1,2 retrained")
    assert res.code == 0, res
    assert "logits" in res.stdout and "changed" in res.stdout
    assert not obtained.exists()  # used up by a whole accept
    with h5py.File(golden) as f:
        history = json.loads(f.attrs["history"])
        assert f.attrs["model_path"] == str(dense_changed)
    assert history[-1]["reason"] == "kernel 1,2 retrained"
    assert history[-1]["outputs"] == ["logits", "score"] and history[-1]["who"]
    ok = cli("compare", dense_changed, "--golden", golden, "--no-latency")
    assert ok.code == 0, ok
    assert not obtained.exists()  # a passing compare writes none


def test_only_keeps_other_outputs_byte_identical(cli, dense_model: Path, dense_changed: Path,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    golden = tmp_path / "g.h5"
    # With latency samples too: they must survive an accept untouched.
    assert cli("record", dense_model, "--golden", golden, "--num-samples", "16",
               "--latency-batch-sizes", "2").code == 0
    assert cli("compare", dense_changed, "--golden", golden, "--no-latency").code == 1
    obtained = tmp_path / "g.obtained.h5"
    before = _datasets(golden)
    assert any(name.startswith("latency/") for name in before)
    new = _datasets(obtained)
    res = cli("accept", obtained, "--only", "log*", "--reason", "logits only")
    assert res.code == 0, res
    after = _datasets(golden)
    assert set(after) == set(before)
    for name in before:
        if name == "outputs/logits":
            assert after[name] == new[name]  # taken from the obtained golden as stored
        else:
            assert after[name] == before[name], name
    with h5py.File(golden) as f:
        # A partial accept keeps the golden's model identity; the history says what came
        # from where.
        assert f.attrs["model_path"] == str(dense_model)
        entry = json.loads(f.attrs["history"])[-1]
    assert entry["outputs"] == ["logits"] and entry["reason"] == "logits only"
    assert obtained.exists()  # its other outputs may still be wanted


def test_dry_run_changes_nothing_and_only_must_match(cli, failed: tuple[Path, Path]) -> None:
    golden, obtained = failed
    before = golden.read_bytes()
    res = cli("accept", obtained, "--dry-run")
    assert res.code == 0 and "dry run" in res.stdout.lower()
    assert golden.read_bytes() == before and obtained.exists()
    bad = cli("accept", obtained, "--only", "nope*")
    assert bad.code == 2 and "matches no output" in bad.stderr and "logits" in bad.stderr
    assert golden.read_bytes() == before


def test_refuses_other_inputs(cli, failed: tuple[Path, Path], dense_model: Path,
                              tmp_path: Path) -> None:
    _, obtained = failed
    other = tmp_path / "other.h5"
    assert cli("record", dense_model, "--golden", other, "--no-latency", "--num-samples", "16",
               "--seed", "7").code == 0
    before = other.read_bytes()
    res = cli("accept", obtained, "--golden", other)
    assert res.code == 2 and "inputs" in res.stderr and "differ" in res.stderr
    assert other.read_bytes() == before


def test_refused_on_ci_unless_explicit(cli, failed: tuple[Path, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    golden, obtained = failed
    before = golden.read_bytes()
    monkeypatch.setenv("CI", "true")
    res = cli("accept", obtained)
    assert res.code == 2 and "CI" in res.stderr and "--allow-ci" in res.stderr
    assert golden.read_bytes() == before
    assert cli("accept", obtained, "--allow-ci").code == 0


def test_no_save_obtained_and_status(cli, dense_model: Path, dense_changed: Path,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    golden = tmp_path / "goldens" / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency",
               "--num-samples", "16").code == 0
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency",
              "--no-save-obtained")
    assert res.code == 1 and not golden.with_name("g.obtained.h5").exists()
    monkeypatch.chdir(tmp_path)
    st = cli("status", tmp_path, "--json")
    assert st.code == 0, st
    (entry,) = json.loads(st.stdout)
    assert entry["model_state"] == "matches" and entry["obtained"] is None
    assert cli("compare", dense_changed, "--golden", golden, "--no-latency").code == 1
    (entry,) = json.loads(cli("status", tmp_path, "--json").stdout)
    assert entry["obtained"].endswith("g.obtained.h5")
    human = cli("status", tmp_path)
    assert human.code == 0 and "g.h5" in human.stdout and "obtained" in human.stdout


def test_only_with_signature_qualified_names(cli, two_sig_model: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A golden of several signatures names outputs "sig/out"; a compare of one signature
    still writes a complete obtained golden (the other signature copied), and --only takes
    just the named signature's output."""
    from tests.fixtures.models import save_two_signatures

    monkeypatch.delenv("CI", raising=False)
    shifted = save_two_signatures(tmp_path / "shifted", offset=0.5)
    golden = tmp_path / "g.h5"
    assert cli("record", two_sig_model, "--golden", golden, "--signature", "all",
               "--no-latency", "--num-samples", "8").code == 0
    res = cli("compare", shifted, "--golden", golden, "--signature", "embed", "--no-latency")
    assert res.code == 1, res
    obtained = tmp_path / "g.obtained.h5"
    before = _datasets(golden)
    res = cli("accept", obtained, "--only", "embed/*", "--reason", "embedding moved")
    assert res.code == 0, res
    assert "embed/embedding" in res.stdout
    after = _datasets(golden)
    changed = {name for name in before if after[name] != before[name]}
    assert changed == {"signatures/embed/outputs/embedding"}
    assert cli("compare", shifted, "--golden", golden, "--signature", "embed",
               "--no-latency").code == 0


def test_status_flags_a_model_changed_on_disk(cli, dense_model: Path, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "model"
    shutil.copytree(dense_model, model)
    golden = tmp_path / "goldens" / "m.h5"
    assert cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "8").code == 0
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "vocab.txt").write_text("a file the golden's digest did not cover\n")
    (entry,) = json.loads(cli("status", tmp_path, "--json").stdout)
    assert entry["model_state"] == "changed"
    shutil.rmtree(model)
    (entry,) = json.loads(cli("status", tmp_path, "--json").stdout)
    assert entry["model_state"] == "missing"
    quiet = cli("status", tmp_path, "--quiet")
    assert "m.h5" in quiet.stdout and "missing" in quiet.stdout
    # --quiet keeps the goldens that need attention in JSON too; a fresh one is left out.
    assert cli("record", dense_model, "--golden", tmp_path / "goldens" / "ok.h5",
               "--no-latency", "--num-samples", "8").code == 0
    everything = json.loads(cli("status", tmp_path, "--json").stdout)
    assert sorted(Path(e["path"]).name for e in everything) == ["m.h5", "ok.h5"]
    (entry,) = json.loads(cli("status", tmp_path, "--json", "--quiet").stdout)
    assert Path(entry["path"]).name == "m.h5"


def test_obtained_golden_that_cannot_be_written_is_a_warning(cli, dense_model: Path,
                                                             dense_changed: Path,
                                                             tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency",
               "--num-samples", "8").code == 0
    (tmp_path / "g.obtained.h5").mkdir()  # in the way, like a read-only folder would be
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency")
    assert res.code == 1, res  # still the verdict, not an input error
    assert "obtained golden not written" in res.stdout
