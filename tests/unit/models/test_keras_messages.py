"""What a Keras file that cannot be loaded is reported as: Keras's reason in one line, with
what a command-line user can do about it (no TensorFlow needed for these)."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import pytest

from snapshot_tool.errors import ModelError
from snapshot_tool.models.keras import _load_failure, load_keras

# Keras 3.15's wording for a Lambda layer under safe mode (a .keras and a legacy .h5 alike).
LAMBDA = ("Requested the deserialization of a `Lambda` layer whose `function` is a Python "
          "lambda. This carries a potential risk of arbitrary code execution and thus it is "
          "disallowed by default. If you trust the source of the artifact, you can override "
          "this error by passing `safe_mode=False` to the loading function, or calling "
          "`keras.config.enable_unsafe_deserialization()`.")


def test_safe_mode_refusal_keeps_the_reason_and_drops_the_override() -> None:
    said = _load_failure(ValueError(LAMBDA))
    assert said.startswith("Requested the deserialization of a `Lambda` layer")
    assert "disallowed by default; snapshot-tool keeps safe mode on" in said
    assert "If you trust" not in said and "safe_mode=False" not in said and "`;" not in said


@pytest.mark.parametrize("text", [
    "Could not locate class 'MyL'. Make sure custom classes are decorated with ...",
    "Unknown layer: 'MyL'. Please ensure you are using a `keras.utils.custom_object_scope` "
    "and that this object is included in the scope.",
])
def test_an_unregistered_custom_class_is_named_with_the_export_advice(text: str) -> None:
    said = _load_failure(ValueError(text))
    assert "'MyL'" in said and "model.export(DIR)" in said
    assert "custom_object_scope" not in said


def test_a_legacy_model_under_an_upper_case_suffix_says_to_rename_it(tmp_path: Path) -> None:
    p = tmp_path / "model.H5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = "{}"
    said = re.escape("lower-case suffix; rename or link it as model.h5")
    with pytest.raises(ModelError, match=said):
        load_keras(p)
