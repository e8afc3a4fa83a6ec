"""RecordOptions and CompareOptions: frozen values whose defaults are the library's and the
CLI's, built by ``record``/``compare`` and by the CLI from its flags (no model runs here)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from snapshot_tool import api, cli
from snapshot_tool.compare import CompareOptions
from snapshot_tool.errors import SnapshotToolError
from snapshot_tool.record import RecordOptions

# Parameters of the library functions that are not options of the run.
NOT_OPTIONS = {"model_path", "golden_path", "progress"}
# CLI-only flags: output, presentation, and the runner (with its Beam arguments).
CLI_ONLY = {"model", "golden", "quiet", "runner", "beam_arg", "shards", "report_json",
            "junit", "markdown", "html", "localize"}


def _defaults(fn: Callable[..., Any], skip: set[str]) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if name not in skip}


def _fields(cls: type) -> dict[str, Any]:
    instance = cls()
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", [RecordOptions, CompareOptions])
def test_options_are_frozen(cls: type) -> None:
    options = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.signature = "other"  # type: ignore[attr-defined]


def test_record_options_defaults_are_the_library_defaults() -> None:
    library = _defaults(api.record, NOT_OPTIONS)
    library["allow_ops"] = tuple(library["allow_ops"])
    assert library["settings"] is None  # no scalar given by value
    library["settings"] = ()
    assert _fields(RecordOptions) == library


def test_compare_options_defaults_are_the_library_defaults() -> None:
    library = _defaults(api.compare, NOT_OPTIONS)
    library["allow_ops"] = tuple(library["allow_ops"])
    library["rename"] = {} if library["rename"] is None else library["rename"]
    assert _fields(CompareOptions) == library


def test_record_options_defaults_are_the_cli_defaults() -> None:
    flags = _defaults(cli.record, CLI_ONLY)
    flags["allow_ops"] = ()  # --allow-ops absent: no op allowed
    assert flags.pop("set_") is None  # --set absent: no scalar given by value
    flags["settings"] = ()
    assert _fields(RecordOptions) == flags


def test_compare_options_defaults_are_the_cli_defaults_but_one() -> None:
    flags = _defaults(cli.compare, CLI_ONLY)
    assert flags.pop("save_obtained") is None  # the CLI writes G.obtained.h5 on failure
    assert flags.pop("rename") is None and flags.pop("allow_ops") is None
    options = _fields(CompareOptions)
    assert options.pop("save_obtained") == "never"  # a library caller asks for it
    assert options.pop("rename") == {} and options.pop("allow_ops") == ()
    assert options.pop("obtained_path") is None and options.pop("error_summaries") is None
    assert options == flags


def test_options_do_not_share_the_callers_containers() -> None:
    rename = {"y": "output_0"}
    ops = ["PrintV2"]
    options = CompareOptions(rename=rename, allow_ops=ops)  # type: ignore[arg-type]
    rename["z"] = "output_1"
    ops.append("ReadFile")
    assert dict(options.rename) == {"y": "output_0"} and options.allow_ops == ("PrintV2",)
    with pytest.raises(TypeError):
        options.rename["z"] = "output_1"  # type: ignore[index]
    sizes = [1, 8]
    recorded = RecordOptions(latency_batch_sizes=sizes)  # type: ignore[arg-type]
    sizes.append(16)
    assert recorded.latency_batch_sizes == (1, 8)


class _Stop(SnapshotToolError):
    """Raised instead of running: the CLI reports it as an input error (exit 2)."""


def _capture(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> list[Any]:
    """Replace ``module.name`` (a *_with runner) by one that records its options."""
    seen: list[Any] = []

    def fake(model: Any, golden: Any, options: Any, progress: Any = None) -> Any:
        seen.append(options)
        raise _Stop("stopped before running")

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    return seen


def test_library_functions_build_their_options(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _capture(monkeypatch, "snapshot_tool.record", "record_with")
    compares = _capture(monkeypatch, "snapshot_tool.compare", "compare_with")
    with pytest.raises(_Stop):
        api.record("m", "g.h5", seed=3, latency_batch_sizes=[1, 4], allow_ops=["PrintV2"])
    with pytest.raises(_Stop):
        api.compare("m", "g.h5", tag="serve", rename={"y": "z"}, save_obtained="always")
    assert records == [RecordOptions(seed=3, latency_batch_sizes=(1, 4),
                                     allow_ops=("PrintV2",))]
    assert compares == [CompareOptions(tag="serve", rename={"y": "z"}, save_obtained="always")]


def test_cli_builds_record_options_from_its_flags(monkeypatch: pytest.MonkeyPatch,
                                                   cli: Any, tmp_path: Path) -> None:
    # The CLI calls record_with from its own module (not via snapshot_tool.api).
    seen = _capture(monkeypatch, "snapshot_tool.record", "record_with")
    res = cli("record", tmp_path / "m", "--golden", tmp_path / "g.h5", "--seed", 5,
              "--num-samples", 10, "--batch-size", 2, "--no-latency", "--force", "--sign",
              "--latency-batch-sizes", "1,2", "--allow-ops", "PrintV2", "--tag", "train")
    assert res.code == 2 and "stopped" in res.stderr, res
    assert seen == [RecordOptions(seed=5, num_samples=10, batch_size=2, latency=False,
                                  force=True, sign=True, latency_batch_sizes=(1, 2),
                                  allow_ops=("PrintV2",), tag="train")]


def test_cli_builds_compare_options_from_its_flags(monkeypatch: pytest.MonkeyPatch,
                                                    cli: Any, tmp_path: Path) -> None:
    seen = _capture(monkeypatch, "snapshot_tool.compare", "compare_with")
    base = ("compare", tmp_path / "m", "--golden", tmp_path / "g.h5")
    assert cli(*base).code == 2
    assert cli(*base, "--no-save-obtained", "--map", "y=z", "--latency-strict",
               "--require-signature", "--signature", "embed").code == 2
    # Without latency, --baseline-model serves --localize only: compare never sees it.
    assert cli(*base, "--no-latency", "--localize", "--baseline-model",
               tmp_path / "b").code == 2
    assert seen == [
        CompareOptions(save_obtained="on_failure"),
        CompareOptions(save_obtained="never", rename={"y": "z"}, latency_strict=True,
                       require_signature=True, signature="embed"),
        CompareOptions(save_obtained="on_failure", latency=False)]
