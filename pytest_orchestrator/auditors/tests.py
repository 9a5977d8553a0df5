"""The ``tests`` dimension: outcomes of this pytest session, read from its reports.

It is registered as a pytest plugin for the session and reads
``pytest_runtest_logreport`` and ``pytest_collectreport``. Under pytest-xdist these hooks
run on the controller for every worker's reports, and the audit runs on the controller
only, so ``-n N`` gives the same figures as a plain run.
"""

from __future__ import annotations

from typing import Literal

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor, make_finding
from pytest_orchestrator.models import AuditResult, Finding, Severity, TestSummary
from pytest_orchestrator.scoring import deductions_for
from pytest_orchestrator.severity import tool_severity

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
_WORSE = {"error": 5, "failed": 4, "xpassed": 3, "passed": 2, "xfailed": 1, "skipped": 0}
MESSAGE_LIMIT = 300


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The failure's short message: the crash line pytest shows in its short summary."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "failed"
    if len(lines) > 1 and crash is None:
        first = lines[-1]
    return first if len(first) <= MESSAGE_LIMIT else first[: MESSAGE_LIMIT - 3] + "..."


class TestsAuditor(Auditor):
    """Pass rate of the session; each failing test or error is a P0 finding."""

    __test__ = False  # not a test class, whatever its name says

    dimension = "tests"
    tool = "pytest"

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.failures: dict[str, tuple[str, str, int | None, str]] = {}

    def _record(self, nodeid: str, outcome: Outcome) -> None:
        old = self.outcomes.get(nodeid)
        if old is None or _WORSE[outcome] > _WORSE[old]:
            self.outcomes[nodeid] = outcome

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.failed:
                outcome: Outcome = "failed" if report.when == "call" else "error"
            elif report.skipped:
                outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
            else:
                outcome = "xpassed" if hasattr(report, "wasxfail") else "passed"
            self._record(report.nodeid, outcome)
        elif report.when == "teardown" and report.failed:
            self._record(report.nodeid, "error")
        else:
            return
        if report.failed:
            path, line, _ = report.location
            path = "" if path == "." else path  # a remote-run error belongs to no file
            kind = "test-failed" if report.when == "call" else "test-error"
            self.failures[report.nodeid] = (
                kind,
                path,
                line + 1 if line is not None else None,
                _message(report),
            )

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            # Remote modules (``odoo:tests/test_x.py``) carry their repository path.
            path = getattr(report, "local_path", None) or report.nodeid.split("::")[0] or None
            self.failures[report.nodeid or "<collection>"] = (
                "collection-error",
                path or "",
                None,
                _message(report),
            )

    def summary(self) -> TestSummary:
        """Counts per outcome, one per test item."""
        counts = {k: 0 for k in _WORSE}
        for outcome in self.outcomes.values():
            counts[outcome] += 1
        return TestSummary(
            passed=counts["passed"],
            failed=counts["failed"],
            errors=counts["error"],
            skipped=counts["skipped"],
            xfailed=counts["xfailed"],
            xpassed=counts["xpassed"],
            collection_errors=sum(
                1 for kind, *_ in self.failures.values() if kind == "collection-error"
            ),
        )

    def findings(self, context: AuditContext) -> list[Finding]:
        """One P0 finding per failing test, test error and collection error."""
        out = []
        for nodeid, (kind, path, line, message) in self.failures.items():
            out.append(
                make_finding(
                    context,
                    dimension=self.dimension,
                    severity=tool_severity(
                        "pytest", kind, Severity.P0, context.settings.severity_map
                    ),
                    rule_id=kind,
                    message=f"{nodeid}: {message}",
                    path=path or None,
                    line=line,
                    tool=self.tool,
                    anchor=nodeid,
                    recommendation="run: pytest " + nodeid.replace(" ", "\\ "),
                )
            )
        return out

    def finish(self, context: AuditContext) -> AuditResult:
        return tests_result(self.summary(), self.findings(context), pytest.__version__)


def tests_result(summary: TestSummary, findings: list[Finding], version: str | None) -> AuditResult:
    """The tests dimension's result from the outcome counts (also used by ``merge``).

    Score = ``100 * (passed + xpassed) / (passed + xpassed + failed + errors)``; with no
    counted test the dimension is unavailable.

    :param version: pytest's version, recorded as the tool version.
    """
    if summary.counted == 0:
        return AuditResult(
            dimension=TestsAuditor.dimension,
            status="unavailable",
            reason="no test ran (every test was skipped, deselected or none was collected)",
            tool=TestsAuditor.tool,
            tests=summary,
            findings=findings,
        )
    good = summary.passed + summary.xpassed
    score = round(100.0 * good / summary.counted, 2)
    bad = [
        (f"{summary.failed} failed of {summary.counted} tests", summary.failed, summary.failed),
        (f"{summary.errors} errors of {summary.counted} tests", summary.errors, summary.errors),
    ]
    lost = [(reason, 100.0 * n / summary.counted, count) for reason, n, count in bad]
    return AuditResult(
        dimension=TestsAuditor.dimension,
        status="ok",
        score=score,
        findings=findings,
        deductions=deductions_for(TestsAuditor.dimension, lost, score),
        tool=TestsAuditor.tool,
        tool_version=version,
        tests=summary,
    )
