"""The ``coverage`` dimension: reads the measurement (see ``measure``) and scores it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor, make_finding
from pytest_orchestrator.auditors.measure import MEASUREMENT_KEY, WORKER_KEY, Measurement, cwd
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import (
    AuditResult,
    CoverageFile,
    CoverageSummary,
    Finding,
    Severity,
)
from pytest_orchestrator.scoring import deductions_for
from pytest_orchestrator.severity import tool_severity

if TYPE_CHECKING:
    from coverage import Coverage

    from pytest_orchestrator.remote.session import RemoteSession


class WorkerCoverage:
    """On a pytest-xdist worker: stop measuring at the end and send the data home."""

    def __init__(self, measurement: Measurement) -> None:
        self.measurement = measurement

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cov = self.measurement.cov
        if cov is None or self.measurement.measured_by != "pytest-orchestrator":
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cov.stop()
            data = cov.get_data().dumps()
        session.config.workeroutput[WORKER_KEY] = data  # type: ignore[attr-defined]


def _ranges(lines: list[int]) -> str:
    out: list[str] = []
    start = prev = None
    for line in sorted(lines):
        if start is None:
            start = prev = line
        elif prev is not None and line == prev + 1:
            prev = line
        else:
            out.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = line
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ", ".join(out)


class CoverageAuditor(Auditor):
    """Percent of statements (and branches, if measured) that the tests executed."""

    dimension = "coverage"
    tool = "coverage"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker_data: list[bytes] = []

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_KEY)
        if data:
            self.worker_data.append(data)

    def _coverage(self) -> tuple[Measurement, Coverage]:
        remote = self._remote()
        if remote is not None and remote.coverage_error:
            raise ToolUnavailable(remote.coverage_error)
        measurement = self.config.stash.get(MEASUREMENT_KEY, None)
        if measurement is None:
            raise ToolUnavailable("coverage was not started; is coverage installed?")
        if measurement.measured_by == "pytest-cov":
            plugin = self.config.pluginmanager.getplugin("_cov")
            controller = getattr(plugin, "cov_controller", None)
            cov = getattr(controller, "cov", None)
            if cov is None:
                raise ToolUnavailable("pytest-cov is active but produced no coverage data")
            return measurement, cov
        if measurement.cov is None:
            raise ToolUnavailable("coverage was not started; is coverage installed?")
        return measurement, measurement.cov

    def _remote(self) -> RemoteSession | None:
        if not self.config.pluginmanager.has_plugin("orchestrator-remote"):
            return None
        from pytest_orchestrator.remote.session import REMOTE_KEY

        return self.config.stash.get(REMOTE_KEY, None)

    def finish(self, context: AuditContext) -> AuditResult:
        from coverage.data import CoverageData
        from coverage.exceptions import CoverageException
        from coverage.report_core import get_analysis_to_report

        measurement, cov = self._coverage()
        notes = list(measurement.notes)
        files: list[CoverageFile] = []
        with warnings.catch_warnings(record=True) as caught, cwd(context.rootdir):
            warnings.simplefilter("always")
            try:
                if measurement.measured_by == "pytest-orchestrator":
                    cov.stop()
                data = cov.get_data()
                for blob in self.worker_data:
                    other = CoverageData(no_disk=True)
                    other.loads(blob)
                    data.update(other)
                remote = self._remote()
                if remote is not None and remote.coverage_data is not None:
                    data.update(remote.coverage_data)
                for reporter, analysis in get_analysis_to_report(cov, None):
                    rel = context.relpath(reporter.filename)
                    if Path(rel).is_absolute():
                        continue  # outside the rootdir
                    numbers = analysis.numbers
                    files.append(
                        CoverageFile(
                            path=rel,
                            statements=numbers.n_statements,
                            missing=numbers.n_missing,
                            branches=numbers.n_branches,
                            missing_branches=numbers.n_missing_branches,
                            percent=round(numbers.pc_covered, 2),
                            missing_lines=_ranges(sorted(analysis.missing)),
                        )
                    )
            except CoverageException as exc:
                notes.append(str(exc))
        notes.extend(str(w.message) for w in caught)
        if not files:
            reason = "no measured source file under the rootdir"
            if notes:
                reason += f" ({notes[-1]})"
            raise ToolUnavailable(reason + "; set [tool.coverage.run] source")
        return self._result(context, measurement, files, notes)

    def _result(
        self,
        context: AuditContext,
        measurement: Measurement,
        files: list[CoverageFile],
        notes: list[str],
    ) -> AuditResult:
        statements = sum(f.statements for f in files)
        branches = sum(f.branches for f in files)
        missing = sum(f.missing for f in files)
        missing_branches = sum(f.missing_branches for f in files)
        total = statements + branches
        percent = 100.0 * (total - missing - missing_branches) / total if total else 100.0
        score = round(percent, 2)
        lost = []
        for f in files:
            if f.missing or f.missing_branches:
                what = f"{f.missing} of {f.statements} lines"
                if f.branches:
                    what += f" and {f.missing_branches} of {f.branches} branches"
                lost.append(
                    (
                        f"{f.path}: {what} not covered",
                        100.0 * (f.missing + f.missing_branches) / total,
                        f.missing + f.missing_branches,
                    )
                )
        return AuditResult(
            dimension=self.dimension,
            status="ok",
            score=score,
            findings=self._findings(context, files),
            deductions=deductions_for(self.dimension, lost, score),
            tool=self.tool,
            tool_version=_coverage_version(),
            notes=notes,
            coverage=CoverageSummary(
                percent=score,
                statements=statements,
                missing=missing,
                branches=branches,
                missing_branches=missing_branches,
                measured_by=measurement.measured_by,
                core=measurement.core,
                files=files,
            ),
        )

    def _findings(self, context: AuditContext, files: list[CoverageFile]) -> list[Finding]:
        findings = []
        overrides = context.settings.severity_map
        for f in files:
            if f.statements and f.missing == f.statements:
                rule, default = "uncovered-file", Severity.P2
                message = f"no line of {f.path} ran under the tests (0 of {f.statements} lines)"
                line = None
            elif f.missing or f.missing_branches:
                rule, default = "uncovered-lines", Severity.P3
                message = f"{f.missing} of {f.statements} lines not covered: {f.missing_lines}"
                if f.missing_branches:
                    message += f" ({f.missing_branches} branches not taken)"
                first = f.missing_lines.split("-")[0].split(",")[0].strip()
                line = int(first) if first.isdigit() else None
            else:
                continue
            findings.append(
                make_finding(
                    context,
                    dimension=self.dimension,
                    severity=tool_severity("coverage", rule, default, overrides),
                    rule_id=rule,
                    message=message,
                    path=f.path,
                    line=line,
                    tool=self.tool,
                    anchor=f.path,
                    recommendation="write tests that exercise these lines",
                )
            )
        return findings


def _coverage_version() -> str:
    import coverage

    return str(coverage.__version__)
