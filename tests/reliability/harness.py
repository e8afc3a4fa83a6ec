"""Running the real CLI in-process under a hard time bound, and judging what came out.

The bound is enforced by faulthandler's watchdog thread, which runs without the GIL: a hang
inside HDF5's C code (which holds the GIL, so no Python-level timer could fire) still ends
the run, with every thread's stack dumped, instead of stalling CI until its global timeout.
"""

from __future__ import annotations

import faulthandler
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

# A case that takes longer than this counts as a hang. The watchdog ends the whole run at
# HARD_LIMIT_S, since a thread stuck in C cannot be stopped any other way.
CASE_LIMIT_S = 20.0
HARD_LIMIT_S = 120.0


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float
    crash: str = ""  # an exception that escaped the CLI: a bug, whatever it is

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    @property
    def clean_error(self) -> bool:
        """Exit 2 with exactly one ``error:`` line and no traceback."""
        lines = self.error_lines
        return (self.code == 2 and not self.crash and len(lines) == 1
                and lines[0].startswith("error: ") and "Traceback" not in self.stdout)

    @property
    def hung(self) -> bool:
        return self.seconds > CASE_LIMIT_S

    def __str__(self) -> str:
        what = self.crash or self.stderr.strip()[-300:]
        return f"exit {self.code} in {self.seconds:.1f}s: {what}"


def run_cli(*args: object) -> Outcome:
    from typer.testing import CliRunner

    from snapshot_tool.cli import app

    faulthandler.dump_traceback_later(HARD_LIMIT_S, exit=True, file=sys.__stderr__)
    start = time.perf_counter()
    try:
        res = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        faulthandler.cancel_dump_traceback_later()
    seconds = time.perf_counter() - start
    crash = ""
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        crash = f"{type(res.exception).__name__}: {res.exception}"
    return Outcome(res.exit_code, res.stdout, res.stderr, seconds, crash)


@dataclass
class Tally:
    """Counts of what the fuzz cases ended in, and the cases that broke the contract."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def add(self, verdict: str, case: str, detail: str = "") -> None:
        self.counts["tried"] += 1
        self.counts[verdict] += 1
        if verdict not in ("clean_exit_2", "unchanged_verdict", "v1_unprotected"):
            self.failures.append(f"{verdict}: {case}: {detail}")

    def summary(self) -> str:
        keys = ("tried", "clean_exit_2", "unchanged_verdict", "wrong_verdict",
                "inconsistent", "crash", "hang", "v1_unprotected")
        return ", ".join(f"{k} {self.counts[k]}" for k in keys)
