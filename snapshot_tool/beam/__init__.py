"""``record`` and ``compare`` as Apache Beam pipelines (``--runner beam``).

For evaluation sets too large for one machine: the rows are split into ranges, each worker
loads the model once and runs its ranges, and the results merge exactly:

- ``record`` writes a sharded golden (``G.h5.d/``, see :mod:`snapshot_tool.golden.sharded`),
  one shard per range, written by the worker that ran it, and task metrics from mergeable
  accumulators (:mod:`snapshot_tool.metrics.mergeable`);
- ``compare`` diffs range by range and merges per-output statistics
  (:mod:`snapshot_tool.diff_merge`) and metric accumulators with a ``CombineFn``, ending in
  the same :class:`~snapshot_tool.compare.ComparisonResult` as the in-process run.

Latency is a single-machine measurement and is skipped under Beam, with a note.

Only :mod:`snapshot_tool.beam.pipeline` imports ``apache_beam``, and only when a Beam run
starts: the ``beam`` extra (``pip install -e ".[beam]"`` in a checkout) is optional.
"""

from __future__ import annotations

from collections.abc import Sequence

from snapshot_tool.errors import SnapshotToolError

RUNNERS = ("in-process", "beam")
LATENCY_NOTE = ("latency not measured: it is a single-machine measurement, and --runner beam "
                "spreads the run over workers; run compare in-process for the latency gate")


def require_beam() -> None:
    """Refuse a Beam run, with the fix, when apache-beam is not installed."""
    import logging

    root = logging.getLogger()
    level = root.level
    # Importing Beam warns on the root logger about Google Cloud clients a local run never
    # uses; that line would read like a problem with the user's model.
    root.setLevel(logging.ERROR)
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        # The extra's own package, not 'snapshot-tool[beam]': the package of that name on
        # PyPI is another project's.
        raise SnapshotToolError("--runner beam needs Apache Beam: pip install "
                                "'apache-beam>=2.77' (the beam extra)") from None
    finally:
        root.setLevel(level)


def pipeline_args(beam_args: Sequence[str]) -> list[str]:
    """``KEY=VALUE`` (or ``--KEY=VALUE``) pipeline options as Beam's command-line flags."""
    flags: list[str] = []
    for arg in beam_args:
        key, sep, value = arg.removeprefix("--").partition("=")
        if not key or not sep:
            raise SnapshotToolError(f"--beam-arg {arg!r}: expected KEY=VALUE, e.g. "
                                    "runner=DataflowRunner or direct_num_workers=2")
        flags.append(f"--{key}={value}")
    # Beam's workers log every channel they open at INFO; a CI log wants our report.
    if not any(f.startswith("--default_sdk_harness_log_level") for f in flags):
        flags.append("--default_sdk_harness_log_level=ERROR")
    return flags


def check_runner(runner: str) -> None:
    if runner not in RUNNERS:
        raise SnapshotToolError(f"--runner {runner!r}: expected one of {', '.join(RUNNERS)}")


def refuse_scalars(names: Sequence[str], signature: str) -> None:
    """Beam splits inputs into row ranges that shard goldens store and readers join again;
    a scalar input (0-d, fed unchanged with every batch) has no rows to split or join, and
    sharded goldens do not hold one. Refused before any worker starts."""
    if names:
        raise SnapshotToolError(
            f"--runner beam does not take scalar (rank-0) inputs yet: signature "
            f"{signature!r} takes {', '.join(repr(n) for n in names)}; run it in-process "
            "(without --runner beam)")
