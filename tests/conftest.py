"""Shared fixtures: models are built once per session, goldens per test."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The plugin's own tests drive pytest inside pytest.
pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """compare appends to $GITHUB_STEP_SUMMARY when it is set; a test suite run on GitHub
    Actions must not fill the job's summary with its test compares."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def dense_model(models_dir: Path) -> Path:
    from tests.fixtures.models import save_dense

    return save_dense(models_dir / "dense")


@pytest.fixture(scope="session")
def dense_changed(models_dir: Path) -> Path:
    from tests.fixtures.models import save_dense

    return save_dense(models_dir / "dense_changed", scale=1.5)


@pytest.fixture()
def dense_golden(cli: Callable[..., CliResult], dense_model: Path, tmp_path: Path) -> Path:
    """``tmp_path/g.h5``: a golden of the dense model over 8 samples, no latency."""
    g = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", g, "--no-latency",
               "--num-samples", "8").code == 0
    return g


@pytest.fixture(scope="session")
def two_sig_model(models_dir: Path) -> Path:
    from tests.fixtures.models import save_two_signatures

    return save_two_signatures(models_dir / "multi")


@pytest.fixture()
def cli() -> Callable[..., CliResult]:
    """Run the real typer app in-process (TensorFlow is imported once per session)."""
    from typer.testing import CliRunner

    from snapshot_tool.cli import app

    runner = CliRunner()

    def run(*args: object) -> CliResult:
        res = runner.invoke(app, [str(a) for a in args])
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        return CliResult(res.exit_code, res.stdout, res.stderr)

    return run


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"
