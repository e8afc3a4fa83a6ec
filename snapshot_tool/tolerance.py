"""Which tolerance applies to an output: config override > [defaults] > dtype default.

Each field resolves on its own, so ``[outputs.logits] atol = 1e-4`` keeps the dtype's rtol.
The dtype defaults follow the precision each float format actually has (float16 has ~3
decimal digits, bfloat16 ~2); integers, bools and strings compare exactly unless an output
table sets ``atol`` (quantized uint8 outputs that may move by one step are the usual reason).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from snapshot_tool.config import Config
from snapshot_tool.dtypes import less_precise, precision_change

if TYPE_CHECKING:
    from snapshot_tool.golden.schema import SignatureGolden

# dtype name -> (rtol, atol)
FLOAT_DEFAULTS: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
    "complex64": (1.3e-6, 1e-5),
    "complex128": (1e-7, 1e-7),
}


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    max_mismatch_fraction: float
    nan_equal: bool
    exact: bool  # ints/bools/strings without an explicit atol
    source: str  # where the values came from, for the report


def resolve(output: str, dtype: str, config: Config) -> Tolerance:
    rtol, atol = FLOAT_DEFAULTS.get(dtype, (0.0, 0.0))
    is_float = dtype in FLOAT_DEFAULTS
    sources = ["dtype default"] if is_float else ["exact"]
    frac, nan_equal = 0.0, True
    layers = [("[defaults]", config.defaults)]
    oc = config.output(output)
    if oc is not None:
        layers.append((f"[outputs.{oc.pattern!r}]", oc.tolerance))
    explicit_atol = False
    for label, rule in layers:
        touched = False
        if rule.atol is not None:
            atol, touched = rule.atol, True
            explicit_atol = explicit_atol or label.startswith("[outputs")
        if rule.rtol is not None:
            rtol, touched = rule.rtol, True
        if rule.max_mismatch_fraction is not None:
            frac, touched = rule.max_mismatch_fraction, True
        if rule.nan_equal is not None:
            nan_equal, touched = rule.nan_equal, True
        if touched:
            sources.append(label)
    # Strings and bools have no distance, so a numeric tolerance cannot apply to them.
    exact = (not is_float and not explicit_atol) or dtype in ("string", "bool")
    if exact:
        atol = rtol = 0.0
    return Tolerance(atol=atol, rtol=rtol, max_mismatch_fraction=frac, nan_equal=nan_equal,
                     exact=exact, source=" + ".join(sources))


# The spread is a range seen over a handful of runs, and golden and candidate are two more
# independent draws; twice the observed range keeps a bounded noise from tripping the gate
# while a real change of the same order as the noise still fails.
SPREAD_MARGIN = 2.0


def output_tolerance(sg: SignatureGolden, name: str, dtype: str, config: Config,
                     prefix: str = "") -> tuple[Tolerance, float | None]:
    """The tolerance an output is judged with, and the run-to-run spread recorded for it."""
    tol = resolve(prefix + name, dtype, config)
    spread = sg.info(name).spread
    if spread is not None and float(spread) > 0 and not tol.exact:
        # The reference itself moved this much between identical calls; a candidate
        # cannot be held to a tighter bound than the golden's own run-to-run noise.
        tol = replace(tol, atol=tol.atol + SPREAD_MARGIN * float(spread),
                      source=f"{tol.source} + {SPREAD_MARGIN:g} x recorded spread")
    return tol, None if spread is None else float(spread)


def judged_tolerance(sg: SignatureGolden, name: str, golden_dtype: str, candidate_dtype: str,
                     config: Config, prefix: str = "") -> tuple[Tolerance, float | None]:
    """:func:`output_tolerance` for a candidate output of ``candidate_dtype``: a float
    precision change is judged with the less precise dtype's defaults."""
    coarse = _tolerance_dtype(golden_dtype, candidate_dtype)
    tol, spread = output_tolerance(sg, name, coarse, config, prefix)
    if coarse != golden_dtype:
        tol = replace(tol, source=tol.source.replace(
            "dtype default", f"{coarse} default (the less precise dtype)"))
    return tol, spread


def _tolerance_dtype(was: str, now: str) -> str:
    """The dtype whose defaults judge an output: its own, or for a float precision change the
    less precise of the two, since the comparison can be no finer than the coarser side
    (config values still win)."""
    return less_precise(was, now) if precision_change(was, now) else was
