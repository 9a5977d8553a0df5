"""The ``coverage`` dimension, measured with coverage.py's API.

Which measurement is read, in this order:

1. pytest-cov's, when ``--cov`` is active: its combined data is read after it finishes,
   so nothing is traced twice;
2. a coverage measurement already running in this process (``coverage run -m pytest``);
3. our own: started in ``pytest_load_initial_conftests`` (before conftest.py files import
   the project), with the project's coverage configuration read from the rootdir
   (``.coveragerc``, ``setup.cfg``, ``tox.ini`` or ``pyproject.toml``). When that
   configuration sets no ``source``, ``source_pkgs`` or ``include``, the discovered
   packages are measured (not tests, not site-packages). On Python 3.12+ coverage's
   ``sysmon`` core is chosen when the configuration allows it (no branch coverage before
   Python 3.14, no plugins or dynamic contexts, no core chosen by the user). Data stays in
   memory: no ``.coverage`` file is written.

Under pytest-xdist each worker measures itself and sends its data to the controller at
the end (``workeroutput``), where it is combined before the audit.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor, make_finding
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

WORKER_KEY = "pytest_orchestrator_coverage"
CONFIG_FILES = (".coveragerc", ".coveragerc.toml", "setup.cfg", "tox.ini", "pyproject.toml")


@dataclass
class Measurement:
    """The coverage measurement of this process and whose it is."""

    measured_by: Literal["pytest-orchestrator", "pytest-cov", "coverage"]
    cov: Coverage | None = None
    core: str | None = None
    notes: list[str] = field(default_factory=list)


MEASUREMENT_KEY = pytest.StashKey[Measurement]()


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    """coverage.py reads its configuration and relative sources from the cwd."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _wants_coverage(config: pytest.Config) -> bool:
    raw = getattr(config.known_args_namespace, "orchestrate_dimensions", None)
    if raw is None:
        raw = config.getini("orchestrate_dimensions") or "tests,coverage,lint,security"
    return "coverage" in str(raw).replace(",", " ").split()


def _pytest_cov_active(config: pytest.Config) -> bool:
    namespace = config.known_args_namespace
    return bool(getattr(namespace, "cov_source", None)) and not getattr(namespace, "no_cov", False)


def _config_file(rootdir: Path) -> str | bool:
    for name in CONFIG_FILES:
        path = rootdir / name
        if path.is_file():
            if name.startswith(".coveragerc"):
                return str(path)
            text = path.read_text(encoding="utf-8", errors="replace")
            if "[tool.coverage" in text or "[coverage:" in text:
                return str(path)
    return False


def _choose_core(cov: Coverage) -> str | None:
    """Pick the sysmon core on Python 3.12+ when the configuration allows it."""
    if os.environ.get("COVERAGE_CORE") or cov.get_option("run:core"):
        return str(os.environ.get("COVERAGE_CORE") or cov.get_option("run:core"))
    if sys.version_info < (3, 12):
        return None
    if cov.get_option("run:branch") and sys.version_info < (3, 14):
        return None
    if cov.get_option("run:plugins") or cov.get_option("run:dynamic_context"):
        return None
    cov.set_option("run:core", "sysmon")
    return "sysmon"


def start_measurement(config: pytest.Config) -> None:
    """Start (or find) the coverage measurement of this process; stash it in ``config``."""
    if not _wants_coverage(config):
        return
    if _pytest_cov_active(config):
        config.stash[MEASUREMENT_KEY] = Measurement("pytest-cov")
        return
    from coverage import Coverage

    running = Coverage.current()
    if running is not None:
        config.stash[MEASUREMENT_KEY] = Measurement("coverage", cov=running)
        return
    from pytest_orchestrator.discovery import find_sources

    rootdir = config.rootpath
    with warnings.catch_warnings(record=True) as caught, _cwd(rootdir):
        warnings.simplefilter("always")
        cov = Coverage(data_file=None, config_file=_config_file(rootdir))
        if not any(cov.get_option(f"run:{k}") for k in ("source", "source_pkgs", "include")):
            sources = [str(p) for p in find_sources(rootdir)]
            cov.set_option("run:source", sources or [str(rootdir)])
        core = _choose_core(cov)
        cov.start()
    notes = [str(w.message) for w in caught]
    config.stash[MEASUREMENT_KEY] = Measurement("pytest-orchestrator", cov=cov, core=core, notes=notes)


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
        assert measurement.cov is not None
        return measurement, measurement.cov

    def finish(self, context: AuditContext) -> AuditResult:
        from coverage.data import CoverageData
        from coverage.exceptions import CoverageException
        from coverage.report_core import get_analysis_to_report

        measurement, cov = self._coverage()
        notes = list(measurement.notes)
        files: list[CoverageFile] = []
        with warnings.catch_warnings(record=True) as caught, _cwd(context.rootdir):
            warnings.simplefilter("always")
            try:
                if measurement.measured_by == "pytest-orchestrator":
                    cov.stop()
                data = cov.get_data()
                for blob in self.worker_data:
                    other = CoverageData(no_disk=True)
                    other.loads(blob)
                    data.update(other)
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
