"""``record --set NAME=VALUE``: text read by the input's kind, converted by the rule inputs
files follow."""

from __future__ import annotations

import re

import numpy as np
import pytest

from snapshot_tool.errors import InputsError
from snapshot_tool.inputs.settings import (
    as_settings,
    check_names,
    describe,
    parse_settings,
    values_for,
)
from snapshot_tool.inputs.synthesize import synthesize
from snapshot_tool.models.base import SignatureInfo, TensorSpec


def _sig(*specs: TensorSpec) -> SignatureInfo:
    return SignatureInfo("serving_default", specs, (TensorSpec("y", "float32", (None,)),))


def _value(dtype: str, text: str, shape: tuple[int, ...] | None = ()) -> np.ndarray:
    sig = _sig(TensorSpec("s", dtype, shape))
    return values_for(sig, parse_settings([f"s={text}"]))["s"]


@pytest.mark.parametrize(("dtype", "text", "want"), [
    ("bool", "True", True), ("bool", "off", False), ("bool", "0", False),
    ("int32", "-7", -7), ("int64", str(2**62 + 1), 2**62 + 1), ("uint8", "0xff", 255),
    ("float32", "0.5", 0.5), ("float64", "-inf", -np.inf), ("float16", "2", 2.0),
    ("complex64", "1+2j", 1 + 2j), ("string", "a=b é", "a=b é".encode()),
])
def test_values_are_read_by_the_inputs_kind(dtype: str, text: str, want: object) -> None:
    got = _value(dtype, text)
    assert got.ndim == 0
    assert got.item() == want
    if dtype != "string":
        assert got.dtype == np.dtype(dtype)


def test_bfloat16_and_unknown_rank_inputs_take_a_value() -> None:
    assert float(_value("bfloat16", "0.5")) == 0.5
    # A TF1 placeholder without a shape: only the user knows it is a setting.
    assert _value("float32", "0.25", shape=None).shape == ()


@pytest.mark.parametrize(("dtype", "text", "fragment"), [
    ("bool", "maybe", "give true or false"), ("int8", "128", "does not fit"),
    ("int32", "1.5", "is not a value"), ("uint8", "-1", "does not fit"),
    ("float32", "1e40", "overflow"), ("float32", "", "is not a value"),
])
def test_values_that_do_not_fit_are_refused(dtype: str, text: str, fragment: str) -> None:
    with pytest.raises(InputsError, match=fragment):
        _value(dtype, text)


def test_parse_keeps_an_equals_sign_in_the_value_and_refuses_repeats() -> None:
    assert parse_settings(["tag=a=b", "n=1"]) == (("tag", "a=b"), ("n", "1"))
    for bad in (["=1"], ["n"], ["n=1", "n=2"]):
        with pytest.raises(InputsError):
            parse_settings(bad)


def test_api_values_become_the_same_text_as_the_cli() -> None:
    assert as_settings({"keep_prob": 1.0, "is_training": False, "s": b"x",
                        "n": np.int32(3)}) == (
        ("keep_prob", "1.0"), ("is_training", "False"), ("s", "x"), ("n", "3"))


def test_names_must_belong_to_some_signature() -> None:
    sig = _sig(TensorSpec("x", "float32", (None, 2)), TensorSpec("t", "float32", ()))
    check_names([sig], (("t", "1"),))
    with pytest.raises(InputsError, match=r"signature 'serving_default' has no input 'q'.*"
                                          "scalar inputs: t"):
        check_names([sig], (("q", "1"),))
    with pytest.raises(InputsError, match="sample dimension"):
        check_names([sig], (("x", "1"),))


def test_a_name_another_signature_takes_with_rows_is_that_signatures_own() -> None:
    """--signature all: one signature takes ``t`` as a setting, another as data."""
    scalar_t = _sig(TensorSpec("x", "float32", (None, 2)), TensorSpec("t", "float32", ()))
    rows_t = SignatureInfo("other", (TensorSpec("t", "float32", (None,)),), ())
    check_names([scalar_t, rows_t], (("t", "0.5"),))
    assert values_for(rows_t, (("t", "0.5"),)) == {}
    assert float(values_for(scalar_t, (("t", "0.5"),))["t"]) == 0.5


def test_a_value_that_is_not_utf8_is_described_with_escapes() -> None:
    settings = parse_settings(["s=" + b"\xff".decode("utf-8", errors="surrogateescape")])
    assert describe(settings) == "s=\\udcff"


def test_synthesis_leaves_given_scalars_out_and_keeps_its_stream() -> None:
    x = TensorSpec("x", "float32", (None, 2))
    plain = synthesize(_sig(x), 5, seed=4)
    with_scalar = synthesize(_sig(x, TensorSpec("t", "float32", ())), 5, seed=4, given={"t"})
    assert set(with_scalar) == {"x"}
    np.testing.assert_array_equal(plain["x"], with_scalar["x"])  # the same generator calls
    with pytest.raises(InputsError, match=re.escape("--set t=1.0")):
        synthesize(_sig(x, TensorSpec("t", "float32", ())), 5, seed=4)


def test_a_string_given_by_value_is_not_called_synthesized() -> None:
    from snapshot_tool.inputs.synthesize import synthesized_text_note

    sig = _sig(TensorSpec("x", "float32", (None, 2)), TensorSpec("s", "string", None))
    assert synthesized_text_note(sig) is not None  # unknown rank: synthesized as rows
    assert synthesized_text_note(sig, {"s"}) is None
