"""How a candidate's interface is matched to the golden's: which of the golden's signatures
are compared, which candidate signature stands for each, and which of its inputs and outputs
take the golden's names (``[rename]`` tables, ``--map``, a lone renamed input or output).

The in-memory, streaming and Beam compares, ``calibrate`` and ``localize`` all match the
same way, through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from snapshot_tool.dtypes import dtype_label
from snapshot_tool.errors import ConfigError, InputsError, SignatureError

if TYPE_CHECKING:
    from snapshot_tool.config import Config
    from snapshot_tool.golden.schema import Golden, SignatureGolden
    from snapshot_tool.models.base import Model, SignatureInfo, TensorSpec


def select_signatures(golden: Golden, signature: str | None) -> list[str]:
    """The golden's signatures a run covers: all of them, or the one asked for."""
    names = sorted(golden.signatures)
    if signature is None or signature == "all":
        return names
    if signature not in golden.signatures:
        raise SignatureError(f"golden {golden.path} has no signature {signature!r}; it "
                             f"holds: {', '.join(names)}")
    return [signature]


def candidate_signature(model: Model, name: str, *, single: bool
                        ) -> tuple[SignatureInfo, str]:
    """The model's signature standing for the golden's ``name``, and a note when it is its
    only one under another name (``single``: the run compares one signature)."""
    if name in model.signatures:
        return model.signatures[name], ""
    if single and len(model.signatures) == 1:
        # A converted model (TFLite, Keras file) often names its one signature differently.
        only = next(iter(model.signatures.values()))
        return only, (f"candidate has no signature {name!r}; compared its only signature "
                      f"{only.name!r} instead")
    raise SignatureError(
        f"candidate {model.path} has no signature {name!r} recorded in the golden; it has: "
        f"{', '.join(sorted(model.signatures)) or '(none)'}")


def fit_inputs(sig: SignatureInfo, sg: SignatureGolden, model: Model, who: str = "candidate",
               renames: Mapping[str, str] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The golden's stored inputs keyed by the model's input names, checked against its
    specs and cast to its dtypes (see :func:`match_inputs` and :func:`conform_inputs`)."""
    recorded = apply_renames(sg.inputs, {s.name for s in sig.inputs}, renames or {})
    names, note = match_inputs(sig, set(recorded), model, who)
    fitted, cast = conform_inputs(sig, {c: recorded[g] for c, g in names.items()}, model, who)
    return fitted, "; ".join(n for n in (note, cast) if n)


def match_inputs(sig: SignatureInfo, have: set[str], model: Model, who: str
                 ) -> tuple[dict[str, str], str]:
    """The model's input names mapped to the golden's, and a note when a lone input was
    renamed. One input under another name is accepted: converters and Keras reloads rename
    a lone input (``keras_tensor_3`` vs ``input_layer_3``) without changing what it means.
    A different set of inputs is an interface change and an error."""
    want = {s.name for s in sig.inputs}
    if want == have:
        return {n: n for n in want}, ""
    if len(want) == 1 and len(have) == 1:
        (cand_name,), (gold_name,) = want, have
        return {cand_name: gold_name}, (
            f"{who}'s only input is named {cand_name!r}, the golden's {gold_name!r}; "
            "fed the recorded input to it")
    raise SignatureError(
        f"signature {sig.name!r} of {who} {model.path} takes inputs "
        f"{', '.join(sorted(want)) or '(none)'} but the golden recorded "
        f"{', '.join(sorted(have)) or '(none)'}; the {who}'s interface changed"
        + _rename_hint(sorted(have - want), sorted(want - have)))


def _rename_hint(golden_only: list[str], model_only: list[str]) -> str:
    """How to say that inputs were only renamed (Keras's generated names differ between an
    export and a reloaded .keras file). Never applied by itself: which name is which is the
    user's to say."""
    if not golden_only or not model_only:
        return ""
    return (f"; if inputs were only renamed, map them golden=candidate with --map OLD=NEW "
            f"(e.g. --map {golden_only[0]}={model_only[0]}) or a [rename] table")


def _refuse_real_values_for_quantized(spec: TensorSpec, arr: np.ndarray, model: Model,
                                      who: str) -> None:
    """A full-integer TFLite conversion takes quantized integers where the golden recorded
    real numbers. Casting them (the generic advice) would feed zeros for inputs in [0, 1),
    so say what the integers mean and the two ways to gate such a model."""
    params = spec.quantization
    if params is None or arr.dtype.kind != "f" or not spec.dtype.startswith(("int", "uint")):
        return
    scale, zero_point = params
    raise SignatureError(
        f"{who} {model.path}: input {spec.name!r} is quantized {spec.dtype} (scale {scale:g}, "
        f"zero point {zero_point}) but the golden recorded {dtype_label(arr)} real values; "
        "gate the float model this was converted from, or record a golden for it from "
        f"quantized inputs (round(x / scale) + zero_point, as {spec.dtype}) with --inputs")


def conform_inputs(sig: SignatureInfo, feeds: Mapping[str, np.ndarray], model: Model,
                   who: str) -> tuple[dict[str, np.ndarray], str]:
    """Recorded inputs (keyed by the model's names) checked against the model's specs and
    cast to its dtypes. A different kind of dtype or per-sample shape is an interface
    change: feeding the recorded data anyway would be casting or reshaping it into
    something the golden never saw."""
    from snapshot_tool.inputs.batching import is_scalar
    from snapshot_tool.inputs.files import conform, scalar_mismatch

    fitted: dict[str, np.ndarray] = {}
    note = ""
    for spec in sig.inputs:
        arr = feeds[spec.name]
        _refuse_real_values_for_quantized(spec, arr, model, who)
        if takes := scalar_mismatch(spec, arr):
            # Said of the golden's whole input, not of the batch being fed, and with no
            # advice on how to store it: the golden is as recorded; the model changed.
            recorded = "a scalar" if is_scalar(arr) else "one row per sample"
            raise SignatureError(f"{who} {model.path}: {takes}, but the golden recorded "
                                 f"{recorded} for it (the {who}'s interface changed; record "
                                 "a new golden for it)")
        try:
            fitted[spec.name] = conform(spec, arr, f"{who} {model.path}")
        except InputsError as exc:
            raise SignatureError(f"{exc} (the golden's recorded input; the {who}'s interface "
                                 "changed)") from None
        if fitted[spec.name].dtype != arr.dtype:
            note = (note + "; " if note else "") + (
                f"{who} input {spec.name!r} is {spec.dtype}, the golden recorded "
                f"{dtype_label(arr)}; the recorded values were cast")
    return fitted, note


def apply_renames(golden: Mapping[str, np.ndarray], model_names: set[str],
                  renames: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The golden's tensors keyed by the model's names: a rename OLD -> NEW applies where
    the model has NEW and not OLD (so the same mapping serves a candidate that renamed and a
    baseline model that did not)."""
    out: dict[str, np.ndarray] = {}
    for name, arr in golden.items():
        new = renames.get(name)
        out[new if new is not None and new in model_names and name not in model_names
            else name] = arr
    return out


def output_names(sg: SignatureGolden, candidate: set[str], renames: Mapping[str, str]
                 ) -> tuple[dict[str, str], list[str]]:
    """The golden's name for each candidate output whose name differs, and notes on it.

    Explicit renames (``[rename]``, ``--map``) apply first. Then a lone output under another
    name is matched with a note, as a lone input is: converters without a SignatureDef call
    every output ``output_0``.. whatever the SavedModel called it. Several renamed outputs
    are never guessed (the pairing is ambiguous); the note on missing + extra outputs says
    how to map them.
    """
    mapping = {new: old for old, new in renames.items()
               if old in sg.outputs and new in candidate and old not in candidate}
    matched = {mapping.get(name, name) for name in candidate}
    notes: list[str] = []
    missing_names = sorted(set(sg.outputs) - matched)
    extra_names = sorted(matched - set(sg.outputs))
    if len(sg.outputs) == 1 and len(matched) == 1 and missing_names and extra_names:
        (gold,), (cand,) = missing_names, extra_names
        notes.append(f"candidate's only output is named {cand!r}, the golden's {gold!r}; "
                     f"compared them (say so with --map {gold}={cand} to keep this explicit)")
        return {cand: gold}, notes
    if missing_names and extra_names:
        notes.append(
            f"outputs {', '.join(missing_names)} are missing and {', '.join(extra_names)} are "
            "new: if the candidate renamed them, map each golden name to the candidate's with "
            f"--map OLD=NEW (e.g. --map {missing_names[0]}={extra_names[0]}) or a [rename] "
            "table in the config")
    return mapping, notes


V = TypeVar("V")


def golden_named(sg: SignatureGolden, outputs: Mapping[str, V], renames: Mapping[str, str]
                 ) -> tuple[dict[str, V], list[str]]:
    """A candidate's ``outputs`` (or anything keyed by its output names) keyed by the
    golden's names, as :func:`output_names` matches them, and its notes. Every run of a
    candidate against a golden (compare, Beam workers, calibrate, localize) matches so."""
    renamed, notes = output_names(sg, set(outputs), renames)
    return {renamed.get(k, k): v for k, v in outputs.items()}, notes


def check_renames(golden: Golden, names: list[str], cfg: Config,
                  explicit: Mapping[str, str]) -> list[str]:
    """``--map`` naming a tensor the golden lacks is an error (it was typed for this
    golden); a config ``[rename]`` entry only a warning, since one config may serve several
    goldens, as for ``[outputs.*]`` tables."""
    known = {t for sig in names for t in (*golden.signatures[sig].inputs,
                                          *golden.signatures[sig].outputs)}
    have = ", ".join(sorted(known))
    for old, new in explicit.items():
        if old not in known:
            raise ConfigError(f"--map {old}={new}: the golden has no input or output {old!r}; "
                              f"it has: {have}")
    return [f"config [rename] {old!r} = {new!r} names no input or output of the golden (it "
            f"has: {have}); check the name" for old, new in cfg.rename.items()
            if old not in known and old not in explicit]
