"""What a golden holds, without loading its tensors: the data behind ``snapshot-tool show``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from snapshot_tool.golden.io import (
    attr_str,
    malformed_is_golden_error,
    open_golden,
    plain_attr,
    signature_groups,
    verify_golden,
)


def describe_golden(path: str | Path) -> dict[str, Any]:
    """What a golden holds, without loading tensors: for ``show``."""
    from snapshot_tool.golden.sharded import describe_sharded, is_sharded

    p = Path(path)
    if is_sharded(p):
        return describe_sharded(p)
    # What show prints is what compare would use: a golden compare refuses is refused here.
    verify_golden(p)
    with malformed_is_golden_error(p), open_golden(p) as f:
        attrs = {k: plain_attr(f.attrs[k]) for k in f.attrs}
        if isinstance(attrs.get("environment"), str):
            with contextlib.suppress(json.JSONDecodeError):
                attrs["environment"] = json.loads(attrs["environment"])
        sigs: dict[str, Any] = {}
        for name, g in signature_groups(f, p).items():
            entry: dict[str, Any] = {}
            for grp in ("inputs", "outputs"):
                entry[grp] = [
                    {"name": k, "dtype": attr_str(g[grp][k].attrs.get("dtype")),
                     "shape": list(g[grp][k].shape),
                     "sha256": attr_str(g[grp][k].attrs.get("sha256"))}
                    for k in g[grp]]
            if "labels" in g:
                entry["labels"] = {"shape": list(g["labels"].shape),
                                   "dtype": attr_str(g["labels"].attrs.get("dtype")),
                                   "source": attr_str(g["labels"].attrs.get("source")),
                                   "sha256": attr_str(g["labels"].attrs.get("sha256"))}
            if "metrics" in g:
                entry["metrics"] = {
                    out: {"task": attr_str(g["metrics"][out].attrs.get("task")),
                          "values": {m: {"value": float(g["metrics"][out][m][()]),
                                         "direction": attr_str(
                                             g["metrics"][out][m].attrs.get("direction"))}
                                     for m in g["metrics"][out]}}
                    for out in g["metrics"]}
            if "latency" in g:
                entry["latency"] = {
                    key: {a: plain_attr(g["latency"][key]["samples_ns"].attrs[a])
                          for a in g["latency"][key]["samples_ns"].attrs}
                    | {"samples": int(g["latency"][key]["samples_ns"].shape[0])}
                    for key in g["latency"]}
            sigs[name] = entry
    return {"path": str(p), "attrs": attrs, "signatures": sigs}

