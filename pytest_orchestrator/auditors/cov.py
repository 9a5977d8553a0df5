"""The ``coverage`` dimension: reads the measurement (see ``measure``) and scores it."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor
from pytest_orchestrator.auditors.measure import MEASUREMENT_KEY, WORKER_KEY, Measurement, cwd
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import (
    AuditResult,
    CoverageFile,
    CoverageSummary,
    Finding,
    Severity,
    fingerprint,
)
from pytest_orchestrator.scoring import deductions_for, plural
from pytest_orchestrator.severity import tool_severity

if TYPE_CHECKING:
    from coverage import Coverage, CoverageData

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
            data = cov.get_data()
            self.measurement.absorb_subprocesses(data)
        session.config.workeroutput[WORKER_KEY] = data.dumps()  # type: ignore[attr-defined]


def line_ranges(lines: list[int]) -> str:
    """Sorted line numbers as ranges: [3, 4, 5, 9] -> '3-5, 9' (only consecutive numbers join)."""
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


def parse_line_ranges(text: str) -> set[int]:
    """The inverse of :func:`line_ranges`: '3-5, 9' -> {3, 4, 5, 9}.

    :raises ValueError: ``text`` is not comma-separated numbers and ``A-B`` ranges.
    """
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        first, last = int(low), int(high) if sep else int(low)
        if first < 1 or last < first:
            raise ValueError(f"bad line range {part!r}")
        out.update(range(first, last + 1))
    return out


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
                measurement.absorb_subprocesses(data)
                if measurement.measured_by == "pytest-orchestrator":
                    # (pytest-cov combined already; coverage run's data is the user's file)
                    _apply_paths(cov, data)
                # a file coverage.py cannot parse is skipped with a warning (turned into a
                # finding below), not the end of the report for every file after it
                cov.set_option("report:ignore_errors", True)
                reported = list(get_analysis_to_report(cov, None))
                seen = {os.path.realpath(r.filename) for r, _ in reported}
                unimported = [
                    str(m) for m in measurement.modules if os.path.realpath(m) not in seen
                ]
                if unimported:  # top-level modules no test imported: not covered at all
                    reported += list(get_analysis_to_report(cov, unimported))
                for reporter, analysis in reported:
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
                            missing_lines=line_ranges(sorted(analysis.missing)),
                            missing_branch_arcs=_missing_arcs(analysis),
                        )
                    )
            except CoverageException as exc:
                notes.append(str(exc))
        unparsable: list[str] = []
        for warning in caught:
            text = str(warning.message)
            parsed = _UNPARSABLE.search(text)
            if parsed:
                rel = context.relpath(parsed.group(1))
                if not Path(rel).is_absolute() and rel not in unparsable:
                    unparsable.append(rel)
            else:
                notes.append(text)
        notes = _true_notes(notes, files)
        if not files:
            reason = "no measured source file under the rootdir"
            if notes:
                reason += f" ({notes[-1]})"
            fix = "set [tool.coverage.run] source"
            if context.settings.exec_prefix:  # the container's paths may not map here
                fix += " or map the container's files here with --orchestrate-path-map"
            raise ToolUnavailable(f"{reason}; {fix}")
        return coverage_result(
            files,
            measured_by=measurement.measured_by,
            core=measurement.core,
            notes=notes,
            severity_map=context.settings.severity_map,
            unparsable=unparsable,
        )


def _apply_paths(cov: Coverage, data: CoverageData) -> None:
    """Rename ``data``'s files by the project's ``[paths]`` aliases, as ``coverage
    combine`` does (and pytest-cov, which combines): a project whose tests run against its
    installed copy (``*/site-packages/pluggy/``) maps it to its tree (``src/pluggy/``).
    Without this, the installed copy's lines were dropped as outside the rootdir and the
    tree's files counted as never run. (coverage.py maps a path only to a file that
    exists, as in ``combine``.)"""
    from coverage.data import CoverageData as Data
    from coverage.files import PathAliases

    paths = cov.config.paths
    if not paths:
        return
    aliases = PathAliases(relative=cov.config.relative_files)
    for group in paths.values():
        for pattern in group[1:]:
            aliases.add(pattern, group[0])
    renamed = Data(no_disk=True)
    renamed.update(data, map_path=aliases.map)
    if set(renamed.measured_files()) == set(data.measured_files()):
        return
    data.erase()
    data.update(renamed)


_NEVER_IMPORTED = re.compile(r"Module (\S+) was never imported")
#: coverage.py's warning for a source file it cannot parse (``report:ignore_errors``).
_UNPARSABLE = re.compile(r"Couldn't parse (?:Python file )?'([^']+)'")


def _true_notes(notes: list[str], files: list[CoverageFile]) -> list[str]:
    """coverage's warnings that the combined data does not contradict: under pytest-xdist
    the controller's own measurement saw no test ("No data was collected", "Module pkg was
    never imported") while the workers' data covers them. Duplicates are dropped."""
    measured = {f.path for f in files}
    kept: list[str] = []
    for note in notes:
        if files and "No data was collected" in note:
            continue
        never = _NEVER_IMPORTED.search(note)
        if never:
            name = never.group(1)
            parts = Path(name).with_suffix("").parts if "/" in name else tuple(name.split("."))
            if any(_inside(path, parts) for path in measured):
                continue
        if note not in kept:
            kept.append(note)
    return kept


def _inside(path: str, parts: tuple[str, ...]) -> bool:
    """Whether the measured file ``path`` belongs to the module or package ``parts``."""
    segments = Path(path).with_suffix("").parts
    return any(segments[i : i + len(parts)] == parts for i in range(len(segments) - len(parts) + 1))


def _missing_arcs(analysis: Any) -> list[tuple[int, int]] | None:
    """Branch arcs not taken, ``(from line, to line)``; None without branch measurement."""
    if not analysis.has_arcs:
        return None
    arcs = analysis.missing_branch_arcs()
    return sorted((src, dst) for src, dsts in arcs.items() for dst in dsts)


def coverage_result(
    files: list[CoverageFile],
    *,
    measured_by: Literal["pytest-orchestrator", "pytest-cov", "coverage"],
    core: str | None,
    notes: list[str],
    severity_map: Mapping[str, Severity],
    unparsable: list[str] | None = None,
) -> AuditResult:
    """The coverage dimension's result from per-file numbers (also used by ``merge``).

    :param unparsable: rootdir-relative paths of measured files coverage.py could not
        parse (a syntax error): not counted, each an ``unparsable-file`` finding (P1).

    Score = ``100 * (executed lines + executed branches) / (lines + branches)`` over
    ``files``, with one deduction per file with something uncovered and the findings of
    :func:`coverage_findings`.
    """
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
            what = f"{f.missing} of {plural(f.statements, 'line')}"
            if f.branches:
                what += f" and {f.missing_branches} of {plural(f.branches, 'branch', 'branches')}"
            lost.append(
                (
                    f"{f.path}: {what} not covered",
                    100.0 * (f.missing + f.missing_branches) / total,
                    f.missing + f.missing_branches,
                )
            )
    return AuditResult(
        dimension=CoverageAuditor.dimension,
        status="ok",
        score=score,
        findings=coverage_findings(files, severity_map)
        + [
            Finding(
                dimension=CoverageAuditor.dimension,
                severity=tool_severity("coverage", "unparsable-file", Severity.P1, severity_map),
                rule_id="unparsable-file",
                message=f"coverage.py could not parse {path}: its lines are not counted",
                path=path,
                tool=CoverageAuditor.tool,
                recommendation="fix the syntax error (ruff reports it)",
                fingerprint=fingerprint("unparsable-file", path, path),
            )
            for path in unparsable or []
        ],
        deductions=deductions_for(CoverageAuditor.dimension, lost, score),
        tool=CoverageAuditor.tool,
        tool_version=_coverage_version(),
        notes=notes,
        coverage=CoverageSummary(
            percent=score,
            statements=statements,
            missing=missing,
            branches=branches,
            missing_branches=missing_branches,
            measured_by=measured_by,
            core=core,
            files=files,
            unparsable=list(unparsable or []),
        ),
    )


def coverage_findings(
    files: list[CoverageFile], severity_map: Mapping[str, Severity]
) -> list[Finding]:
    """A P2 ``uncovered-file`` finding per file no test ran, a P3 ``uncovered-lines`` one
    per file with some lines (or branches) not covered; ``severity_map`` may override both.

    The fingerprint follows the file's path (``files`` hold rootdir-relative paths).
    """
    findings = []
    for f in files:
        if f.statements and f.missing == f.statements:
            rule, default = "uncovered-file", Severity.P2
            message = (
                f"no line of {f.path} ran under the tests (0 of {plural(f.statements, 'line')})"
            )
            line = None
        elif f.missing or f.missing_branches:
            rule, default = "uncovered-lines", Severity.P3
            branches = plural(f.missing_branches, "branch", "branches")
            partial = sorted({a for a, _ in f.missing_branch_arcs or [] if a > 0})
            at = f" at {plural(len(partial), 'line')} {line_ranges(partial)}" if partial else ""
            if f.missing:
                message = (
                    f"{f.missing} of {plural(f.statements, 'line')} not covered: {f.missing_lines}"
                )
                if f.missing_branches:
                    message += f"; {branches} not taken{at}"
                first = f.missing_lines.split("-")[0].split(",")[0].strip()
                line = int(first) if first.isdigit() else None
            else:
                message = f"{branches} of {f.branches} not taken{at}"
                line = partial[0] if partial else None
        else:
            continue
        findings.append(
            Finding(
                dimension=CoverageAuditor.dimension,
                severity=tool_severity("coverage", rule, default, severity_map),
                rule_id=rule,
                message=message,
                path=f.path,
                line=line,
                tool=CoverageAuditor.tool,
                recommendation="write tests that exercise these lines",
                fingerprint=fingerprint(rule, f.path, f.path),
            )
        )
    return findings


def _coverage_version() -> str:
    import coverage

    return str(coverage.__version__)
