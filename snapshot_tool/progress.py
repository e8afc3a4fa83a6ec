"""The progress callback record and compare report through: ``progress(stage, done, total)``.
The CLI draws bars from it; the library never prints.
"""

from __future__ import annotations

from collections.abc import Callable

# progress(stage, done, total): the CLI draws bars from it; the library never prints.
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    return None


def stage_progress(progress: Progress, stage: str) -> Callable[[int, int], None]:
    return lambda done, total: progress(stage, done, total)

