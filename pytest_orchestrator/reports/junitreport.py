"""The JUnit XML report, built with junitparser, so any JUnit viewer shows the gate.

- testsuite ``quality-gate``: one testcase per gate condition, failed ones as failures;
- one testsuite per dimension: a ``score`` testcase (skipped when the dimension is
  unavailable), and one testcase per finding at P0-P2: a failure when its severity is in
  ``--orchestrate-fail-on``, otherwise skipped with the reason;
- with gap closure, testsuite ``orchestrator.gap-closure``: one testcase per iteration
  (skipped with the reason when rolled back) and one naming the stop reason.
"""

from __future__ import annotations

import io
import re

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from pytest_orchestrator.models import Report, Severity
from pytest_orchestrator.scoring import fmt

JUNIT_SEVERITIES = (Severity.P0, Severity.P1, Severity.P2)
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot hold (untrusted finding text)."""
    return _ILLEGAL_XML.sub("\ufffd", value)


def _case(name: str, classname: str, result: Failure | Skipped | None = None) -> TestCase:
    case = TestCase(_text(name), _text(classname))
    if result is not None:
        case.result = [result]
    return case


def render(report: Report) -> bytes:
    """The report as JUnit XML bytes (UTF-8)."""
    gate = TestSuite("quality-gate")
    gate_cases = []
    for condition in report.verdict.conditions:
        failure = None if condition.passed else Failure(_text(condition.message), "gate")
        gate_cases.append(_case(condition.name, "orchestrator.gate", failure))
    gate.add_testcases(gate_cases)  # once: adding case by case re-walks the suite
    suites = [gate]
    fail_on = set(report.config.fail_on)
    for audit in report.audits:
        suite = TestSuite(f"orchestrator.{audit.dimension}")
        classname = f"orchestrator.{audit.dimension}"
        if audit.status == "ok" and audit.score is not None:
            cases = [_case(f"score {fmt(audit.score)}", classname)]
        else:
            cases = [_case("score", classname, Skipped(_text(f"{audit.status}: {audit.reason}")))]
        for finding in audit.findings:
            if finding.severity not in JUNIT_SEVERITIES:
                continue
            where = f"{finding.path}:{finding.line}" if finding.line else str(finding.path)
            name = f"{finding.severity.value} {finding.rule_id} {where}"
            text = _text(finding.message)
            result: Failure | Skipped
            if finding.severity in fail_on:
                result = Failure(text, finding.severity.value)
            else:
                result = Skipped(
                    _text(f"{finding.severity.value} does not fail the gate: {finding.message}")
                )
            cases.append(_case(name, classname, result))
        suite.add_testcases(cases)
        suites.append(suite)
    if report.loop is not None:
        loop = TestSuite("orchestrator.gap-closure")
        loop_cases = []
        for it in report.loop.iterations:
            after = fmt(it.score_after) if it.score_after is not None else "-"
            name = f"iteration {it.number}: {fmt(it.score_before)} -> {after}"
            kept = None if it.accepted else Skipped(_text(f"rolled back: {it.reason}"))
            loop_cases.append(_case(name, "orchestrator.gap-closure", kept))
        loop_cases.append(_case(f"stopped: {report.loop.stop_reason}", "orchestrator.gap-closure"))
        loop.add_testcases(loop_cases)
        suites.append(loop)
    xml = JUnitXml("pytest-orchestrator")
    for suite in suites:
        suite.update_statistics()  # type: ignore[no-untyped-call]
        xml.add_testsuite(suite)
    xml.update_statistics()  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    xml.write(buffer)
    return buffer.getvalue()
