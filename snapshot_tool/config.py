"""The comparison config: ``snapshot.toml`` or ``[tool.snapshot-tool]`` in ``pyproject.toml``.

Every key is validated up front. A typo such as ``atoll = 1e-4`` must be an error, not a
silently ignored line that leaves a gate looser or tighter than the user believes.

```toml
[defaults]                         # tolerances for every output (else dtype-aware defaults)
atol = 1e-5
rtol = 1.3e-6
max_mismatch_fraction = 0.0
nan_equal = true

[outputs."logits*"]                # an output name or a glob (or "signature/output");
                                   # an exact name beats a glob, then file order
atol = 1e-4
task = "classification"            # classification | binary | regression | none
allow_dtype_change = false         # true: a float precision change (float32 -> float16)
                                   # is judged on the values, compared in the wider dtype
threshold = 0.5                    # binary decision threshold
[outputs."logits*".metrics]
accuracy = { max_drop = 0.02 }     # per-output metric thresholds

[metrics]                          # metric thresholds for every output that has the metric
accuracy = { max_drop = 0.01 }
top1_agreement = { min = 0.99 }

[latency]
max_drift = 0.10                   # side-by-side: allowed relative p50 slowdown
stored_max_drift = 0.25            # against the golden's stored samples

[rename]                           # golden name = candidate name, for inputs and outputs a
y = "output_0"                     # converter renamed (compare --map y=output_0 does the same)
```
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapshot_tool.errors import ConfigError
from snapshot_tool.names import bare

TASKS = ("classification", "binary", "regression", "none")


@dataclass(frozen=True)
class ToleranceRule:
    """Tolerance settings; ``None`` means "not set here, fall back to the next level"."""

    atol: float | None = None
    rtol: float | None = None
    max_mismatch_fraction: float | None = None
    nan_equal: bool | None = None


@dataclass(frozen=True)
class MetricThreshold:
    """Limits for one metric. Any combination may be set; all that are set must hold."""

    max_drop: float | None = None
    max_relative_drop: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class OutputConfig:
    pattern: str
    tolerance: ToleranceRule = ToleranceRule()
    task: str | None = None
    threshold: float | None = None
    metrics: dict[str, MetricThreshold] = field(default_factory=dict)
    # A float precision change (mixed-precision candidate) is accepted and judged on values.
    allow_dtype_change: bool = False

    def matches(self, name: str) -> bool:
        return self.pattern == name or fnmatch.fnmatchcase(name, self.pattern)


@dataclass(frozen=True)
class LatencyConfig:
    max_drift: float = 0.10
    stored_max_drift: float = 0.25


@dataclass(frozen=True)
class Config:
    defaults: ToleranceRule = ToleranceRule()
    outputs: tuple[OutputConfig, ...] = ()
    metrics: dict[str, MetricThreshold] = field(default_factory=dict)
    latency: LatencyConfig = LatencyConfig()
    source: str | None = None
    # Golden tensor name -> the candidate's name for it (inputs and outputs).
    rename: dict[str, str] = field(default_factory=dict)
    # Ops a model may run although `inspect --scan` flags them (file system, printing).
    allow_ops: tuple[str, ...] = ()

    def output(self, name: str) -> OutputConfig | None:
        """The config table for one output: an exact name beats a glob, then file order.

        ``name`` may be qualified by its signature (``embed/embedding``) for goldens of
        several signatures; a table for the qualified name beats one for the bare name.
        """
        output = bare(name)
        names = [name] if output is None else [name, output]
        for candidate in names:
            for oc in self.outputs:
                if oc.pattern == candidate:
                    return oc
        for candidate in names:
            for oc in self.outputs:
                if oc.matches(candidate):
                    return oc
        return None

    def unmatched_outputs(self, names: list[str]) -> list[str]:
        """Output tables that match none of ``names`` (qualified or bare): likely typos."""
        everything = names + [b for b in map(bare, names) if b is not None]
        return [oc.pattern for oc in self.outputs
                if not any(oc.pattern == n or oc.matches(n) for n in everything)]

    def decision_threshold(self, output: str) -> float:
        """The binary decision threshold of an output: its table's, else 0.5."""
        oc = self.output(output)
        return oc.threshold if oc is not None and oc.threshold is not None else 0.5

    def metric_threshold(self, output: str, metric: str) -> MetricThreshold | None:
        oc = self.output(output)
        if oc is not None and metric in oc.metrics:
            return oc.metrics[metric]
        return self.metrics.get(metric)



_TOL_KEYS = {"atol", "rtol", "max_mismatch_fraction", "nan_equal"}
_OUTPUT_KEYS = _TOL_KEYS | {"task", "threshold", "metrics", "allow_dtype_change"}
_THRESHOLD_KEYS = {"max_drop", "max_relative_drop", "min", "max"}
_LATENCY_KEYS = {"max_drift", "stored_max_drift"}
_TOP_KEYS = {"defaults", "outputs", "metrics", "latency", "rename", "models"}


def _where(src: str, path: str) -> str:
    return f"{src}: [{path}]" if path else src


def _unknown(src: str, path: str, keys: set[str], allowed: set[str]) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise ConfigError(
            f"{_where(src, path)}: unknown key {extra[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )


def _number(src: str, path: str, key: str, value: Any, *, lo: float = 0.0,
            hi: float = math.inf) -> float:
    # bool is an int subclass in Python; `atol = true` is a mistake, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{_where(src, path)}: {key} must be a number, got {value!r}")
    v = float(value)
    # inf is refused like nan: `atol = inf` would pass every candidate, which no limit means.
    if not math.isfinite(v) or v < lo or v > hi:
        rng = f">= {lo:g}" if hi == math.inf else f"between {lo:g} and {hi:g}"
        raise ConfigError(f"{_where(src, path)}: {key} must be {rng}, got {value!r}")
    return v


def _table(src: str, path: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(src, path)}: expected a table, got {value!r}")
    return value


def _tolerance(src: str, path: str, t: dict[str, Any]) -> ToleranceRule:
    nan_equal = t.get("nan_equal")
    if nan_equal is not None and not isinstance(nan_equal, bool):
        raise ConfigError(
            f"{_where(src, path)}: nan_equal must be true or false, got {nan_equal!r}")
    return ToleranceRule(
        atol=_number(src, path, "atol", t["atol"]) if "atol" in t else None,
        rtol=_number(src, path, "rtol", t["rtol"]) if "rtol" in t else None,
        max_mismatch_fraction=(
            _number(src, path, "max_mismatch_fraction", t["max_mismatch_fraction"], hi=1.0)
            if "max_mismatch_fraction" in t else None
        ),
        nan_equal=nan_equal,
    )


def _thresholds(src: str, path: str, value: Any) -> dict[str, MetricThreshold]:
    out: dict[str, MetricThreshold] = {}
    for metric, raw in _table(src, path, value).items():
        p = f"{path}.{metric}"
        t = _table(src, p, raw)
        _unknown(src, p, set(t), _THRESHOLD_KEYS)
        if not t:
            raise ConfigError(f"{_where(src, p)}: empty threshold; set one of "
                              f"{', '.join(sorted(_THRESHOLD_KEYS))}")
        bounds = {k: _number(src, p, k, t[k], lo=-math.inf) for k in ("min", "max") if k in t}
        out[metric] = MetricThreshold(
            max_drop=_number(src, p, "max_drop", t["max_drop"]) if "max_drop" in t else None,
            max_relative_drop=(
                _number(src, p, "max_relative_drop", t["max_relative_drop"])
                if "max_relative_drop" in t else None
            ),
            min=bounds.get("min"),
            max=bounds.get("max"),
        )
    return out


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML mapping into a :class:`Config`."""
    _unknown(source, "", set(data), _TOP_KEYS)
    defaults = ToleranceRule()
    if "defaults" in data:
        d = _table(source, "defaults", data["defaults"])
        _unknown(source, "defaults", set(d), _TOL_KEYS)
        defaults = _tolerance(source, "defaults", d)
    outputs: list[OutputConfig] = []
    for pattern, raw in _table(source, "outputs", data.get("outputs", {})).items():
        p = f"outputs.{pattern!r}" if not pattern.isidentifier() else f"outputs.{pattern}"
        t = _table(source, p, raw)
        _unknown(source, p, set(t), _OUTPUT_KEYS)
        task = t.get("task")
        if task is not None and task not in TASKS:
            raise ConfigError(f"{_where(source, p)}: task must be one of {', '.join(TASKS)}, "
                              f"got {task!r}")
        thr = _number(source, p, "threshold", t["threshold"], hi=1.0) if "threshold" in t else None
        allow = t.get("allow_dtype_change", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"{_where(source, p)}: allow_dtype_change must be true or false, "
                              f"got {allow!r}")
        outputs.append(OutputConfig(
            pattern=pattern,
            tolerance=_tolerance(source, p, t),
            task=task,
            threshold=thr,
            metrics=_thresholds(source, f"{p}.metrics", t.get("metrics", {})),
            allow_dtype_change=allow,
        ))
    metrics = _thresholds(source, "metrics", data.get("metrics", {}))
    latency = LatencyConfig()
    if "latency" in data:
        lt = _table(source, "latency", data["latency"])
        _unknown(source, "latency", set(lt), _LATENCY_KEYS)
        latency = LatencyConfig(
            max_drift=_number(source, "latency", "max_drift", lt.get("max_drift", 0.10)),
            stored_max_drift=_number(source, "latency", "stored_max_drift",
                                     lt.get("stored_max_drift", 0.25)),
        )
    return Config(defaults=defaults, outputs=tuple(outputs), metrics=metrics,
                  latency=latency, source=source,
                  rename=_renames(source, data.get("rename", {})),
                  allow_ops=_allow_ops(source, data))


def _renames(src: str, value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for old, new in _table(src, "rename", value).items():
        if not isinstance(new, str) or not new or not old:
            raise ConfigError(f"{_where(src, 'rename')}: {old!r} = {new!r} must map a golden "
                              "name to the candidate's name, e.g. y = \"output_0\"")
        out[old] = new
    return out


def parse_renames(pairs: list[str]) -> dict[str, str]:
    """``--map OLD=NEW`` values (golden name = candidate name) as a mapping."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ConfigError(f"--map {pair!r}: expected OLD=NEW (the golden's name = the "
                              "candidate's name), e.g. --map y=output_0")
        out[old.strip()] = new.strip()
    return out


def _allow_ops(source: str, data: dict[str, Any]) -> tuple[str, ...]:
    if "models" not in data:
        return ()
    models = _table(source, "models", data["models"])
    _unknown(source, "models", set(models), {"allow_ops"})
    ops = models.get("allow_ops", [])
    if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
        raise ConfigError(f"{_where(source, 'models')}: allow_ops must be a list of op names "
                          'such as ["PrintV2"]')
    # The names are checked against the scan's op list where models are loaded
    # (models.scan.allowed_ops): config stays free of model code.
    return tuple(ops)


def load_config(path: str | Path | None) -> Config:
    """Load ``path``; with ``None``, look for ./snapshot.toml then ./pyproject.toml's table."""
    if path is None:
        if Path("snapshot.toml").is_file():
            path = Path("snapshot.toml")
        elif Path("pyproject.toml").is_file():
            try:
                doc = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
                # Someone else's broken pyproject is not our input; the defaults apply.
                return Config()
            tool = doc.get("tool")
            section = tool.get("snapshot-tool") if isinstance(tool, dict) else None
            if section is None:
                return Config()
            return parse_config(_table("pyproject.toml", "tool.snapshot-tool", section),
                                "pyproject.toml [tool.snapshot-tool]")
        else:
            return Config()
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {str(p)!r} is a directory; give the path of a TOML file "
                          "(snapshot.toml, or a pyproject.toml with [tool.snapshot-tool])")
    if not p.exists():
        raise ConfigError(f"config file {str(p)!r} not found")
    if not p.is_file():
        # `--config <(...)` or a FIFO: reading one can wait forever for a writer.
        raise ConfigError(f"config file {str(p)!r} is not a regular file (a pipe or a "
                          "device); save it to a file and give that path")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays recursively; thousands of levels exhaust the stack.
        raise ConfigError(f"{p}: nested too deeply to be a snapshot-tool config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    if p.name == "pyproject.toml":
        tool = doc.get("tool")
        section = tool.get("snapshot-tool") if isinstance(tool, dict) else None
        if section is None:
            raise ConfigError(f"{p}: has no [tool.snapshot-tool] table")
        return parse_config(_table(str(p), "tool.snapshot-tool", section),
                            f"{p} [tool.snapshot-tool]")
    return parse_config(doc, str(p))
