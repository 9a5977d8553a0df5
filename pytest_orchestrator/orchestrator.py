"""The plugin object registered for a session run with ``--orchestrate``.

Data flow: ``pytest_sessionstart`` discovers the project and starts the auditors (static
tools in background subprocesses, overlapping the test run); the run loop feeds the
``tests`` auditor; after the run loop, in a ``pytest_runtestloop`` wrapper, the audits are
joined, scored and gated and the reports are written; ``pytest_sessionfinish`` turns a
failed gate into :data:`EXIT_GATE_FAILED` when the tests themselves passed.

Under pytest-xdist only the controller audits; a worker just measures coverage.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_orchestrator import __version__, jsonio
from pytest_orchestrator.auditors.base import AuditContext, Auditor
from pytest_orchestrator.auditors.cov import WorkerCoverage
from pytest_orchestrator.auditors.measure import MEASUREMENT_KEY
from pytest_orchestrator.auditors.tests import Observation, TestsAuditor
from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.discovery import discover
from pytest_orchestrator.errors import ReportWriteError, ToolUnavailable
from pytest_orchestrator.models import (
    AgentUsage,
    AuditResult,
    ConfigSummary,
    Finding,
    GateCondition,
    RemoteRun,
    Report,
    Severity,
    SuppressionSummary,
    ToolInfo,
    Verdict,
    finding_order,
)
from pytest_orchestrator.plugin import CHILD_ENV, ORACLE_ENV
from pytest_orchestrator.scoring import evaluate_gate

if TYPE_CHECKING:
    from pytest_orchestrator.newcode import ChangeSet as NewCodeChanges
    from pytest_orchestrator.suppressions import Suppression

#: Exit status when every test passed but the quality gate failed (pytest uses 0-5).
EXIT_GATE_FAILED = 6
#: Exit status when no test failed but a report file could not be written (whatever the
#: gate decided: a CI job must not go on without the report it asked for).
EXIT_REPORT_FAILED = 7

ORCHESTRATOR_KEY = pytest.StashKey["Orchestrator"]()


def _flatten(groups: list[Any]) -> list[Auditor]:
    return [a for group in groups for a in (group or [])]


class Orchestrator:
    """Runs the audits of one pytest session, scores them, gates and reports."""

    def __init__(
        self, config: pytest.Config, settings: OrchestrationConfig, auditors: list[Auditor]
    ) -> None:
        self.config = config
        self.settings = settings
        self.auditors = auditors
        self.context: AuditContext | None = None
        self.report: Report | None = None
        self.verdict: Verdict | None = None
        self.loop: Any = None
        #: The tests auditor (or, when ``tests`` is not audited, one registered only to
        #: observe): gap closure's oracle.
        self.observer: TestsAuditor | None = None
        #: The report files written, and those that could not be (announced apart).
        self.written: list[Path] = []
        self.write_failures: list[ReportWriteError] = []
        self._child: Path | None = None
        self._github_token: str | None = None
        self._started = time.monotonic()
        self._created = datetime.now(timezone.utc)

    @staticmethod
    def _register_reruns(config: pytest.Config, reruns: int) -> None:
        """Rerun failed calls (``--orchestrate-reruns``), unless pytest-rerunfailures does."""
        if not reruns:
            return
        from pytest_orchestrator.reruns import Reruns, rerunfailures_active

        if not rerunfailures_active(config):
            config.pluginmanager.register(Reruns(reruns), "orchestrator-reruns")

    @classmethod
    def install(cls, config: pytest.Config) -> None:
        """Resolve the settings and register the orchestrator and its auditors.

        :raises pytest.UsageError: a setting is invalid (one line).
        """
        if hasattr(config, "workerinput"):
            measurement = config.stash.get(MEASUREMENT_KEY, None)
            if measurement is not None:
                config.pluginmanager.register(WorkerCoverage(measurement), "orchestrator-worker")
            from pytest_orchestrator.reruns import reruns_of

            cls._register_reruns(config, reruns_of(config))
            return
        from pytest_orchestrator import defaults

        if not config.pluginmanager.is_registered(defaults):
            config.pluginmanager.register(defaults, "orchestrator-defaults")
        offered: dict[str, Auditor] = {}
        for auditor in _flatten(config.hook.pytest_orchestrator_auditors(config=config)):
            offered.setdefault(auditor.dimension, auditor)
        settings = OrchestrationConfig.from_pytest(config, known_dimensions=set(offered))
        child_report = os.environ.pop(CHILD_ENV, None)  # not for the tests' subprocesses
        if child_report:
            # the re-audit of a gap-closure iteration: its JSON report only, no LLM audit
            # (not repeated), no loop
            from pytest_orchestrator.config import ReportSpec

            settings = settings.model_copy(
                update={
                    "reports": (ReportSpec(type="json", path=Path(child_report)),),
                    "dimensions": tuple(
                        d for d in settings.dimensions if not d.startswith("agent:")
                    ),
                    "agents": (),
                    "resume": None,
                }
            )
        else:
            if settings.agents or any(d.startswith("agent:") for d in settings.dimensions):
                cls._check_agents(config, settings)
            if settings.agents and not config.getoption("collectonly", default=False):
                cls._check_loop(config, settings)
        auditors = [offered[d] for d in settings.dimensions]
        cls._register_reruns(config, settings.reruns)
        orchestrator = cls(config, settings, auditors)
        if any(spec.type == "pr-comment" for spec in settings.reports):
            from pytest_orchestrator.reports.prcomment import take_token

            orchestrator._github_token = take_token(os.environ)  # out of tests' and agents' reach
        orchestrator._child = Path(child_report) if child_report else None
        oracle = os.environ.pop(ORACLE_ENV, None) if child_report else None
        if settings.agents or child_report:
            observer = next((a for a in auditors if isinstance(a, TestsAuditor)), None)
            if observer is None:
                observer = TestsAuditor()
                config.pluginmanager.register(observer, "orchestrator-observer")
            if oracle:
                try:
                    data = jsonio.loads(Path(oracle).read_bytes())
                    observer.oracle = Observation.from_data(data)
                except (OSError, ValueError) as exc:
                    raise pytest.UsageError(f"{ORACLE_ENV}: cannot read {oracle}: {exc}") from None
            orchestrator.observer = observer
        config.stash[ORCHESTRATOR_KEY] = orchestrator
        config.pluginmanager.register(orchestrator, "orchestrator-session")
        if settings.exec_prefix:
            from pytest_orchestrator.remote.session import REMOTE_KEY, RemoteSession

            workers = config.getoption("numprocesses", default=None)
            if workers not in (None, 0, "0"):
                raise pytest.UsageError(
                    "--orchestrate-exec runs the whole suite once in the container, so -n/"
                    "--numprocesses would have nothing to spread; drop -n here (to run the "
                    "remote suite in parallel: --orchestrate-exec-command='python -m pytest "
                    "-n 4' with pytest-xdist installed in the container)"
                )
            remote = RemoteSession(config, settings)
            config.stash[REMOTE_KEY] = remote
            config.pluginmanager.register(remote, "orchestrator-remote")
        for auditor in auditors:
            config.pluginmanager.register(auditor, f"orchestrator-auditor-{auditor.dimension}")

    @staticmethod
    def _check_agents(config: pytest.Config, settings: OrchestrationConfig) -> None:
        """Before any test runs: the sandbox works, the templates render (read now, frozen
        for the session), and every agent's program is on PATH with a known price.

        :raises pytest.UsageError: the first problem, in one line.
        """
        from pytest_orchestrator.agents.adapters import preflight
        from pytest_orchestrator.agents.pricing import PricingTable
        from pytest_orchestrator.agents.sandbox import SandboxUnavailable
        from pytest_orchestrator.agents.templates import TemplateError
        from pytest_orchestrator.auditors.agent import (
            check_templates,
            session_sandbox,
            session_templates,
        )

        try:
            session_sandbox(config, settings)
        except SandboxUnavailable as exc:
            raise pytest.UsageError(f"--orchestrate-sandbox=bwrap: {exc}") from None
        try:
            check_templates(session_templates(config, settings), settings, config.rootpath)
        except TemplateError as exc:
            raise pytest.UsageError(str(exc)) from None
        table = PricingTable.load(list(settings.pricing), settings.pricing_file)
        audit = "--orchestrate-audit-agent" if settings.audit_agents else "--orchestrate-agent"
        try:
            preflight("--orchestrate-agent", settings.agents, table, None)
            if any(d.startswith("agent:") for d in settings.dimensions):
                preflight(audit, settings.audit_agent_chain, table, None)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None

    @staticmethod
    def _check_loop(config: pytest.Config, settings: OrchestrationConfig) -> None:
        """Gap closure needs git (snapshots, the guard), unless allowed a clean tree, and
        the repository to itself: the loop's lock (``loop.lock``) is taken here, before the
        tests, and held until pytest exits.

        :raises pytest.UsageError: one line saying what to do.
        """
        from pytest_orchestrator.loop.lock import LockHeld, LoopLock
        from pytest_orchestrator.loop.snapshot import SnapshotError, git_dirs, git_root, is_dirty

        try:
            root = git_root(config.rootpath)
            common = git_dirs(root)[1]
        except SnapshotError as exc:
            raise pytest.UsageError(f"--orchestrate-agent: {exc}") from None
        try:
            lock = LoopLock.acquire(common, config.rootpath)
        except LockHeld as exc:
            raise pytest.UsageError(f"--orchestrate-agent: {exc}") from None
        except OSError as exc:
            raise pytest.UsageError(
                f"--orchestrate-agent: cannot open the loop's lock in {common}: {exc}"
            ) from None
        try:
            dirty = is_dirty(root)
        except SnapshotError as exc:
            lock.release()
            raise pytest.UsageError(f"--orchestrate-agent: {exc}") from None
        if dirty and not settings.allow_dirty:
            lock.release()
            raise pytest.UsageError(
                "--orchestrate-agent: the working tree has uncommitted changes; commit or "
                "stash them first, or give --orchestrate-allow-dirty (each iteration's "
                "snapshot then keeps them)"
            )
        config.add_cleanup(lock.release)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        rootdir = self.config.rootpath
        self.context = AuditContext(self.config, self.settings, rootdir, discover(rootdir))
        if self.config.getoption("collectonly", default=False):
            return  # nothing will be gated: start no tool and call no agent
        # Auditors that begin in a thread start last: their thread would compete for the
        # GIL with the others' start (e.g. bandit's plan, which then launches bandit later).
        for auditor in sorted(self.auditors, key=lambda a: getattr(a, "begin_in_thread", False)):
            with contextlib.suppress(ToolUnavailable):  # finish reports it
                auditor.start(self.context)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        # The gate is decided here, not in pytest_sessionfinish, which is too late to
        # change what the run reports (pytest-cov does the same).
        if self.config.getoption("collectonly", default=False):
            self.cancel()  # nothing runs, so there is nothing to gate
            return (yield)
        try:
            result = yield
        except session.Failed:  # -x / --maxfail: the run ended early but is a real run
            self._finish_or_cancel(session)
            raise
        except BaseException:
            self.cancel()
            raise
        self._finish_or_cancel(session)
        return result

    def _finish_or_cancel(self, session: pytest.Session) -> None:
        """Finish; an interruption while waiting for the audits cancels them."""
        try:
            self.finish(session)
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop the auditors' background work (the session was interrupted)."""
        for auditor in self.auditors:
            auditor.cancel()

    def _audit(self, auditor: Auditor, context: AuditContext) -> AuditResult:
        started = time.monotonic()
        try:
            result = auditor.finish(context)
        except ToolUnavailable as exc:
            result = auditor.unavailable(str(exc))
        except Exception as exc:  # a third-party auditor's bug must not crash pytest
            result = auditor.unavailable(
                f"auditor {type(auditor).__name__} crashed: {type(exc).__name__}: {exc}"
            )
        if not result.duration:
            result.duration = round(time.monotonic() - started, 3)
        return result

    def _suppression_store(self) -> Path | None:
        """The suppression scan's cache file, beside the audit cache; None when the audit
        cache is off (``PYTEST_ORCHESTRATOR_AUDIT_CACHE=0``) or cannot be created."""
        from pytest_orchestrator.auditors import cache

        assert self.context is not None
        if not cache.enabled():
            return None
        try:
            return cache.session_cache_dir(self.config, self.context.rootdir) / "suppressions.json"
        except OSError:
            return None

    def _build(self, results: list[AuditResult]) -> Report:
        """Count the suppressions, score ``results``, gate them, and make the report."""
        assert self.context is not None
        from pytest_orchestrator import suppressions as suppression_scan

        settings = self.settings
        found = suppression_scan.scan_tree(self.context.rootdir, store=self._suppression_store())
        every = [item for items in found.values() for item in items]
        suppressions = SuppressionSummary(
            total=len(every),
            by_kind=suppression_scan.counts(every),
            files={path: len(items) for path, items in found.items()},
        )
        failed: list[GateCondition] = []
        changes = None
        if settings.diff_base:
            from pytest_orchestrator.newcode import DiffBaseError, changed_lines

            try:
                changes = changed_lines(self.context.rootdir, settings.diff_base)
                results = self._with_new_suppressions(results, changes, found)
            except DiffBaseError as exc:
                failed.append(GateCondition(name="new code", passed=False, message=str(exc)))
        score = self.config.hook.pytest_orchestrator_score(
            config=self.config, results=results, settings=self.settings
        )
        new_code, new_results = None, []
        if changes is not None and settings.diff_base:
            # the new code of the tree as it is now (after gap closure, its final state)
            from pytest_orchestrator.newcode import DiffBaseError, assess

            try:
                assessment = assess(self.config, settings, results, settings.diff_base, changes)
            except DiffBaseError as exc:
                failed.append(GateCondition(name="new code", passed=False, message=str(exc)))
            else:
                new_code, new_results = assessment.summary, assessment.results
                if new_results:
                    new_code.score = self.config.hook.pytest_orchestrator_score(
                        config=self.config, results=new_results, settings=settings
                    )
        comparison = None
        if settings.baseline is not None:
            from pytest_orchestrator.baseline import BaselineError, compare, load

            every_finding = sorted((f for r in results for f in r.findings), key=finding_order)
            try:
                comparison = compare(
                    settings.baseline, load(settings.baseline), every_finding, suppressions
                )
            except BaselineError as exc:
                failed.append(GateCondition(name="baseline", passed=False, message=str(exc)))
        verdict = evaluate_gate(score, results, settings, new_code, new_results, comparison)
        if settings.path_minimums:
            from pytest_orchestrator.scoring import path_conditions

            failed += path_conditions(results, settings, self.context.rootdir)
        if failed:
            verdict.conditions += failed
            verdict.passed = verdict.passed and all(c.passed for c in failed)
        dimensions = [r.dimension for r in results]
        return Report(
            tool=ToolInfo(version=__version__),
            created=self._created,
            duration=round(time.monotonic() - self._started, 3),
            project=self.context.project,
            config=ConfigSummary(
                target_score=settings.target_score,
                dimensions=dimensions,
                fail_on=list(settings.fail_on),
                weights={d: settings.weight(d) for d in dimensions},
                min_scores=settings.min_scores,
                unavailable=settings.unavailable,
                allow_unavailable=list(settings.allow_unavailable),
                path_minimums=[rule.describe() for rule in settings.path_minimums],
            ),
            audits=results,
            score=score,
            verdict=verdict,
            remote=self._remote_summary(),
            agents=self._agent_usage(),
            new_code=new_code,
            baseline=comparison,
            suppressions=suppressions,
        )

    def _with_new_suppressions(
        self,
        results: list[AuditResult],
        changes: NewCodeChanges,
        found: dict[str, list[Suppression]],
    ) -> list[AuditResult]:
        """``results`` with a ``new-suppression`` finding (P2 by default) for each
        suppression the new code added, in the dimension it silences (``lint`` when that
        one is not audited, e.g. ``type: ignore``); ``lint`` and ``security`` are scored
        again with them. Findings of an earlier build (a re-audit's) are replaced."""
        from pytest_orchestrator.auditors.base import make_finding
        from pytest_orchestrator.newcode import NEW_SUPPRESSION as rule
        from pytest_orchestrator.newcode import new_suppressions
        from pytest_orchestrator.scoring import finding_score
        from pytest_orchestrator.severity import tool_severity

        assert self.context is not None
        by_dimension = {r.dimension: r for r in results if r.status == "ok"}
        extra: dict[str, list[Finding]] = {}
        for path, item in new_suppressions(self.context.rootdir, changes, found):
            dimension = item.dimension if item.dimension in by_dimension else "lint"
            if dimension not in by_dimension:
                continue
            extra.setdefault(dimension, []).append(
                make_finding(
                    self.context,
                    dimension=dimension,
                    severity=tool_severity(
                        item.tool, rule, Severity.P2, self.settings.severity_map
                    ),
                    rule_id=rule,
                    message=f"new suppression: {item.describe()} instead of fixing it",
                    path=path,
                    line=item.line,
                    tool=item.tool,
                    recommendation="fix what it hides, or explain in the review why it must stay",
                )
            )
        out = []
        for result in results:
            kept = [f for f in result.findings if f.rule_id != rule]
            findings = kept + extra.get(result.dimension, [])
            if len(findings) == len(result.findings) and len(kept) == len(findings):
                out.append(result)
                continue
            update: dict[str, Any] = {"findings": findings}
            if result.dimension in ("lint", "security"):
                update["score"], update["deductions"] = finding_score(
                    result.dimension,
                    findings,
                    self.context.project.lines_of_code,
                    self.settings.severity_points,
                )
            out.append(result.model_copy(update=update))
        return out

    def finish(self, session: pytest.Session) -> None:
        """Join the audits, score, gate, close gaps when an agent is given, write reports."""
        if self.context is None or self.report is not None:
            return
        hook = self.config.hook
        results = [self._audit(a, self.context) for a in self.auditors]
        for result in results:
            hook.pytest_orchestrator_audit_result(config=self.config, result=result)
        report = self._build(results)
        if self._child is not None and self.observer is not None:
            # what the re-audit saw of the tests: the parent checks it against its oracle
            self.observer.apply_oracle()
            observed = self.observer.observation(self.config, self.config.rootpath)
            self._child.with_name("observed.json").write_text(observed.to_json(), "utf-8")
        if self.settings.agents and self._child is None:
            report = self._close_gaps(report)
        settings = self.settings
        hook.pytest_orchestrator_report(config=self.config, report=report)
        from pytest_orchestrator.reports import clean_report, write_reports

        report = clean_report(report)  # one pass for every writer: secrets, control codes
        self.written, self.write_failures = write_reports(report, settings.reports)
        self.report = report
        self.verdict = report.verdict

    def _close_gaps(self, first: Report) -> Report:
        """Run the gap-closure loop from ``first``; the final report.

        The loop works on the re-auditable dimensions (LLM audits are not repeated in the
        child pytest); their first results are added back to the final report.
        """
        from pytest_orchestrator.agents.base import AgentSpec
        from pytest_orchestrator.agents.pricing import PricingTable
        from pytest_orchestrator.agents.runner import AgentRunner
        from pytest_orchestrator.auditors.agent import ledger, session_sandbox
        from pytest_orchestrator.loop.engine import Loop, load, sessions_dir

        settings = self.settings
        llm = [a for a in first.audits if a.dimension.startswith("agent:")]
        baseline = self._build([a for a in first.audits if not a.dimension.startswith("agent:")])
        spending = ledger(self.config, settings.budget_usd)
        state = None
        if settings.resume:
            state = load(sessions_dir(self.config), settings.resume)
            spending.calls[:0] = state.calls  # what the session spent before counts
        runner = AgentRunner(
            [AgentSpec.parse(s) for s in settings.agents],
            spending,
            PricingTable.load(list(settings.pricing), settings.pricing_file),
            retries=settings.agent_retries,
            sandbox=session_sandbox(self.config, settings),
        )
        assert self.observer is not None
        start = self.observer.observation(self.config, self.config.rootpath)
        loop = Loop(self.config, settings, spending, runner, baseline, start, state)
        self.loop = loop
        final = loop.run()
        report = self._build([*final.audits, *llm])
        report.loop = loop.summary()
        report.agents = self._agent_usage()
        return report

    def _agent_usage(self) -> AgentUsage | None:
        from pytest_orchestrator.auditors.agent import LEDGER_KEY

        ledger = self.config.stash.get(LEDGER_KEY, None)
        return ledger.usage() if ledger is not None and ledger.calls else None

    def _remote_summary(self) -> RemoteRun | None:
        if not self.settings.exec_prefix:
            return None
        from pytest_orchestrator.remote.session import REMOTE_KEY

        remote = self.config.stash.get(REMOTE_KEY, None)
        return remote.summary() if remote is not None else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.report is None:
            self.cancel()
            return
        if self.loop is not None and any(i.accepted for i in self.loop.state.iterations):
            # the tree changed since this session's tests ran: the final state decides
            tests = self.report.audit("tests")
            failing = (
                tests is not None
                and tests.tests is not None
                and (tests.tests.failed or tests.tests.errors or tests.tests.collection_errors)
            )
            if failing:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            elif self.write_failures:
                session.exitstatus = EXIT_REPORT_FAILED
            else:
                session.exitstatus = (
                    pytest.ExitCode.OK if self.report.verdict.passed else EXIT_GATE_FAILED
                )
            return
        if not self.report.verdict.passed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = EXIT_GATE_FAILED
        if self.write_failures and session.exitstatus in (pytest.ExitCode.OK, EXIT_GATE_FAILED):
            session.exitstatus = EXIT_REPORT_FAILED

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Safety net: no agent CLI outlives the session, whatever ended it (none ran when
        # the module that starts them was never imported).
        base = sys.modules.get("pytest_orchestrator.agents.base")
        if base is not None:
            base.stop_running_agents()

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.report is None:
            why = (
                "--collect-only runs no test"
                if self.config.getoption("collectonly", default=False)
                else "the session did not finish its run"
            )
            terminalreporter.write_sep("=", f"quality gate not evaluated: {why}", yellow=True)
            return
        from pytest_orchestrator.reports.terminal import render

        report = self.report
        verbosity = self.config.get_verbosity()
        markup = terminalreporter.hasmarkup
        if not any(spec.type == "terminal" for spec in self.settings.reports):
            verbosity = -2  # the verdict line only, and where the reports are
        else:
            passed = report.verdict.passed
            terminalreporter.write_sep(
                "=", "quality gate", bold=True, green=passed and markup, red=not passed and markup
            )
        width = self.config.get_terminal_writer().fullwidth
        terminalreporter.write(render(report, markup=markup, width=width, verbosity=verbosity))
        for spec in self.settings.reports:
            if spec.path is not None and spec.path in self.written:
                terminalreporter.write_line(f"{spec.type} report: {spec.path}")
        for failure in self.write_failures:
            terminalreporter.write_line(f"ERROR: {failure}", red=True, bold=True)
        if any(spec.type == "github" for spec in self.settings.reports):
            from pytest_orchestrator.reports.github import publish

            publish(
                report,
                os.environ,
                terminalreporter.write_line,
                {s.type: s.path for s in self.settings.reports if s.path in self.written},
            )
        if any(spec.type == "pr-comment" for spec in self.settings.reports):
            from pytest_orchestrator.reports.prcomment import publish as comment

            comment(report, os.environ, terminalreporter.write_line, self._github_token)
