"""JUnit XML (``--junit``): one test case per output, metric check and latency batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from snapshot_tool.report.format import fmt, latency_clocks, worst

if TYPE_CHECKING:

    from snapshot_tool.api import ComparisonResult


def to_junit(result: ComparisonResult) -> str:
    """JUnit XML: one test case per output, metric check and latency batch, so CI systems
    that read JUnit show each regression by name."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="snapshot-tool")
    cases: list[tuple[str, str, bool, str]] = []
    for d in result.outputs:
        detail = d.message or (f"{d.mismatch_count}/{d.size} elements outside atol {d.atol:g} "
                               f"rtol {d.rtol:g}; max abs {fmt(d.max_abs_diff)}, worst "
                               f"{worst(d)}")
        cases.append(("outputs", result.qualified(d.signature, d.name), d.passed, detail))
    for m in result.metrics:
        cases.append(("metrics", f"{m.output}/{m.name}", m.passed,
                      f"golden {fmt(m.golden, '.6g')} candidate {fmt(m.candidate, '.6g')} "
                      f"limit {m.limit or 'none'}. {m.note}".strip()))
    for c in result.latency:
        failed = c.verdict == "fail" or (result.latency_strict and c.verdict == "inconclusive")
        cases.append(("latency", result.qualified(c.signature, f"batch_{c.batch_size}"),
                      not failed,
                      f"{c.verdict}: ratio {fmt(c.ratio)} [{fmt(c.ci_low)}, "
                      f"{fmt(c.ci_high)}] limit {c.limit:.2f} ({c.basis_label}; "
                      f"{latency_clocks(c)}). {c.note}".strip()))
    failures = 0
    for group, name, passed, detail in cases:
        case = ET.SubElement(suite, "testcase", classname=f"snapshot_tool.{group}", name=name)
        if not passed:
            failures += 1
            ET.SubElement(case, "failure", message=detail.splitlines()[0][:200]).text = detail
        elif detail:
            ET.SubElement(case, "system-out").text = detail
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") \
        + "\n"

