"""The JSON report (``--report-json``): a stable schema, versioned by ``JSON_SCHEMA_VERSION``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from snapshot_tool.diff import TensorDiff
from snapshot_tool.metrics.thresholds import MetricCheck

if TYPE_CHECKING:

    from snapshot_tool.api import ComparisonResult


JSON_SCHEMA_VERSION = 1


def _num(v: float | None) -> float | None:
    """JSON has no NaN or Infinity; strict parsers reject them, so they become null."""
    if v is None or not math.isfinite(v):
        return None
    return v


def _value(v: Any) -> Any:
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, complex):
        return [_num(v.real), _num(v.imag)]  # JSON has no complex numbers
    return v


def json_safe(obj: Any) -> Any:
    """``obj`` (dicts, lists, numbers) with every non-finite float made null, as in every
    report: for documents built elsewhere (``show --json``)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return _value(obj)


def diff_to_json(d: TensorDiff) -> dict[str, Any]:
    return {
        "name": d.name,
        "signature": d.signature,
        "passed": d.passed,
        "status": d.status,
        "golden_dtype": d.golden_dtype or None,
        "candidate_dtype": d.candidate_dtype or None,
        "golden_shape": list(d.golden_shape) if d.golden_shape is not None else None,
        "candidate_shape": list(d.candidate_shape) if d.candidate_shape is not None else None,
        "size": d.size,
        "max_abs_diff": _num(d.max_abs_diff),
        "mean_abs_diff": _num(d.mean_abs_diff),
        "max_rel_diff": _num(d.max_rel_diff),
        "mismatch_count": d.mismatch_count,
        "mismatch_fraction": d.mismatch_fraction,
        "worst_index": list(d.worst_index) if d.worst_index is not None else None,
        "worst_golden": _value(d.worst_golden),
        "worst_candidate": _value(d.worst_candidate),
        "atol": d.atol,
        "rtol": d.rtol,
        "max_mismatch_fraction": d.max_mismatch_fraction,
        "nan_equal": d.nan_equal,
        "tolerance_source": d.tolerance_source,
        "required_atol": _num(d.required_atol),
        "spread": _num(d.spread),
        "message": d.message,
    }


def to_json(result: ComparisonResult) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": JSON_SCHEMA_VERSION,
        "passed": result.passed,
        "golden": result.golden,
        "model": result.model,
        "signatures": list(result.signatures),
        "config": result.config_source,
        "outputs": [diff_to_json(d) for d in result.outputs],
        "metrics": [metric_to_json(m) for m in result.metrics],
        "latency": latency_to_json(result),
        "warnings": list(result.warnings),
        # Added in schema 1 without a bump: readers of version 1 ignore keys they do not know.
        "obtained": result.obtained,
        "obtained_run": result.obtained_run,  # the file's obtained_run: which compare wrote it
    }
    return doc


def metric_to_json(m: MetricCheck) -> dict[str, Any]:
    return {
        "output": m.output,
        "name": m.name,
        "kind": m.kind,
        "golden": _num(m.golden),
        "candidate": _num(m.candidate),
        "delta": _num(m.delta),
        "direction": m.direction,
        "limit": m.limit or None,
        "passed": m.passed,
        "note": m.note,
    }


def latency_to_json(result: ComparisonResult) -> dict[str, Any] | None:
    if not result.latency:
        return None
    return {
        "mode": result.latency_mode,
        "verdict": result.latency_verdict,
        "passed": result.latency_passed,
        "strict": result.latency_strict,
        "baseline_model": result.baseline_model,
        "batches": [{
            "signature": c.signature or None,
            "batch_size": c.batch_size,
            "verdict": c.verdict,
            "ratio": _num(c.ratio),
            "ci_low": _num(c.ci_low),
            "ci_high": _num(c.ci_high),
            "p_value": _num(c.p_value),
            "limit": _num(c.limit),
            "rounds": c.rounds,
            "baseline_p50_ms": _num(c.baseline.p50 / 1e6),
            "baseline_p90_ms": _num(c.baseline.p90 / 1e6),
            "candidate_p50_ms": _num(c.candidate.p50 / 1e6),
            "candidate_p90_ms": _num(c.candidate.p90 / 1e6),
            "calibration_ratio": _num(c.calibration_ratio),
            "machine_factor": _num(c.machine_factor),
            # True when the verdict is the self-check's (the golden's own model re-timed
            # beside the candidate); uncorrected_* then keep the plain stored gate's.
            "self_checked": c.machine_factor is not None,
            "uncorrected_ratio": _num(c.uncorrected_ratio),
            "uncorrected_verdict": c.uncorrected_verdict,
            # What ratio/ci/p_value/verdict measure: "wall" or "cpu" (process CPU time per
            # call, all threads); the ratios on both clocks, and the CPU-time figures.
            "basis": c.basis,
            "wall_ratio": _num(c.wall_ratio),
            "cpu_ratio": _num(c.cpu_ratio),
            "baseline_cpu_p50_ms": _num(c.baseline_cpu.p50 / 1e6) if c.baseline_cpu else None,
            "candidate_cpu_p50_ms": (_num(c.candidate_cpu.p50 / 1e6) if c.candidate_cpu
                                     else None),
            "calibration_cpu_ratio": _num(c.calibration_cpu_ratio),
            "note": c.note,
        } for c in result.latency],
    }

