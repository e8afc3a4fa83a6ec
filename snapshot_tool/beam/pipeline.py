"""The Beam pipeline both commands run: work items -> one ``DoFn`` per range (model loaded
once per worker process) -> ``CombinePerKey`` merging each output's results exactly ->
merged results written where the driver reads them back.

This is the only module that imports ``apache_beam``; it is imported when a Beam run starts.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
from apache_beam.utils import shared

from snapshot_tool.beam.work import Loaded, merge_values
from snapshot_tool.errors import SnapshotToolError

Key = tuple[str, str]


class Job(Protocol):
    @property
    def model_path(self) -> str: ...

    @property
    def tag(self) -> str: ...

    def run(self, loaded: Loaded, item: Any) -> Iterator[tuple[Key, Any]]: ...


class RunRanges(beam.DoFn):
    """Runs the job on each work item with a model loaded once per worker process:
    ``shared.Shared`` hands every thread and DoFn instance of a process the same one."""

    def __init__(self, job: Job, handle: shared.Shared) -> None:
        self._job = job
        self._handle = handle
        self._loaded: Loaded | None = None

    def setup(self) -> None:
        job = self._job
        self._loaded = self._handle.acquire(lambda: Loaded(job.model_path, job.tag),
                                            tag=(job.model_path, job.tag))

    def process(self, item: Any) -> Iterator[tuple[Key, Any]]:
        assert self._loaded is not None
        yield from self._job.run(self._loaded, item)


class MergeResults(beam.CombineFn):
    """Merges the results of one key from any number of ranges, in any order; every
    result type's merge is associative and commutative (see snapshot_tool.beam.work)."""

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, acc: Any, value: Any) -> Any:
        return value if acc is None else merge_values(acc, value)

    def merge_accumulators(self, accs: Iterable[Any]) -> Any:
        merged = None
        for acc in accs:
            if acc is not None:
                merged = acc if merged is None else merge_values(merged, acc)
        return merged

    def extract_output(self, acc: Any) -> Any:
        return acc


class WriteResult(beam.DoFn):
    """One pickle per key in the results folder (any filesystem Beam can write)."""

    def __init__(self, folder: str) -> None:
        self._folder = folder

    def process(self, kv: tuple[Key, Any]) -> Iterator[None]:
        path = FileSystems.join(self._folder, f"{uuid.uuid4().hex}.pkl")
        with FileSystems.create(path) as fh:
            fh.write(pickle.dumps(kv, protocol=pickle.HIGHEST_PROTOCOL))
        return iter(())


def run(job: Job, items: Sequence[Any], flags: Sequence[str]) -> dict[Key, Any]:
    """Run ``job`` over ``items`` with Beam pipeline options ``flags``; the merged result
    of every key."""
    options = PipelineOptions(list(flags))
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    with _results_folder(options) as folder:
        try:
            with beam.Pipeline(options=options) as p:
                _ = (p
                     | "ranges" >> beam.Create(list(items), reshuffle=True)
                     | "run model" >> beam.ParDo(RunRanges(job, shared.Shared()))
                     | "merge per output" >> beam.CombinePerKey(MergeResults())
                     | "collect" >> beam.ParDo(WriteResult(folder)))
        except SnapshotToolError:
            raise
        except Exception as exc:  # a worker crash surfaces as the runner's own exception
            raise SnapshotToolError(f"the Beam pipeline failed: {_first_line(exc)}") from exc
        return _read_results(folder)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


@contextlib.contextmanager
def _results_folder(options: PipelineOptions) -> Iterator[str]:
    """Under --temp_location when set (remote runners need a shared place), else a local
    temporary folder; removed afterwards."""
    base = options.view_as(GoogleCloudOptions).temp_location
    if base:
        folder = FileSystems.join(base, f"snapshot-tool-{uuid.uuid4().hex}")
        FileSystems.mkdirs(folder)
        try:
            yield folder
        finally:
            with contextlib.suppress(Exception):
                FileSystems.delete([folder])
        return
    with tempfile.TemporaryDirectory(prefix="snapshot-tool-beam-") as local:
        yield local


def _read_results(folder: str) -> dict[Key, Any]:
    results: dict[Key, Any] = {}
    match = FileSystems.match([FileSystems.join(folder, "*.pkl")])[0]
    for meta in match.metadata_list:
        with FileSystems.open(meta.path) as fh:
            key, value = pickle.loads(fh.read())
        results[key] = value if key not in results else merge_values(results[key], value)
    return results
