"""pytest plugin (entry point ``pytest11``): the ``model_snapshot`` fixture.

::

    def test_classifier(model_snapshot, tmp_path):
        model_snapshot.check(export_model(tmp_path), config="snapshot.toml")

``check`` compares the model against its golden (by default ``goldens/<test name>.h5``
beside the test file) with the same library calls and the same failure text as
``snapshot-tool compare``. Options:

- ``--snapshot-update`` records missing goldens and accepts failing ones (through the
  obtained golden, like ``snapshot-tool accept``). Refused when the ``CI`` environment
  variable is set, unless ``--snapshot-update-on-ci`` says so explicitly: a CI job that
  rewrites its own expectations checks nothing.
- A missing golden fails the test; it is never created implicitly, and on CI it is never
  created at all without ``--snapshot-update-on-ci``.
- ``--snapshot-warn-unused`` lists goldens in the golden folders of the collected tests
  that no collected test uses. It only warns: deleting goldens because a test did not run
  this time (``-k``, ``-x``, a skipped module) would destroy the expectations of others.

This module is imported by every pytest run in an environment that has snapshot-tool, so it
imports nothing heavy at module level: TensorFlow loads only when a test calls ``check``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from snapshot_tool.compare import ComparisonResult

GOLDEN_DIR_INI = "snapshot_tool_golden_dir"
_STATE = pytest.StashKey["_SessionState"]()


def on_ci() -> bool:
    from snapshot_tool.accept import on_ci as accept_on_ci

    return accept_on_ci()


@dataclass
class _SessionState:
    used: set[Path] = field(default_factory=set)
    dirs: set[Path] = field(default_factory=set)
    recorded: list[Path] = field(default_factory=list)
    accepted: list[Path] = field(default_factory=list)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("snapshot-tool", "model golden files (snapshot-tool)")
    group.addoption("--snapshot-update", action="store_true", default=False,
                    help="Record missing goldens and accept failing ones. Refused when CI "
                         "is set, unless --snapshot-update-on-ci.")
    group.addoption("--snapshot-update-on-ci", action="store_true", default=False,
                    help="Allow --snapshot-update (and recording missing goldens) although "
                         "the CI environment variable is set.")
    group.addoption("--snapshot-warn-unused", action="store_true", default=False,
                    help="Warn about goldens in the collected tests' golden folders that "
                         "no collected test uses (never deletes them).")
    parser.addini(GOLDEN_DIR_INI, "Folder of default goldens, relative to each test file.",
                  default="goldens")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATE] = _SessionState()


def _safe(name: str) -> str:
    # Parametrized ids hold brackets, slashes and spaces; a file name must not.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "golden"


def default_golden(path: Path, test_name: str, ini_dir: str, index: int = 0) -> Path:
    """``<test file folder>/<ini dir>/<test name>.h5``; the n-th further check of one test
    gets ``.<n>`` before the suffix."""
    suffix = f".{index}.h5" if index else ".h5"
    return path.parent / ini_dir / f"{_safe(test_name)}{suffix}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    # A collected test that uses the fixture claims its default golden even if it does not
    # run to the check (stopped by -x, skipped at run time): "unused" means no test claims it.
    state = config.stash[_STATE]
    ini_dir = str(config.getini(GOLDEN_DIR_INI))
    for item in items:
        if "model_snapshot" in getattr(item, "fixturenames", ()):
            golden = default_golden(Path(str(item.path)), item.name, ini_dir)
            state.used.add(golden.resolve())
            state.dirs.add(golden.parent.resolve())


class ModelSnapshot:
    """What the ``model_snapshot`` fixture hands a test."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._config = request.config
        self._calls = 0

    @property
    def update(self) -> bool:
        return bool(self._config.getoption("--snapshot-update"))

    def _may_write(self) -> bool:
        return not on_ci() or bool(self._config.getoption("--snapshot-update-on-ci"))

    def golden_path(self, golden: str | os.PathLike[str] | None = None) -> Path:
        if golden is not None:
            p = Path(golden)
            return p if p.is_absolute() else Path(str(self._request.path)).parent / p
        index, self._calls = self._calls, self._calls + 1
        return default_golden(Path(str(self._request.path)), self._request.node.name,
                              str(self._config.getini(GOLDEN_DIR_INI)), index)

    def check(self, model: str | os.PathLike[str], golden: str | os.PathLike[str] | None = None,
              config: str | os.PathLike[str] | None = None, *, latency: bool = False,
              **record_options: Any) -> ComparisonResult | None:
        """Compare ``model`` with its golden; fail the test like ``snapshot-tool compare``.

        ``record_options`` (``inputs``, ``num_samples``, ``seed``, ``batch_size``,
        ``labels``, ``signature``, ...) are those of :func:`snapshot_tool.record`, used when
        the golden is recorded. ``latency`` is off by default: unit-test machines are too
        noisy for a latency gate. Returns the comparison, or None when it recorded.
        """
        from snapshot_tool.errors import SnapshotToolError

        path = self.golden_path(golden)
        state = self._config.stash[_STATE]
        state.used.add(path.resolve())
        state.dirs.add(path.parent.resolve())
        try:
            if not path.exists():
                self._missing(model, path, config, latency, record_options)
                return None
            return self._compare(model, path, config, latency)
        except SnapshotToolError as exc:
            pytest.fail(f"snapshot-tool: error: {exc}", pytrace=False)

    def _missing(self, model: Any, path: Path, config: Any, latency: bool,
                 options: dict[str, Any]) -> None:
        if not self.update:
            where = (" Goldens are never created on CI: record it locally and commit it."
                     if on_ci() else "")
            pytest.fail(f"snapshot-tool: golden {path} does not exist.{where} Record it with "
                        "`pytest --snapshot-update` (or `snapshot-tool record MODEL "
                        f"--golden {path}`), review it and commit it.", pytrace=False)
        if not self._may_write():
            pytest.fail(f"snapshot-tool: golden {path} does not exist, and --snapshot-update "
                        "does not record goldens on CI (CI is set); record it locally and "
                        "commit it, or pass --snapshot-update-on-ci.", pytrace=False)
        from snapshot_tool.api import record

        record(model, path, config=config, latency=latency, **options)
        self._config.stash[_STATE].recorded.append(path)

    def _compare(self, model: Any, path: Path, config: Any, latency: bool
                 ) -> ComparisonResult:
        from snapshot_tool.api import compare

        result = compare(model, path, config=config, latency=latency,
                         save_obtained="on_failure")
        if result.passed:
            return result
        if self.update and self._may_write() and result.obtained and _acceptable(result):
            from snapshot_tool.accept import accept

            accept(result.obtained, golden=path,
                   reason=f"pytest --snapshot-update ({self._request.node.nodeid})")
            self._config.stash[_STATE].accepted.append(path)
            return result
        note = ""
        if self.update and not self._may_write():
            note = ("\n--snapshot-update does not accept goldens on CI (CI is set); accept "
                    "the obtained golden locally, or pass --snapshot-update-on-ci.")
        elif self.update:
            note = ("\n--snapshot-update cannot fix this: only outputs and metrics are "
                    "accepted; latency needs a re-record (`snapshot-tool record --force`).")
        pytest.fail(failure_text(result) + note, pytrace=False)


def _acceptable(result: ComparisonResult) -> bool:
    # An obtained golden carries outputs and metrics; a latency regression is not something
    # accepting it can fix.
    return result.latency_passed


def failure_text(result: ComparisonResult, width: int = 160) -> str:
    """The console report as plain text (no colour codes): what ``compare`` prints, after
    one line that pytest's short summary can show."""
    import io

    from rich.console import Console

    from snapshot_tool.report.console import console_renderables

    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False,
                      force_terminal=False, color_system=None)
    for item in console_renderables(result):
        # Lines of text are not folded: paths and commands must survive copy and paste.
        console.print(item, soft_wrap=isinstance(item, str))
    return f"snapshot-tool: {result.model} does not match {result.golden}\n" \
        + buf.getvalue().rstrip()


@pytest.fixture()
def model_snapshot(request: pytest.FixtureRequest) -> ModelSnapshot:
    """Compare a model against its golden file; see :class:`ModelSnapshot`."""
    return ModelSnapshot(request)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    for label, paths in (("recorded", state.recorded), ("accepted", state.accepted)):
        if paths:
            terminalreporter.write_sep("-", f"snapshot-tool: {len(paths)} golden(s) {label}")
            for p in paths:
                terminalreporter.write_line(f"  {p}")
    if not config.getoption("--snapshot-warn-unused"):
        return
    unused = sorted(p for d in state.dirs if d.is_dir() for p in d.glob("*.h5")
                    if not p.name.endswith(".obtained.h5") and p.resolve() not in state.used)
    if unused:
        terminalreporter.write_sep("-", f"snapshot-tool: {len(unused)} unused golden(s)",
                                   yellow=True)
        for p in unused:
            terminalreporter.write_line(f"  {p}")
        terminalreporter.write_line("  no collected test uses these; delete them by hand if "
                                    "they are obsolete (a deselected test may still need them)")
