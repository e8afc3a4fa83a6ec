"""What a golden holds, without loading its tensors: the data behind ``snapshot-tool show``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snapshot_tool.dtypes import scalar_value
from snapshot_tool.golden import schema
from snapshot_tool.golden.io import (
    _decode,
    malformed_is_golden_error,
    open_golden,
    read_metrics,
    signature_groups,
    verify_golden,
)
from snapshot_tool.golden.schema import TensorRecord


def describe_golden(path: str | Path) -> dict[str, Any]:
    """What a golden holds, without loading tensors: for ``show``. Root and latency
    attributes are shown as stored (a newer golden's extra attributes included)."""
    from snapshot_tool.golden.sharded import describe_sharded, is_sharded

    p = Path(path)
    if is_sharded(p):
        return describe_sharded(p)
    # What show prints is what compare would use: a golden compare refuses is refused here.
    verify_golden(p)
    with malformed_is_golden_error(p), open_golden(p) as f:
        sigs = {name: _describe_signature(g, p) for name, g in signature_groups(f, p).items()}
        return {"path": str(p), "attrs": _root(f.attrs), "signatures": sigs}


def _root(stored: Any) -> dict[str, Any]:
    attrs = {k: schema.plain(v) for k, v in stored.items()}
    env = attrs.get(schema.ENVIRONMENT)
    if isinstance(env, str):
        try:
            attrs[schema.ENVIRONMENT] = json.loads(env)
        except json.JSONDecodeError:
            pass  # shown as stored
    return attrs


def _tensor(name: str, ds: Any) -> dict[str, Any]:
    rec = TensorRecord.from_attrs(ds.attrs, tuple(ds.shape))
    return {"name": name, "dtype": rec.dtype, "shape": list(rec.shape), "sha256": rec.sha256}


def _input(name: str, ds: Any) -> dict[str, Any]:
    """An input; a scalar one (a setting fed with every batch: keep_prob, a temperature)
    with its value, which says more about the recording than its checksum."""
    entry = _tensor(name, ds)
    if ds.shape == ():
        entry["value"] = scalar_value(_decode(ds, ds[()]))
    return entry


def _describe_signature(g: Any, path: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        schema.INPUTS: [_input(k, ds) for k, ds in g[schema.INPUTS].items()],
        schema.OUTPUTS: [_tensor(k, ds) for k, ds in g[schema.OUTPUTS].items()]}
    if schema.LABELS in g:
        ds = g[schema.LABELS]
        labels = _tensor(schema.LABELS, ds)
        entry["labels"] = {"shape": labels["shape"], "dtype": labels["dtype"],
                           "source": schema.text(ds.attrs.get(schema.LABELS_SOURCE)),
                           "sha256": labels["sha256"]}
    if schema.METRICS in g:
        entry["metrics"] = {
            out: {"task": om.task, "values": {m: {"value": v.value, "direction": v.direction}
                                              for m, v in om.values.items()}}
            for out, om in read_metrics(g, f"{path}: {schema.METRICS}").items()}
    if schema.LATENCY in g:
        entry["latency"] = {}
        for key, lg in g[schema.LATENCY].items():
            ds = lg[schema.SAMPLES]
            entry["latency"][key] = ({a: schema.plain(v) for a, v in ds.attrs.items()}
                                     | {"samples": int(ds.shape[0])})
    return entry
