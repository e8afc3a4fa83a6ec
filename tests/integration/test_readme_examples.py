"""The README's Python blocks, run as written on small real models: a new user copies them
first, so each must run and hold what the text around it says. A block is found by a line
it contains; a README edit that drops or renames one fails here, so the two change
together."""

from __future__ import annotations

import re
import shutil
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = [
    "\n".join(line[len(indent):] for line in body.splitlines())
    for indent, body in re.findall(r"^( *)```python\n(.*?)^\1```", README, re.S | re.M)]


def _block(marker: str) -> str:
    found = [b for b in PYTHON_BLOCKS if marker in b]
    assert len(found) == 1, f"README has {len(found)} Python blocks containing {marker!r}"
    return found[0]


def _run(block: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme", **names}
    exec(compile(block, "README.md", "exec"), namespace)  # the README's own code
    return namespace


def test_every_python_block_is_run_here() -> None:
    # One marker per block below: a new block must get a test too.
    assert len(PYTHON_BLOCKS) == 6


def test_scalar_input_block_stores_a_0d_array(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    x = np.zeros((4, 3), np.float32)
    _run(_block('np.savez("inputs.npz"'), np=np, x=x)
    with np.load(tmp_path / "inputs.npz") as f:
        assert f["keep_prob"].shape == () and f["x"].shape == (4, 3)


def test_tfrecord_block_feeds_a_tf_example_signature(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from snapshot_tool.api import compare, record
    from tests.fixtures.wild import save_parse_example

    monkeypatch.chdir(tmp_path)
    _run(_block("tf.io.TFRecordWriter"))
    model = save_parse_example(tmp_path / "export")  # examples -> y = 2 * sum(x)
    golden = tmp_path / "goldens" / "regress.h5"
    record(model, golden, inputs="data/eval_sample.tfrecord", latency=False)
    with h5py.File(golden, "r") as f:
        y = f["outputs"]["y"][()]
    # 2 * sum of each written row, through TensorFlow's float32 sum: close, not bitwise.
    np.testing.assert_allclose(y, [[1.2], [3.0]], rtol=1e-6)
    assert compare(model, golden, latency=False).passed


PLUGIN_CONFTEST = '''
from pathlib import Path

from tests.fixtures.models import save_dense


def export_classifier(path: Path) -> Path:
    return save_dense(path)
'''


def test_pytest_plugin_block_records_then_passes(pytester: pytest.Pytester,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)  # --snapshot-update records only off CI
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(test_model="from conftest import export_classifier\n\n\n"
                        + _block("def test_classifier(model_snapshot"))
    pytester.path.joinpath("snapshot.toml").write_text("[defaults]\natol = 1e-5\n")
    plugin = ("-p", "snapshot_tool.pytest_plugin", "-p", "no:cacheprovider")
    res = pytester.runpytest_inprocess(*plugin)
    res.assert_outcomes(failed=1)  # a missing golden fails; it is never created implicitly
    res.stdout.fnmatch_lines(["*goldens/test_classifier.h5 does not exist*"])
    pytester.runpytest_inprocess(*plugin, "--snapshot-update").assert_outcomes(passed=1)
    assert (pytester.path / "goldens" / "test_classifier.h5").is_file()
    pytester.runpytest_inprocess(*plugin).assert_outcomes(passed=1)


@pytest.fixture()
def project(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the library blocks assume: build/model and acceptable copies of it, its
    TFLite conversion, a broken build and a snapshot.toml that fits the conversion."""
    from tests.fixtures.kinds import convert_tflite
    from tests.fixtures.models import save_dense

    build = tmp_path / "build"
    model = save_dense(build / "model")
    for name in ("candidate", "a", "b"):
        shutil.copytree(model, build / name)
    save_dense(build / "broken", scale=1.5)
    convert_tflite(model, build / "model.tflite")
    (tmp_path / "snapshot.toml").write_text("[defaults]\natol = 1e-4\nrtol = 1e-4\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_library_blocks_run_in_order(project: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import snapshot_tool.api as api

    # Latency off, so the blocks run in seconds: the README's calls time by default, which
    # the latency tests cover; everything else (outputs, config, reports) runs as written.
    monkeypatch.setattr(api, "record", partial(api.record, latency=False))
    monkeypatch.setattr(api, "compare", partial(api.compare, latency=False))
    _run(_block("from snapshot_tool.api import compare, record"))
    assert (project / "goldens" / "model.h5").is_file()
    _run(_block("from snapshot_tool.api import CompareOptions, compare_with"))
    before = (project / "snapshot.toml").read_text()
    diagnosis = _run(_block("from snapshot_tool.api import calibrate, localize"))
    assert diagnosis["where"].status == "passed"  # build/candidate is build/model's copy
    assert capsys.readouterr().out.startswith("passed ")
    assert (project / "snapshot.toml").read_text() == before
    assert "[outputs." in (project / "snapshot.proposed.toml").read_text()
