"""Hostile models are seen before they run: ``inspect --scan`` names the ops of a signature
that touch the file system or print, and ``record``/``compare`` refuse such a model (exit 2,
the ops named, the model never run) unless ``--allow-ops`` or the config allows them. The
machinery a TF Serving export needs (restore ops, table initializers reading assets) is not
the signature's and is never flagged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.hostile import (
    HOSTILE_OPS,
    save_harmless,
    save_hostile,
    save_tf1_hostile,
)
from tests.reliability.harness import run_cli


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    (root / "secret.txt").write_text("do not read me\n")
    models = {how: save_hostile(root / how, how, root / ("written.txt" if how == "write"
                                                         else "secret.txt"))
              for how in HOSTILE_OPS}
    models["tf1"] = save_tf1_hostile(root / "tf1", root / "secret.txt")
    models["harmless"] = save_harmless(root / "harmless")
    np.savez(root / "x.npz", x=np.ones((4, 4), np.float32))
    return models


@pytest.fixture(scope="session")
def harmless_golden(hostile: dict[str, Path]) -> Path:
    golden = hostile["harmless"].parent / "harmless.h5"
    res = run_cli("record", hostile["harmless"], "--golden", golden, "--no-latency",
                  "--num-samples", "4")
    assert res.code == 0, res
    return golden


def _scan(model: Path) -> dict:
    res = run_cli("inspect", model, "--scan", "--json")
    assert res.code == 0, res
    return json.loads(res.stdout)


@pytest.mark.parametrize("how", sorted(HOSTILE_OPS))
def test_scan_names_the_ops(hostile: dict[str, Path], how: str) -> None:
    flagged = _scan(hostile[how])["scan"]["serving_default"]
    assert HOSTILE_OPS[how] in flagged, flagged


def test_scan_tf1_sees_the_signature_subgraph(hostile: dict[str, Path]) -> None:
    flagged = _scan(hostile["tf1"])["scan"]["serving_default"]
    assert flagged == ["ReadFile"], flagged  # not SaveV2/RestoreV2 of the loader


def test_scan_clean_models(hostile: dict[str, Path], dense_model: Path,
                           two_sig_model: Path) -> None:
    for model in (hostile["harmless"], dense_model, two_sig_model):
        assert all(not ops for ops in _scan(model)["scan"].values())


def test_scan_human_output(hostile: dict[str, Path]) -> None:
    res = run_cli("inspect", hostile["write"], "--scan")
    assert res.code == 0, res
    assert "WriteFile" in res.stdout


@pytest.mark.parametrize("how", sorted(HOSTILE_OPS))
def test_compare_refuses_hostile_candidate(hostile: dict[str, Path], harmless_golden: Path,
                                           how: str) -> None:
    written = hostile[how].parent / "written.txt"
    res = run_cli("compare", hostile[how], "--golden", harmless_golden, "--no-latency")
    assert res.clean_error, res
    assert HOSTILE_OPS[how] in res.stderr and "--allow-ops" in res.stderr
    assert not written.exists(), "the refused model ran anyway"


def test_record_refuses_hostile_model(hostile: dict[str, Path], tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    for how in ("read", "tf1"):
        res = run_cli("record", hostile[how], "--golden", golden, "--no-latency")
        assert res.clean_error, res
        assert "ReadFile" in res.stderr
        assert not golden.exists()


def test_allow_ops_lets_a_model_run(hostile: dict[str, Path], harmless_golden: Path,
                                    tmp_path: Path) -> None:
    res = run_cli("compare", hostile["print"], "--golden", harmless_golden, "--no-latency",
                  "--allow-ops", "PrintV2")
    assert res.code == 0, res
    # Allowing one op does not allow the others.
    res = run_cli("compare", hostile["read"], "--golden", harmless_golden, "--no-latency",
                  "--allow-ops", "PrintV2")
    assert res.clean_error and "ReadFile" in res.stderr
    cfg = tmp_path / "snapshot.toml"
    cfg.write_text('[models]\nallow_ops = ["ReadFile"]\n')
    res = run_cli("compare", hostile["read"], "--golden", harmless_golden, "--no-latency",
                  "--config", cfg)
    assert res.code == 0, res


def test_unknown_allow_op_is_an_error(hostile: dict[str, Path], harmless_golden: Path) -> None:
    res = run_cli("compare", hostile["harmless"], "--golden", harmless_golden, "--no-latency",
                  "--allow-ops", "ReadFlie")
    assert res.clean_error and "ReadFlie" in res.stderr


def test_tf_serving_export_still_records(tmp_path: Path) -> None:
    """Restore ops and the asset-reading table initializer are the loader's, not flagged."""
    from tests.fixtures.kinds import save_tf1

    model = save_tf1(tmp_path / "tf1_serving")
    assert all(not ops for ops in _scan(model)["scan"].values())
    golden = tmp_path / "g.h5"
    assert run_cli("record", model, "--golden", golden, "--no-latency",
                   "--num-samples", "4").code == 0
    assert run_cli("compare", model, "--golden", golden, "--no-latency").code == 0


def test_calibrate_honours_allow_ops(hostile: dict[str, Path], harmless_golden: Path,
                                     tmp_path: Path) -> None:
    """calibrate runs candidates as compare does: refused unless --allow-ops or the config's
    [models] allow_ops allows their flagged ops (it used to refuse them whatever was allowed)."""
    res = run_cli("calibrate", harmless_golden, hostile["print"])
    assert res.clean_error and "PrintV2" in res.stderr, res
    res = run_cli("calibrate", harmless_golden, hostile["print"], "--allow-ops", "PrintV2")
    assert res.code == 0, res
    cfg = tmp_path / "allow.toml"
    cfg.write_text('[models]\nallow_ops = ["PrintV2"]\n')
    res = run_cli("calibrate", harmless_golden, hostile["print"], "--config", cfg)
    assert res.code == 0, res
    # Allowing one op still does not allow another.
    res = run_cli("calibrate", harmless_golden, hostile["read"], "--config", cfg)
    assert res.clean_error and "ReadFile" in res.stderr, res


def test_localize_scans_the_golden_model(tmp_path: Path) -> None:
    """--localize re-runs the golden's own model: it is scanned like every model a compare
    runs, so a golden recorded with --allow-ops WriteFile does not write again unasked."""
    written = tmp_path / "written.txt"
    model = save_hostile(tmp_path / "write", "write", written)
    golden = tmp_path / "g.h5"
    res = run_cli("record", model, "--golden", golden, "--no-latency", "--num-samples", "4",
                  "--allow-ops", "WriteFile")
    assert res.code == 0, res
    written.unlink()
    candidate = save_harmless(tmp_path / "tripled", factor=3.0)
    res = run_cli("compare", candidate, "--golden", golden, "--no-latency", "--localize",
                  "--no-save-obtained")
    assert res.code == 1, res
    assert "WriteFile" in res.stdout and "--allow-ops" in res.stdout, res.stdout
    assert not written.exists(), "the golden's model ran unscanned"
    res = run_cli("compare", candidate, "--golden", golden, "--no-latency", "--localize",
                  "--no-save-obtained", "--allow-ops", "WriteFile")
    assert res.code == 1, res
    assert written.exists(), "an allowed model is run"
