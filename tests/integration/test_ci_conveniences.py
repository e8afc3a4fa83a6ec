"""What CI and scripts rely on: the job summary, --quiet, NO_COLOR, the Makefile targets and
the example CI files (their options must exist)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;)")


@pytest.fixture()
def golden(cli, dense_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("CI", raising=False)
    path = tmp_path / "g.h5"
    res = cli("record", dense_model, "--golden", path, "--no-latency", "--num-samples", "8",
              "--quiet")
    assert res.code == 0 and res.stdout == "", res
    return path


def test_github_step_summary_is_appended(cli, golden: Path, dense_model: Path,
                                         dense_changed: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert cli("compare", dense_changed, "--golden", golden, "--no-latency").code == 1
    assert cli("compare", dense_model, "--golden", golden, "--no-latency").code == 0
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n")
    assert text.index("❌ FAIL") < text.index("✅ PASS")
    assert "Obtained golden: `" in text and "g.obtained.h5" in text
    # An unwritable summary warns; the verdict stands.
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "summary.md"))
    res = cli("compare", dense_model, "--golden", golden, "--no-latency")
    assert res.code == 0 and "GITHUB_STEP_SUMMARY" in res.stderr


def test_quiet_prints_only_the_verdict_on_failure(cli, golden: Path, dense_model: Path,
                                                  dense_changed: Path, tmp_path: Path) -> None:
    ok = cli("compare", dense_model, "--golden", golden, "--no-latency", "--quiet")
    assert ok.code == 0 and ok.stdout == "", ok
    bad = cli("compare", dense_changed, "--golden", golden, "--no-latency", "-q")
    assert bad.code == 1
    assert "FAIL: 2 of 2 output(s) failed" in bad.stdout and "obtained golden" in bad.stdout
    assert "Outputs" not in bad.stdout and "┃" not in bad.stdout  # no tables
    assert cli("verify", golden, "--quiet").stdout == ""
    assert cli("show", golden, "--quiet").stdout == ""
    assert cli("show", golden, "-q", "--html", tmp_path / "g.html").stdout == ""
    res = cli("accept", tmp_path / "g.obtained.h5", "--quiet")
    assert res.code == 0 and res.stdout == ""
    assert cli("status", tmp_path, "--quiet").stdout == ""  # nothing needs attention


def test_no_color_is_respected(cli, golden: Path, dense_changed: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    # FORCE_COLOR makes rich colour even into the test runner's pipe, so the control run
    # shows colour codes and the NO_COLOR run must not.
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")  # a CI's TERM=dumb would mean no colour
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = cli("compare", dense_changed, "--golden", golden, "--no-latency",
                   "--no-save-obtained")
    assert COLOUR.search(coloured.stdout)
    monkeypatch.setenv("NO_COLOR", "1")
    plain = cli("compare", dense_changed, "--golden", golden, "--no-latency",
                "--no-save-obtained")
    assert plain.code == 1 and "FAIL" in plain.stdout
    assert not COLOUR.search(plain.stdout) and not COLOUR.search(plain.stderr)


def _make_n(*args: str) -> subprocess.CompletedProcess[str]:
    # -n prints the recipes without running any (not even the venv install).
    return subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.skipif(subprocess.run(["which", "make"], capture_output=True).returncode != 0,
                    reason="make not installed")
def test_makefile_record_and_gate_targets() -> None:
    rec = _make_n("record", "MODEL=export/m", "GOLDEN=goldens/m.h5", "ARGS=--num-samples 8")
    assert rec.returncode == 0, rec.stderr
    assert 'snapshot-tool record "export/m" --golden "goldens/m.h5" --num-samples 8' in rec.stdout
    gate = _make_n("gate", "CANDIDATE=build/c", "GOLDEN=goldens/m.h5", "BASELINE=export/m")
    assert gate.returncode == 0, gate.stderr
    flat = " ".join(gate.stdout.replace("\\\n", " ").split())
    assert ('snapshot-tool compare "build/c" --golden "goldens/m.h5" --baseline-model '
            '"export/m"') in flat
    assert '--html "build/report/report.html"' in flat and "--junit" in flat
    missing = _make_n("gate", "GOLDEN=goldens/m.h5")
    assert missing.returncode != 0 and "usage: make gate CANDIDATE=" in missing.stderr


@pytest.mark.parametrize("example", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_examples_use_real_options(cli, example: str) -> None:
    text = (ROOT / "examples" / "ci" / example).read_text(encoding="utf-8")
    help_text = cli("compare", "--help").stdout
    used = set(re.findall(r"(--[a-z][a-z-]+)", text.split("snapshot-tool compare", 1)[1]))
    assert {"--golden", "--junit", "--html"} <= used
    unknown = sorted(opt for opt in used if opt not in help_text)
    assert not unknown, f"{example} uses options compare does not have: {unknown}"
    # Reports and the obtained golden are kept even when the gate fails.
    assert "*.obtained.h5" in text and "junit" in text.lower()
