"""The ``tests`` dimension: outcomes of this pytest session, read from its reports.

It is registered as a pytest plugin for the session and reads
``pytest_runtest_logreport`` and ``pytest_collectreport``. Under pytest-xdist these hooks
run on the controller for every worker's reports, and the audit runs on the controller
only, so ``-n N`` gives the same figures as a plain run.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor, make_finding
from pytest_orchestrator.models import AuditResult, Finding, Severity, TestSummary
from pytest_orchestrator.scoring import deductions_for, plural
from pytest_orchestrator.severity import tool_severity

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
_WORSE = {"error": 5, "failed": 4, "xpassed": 3, "passed": 2, "xfailed": 1, "skipped": 0}
#: Outcomes of a test that ran (as opposed to skipped or expected to fail).
RAN = frozenset({"passed", "failed", "error", "xpassed"})
MESSAGE_LIMIT = 300


@dataclass
class Observation:
    """What a session saw of its tests: the oracle of gap closure (see ``loop.integrity``).

    :ivar outcomes: node id -> outcome (passed, failed, error, skipped, xfailed, xpassed).
    :ivar locations: node id -> ``[path, line]`` (rootdir-relative path, 1-based line or
        None) of the test's definition, as pytest reports it.
    :ivar plugins: rootdir-relative paths of the modules in the tree that pytest loaded as
        plugins (conftest.py files included), sorted.
    :ivar not_run: node id -> why a test that ran in the oracle did not run in this session
        (it then counts as failed); empty without an oracle.
    """

    outcomes: dict[str, str] = field(default_factory=dict)
    locations: dict[str, list[Any]] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "outcomes": self.outcomes,
                "locations": self.locations,
                "plugins": self.plugins,
                "not_run": self.not_run,
            }
        )

    @classmethod
    def from_data(cls, data: Any) -> Observation:
        """From :meth:`to_json`'s data.

        :raises ValueError: not such data.
        """
        if not isinstance(data, dict):
            raise ValueError("an observation is a JSON object")
        outcomes, locations = data.get("outcomes", {}), data.get("locations", {})
        plugins, not_run = data.get("plugins", []), data.get("not_run", {})
        if not (
            isinstance(outcomes, dict)
            and all(isinstance(k, str) and v in _WORSE for k, v in outcomes.items())
            and isinstance(locations, dict)
            and isinstance(plugins, list)
            and all(isinstance(p, str) for p in plugins)
            and isinstance(not_run, dict)
        ):
            raise ValueError("not an observation of tests")
        return cls(
            dict(outcomes),
            {str(k): list(v)[:2] for k, v in locations.items() if isinstance(v, list)},
            list(plugins),
            {str(k): str(v) for k, v in not_run.items()},
        )


def in_tree_plugins(config: pytest.Config, rootdir: Path) -> list[str]:
    """Rootdir-relative paths of the modules under ``rootdir`` registered as pytest plugins
    (conftest.py files, ``-p`` and ``pytest_plugins`` modules of the project), leaving out
    installed packages (a virtual environment inside the tree)."""
    root = os.path.realpath(rootdir)
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    found = set()
    for plugin in config.pluginmanager.get_plugins():
        filename = getattr(plugin, "__file__", None)
        if not isinstance(filename, str):
            continue
        path = os.path.realpath(filename)
        if "site-packages" in path.split(os.sep) or any(
            path.startswith(prefix + os.sep) for prefix in prefixes if prefix != root
        ):
            continue
        if path.startswith(root + os.sep):
            found.add(Path(os.path.relpath(path, root)).as_posix())
    return sorted(found)


def subtest_label(report: pytest.TestReport) -> str | None:
    """``[msg] (i=1)`` for a subtest's report (pytest 9's ``subtests`` fixture, or the
    pytest-subtests plugin: a report with a ``context`` holding ``msg`` and ``kwargs``),
    as pytest's summary names it; None for a test's own report."""
    context = getattr(report, "context", None)
    if context is None or not hasattr(context, "kwargs"):
        return None
    msg = getattr(context, "msg", None)
    kwargs = getattr(context, "kwargs", None) or {}
    parts = [f"[{msg}]"] if msg else []
    if kwargs:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
    return " ".join(parts) or "[subtest]"


def _message(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The failure's short message: the crash line pytest shows in its short summary."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None) or str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else "failed"
    if len(lines) > 1 and crash is None:
        first = lines[-1]
    return first if len(first) <= MESSAGE_LIMIT else first[: MESSAGE_LIMIT - 3] + "..."


def failing_line(report: pytest.TestReport) -> int | None:
    """The 1-based line where a test's call failed in its own file: the first traceback
    entry in the file that defines the test (the test function's frame, the line pytest's
    ``--tb=short`` marks with ``>``), else the crash line when it is in that file, else
    the ``def`` line. None when pytest gave no line. (A setup or teardown error keeps the
    ``def`` line: the test itself did not run.)"""
    path, line, _ = report.location
    own = os.path.normpath(path)

    def in_own_file(where: object) -> bool:
        if not isinstance(where, str) or not where:
            return False
        full = os.path.normpath(os.path.abspath(where))
        return full == own or full.endswith(os.sep + own)

    longrepr = report.longrepr
    entries = getattr(getattr(longrepr, "reprtraceback", None), "reprentries", None) or []
    for entry in entries:
        loc = getattr(entry, "reprfileloc", None)
        if loc is not None and in_own_file(loc.path) and isinstance(loc.lineno, int):
            return loc.lineno
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and in_own_file(crash.path) and isinstance(crash.lineno, int):
        return crash.lineno
    return line + 1 if line is not None else None


class TestsAuditor(Auditor):
    """Pass rate of the session; each failing test or error is a P0 finding."""

    __test__ = False  # not a test class, whatever its name says

    dimension = "tests"
    tool = "pytest"

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.failures: dict[str, tuple[str, str, int | None, str]] = {}
        self.locations: dict[str, list[Any]] = {}
        #: The outcomes of gap closure's session start (node id -> outcome, location):
        #: a test that ran then and does not run now counts as failed (see
        #: :meth:`apply_oracle`). None outside a gap-closure re-audit.
        self.oracle: Observation | None = None
        self.not_run: dict[str, str] = {}
        #: Subtests (``nodeid [msg] (i=1)``) and their outcomes: a failed one counts as a
        #: failed test, as pytest counts it; passed ones are counted apart.
        self.subtests: dict[str, Outcome] = {}
        #: Failed attempts that were run again (``rerun`` reports of ``--orchestrate-reruns``
        #: or pytest-rerunfailures), per node id; a test that then passed is flaky.
        self.reruns: dict[str, int] = {}
        #: Flaky tests: node id -> (path, line, the last failure's message).
        self.flaky: dict[str, tuple[str, int | None, str]] = {}
        self._rerun_messages: dict[str, str] = {}

    def _record(self, nodeid: str, outcome: Outcome) -> None:
        old = self.outcomes.get(nodeid)
        if old is None or _WORSE[outcome] > _WORSE[old]:
            self.outcomes[nodeid] = outcome

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        label = subtest_label(report)
        if label is not None:
            self._subtest(report, f"{report.nodeid} {label}")
            return
        if report.nodeid not in self.locations:
            path, line, _ = report.location
            self.locations[report.nodeid] = [
                "" if path == "." else path,
                line + 1 if line is not None else None,
            ]
        if str(report.outcome) == "rerun":  # a failed attempt that runs again
            # (pytest-rerunfailures also reruns a failed setup: a fixture that then works)
            if report.when in ("setup", "call"):
                self.reruns[report.nodeid] = self.reruns.get(report.nodeid, 0) + 1
                self._rerun_messages.setdefault(report.nodeid, _message(report))
            return
        if (
            report.when == "call"
            and report.passed
            and report.nodeid in self.reruns
            and not hasattr(report, "wasxfail")
        ):
            path, line, _ = report.location
            self.flaky[report.nodeid] = (
                "" if path == "." else path,
                line + 1 if line is not None else None,
                self._rerun_messages.get(report.nodeid, ""),
            )
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
                failing_line(report)
                if path and report.when == "call"
                else (line + 1 if line is not None else None),
                _message(report),
            )

    def _subtest(self, report: pytest.TestReport, key: str) -> None:
        if report.failed:
            outcome: Outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "passed"
        old = self.subtests.get(key)
        if old is None or _WORSE[outcome] > _WORSE[old]:
            self.subtests[key] = outcome
        if report.failed:
            path = report.location[0]
            self.failures[key] = (
                "test-failed",
                "" if path == "." else path,
                failing_line(report),
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

    def settle_subtests(self) -> None:
        """A test with a failed subtest failed, as pytest says it did ("contains 1 failed
        subtest"): pytest changes that report's outcome only when it reports its status,
        after this auditor saw it pass."""
        failed: dict[str, int] = {}
        for key, outcome in self.subtests.items():
            if outcome == "failed":
                nodeid = key.split(" [", 1)[0].split(" (", 1)[0]
                failed[nodeid] = failed.get(nodeid, 0) + 1
        for nodeid, count in failed.items():
            if self.outcomes.get(nodeid) == "passed":
                self.outcomes[nodeid] = "failed"
                path, line = (self.locations.get(nodeid) or ["", None])[:2]
                self.failures[nodeid] = (
                    "test-failed",
                    str(path or ""),
                    line if isinstance(line, int) else None,
                    f"contains {plural(count, 'failed subtest')}",
                )

    def apply_oracle(self) -> None:
        """Count as failed every test that ran (passed, failed, errored or xpassed) in the
        :attr:`oracle` and did not run now: skipped, xfailed, deselected or no longer
        collected. Its finding keeps the oracle's rule and location, so a test that failed
        then is the same finding now (a skip is not a fix). Tests skipped in the oracle
        that are no longer collected are noted in :attr:`not_run` only."""
        if self.oracle is None:
            return
        for nodeid, before in self.oracle.outcomes.items():
            now = self.outcomes.get(nodeid)
            if before not in RAN:
                if now is None:
                    self.not_run[nodeid] = "is no longer collected"
                continue
            if now in RAN:
                continue
            why = "is no longer collected" if now is None else f"is {now} now"
            self.not_run[nodeid] = why
            error = before == "error"
            self.outcomes[nodeid] = "error" if error else "failed"
            path, line = (self.oracle.locations.get(nodeid) or ["", None])[:2]
            self.failures[nodeid] = (
                "test-error" if error else "test-failed",
                str(path or ""),
                line if isinstance(line, int) else None,
                f"ran at the session's start and {why}: it counts as "
                + ("an error" if error else "failed"),
            )

    def observation(self, config: pytest.Config, rootdir: Path) -> Observation:
        """What this session saw (see :class:`Observation`)."""
        self.settle_subtests()
        return Observation(
            outcomes=dict(self.outcomes),
            locations=dict(self.locations),
            plugins=in_tree_plugins(config, rootdir),
            not_run=dict(self.not_run),
        )

    def summary(self) -> TestSummary:
        """Counts per outcome, one per test item, and one per failed subtest (pytest's own
        count: a test with a failed subtest is two failures); passed subtests apart."""
        counts = {k: 0 for k in _WORSE}
        for outcome in self.outcomes.values():
            counts[outcome] += 1
        subtests = Counter(self.subtests.values())
        return TestSummary(
            passed=counts["passed"],
            failed=counts["failed"] + subtests["failed"],
            subtests_passed=subtests["passed"],
            errors=counts["error"],
            skipped=counts["skipped"],
            xfailed=counts["xfailed"],
            xpassed=counts["xpassed"],
            collection_errors=sum(
                1 for kind, *_ in self.failures.values() if kind == "collection-error"
            ),
            flaky=sum(1 for nodeid in self.flaky if self.outcomes.get(nodeid) == "passed"),
        )

    def findings(self, context: AuditContext) -> list[Finding]:
        """One P0 finding per failing test, test error and collection error; one ``flaky``
        finding (P2) per test that failed, then passed when run again."""
        out = []
        for nodeid, (path, line, message) in self.flaky.items():
            if self.outcomes.get(nodeid) != "passed":
                continue
            failures = self.reruns.get(nodeid, 1)
            outcomes = ", ".join(["failed"] * failures + ["passed"])
            out.append(
                make_finding(
                    context,
                    dimension=self.dimension,
                    severity=tool_severity(
                        "pytest", "flaky", Severity.P2, context.settings.severity_map
                    ),
                    rule_id="flaky",
                    message=f"{nodeid}: failed, then passed when run again ({outcomes}); "
                    f"the failure: {message}",
                    path=path or None,
                    line=line,
                    tool=self.tool,
                    anchor=nodeid,
                    recommendation="make the test deterministic: it depends on timing, order "
                    "or state",
                )
            )
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
        self.settle_subtests()
        self.apply_oracle()
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
        (
            f"{summary.failed} failed of {plural(summary.counted, 'test')}",
            summary.failed,
            summary.failed,
        ),
        (
            f"{plural(summary.errors, 'error')} of {plural(summary.counted, 'test')}",
            summary.errors,
            summary.errors,
        ),
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
