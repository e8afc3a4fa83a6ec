from __future__ import annotations

import json
import math

import numpy as np
import pytest

from snapshot_tool.api import ComparisonResult
from snapshot_tool.config import Config, parse_config
from snapshot_tool.diff import compare_tensor
from snapshot_tool.report import ceil_sig, console_renderables, hints, to_json, to_markdown
from snapshot_tool.tolerance import resolve


@pytest.mark.parametrize("x, want", [(0.09952, 0.0996), (0.0995, 0.0995), (1.0, 1.0),
                                     (123456.0, 124000.0), (1e-7, 1e-7), (0.0, 0.0)])
def test_ceil_sig_never_rounds_down(x: float, want: float) -> None:
    assert ceil_sig(x) == pytest.approx(want)
    assert ceil_sig(x) >= x


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
