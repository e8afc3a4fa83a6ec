"""``compare --localize`` and ``calibrate`` through the real CLI, on small TF1 graphs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tests.fixtures import diagnose as fx


@pytest.fixture(scope="module")
def tf1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("diagnose_cli")
    return {"dir": d, "golden_model": fx.save_tf1_chain(d / "golden"),
            "nearly": fx.save_tf1_chain(d / "nearly", second_scale=1.0001),
            "broken": fx.save_tf1_chain(d / "broken", second_scale=1.5)}


@pytest.fixture(scope="module")
def golden(tf1: dict[str, Path]) -> Path:
    from snapshot_tool.api import record

    path = tf1["dir"] / "golden.h5"
    record(tf1["golden_model"], path, num_samples=32, latency=False)
    return path


def test_compare_localize_prints_and_reports_the_first_diverging_tensor(
        cli, tf1: dict[str, Path], golden: Path) -> None:
    report = tf1["dir"] / "report.json"
    summary = tf1["dir"] / "summary.md"
    res = cli("compare", tf1["broken"], "--golden", golden, "--no-latency", "--localize",
              "--report-json", report, "--markdown", summary)
    assert res.code == 1, res
    assert "first diverging tensor: output/MatMul (MatMul, layer output)" in res.stdout
    assert "changed parameters: output/kernel" in res.stdout
    loc = json.loads(report.read_text())["localization"]
    assert loc["status"] == "localized" and loc["first"]["name"] == "output/MatMul:0"
    assert "first diverging tensor: output/MatMul" in summary.read_text()


def test_localize_that_cannot_run_says_why_and_keeps_the_verdict(
        cli, tf1: dict[str, Path], golden: Path) -> None:
    res = cli("compare", tf1["broken"], "--golden", golden, "--no-latency", "--localize",
              "--baseline-model", tf1["dir"] / "nowhere")
    assert res.code == 1, res  # the regression verdict, not a usage error
    assert "localize: not localized: --baseline-model" in res.stdout
    assert "does not exist" in res.stdout
    ok = cli("compare", tf1["golden_model"], "--golden", golden, "--no-latency", "--localize")
    assert ok.code == 0 and "nothing to localize" in ok.stdout
    quiet = cli("compare", tf1["golden_model"], "--golden", golden, "--no-latency",
                "--localize", "--quiet")
    assert quiet.code == 0 and "localize" not in quiet.stdout


def test_calibrate_writes_a_config_that_passes_and_fails_as_declared(
        cli, tf1: dict[str, Path], golden: Path) -> None:
    proposed = tf1["dir"] / "snapshot.toml"
    report = tf1["dir"] / "calibrate.json"
    res = cli("calibrate", golden, tf1["nearly"], "--reject", tf1["broken"], "--output",
              proposed, "--report-json", report)
    assert res.code == 0, res
    assert "ok  [1]" in res.stdout and "ok  [r1]" in res.stdout
    assert tomllib.loads(proposed.read_text())["outputs"]["y"]["rtol"] > 1.3e-6
    doc = json.loads(report.read_text())
    assert doc["consistent"] and doc["written_to"] == str(proposed)
    assert cli("compare", tf1["nearly"], "--golden", golden, "--config", proposed,
               "--no-latency").code == 0
    assert cli("compare", tf1["broken"], "--golden", golden, "--config", proposed,
               "--no-latency").code == 1
    again = cli("calibrate", golden, tf1["nearly"], "--output", proposed)
    assert again.code == 2 and "--force" in again.stderr


def test_calibrate_exits_1_when_a_rejected_candidate_would_pass(
        cli, tf1: dict[str, Path], golden: Path) -> None:
    res = cli("calibrate", golden, tf1["broken"], "--reject", tf1["nearly"])
    assert res.code == 1, res
    assert "PROBLEM  [r1]" in res.stdout
    assert "[outputs.\"y\"]" in res.stdout  # printed when no --output is given


def test_html_report_plots_error_by_depth(cli, tf1: dict[str, Path], golden: Path) -> None:
    pytest.importorskip("matplotlib", reason="the HTML report needs the html extra")
    page = tf1["dir"] / "report.html"
    res = cli("compare", tf1["broken"], "--golden", golden, "--no-latency", "--localize",
              "--html", page)
    assert res.code == 1, res
    text = page.read_text()
    assert "Where it diverges" in text and 'data-plot="error by depth y"' in text
    assert "<code>output/MatMul</code>" in text


def test_renamed_outputs_are_matched_and_the_map_is_kept(cli, tf1: dict[str, Path],
                                                         golden: Path) -> None:
    renamed = fx.save_tf1_chain(tf1["dir"] / "renamed", second_scale=1.0001, output="score")
    proposed = tf1["dir"] / "renamed.toml"
    res = cli("calibrate", golden, renamed, "--map", "y=score", "--output", proposed)
    assert res.code == 0, res
    text = proposed.read_text()
    assert tomllib.loads(text)["rename"] == {"y": "score"}
    assert cli("compare", renamed, "--golden", golden, "--config", proposed,
               "--no-latency").code == 0
    # A lone output under another name is matched without --map, as compare does.
    assert cli("calibrate", golden, renamed).code == 0
    broken = fx.save_tf1_chain(tf1["dir"] / "renamed_broken", second_scale=1.5,
                               output="score")
    res = cli("compare", broken, "--golden", golden, "--no-latency", "--localize", "--map",
              "y=score")
    assert res.code == 1 and "first diverging tensor: output/MatMul" in res.stdout, res
