"""compare.py's orchestration on a numpy-only model: no TensorFlow, milliseconds per case."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from snapshot_tool.compare import (
    CompareOptions,
    ComparisonResult,
    _compare_whole,
    compare,
    compare_with,
)
from snapshot_tool.compare_stream import compare_streaming
from snapshot_tool.config import parse_config
from snapshot_tool.errors import ConfigError, SignatureError
from snapshot_tool.golden.io import read_golden
from snapshot_tool.progress import no_progress
from snapshot_tool.record import record
from tests.fakes import FakeModel, fake_model_dir, use_fake_models


@pytest.fixture()
def models(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    """Keyword arguments of the FakeModel loaded from a folder, by the folder's name."""
    kwargs: dict[str, dict[str, Any]] = {}
    use_fake_models(monkeypatch, lambda p: FakeModel(p, **kwargs.get(p.name, {})))
    return kwargs


@pytest.fixture()
def golden(models: dict[str, dict[str, Any]], tmp_path: Path) -> Path:
    path = tmp_path / "g.h5"
    record(fake_model_dir(tmp_path, "reference"), path, num_samples=8, batch_size=4,
           latency=False)
    return path


def _compare(golden: Path, models: dict[str, dict[str, Any]], **model: Any
             ) -> ComparisonResult:
    options = {k: model.pop(k) for k in list(model) if k not in ("bias", "signatures")}
    models["candidate"] = model
    candidate = fake_model_dir(golden.parent, "candidate")
    return compare(candidate, golden, **{"latency": False, **options})


def test_the_same_model_passes(golden: Path, models: dict[str, dict[str, Any]]) -> None:
    result = _compare(golden, models)
    assert result.passed and {d.name for d in result.outputs} == {"y", "score"}
    assert result.latency_mode is None and result.multi_signature is False


def test_a_shifted_model_fails_with_the_atol_that_would_pass(
        golden: Path, models: dict[str, dict[str, Any]]) -> None:
    result = _compare(golden, models, bias=0.01)
    assert not result.passed
    y = next(d for d in result.outputs if d.name == "y")
    # 0.01 in float32 arithmetic: close to, not exactly, 0.01
    assert y.required_atol == pytest.approx(0.01, rel=1e-3)
    loose = parse_config({"defaults": {"atol": 0.05}})
    assert _compare(golden, models, bias=0.01, config=loose).passed


def test_agreement_metrics_are_checked_without_labels(
        golden: Path, models: dict[str, dict[str, Any]]) -> None:
    config = parse_config({"metrics": {"correlation": {"min": 0.999}}})
    result = _compare(golden, models, config=config)
    # score is a regression-like output (one value per row); y's two columns read as class
    # scores, whose agreement metrics are top-1 and cosine instead.
    assert {(m.output, m.name) for m in result.metrics if m.limit} == {("score", "correlation")}
    assert ("y", "top1_agreement") in {(m.output, m.name) for m in result.metrics}
    assert result.metrics_passed


def test_config_mistakes_are_found_before_any_model_runs(
        golden: Path, models: dict[str, dict[str, Any]]) -> None:
    result = _compare(golden, models, config=parse_config({"outputs": {"logits": {"atol": 1}}}))
    assert any("matches no output" in w for w in result.warnings)
    models["candidate"] = {"signatures": ()}  # would fail if it ran
    with pytest.raises(ConfigError, match="acuracy"):
        compare(golden.parent / "candidate", golden, latency=False,
                config=parse_config({"metrics": {"acuracy": {"max_drop": 0.1}}}))


def test_an_unknown_signature_is_refused(golden: Path, models: dict[str, dict[str, Any]]
                                         ) -> None:
    with pytest.raises(SignatureError, match="has no signature 'embed'"):
        _compare(golden, models, signature="embed")


def test_a_renamed_single_signature_is_compared_with_a_note(
        golden: Path, models: dict[str, dict[str, Any]]) -> None:
    result = _compare(golden, models, signatures=("serve",))
    assert result.passed
    assert any("compared its only signature 'serve'" in w for w in result.warnings)


def test_obtained_golden_is_written_on_failure(golden: Path, models: dict[str, dict[str, Any]]
                                              ) -> None:
    obtained_path = golden.parent / "o.h5"
    result = _compare(golden, models, bias=1.0, save_obtained="on_failure",
                      obtained_path=obtained_path)
    assert result.obtained == str(obtained_path)
    obtained = read_golden(obtained_path)
    assert obtained.attrs["obtained_from"] == str(golden)
    assert obtained.attrs["model_kind"] == "fake"


def test_stored_latency_is_skipped_with_a_note_when_absent(
        golden: Path, models: dict[str, dict[str, Any]]) -> None:
    result = _compare(golden, models, latency=True)
    assert result.latency == () and any("no latency baseline" in w for w in result.warnings)


def test_options_notes_and_explicit_map_mistakes(golden: Path,
                                                 models: dict[str, dict[str, Any]]) -> None:
    result = _compare(golden, models, baseline_model=golden.parent / "reference",
                      self_check=True)
    assert any("--baseline-model is only used to time latency" in w for w in result.warnings)
    assert any("--self-check" in w for w in result.warnings)
    assert result.baseline_model is not None and result.latency_mode is None
    with pytest.raises(ConfigError, match="--map nope=y: the golden has no input or output"):
        _compare(golden, models, rename={"nope": "y"})


def test_one_options_value_serves_several_runs_and_both_paths(
        golden: Path, models: dict[str, dict[str, Any]]) -> None:
    models["candidate"] = {"bias": 0.5}
    candidate = fake_model_dir(golden.parent, "candidate")
    options = CompareOptions(latency=False, error_summaries=False)
    # compare_with would redo a failing streamed compare in memory (for error summaries):
    # each path on its own here.
    streamed = compare_streaming(candidate, golden, options, no_progress)
    whole = _compare_whole(candidate, golden, options, no_progress)
    assert not streamed.passed and not whole.passed
    assert [(d.name, d.status, d.mismatch_count) for d in streamed.outputs] == \
        [(d.name, d.status, d.mismatch_count) for d in whole.outputs]
    again = compare_with(candidate, golden, replace(options, error_summaries=True))
    assert [d.mismatch_count for d in again.outputs] == \
        [d.mismatch_count for d in streamed.outputs]


def test_the_self_check_is_on_by_default_while_the_golden_model_is_on_disk(
        tmp_path: Path) -> None:
    """None (the default) self-checks whenever the golden's model is there; when it is not,
    it warns that the plain verdict carries the machine's drift, unlike an explicit
    --self-check ("skipped") and --no-self-check (silent)."""
    from types import SimpleNamespace

    from snapshot_tool.compare import _self_check_model

    model = tmp_path / "m"
    model.mkdir()

    from snapshot_tool.models.load import model_digest

    def golden(path: Path, digest: str | None = None) -> Any:
        return SimpleNamespace(path=tmp_path / "g.h5", info=SimpleNamespace(
            model_path=str(path), model_digest=model_digest(model) if digest is None
            else digest))

    assert _self_check_model(golden(model), None) == (model, "")
    assert _self_check_model(golden(model), True) == (model, "")
    assert _self_check_model(golden(model), False) == (None, "")
    gone = golden(tmp_path / "gone")
    own, note = _self_check_model(gone, None)
    assert own is None and "without a self-check" in note and "no longer on disk" in note
    own, note = _self_check_model(gone, True)
    assert own is None and note.startswith("--self-check skipped")
    assert _self_check_model(gone, False) == (None, "")
    # Another model at the path, or no digest to tell: never the yardstick (a candidate
    # exported over the golden's model would be timed against itself).
    for digest, why in (("0" * 64, "not the one"), ("", "no model digest")):
        own, note = _self_check_model(golden(model, digest), None)
        assert own is None and why in note
