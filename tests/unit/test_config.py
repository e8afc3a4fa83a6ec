from __future__ import annotations

from pathlib import Path

import pytest

from snapshot_tool.config import load_config, parse_config
from snapshot_tool.errors import ConfigError


def test_full_config_parses(tmp_path: Path) -> None:
    p = tmp_path / "snapshot.toml"
    p.write_text("""
[defaults]
atol = 1e-5
rtol = 1.3e-6
[outputs."logits*"]
atol = 1e-4
max_mismatch_fraction = 0.01
nan_equal = false
task = "classification"
[outputs."logits*".metrics]
accuracy = { max_drop = 0.02 }
[metrics]
accuracy = { max_drop = 0.01 }
top1_agreement = { min = 0.99 }
[latency]
max_drift = 0.2
""")
    cfg = load_config(p)
    assert cfg.defaults.atol == 1e-5
    oc = cfg.output("logits_a")
    assert oc is not None and oc.tolerance.nan_equal is False and oc.task == "classification"
    assert cfg.metric_threshold("logits_a", "accuracy").max_drop == 0.02  # type: ignore[union-attr]
    assert cfg.metric_threshold("probs", "accuracy").max_drop == 0.01  # type: ignore[union-attr]
    assert cfg.metrics["top1_agreement"].min == 0.99
    assert cfg.latency.max_drift == 0.2 and cfg.latency.stored_max_drift == 0.25


@pytest.mark.parametrize("data, fragment", [
    ({"default": {}}, "unknown key 'default'"),
    ({"defaults": {"atoll": 1}}, "unknown key 'atoll'"),
    ({"defaults": {"atol": True}}, "atol must be a number"),
    ({"defaults": {"atol": -1}}, "atol must be >= 0"),
    ({"defaults": {"nan_equal": "yes"}}, "nan_equal must be true or false"),
    ({"outputs": {"x": {"task": "ranking"}}}, "task must be one of"),
    ({"outputs": {"x": 3}}, "expected a table"),
    ({"metrics": {"accuracy": {"max_dropp": 1}}}, "unknown key 'max_dropp'"),
    ({"metrics": {"accuracy": {}}}, "empty threshold"),
    ({"latency": {"drift": 0.1}}, "unknown key 'drift'"),
])
def test_bad_configs_name_the_problem(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config(data, "snapshot.toml")


def test_pyproject_table_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None).source is None
    (tmp_path / "pyproject.toml").write_text('[tool.snapshot-tool.defaults]\natol = 0.5\n')
    cfg = load_config(None)
    assert cfg.defaults.atol == 0.5 and "pyproject.toml" in (cfg.source or "")
    (tmp_path / "snapshot.toml").write_text("[defaults]\natol = 0.25\n")
    assert load_config(None).defaults.atol == 0.25  # snapshot.toml wins
    with pytest.raises(ConfigError, match=r"no \[tool.snapshot-tool\]"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "pyproject.toml").write_text("[project]\nname='x'\n")
        load_config(tmp_path / "other" / "pyproject.toml")


def test_rename_table_and_map_flags() -> None:
    from snapshot_tool.config import parse_renames

    cfg = parse_config({"rename": {"y": "output_0", "features": "serving_default_x"}})
    assert cfg.rename == {"y": "output_0", "features": "serving_default_x"}
    assert parse_renames(["y=output_0", " z = output_1 "]) == {"y": "output_0",
                                                               "z": "output_1"}
    for bad in ("y", "=output_0", "y="):
        with pytest.raises(ConfigError, match="OLD=NEW"):
            parse_renames([bad])
    with pytest.raises(ConfigError, match=r"\[rename\]"):
        parse_config({"rename": {"y": 3}})
    with pytest.raises(ConfigError, match="rename"):
        parse_config({"rename": "y=output_0"})


def test_allow_dtype_change_is_a_per_output_bool() -> None:
    cfg = parse_config({"outputs": {"logits": {"allow_dtype_change": True}}})
    assert cfg.output("logits").allow_dtype_change  # type: ignore[union-attr]
    assert not parse_config({"outputs": {"x": {}}}).output("x").allow_dtype_change  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="allow_dtype_change must be true or false"):
        parse_config({"outputs": {"logits": {"allow_dtype_change": "yes"}}})
    with pytest.raises(ConfigError, match="unknown key 'allow_dtype_change'"):
        parse_config({"defaults": {"allow_dtype_change": True}})


def test_a_directory_given_as_config_is_named_as_such(tmp_path: Path) -> None:
    # Not "not found": the path exists, it is just not a file (a goldens/ folder, say).
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
