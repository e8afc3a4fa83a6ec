from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from snapshot_tool.api import ComparisonResult
from snapshot_tool.config import Config, parse_config
from snapshot_tool.diff import compare_tensor
from snapshot_tool.metrics.thresholds import round_sig
from snapshot_tool.report.console import console_renderables, hints
from snapshot_tool.report.format import format_complex
from snapshot_tool.report.json import to_json
from snapshot_tool.report.markdown import to_markdown
from snapshot_tool.tolerance import resolve


@pytest.mark.parametrize("x, want", [(0.09952, 0.0996), (0.0995, 0.0995), (1.0, 1.0),
                                     (123456.0, 124000.0), (1e-7, 1e-7), (0.0, 0.0)])
def test_suggested_limits_never_round_down(x: float, want: float) -> None:
    assert round_sig(x, up=True) == pytest.approx(want)
    assert round_sig(x, up=True) >= x


def _result(golden: np.ndarray, cand: np.ndarray, cfg: Config | None = None
            ) -> ComparisonResult:
    d = compare_tensor("out", golden, cand, resolve("out", "float64", cfg or Config()))
    return ComparisonResult(golden="g.h5", model="m", signatures=("serving_default",),
                            outputs=(d,))


def test_json_is_strict_even_with_infinite_errors() -> None:
    r = _result(np.array([1.0, np.nan]), np.array([np.inf, 1.0]))
    text = json.dumps(to_json(r), allow_nan=False)  # raises on NaN/Infinity
    doc = json.loads(text)
    assert doc["passed"] is False and doc["outputs"][0]["max_abs_diff"] is None


def test_hint_config_accepts_the_change() -> None:
    g = np.linspace(0, 1, 20)
    c = g + 0.0123
    r = _result(g, c)
    (hint,) = hints(r)
    atol = float(hint.split("=")[1])
    cfg = parse_config({"outputs": {"out": {"atol": atol}}})
    assert _result(g, c, cfg).passed
    assert not math.isnan(atol)


def test_console_and_markdown_agree_with_the_verdict() -> None:
    ok = _result(np.ones(3), np.ones(3))
    bad = _result(np.ones(3), np.zeros(3))
    assert "PASS" in str(console_renderables(ok)[-1])
    assert any("FAIL" in str(x) for x in console_renderables(bad))
    assert "✅ PASS" in to_markdown(ok) and "❌ FAIL" in to_markdown(bad)


def test_warnings_keep_their_square_brackets() -> None:
    from rich.console import Console

    r = ComparisonResult(golden="g.h5", model="m", signatures=("s",), outputs=(),
                         warnings=("set [outputs.NAME] task in the config",))
    console = Console(record=True, width=200)
    for item in console_renderables(r):
        console.print(item)
    assert "[outputs.NAME]" in console.export_text()


def test_complex_outputs_serialize() -> None:
    g = np.array([1 + 2j, 3 - 1j], np.complex128)
    c = g + np.array([0, 0.5j])
    d = compare_tensor("z", g, c, resolve("z", "complex128", Config()))
    r = ComparisonResult(golden="g.h5", model="m", signatures=("s",), outputs=(d,))
    doc = json.loads(json.dumps(to_json(r), allow_nan=False))
    assert doc["outputs"][0]["worst_golden"] == [3.0, -1.0]
    assert doc["outputs"][0]["worst_candidate"] == [3.0, -0.5]


def test_complex_worst_element_shows_both_parts() -> None:
    # numpy's text of a complex element is ~40 characters; cut to 16 it hid the imaginary
    # part, so a changed imaginary part read as the same value on both sides.
    from snapshot_tool.report.format import worst

    g = np.array([0.29610782861709595 + 2.2298483j, 1j], np.complex64)
    c = g + np.array([0, 0.25j], np.complex64)
    d = compare_tensor("z", g, c, resolve("z", "complex64", Config()))
    assert worst(d) == "[1] 0+1j → 0+1.25j", worst(d)
    assert format_complex(g[0].item()) == "0.296108+2.22985j"
    assert format_complex(complex(-1.5, -0.0)) == "-1.5-0j"


def test_junit_marks_only_failing_latency_batches() -> None:
    import xml.etree.ElementTree as ET

    from snapshot_tool.latency.gate import LatencyCheck
    from snapshot_tool.latency.stats import LatencyStats
    from snapshot_tool.report.junit import to_junit

    st = LatencyStats(n=30, p50=1e6, p90=1e6, p99=1e6, mean=1e6, std=0.0)

    def check(bs: int, verdict: str) -> LatencyCheck:
        return LatencyCheck(batch_size=bs, mode="side_by_side", verdict=verdict,  # type: ignore[arg-type]
                            baseline=st, candidate=st, ratio=1.2, ci_low=1.1, ci_high=1.3,
                            p_value=0.02, limit=1.1, rounds=30)

    for strict, want in ((False, {"batch_1"}), (True, {"batch_1", "batch_8"})):
        r = ComparisonResult(golden="g", model="m", signatures=("s",), outputs=(),
                             latency=(check(1, "fail"), check(8, "inconclusive")),
                             latency_mode="side_by_side", latency_strict=strict)
        suite = ET.fromstring(to_junit(r).split("\n", 1)[1])
        failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
        assert failed == want


@pytest.mark.parametrize("multi, want", [(False, "out"), (True, "embed/out")])
def test_every_renderer_names_an_output_by_the_one_rule(multi: bool, want: str) -> None:
    import xml.etree.ElementTree as ET

    from rich.console import Console

    from snapshot_tool.report.junit import to_junit

    d = compare_tensor("out", np.ones(3), np.zeros(3), resolve("out", "float64", Config()),
                       signature="embed")
    # --signature embed on a golden of two signatures still says "embed/out": the name
    # follows the golden (it is what the config tables match), not how many were compared.
    r = ComparisonResult(golden="g.h5", model="m", signatures=("embed",), outputs=(d,),
                         multi_signature=multi)
    suite = ET.fromstring(to_junit(r).split("\n", 1)[1])
    assert [c.get("name") for c in suite.iter("testcase")] == [want]
    assert f"| {want} | **FAIL** |" in to_markdown(r)
    console = Console(record=True, width=200)
    for item in console_renderables(r):
        console.print(item)
    assert f" {want} " in console.export_text()
    # the worst element is plain text in JUnit (no console markup escapes)
    assert "\\[" not in to_junit(r)


def test_every_renderer_shows_the_basis_and_both_clocks_of_a_stored_check() -> None:
    from rich.console import Console

    from snapshot_tool.latency.gate import LatencyCheck
    from snapshot_tool.latency.stats import LatencyStats
    from snapshot_tool.report.html import latency_section
    from snapshot_tool.report.json import latency_to_json
    from snapshot_tool.report.markdown import to_markdown

    wall = LatencyStats(n=30, p50=3e6, p90=3e6, p99=3e6, mean=3e6, std=0.0)
    cpu = LatencyStats(n=30, p50=1e6, p90=1e6, p99=1e6, mean=1e6, std=0.0)
    c = LatencyCheck(batch_size=1, mode="stored", verdict="pass", baseline=wall,
                     candidate=wall, ratio=1.01, ci_low=0.98, ci_high=1.04, p_value=0.9,
                     limit=1.25, rounds=30, basis="cpu", wall_ratio=2.5, cpu_ratio=1.01,
                     baseline_cpu=cpu, candidate_cpu=cpu, calibration_cpu_ratio=1.02)
    r = ComparisonResult(golden="g", model="m", signatures=("s",), outputs=(),
                         latency=(c,), latency_mode="stored")
    b = latency_to_json(r)["batches"][0]  # type: ignore[index]
    assert (b["basis"], b["wall_ratio"], b["cpu_ratio"]) == ("cpu", 2.5, 1.01)
    assert b["baseline_cpu_p50_ms"] == 1.0 and b["calibration_cpu_ratio"] == 1.02
    assert b["ratio"] == 1.01 and b["baseline_p50_ms"] == 3.0  # existing keys keep meaning
    console = Console(record=True, width=250)
    for item in console_renderables(r):
        console.print(item)
    for text in (console.export_text(), to_markdown(r), latency_section(r)):
        assert "CPU time" in text and "wall 2.500 / CPU 1.010" in text
    old = LatencyCheck(batch_size=1, mode="stored", verdict="pass", baseline=wall,
                       candidate=wall, ratio=1.0, ci_low=0.98, ci_high=1.04, p_value=0.9,
                       limit=1.25, rounds=30, wall_ratio=1.0)
    r_old = ComparisonResult(golden="g", model="m", signatures=("s",), outputs=(),
                             latency=(old,), latency_mode="stored")
    assert "wall time | wall 1.000 / CPU —" in to_markdown(r_old)
    assert latency_to_json(r_old)["batches"][0]["cpu_ratio"] is None  # type: ignore[index]
    # One label per basis, owned by the check, whichever renderer or note prints it.
    assert (c.basis_label, old.basis_label) == ("CPU time", "wall time")


def test_rerecord_hint_of_a_sharded_golden_runs_beam(tmp_path: Path) -> None:
    # A sharded golden (G.h5.d/) is only re-recorded by --runner beam; the hint must be a
    # command that works.
    from dataclasses import replace

    sharded_dir = tmp_path / "g.h5.d"
    sharded_dir.mkdir()
    (sharded_dir / "manifest.json").write_text("{}")
    bad = replace(_result(np.ones(3), np.zeros(3)), golden=str(sharded_dir))
    text = "\n".join(str(x) for x in console_renderables(bad))
    assert f"--golden {sharded_dir} --force --runner beam" in text
    single = "\n".join(str(x) for x in console_renderables(_result(np.ones(3), np.zeros(3))))
    assert "--golden g.h5 --force`" in single
