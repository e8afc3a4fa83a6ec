"""The pytest plugin, driven through pytester: missing goldens, failures with the console's
text, --snapshot-update (and its refusal on CI), and the report of unused goldens."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest

# Loaded by name: in an installed environment the pytest11 entry point (registered under the
# same name) has loaded it already, and pytest then skips the duplicate.
PLUGIN = ("-p", "snapshot_tool.pytest_plugin", "-p", "no:cacheprovider")

TEST_FILE = '''
MODEL = {model!r}

def test_dense(model_snapshot):
    model_snapshot.check(MODEL, num_samples=8, batch_size=4)
'''


@pytest.fixture()
def local(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite itself runs on CI (CI=true); these cases are about a developer's machine.
    monkeypatch.delenv("CI", raising=False)


def _write(pytester: pytest.Pytester, model: Path) -> None:
    pytester.makepyfile(test_model=TEST_FILE.format(model=str(model)))


def test_missing_golden_fails_and_is_not_created(pytester: pytest.Pytester, dense_model: Path,
                                                 local: None) -> None:
    _write(pytester, dense_model)
    res = pytester.runpytest_inprocess(*PLUGIN)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*golden*test_dense.h5 does not exist*--snapshot-update*"])
    assert not (pytester.path / "goldens").exists()


def test_update_records_then_fails_with_console_text_then_accepts(
        pytester: pytest.Pytester, dense_model: Path, dense_changed: Path, local: None) -> None:
    _write(pytester, dense_model)
    golden = pytester.path / "goldens" / "test_dense.h5"
    res = pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*snapshot-tool: 1 golden(s) recorded*", "*test_dense.h5"])
    assert golden.exists()
    pytester.runpytest_inprocess(*PLUGIN).assert_outcomes(passed=1)

    _write(pytester, dense_changed)
    res = pytester.runpytest_inprocess(*PLUGIN)
    res.assert_outcomes(failed=1)
    # The failure is the console report: the outputs table, the verdict and the next steps.
    res.stdout.fnmatch_lines(["*Outputs*", "*logits*FAIL*", "*FAIL: 2 of 2 output(s) failed*",
                              "*obtained golden*test_dense.obtained.h5*"])
    assert "\x1b[" not in res.stdout.str()  # plain text, no colour codes
    obtained = golden.with_name("test_dense.obtained.h5")
    assert obtained.exists()

    res = pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*snapshot-tool: 1 golden(s) accepted*"])
    assert not obtained.exists()
    with h5py.File(golden) as f:
        assert "--snapshot-update" in f.attrs["history"]
    pytester.runpytest_inprocess(*PLUGIN).assert_outcomes(passed=1)


def test_ci_never_creates_or_accepts_unless_forced(pytester: pytest.Pytester, dense_model: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    _write(pytester, dense_model)
    res = pytester.runpytest_inprocess(*PLUGIN)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*never created on CI*"])
    res = pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*does not record goldens on CI*--snapshot-update-on-ci*"])
    assert not (pytester.path / "goldens").exists()
    res = pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update", "--snapshot-update-on-ci")
    res.assert_outcomes(passed=1)
    assert (pytester.path / "goldens" / "test_dense.h5").exists()


def test_ci_update_does_not_accept_a_failure(pytester: pytest.Pytester, dense_model: Path,
                                             dense_changed: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    _write(pytester, dense_model)
    pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update").assert_outcomes(passed=1)
    golden = pytester.path / "goldens" / "test_dense.h5"
    before = golden.read_bytes()
    monkeypatch.setenv("CI", "1")
    _write(pytester, dense_changed)
    res = pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*does not accept goldens on CI*"])
    assert golden.read_bytes() == before


def test_warn_unused_lists_goldens_no_test_uses(pytester: pytest.Pytester, dense_model: Path,
                                                local: None) -> None:
    _write(pytester, dense_model)
    pytester.runpytest_inprocess(*PLUGIN, "--snapshot-update").assert_outcomes(passed=1)
    goldens = pytester.path / "goldens"
    shutil.copy(goldens / "test_dense.h5", goldens / "test_removed_long_ago.h5")
    res = pytester.runpytest_inprocess(*PLUGIN, "--snapshot-warn-unused")
    res.assert_outcomes(passed=1)
    res.stdout.fnmatch_lines(["*snapshot-tool: 1 unused golden(s)*",
                              "*test_removed_long_ago.h5", "*delete them by hand*"])
    assert "test_dense.h5" not in res.stdout.str().split("unused golden")[1]
    # A warning only: nothing is deleted.
    assert (goldens / "test_removed_long_ago.h5").exists()
    quiet = pytester.runpytest_inprocess(*PLUGIN)
    assert "unused golden" not in quiet.stdout.str()
