"""JUnit XML and Markdown reports name each failing check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def test_junit_and_markdown(cli, dense_model: Path, dense_changed: Path, tmp_path: Path) -> None:
    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency",
              "--junit", tmp_path / "out" / "junit.xml", "--markdown", tmp_path / "summary.md")
    assert res.code == 1, res
    suite = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    # both outputs fail; the label-free agreement metrics are informational test cases
    assert suite.get("failures") == "2"
    names = {c.get("name"): c for c in suite.iter("testcase")}
    outputs = {n for n, c in names.items() if c.get("classname") == "snapshot_tool.outputs"}
    # one naming rule for every report: bare names in a single-signature golden
    assert outputs == {"logits", "score"}
    assert "logits/top1_agreement" in names
    failure = names["logits"].find("failure")
    assert failure is not None and "outside atol" in (failure.text or "")
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## snapshot-tool: ❌ FAIL")
    assert "| logits | **FAIL** |" in md
    ok = cli("compare", dense_model, "--golden", golden, "--no-latency",
             "--junit", tmp_path / "ok.xml", "--markdown", tmp_path / "ok.md")
    assert ok.code == 0
    assert ET.parse(tmp_path / "ok.xml").getroot().get("failures") == "0"
    assert "✅ PASS" in (tmp_path / "ok.md").read_text()


def test_a_report_never_overwrites_the_golden_or_the_model(cli, dense_model: Path,
                                                           dense_changed: Path,
                                                           tmp_path: Path) -> None:
    """``--report-json goldens/model.h5`` (a completed path, a slip of the tab key) would
    replace the golden with JSON: refused before anything runs, the golden untouched."""
    from tests.integration.test_errors import assert_usage_error

    golden = tmp_path / "g.h5"
    assert cli("record", dense_model, "--golden", golden, "--no-latency").code == 0
    before = golden.read_bytes()
    (tmp_path / "link.h5").symlink_to(golden)
    for option, path, what in [("--report-json", golden, "the golden"),
                               ("--junit", tmp_path / "link.h5", "the golden"),
                               ("--markdown", tmp_path / "g.obtained.h5", "obtained golden"),
                               ("--html", dense_changed, "the candidate")]:
        res = cli("compare", dense_changed, "--golden", golden, "--no-latency", option, path)
        assert_usage_error(res, option, what)
    res = cli("compare", dense_changed, "--golden", golden, "--no-latency",
              "--report-json", tmp_path / "r.out", "--junit", tmp_path / "r.out")
    assert_usage_error(res, "--junit", "--report-json")
    assert_usage_error(cli("show", golden, "--html", golden), "--html", "the golden")
    res = cli("calibrate", golden, dense_changed, "--output", golden, "--force")
    assert_usage_error(res, "--output", "the golden")
    assert golden.read_bytes() == before
    assert not (tmp_path / "g.obtained.h5").exists() and not (tmp_path / "r.out").exists()
    # Paths without a file name are still refused as goldens, not with a traceback.
    for bare in (".", "/"):
        assert_usage_error(cli("compare", dense_changed, "--golden", bare, "--no-latency",
                               "--report-json", tmp_path / "r.json"), "not a regular file")


def test_record_never_writes_its_golden_over_its_own_inputs(cli, dense_model: Path,
                                                            tmp_path: Path) -> None:
    """``--force`` replaces a golden, not the inputs, labels or model the run reads."""
    import numpy as np

    from tests.integration.test_errors import assert_usage_error

    data = tmp_path / "data.npz"
    np.savez(data, features=np.ones((4, 4), np.float32), labels=np.arange(4))
    before = data.read_bytes()
    res = cli("record", dense_model, "--golden", data, "--inputs", data, "--force",
              "--no-latency")
    assert_usage_error(res, "--golden", "--inputs")
    res = cli("record", dense_model, "--golden", data, "--inputs", tmp_path / "other.npz",
              "--labels", f"{data}:labels", "--force", "--no-latency")
    assert_usage_error(res, "--golden", "--labels")
    assert data.read_bytes() == before
