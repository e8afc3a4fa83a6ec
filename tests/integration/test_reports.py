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
