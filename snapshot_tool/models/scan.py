"""Which ops of a signature touch the file system or print: seen before the model runs.

A CI gate runs candidate models from pull requests, and a TensorFlow graph can read, write
and list files or print as easily as it multiplies. The scan works on GraphDef protos, so it
sees exactly what TensorFlow will execute:

- TF2: every node of the signature's function and, recursively, of every function it calls
  (``PartitionedCall``, ``If``/``While`` branches, any ``func`` attr or op that names a
  library function). Inside a tf.function every stateful op runs, needed or not.
- TF1: only the subgraph that feeds the signature's outputs (data and control inputs), plus
  the functions it calls. A Session runs nothing else for a fetch, so the loader's own
  SaveV2/RestoreV2 ops and the table initializers that read the model's assets are not
  the signature's and are not flagged.

No TensorFlow import here: the protos come in, op names come out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Op -> why it is flagged. Kept as op *types*: a model cannot rename what an op does.
FLAGGED_OPS: Mapping[str, str] = {
    **dict.fromkeys((
        "ReadFile", "WriteFile", "MatchingFiles", "Save", "SaveV2", "SaveSlices", "Restore",
        "RestoreV2", "RestoreSlice", "MergeV2Checkpoints", "ImmutableConst",
        "LoadAndRemapMatrix", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "WholeFileReader", "WholeFileReaderV2", "TFRecordReader", "TFRecordReaderV2",
        "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "LMDBReader", "TFRecordDataset", "TFRecordDatasetV2",
        "TextLineDataset", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
        "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
        "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "SaveDataset",
        "SaveDatasetV2", "LoadDataset", "SnapshotDataset", "SnapshotDatasetV2",
        "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "CreateSummaryFileWriter",
        "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary",
        "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
        "WriteRawProtoSummary", "WriteGraphSummary", "ImportEvent", "FlushSummaryWriter",
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
        "DebugNumericSummary", "DebugNumericSummaryV2",
    ), "file system"),
    **dict.fromkeys(("Print", "PrintV2"), "prints"),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), "runs Python code"),
}


def flagged(ops: Iterable[str]) -> list[str]:
    """The flagged op types among ``ops``, sorted and without repeats."""
    return sorted({op for op in ops if op in FLAGGED_OPS})


def _called_functions(node: Any, library: Mapping[str, Any]) -> list[str]:
    """Names of the library functions a node calls: through a func attr (PartitionedCall,
    If, While, map functions of tf.data...) or by being a call to one by op name."""
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(f.name for f in value.list.func)
    return [n for n in names if n in library]


def _function_ops(fn_name: str, library: Mapping[str, Any], seen: set[str]) -> set[str]:
    """Every op a library function runs, including the functions it calls."""
    if fn_name in seen:
        return set()
    seen.add(fn_name)
    ops: set[str] = set()
    for node in library[fn_name].node_def:
        ops.add(node.op)
        for callee in _called_functions(node, library):
            ops |= _function_ops(callee, library, seen)
    return ops


def _node_name(tensor_or_input: str) -> str:
    return tensor_or_input.lstrip("^").split(":")[0]


def graph_ops(graph_def: Any, fetches: Iterable[str] | None = None) -> set[str]:
    """The op types that run for ``fetches`` (tensor or node names) of ``graph_def``, with
    the functions they call; every node's when ``fetches`` is None (a function graph)."""
    library = {f.signature.name: f for f in graph_def.library.function}
    nodes = {n.name: n for n in graph_def.node}
    if fetches is None:
        todo = list(nodes)
    else:
        todo = [_node_name(t) for t in fetches]
    reached: set[str] = set()
    while todo:
        name = todo.pop()
        if name in reached or name not in nodes:
            continue
        reached.add(name)
        todo.extend(_node_name(i) for i in nodes[name].input)
    ops: set[str] = set()
    seen: set[str] = set()
    for name in reached:
        node = nodes[name]
        ops.add(node.op)
        for callee in _called_functions(node, library):
            ops |= _function_ops(callee, library, seen)
    return ops


def refuse_flagged(model: Any, allowed: Iterable[str]) -> None:
    """Raise :class:`ModelError` naming the flagged ops a loaded model's signatures run,
    unless each is in ``allowed``. Call it after loading and before any run."""
    from snapshot_tool.errors import ModelError

    found = model.scan()
    if found is None:
        return  # a kind whose graph cannot be scanned (TFLite, .keras): nothing to say
    message = refusal(str(model.path), found, allowed)
    if message is not None:
        raise ModelError(message)


def refusal(model: str, found: Mapping[str, list[str]], allowed: Iterable[str]) -> str | None:
    """The error message for a model whose signatures use flagged ops not in ``allowed``,
    or None when there is nothing to refuse."""
    allow = set(allowed)
    bad = {sig: [op for op in ops if op not in allow] for sig, ops in found.items()}
    bad = {sig: ops for sig, ops in bad.items() if ops}
    if not bad:
        return None
    ops = sorted({op for ops in bad.values() for op in ops})
    where = "; ".join(f"{sig}: {', '.join(f'{op} ({FLAGGED_OPS[op]})' for op in sig_ops)}"
                      for sig, sig_ops in sorted(bad.items()))
    return (f"model {model} runs ops that touch the file system or print ({where}); it was "
            f"not run. If that is intended, pass --allow-ops {','.join(ops)} or set "
            "[models] allow_ops in the config")


def unknown_ops(names: Iterable[str]) -> list[str]:
    """Op names a user allowed that the scan never flags: a typo would otherwise silently
    allow nothing."""
    return sorted(n for n in names if n not in FLAGGED_OPS)


def allowed_ops(cli: Iterable[str], config: Any) -> tuple[str, ...]:
    """The ops a run allows: ``--allow-ops`` plus the config's ``[models] allow_ops``,
    whose names are checked here (config parsing imports no model code)."""
    from snapshot_tool.errors import ConfigError

    if unknown := unknown_ops(config.allow_ops):
        raise ConfigError(f"{config.source or 'config'}: [models] allow_ops names "
                          f"{', '.join(unknown)}, which the scan never flags; see "
                          "`snapshot-tool inspect MODEL --scan`")
    return (*cli, *config.allow_ops)


def parse_allow_ops(text: str | None) -> tuple[str, ...]:
    """``--allow-ops OP,OP`` -> op names, each one the scan knows."""
    from snapshot_tool.errors import SnapshotToolError

    if text is None:
        return ()
    ops = tuple(op.strip() for op in text.split(",") if op.strip())
    if unknown := unknown_ops(ops):
        raise SnapshotToolError(f"--allow-ops names {', '.join(unknown)}, which the scan "
                                "never flags (see `snapshot-tool inspect MODEL --scan`); "
                                "op names are case-sensitive, e.g. ReadFile,PrintV2")
    return ops
