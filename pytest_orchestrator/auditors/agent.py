"""LLM audits: the dimensions ``agent:NAME`` (``agent:security``, ``agent:backend`` ...).

At session start the template ``audit_NAME.j2`` is rendered (project discovery, the JSON
Schema of the answer) and the audit agent (``--orchestrate-audit-agent``, else
``--orchestrate-agent``) is called read-only in a background thread, so the audit overlaps
the test run. After the run its answer is parsed (``agents.parse``: a JSON block matching
the schema, else the seeds' Markdown) into findings; findings whose path is outside the
repository or whose line is past the end of the file are dropped and counted in the notes.

The score is the agent's own score when it gives one, its lost points apportioned over
its findings by severity; otherwise the finding formula of the static tools. An agent that
fails (missing CLI, authentication, timeout, budget, non-zero exit) makes the dimension
``unavailable``; an answer that cannot be read, whatever the CLI (output not in its format,
an empty answer, an answer with neither a score nor a finding), makes it ``error``, with
an excerpt of the answer (``(empty answer)`` when there was none). Nothing in the answer
is executed or changes any setting.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor, make_finding
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.redact import redact_text

if TYPE_CHECKING:
    from pytest_orchestrator.agents.base import AgentResult
    from pytest_orchestrator.agents.runner import Ledger
    from pytest_orchestrator.agents.sandbox import Sandbox
    from pytest_orchestrator.agents.templates import FindingVars, PromptTemplates
    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.models import AuditResult, Deduction, Discovery, Finding

LEDGER_KEY = pytest.StashKey["Ledger"]()


def _tree(rootdir: Path) -> Path:
    """The top of the git working tree holding ``rootdir``, else ``rootdir``."""
    from pytest_orchestrator.loop.snapshot import SnapshotError, toplevel

    try:
        top, _ = toplevel(rootdir)
    except SnapshotError:
        top = None
    return top or rootdir


def ledger(config: pytest.Config, budget_usd: float | None) -> Ledger:
    """The session's :class:`~pytest_orchestrator.agents.runner.Ledger` (created once)."""
    from pytest_orchestrator.agents.runner import Ledger

    if LEDGER_KEY not in config.stash:
        config.stash[LEDGER_KEY] = Ledger(budget_usd=budget_usd)
    return config.stash[LEDGER_KEY]


SANDBOX_KEY = pytest.StashKey["Sandbox"]()
TEMPLATES_KEY = pytest.StashKey["PromptTemplates"]()


def session_templates(config: pytest.Config, settings: OrchestrationConfig) -> PromptTemplates:
    """The session's prompt templates, read once (the first call, when the session starts):
    templates changed later in the tree (by an agent) do not change the prompts.

    :raises TemplateError: ``orchestrate_templates_dir`` cannot be read (one line).
    """
    from pytest_orchestrator.agents.templates import PromptTemplates

    if TEMPLATES_KEY not in config.stash:
        config.stash[TEMPLATES_KEY] = PromptTemplates(settings.templates_dir)
    return config.stash[TEMPLATES_KEY]


def session_sandbox(config: pytest.Config, settings: OrchestrationConfig) -> Sandbox:
    """The session's :class:`~pytest_orchestrator.agents.sandbox.Sandbox` (chosen once).

    :raises SandboxUnavailable: ``--orchestrate-sandbox=bwrap`` and bwrap does not work.
    """
    from pytest_orchestrator.agents.sandbox import WRITABLE_ENV, Sandbox

    if SANDBOX_KEY not in config.stash:
        extra = [Path(p) for p in os.environ.get(WRITABLE_ENV, "").split(os.pathsep) if p]
        config.stash[SANDBOX_KEY] = Sandbox.choose(
            settings.sandbox, [*settings.sandbox_writable, *extra]
        )
    return config.stash[SANDBOX_KEY]


class AgentAuditor(Auditor):
    """One ``agent:NAME`` dimension; make one with :func:`agent_auditor`."""

    name: str = ""
    tool = "agent"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._thread: threading.Thread | None = None
        self._result: AgentResult | None = None
        self._failure: str | None = None

    def start(self, context: AuditContext) -> None:
        from pytest_orchestrator.agents.base import AgentRequest, AgentSpec
        from pytest_orchestrator.agents.pricing import PricingTable
        from pytest_orchestrator.agents.runner import AgentRunner
        from pytest_orchestrator.agents.templates import TemplateError

        settings = context.settings
        try:
            prompt = audit_prompt(
                session_templates(self.config, settings),
                self.name,
                settings,
                context.project,
                ledger(self.config, settings.budget_usd).left_usd,
            )
            pricing = PricingTable.load(list(settings.pricing), settings.pricing_file)
        except (TemplateError, ValueError) as exc:
            self._failure = str(exc)
            return
        runner = AgentRunner(
            [AgentSpec.parse(s) for s in settings.audit_agent_chain],
            ledger(self.config, settings.budget_usd),
            pricing,
            retries=settings.agent_retries,
            sandbox=session_sandbox(self.config, settings),
        )
        request = AgentRequest(
            prompt=prompt,
            cwd=context.rootdir,
            tree=_tree(context.rootdir),
            timeout=settings.agent_timeout,
            edit=False,
            max_turns=settings.max_turns,
        )

        def call() -> None:
            self._result = runner.call(request, purpose=self.dimension)

        from pytest_orchestrator.agents.base import reset_cancelled

        reset_cancelled()  # a new session (pytester runs several in one process)

        self._thread = threading.Thread(target=call, name=self.dimension, daemon=True)
        self._thread.start()

    def finish(self, context: AuditContext) -> AuditResult:
        from pytest_orchestrator.agents.parse import ParseError, clean_findings, parse_audit
        from pytest_orchestrator.models import AuditResult

        if self._failure is not None:
            raise ToolUnavailable(self._failure)
        if self._thread is not None:
            if self._thread.is_alive():
                reporter = self.config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(f"waiting for the {self.dimension} audit agent ...")
            self._thread.join()
        result = self._result
        if result is None:
            raise ToolUnavailable("the audit agent was not started")
        if result.error is not None and result.error.kind != "bad_output":
            raise ToolUnavailable(f"{result.agent}: {result.error.message}")
        if result.error is not None:  # it answered, but not in its CLI's format
            return self._unreadable(result, result.error.message)
        try:
            audit, how = parse_audit(result.text)
        except ParseError as exc:
            return self._unreadable(result, str(exc))
        kept, notes = clean_findings(audit, context.rootdir)
        findings = [
            make_finding(
                context,
                dimension=self.dimension,
                severity=f.severity,
                rule_id="agent-finding",
                message=redact_text(f.title),
                path=f.path,
                line=f.line,
                tool=result.agent,
                recommendation=redact_text(f.recommendation) if f.recommendation else None,
            )
            for f in kept
        ]
        notes = [f"answer read as {how}", *notes, *result.warnings]
        if audit.dropped:
            notes.append(f"dropped {audit.dropped} findings that did not match the schema")
        notes += [f"recommendation: {redact_text(r)}" for r in audit.recommendations]
        if audit.score is None:
            scored = self.scored(context, findings, notes=notes)
            scored.tool = result.agent
            return scored
        return AuditResult(
            dimension=self.dimension,
            status="ok",
            score=round(audit.score, 2),
            findings=findings,
            deductions=_deductions(self.dimension, findings, audit.score, context, result.agent),
            tool=result.agent,
            notes=notes,
        )

    def _unreadable(self, result: AgentResult, why: str) -> AuditResult:
        """The ``error`` dimension of an answer that could not be read, with its excerpt."""
        from pytest_orchestrator.agents.base import excerpt
        from pytest_orchestrator.models import AuditResult

        return AuditResult(
            dimension=self.dimension,
            status="error",
            reason=f"{result.agent}'s answer could not be read: {why}",
            tool=result.agent,
            notes=[f"answer excerpt: {excerpt(result.text, 300) or '(empty answer)'}"],
        )

    def cancel(self) -> None:
        """Stop the agent's CLI: nothing may go on spending after the session."""
        if self._thread is not None and self._thread.is_alive():
            from pytest_orchestrator.agents.base import stop_running_agents

            stop_running_agents()
            self._thread.join(30)


def _deductions(
    dimension: str, findings: list[Finding], score: float, context: AuditContext, agent: str
) -> list[Deduction]:
    """The agent's lost points, apportioned over its findings by severity points."""
    from collections import Counter

    from pytest_orchestrator.scoring import deductions_for

    points = context.settings.severity_points
    groups = Counter(f.severity for f in findings)
    lost = [
        (f"{count} x {sev.value} from {agent}", points.get(sev, 0.0) * count, count)
        for sev, count in sorted(groups.items(), key=lambda kv: kv[0].rank)
    ]
    if not any(p for _, p, _ in lost):
        lost = [(f"the overall assessment of {agent}", 1.0, 0)]
    total = sum(p for _, p, _ in lost)
    missing = 100.0 - round(score, 2)
    scaled = [(reason, p * missing / total, count) for reason, p, count in lost]
    return deductions_for(dimension, scaled, round(score, 2))


def audit_prompt(
    templates: PromptTemplates,
    name: str,
    settings: OrchestrationConfig,
    project: Discovery,
    budget_left: float | None,
) -> str:
    """The rendered ``audit_NAME.j2`` prompt.

    :raises TemplateError: the template is missing or broken (one line).
    """
    from pytest_orchestrator.agents.parse import audit_schema

    return templates.render(
        f"audit_{name}",
        {
            "project": project.model_dump(),
            "dimension": f"agent:{name}",
            "findings": [],
            "exec_prefix": settings.exec_prefix or None,
            "test_command": tests_command(settings.exec_prefix, settings.exec_command),
            "budget_left_usd": budget_left,
            "answer_schema": _schema_text(audit_schema()),
            "target_score": settings.target_score,
            "score": None,
        },
    )


def loop_prompt(
    templates: PromptTemplates,
    name: str,
    settings: OrchestrationConfig,
    project: Discovery,
    findings: list[FindingVars],
    budget_left: float | None,
    score: float | None,
) -> str:
    """The rendered prompt of gap closure's ``close_gap.j2`` or ``develop_feature.j2``.

    :raises TemplateError: the template is missing or broken (one line).
    """
    return templates.render(
        name,
        {
            "project": project.model_dump(),
            "findings": findings,
            "exec_prefix": settings.exec_prefix or None,
            "test_command": tests_command(settings.exec_prefix, settings.exec_command),
            "budget_left_usd": budget_left,
            "target_score": settings.target_score,
            "score": score,
        },
    )


def check_templates(
    templates: PromptTemplates, settings: OrchestrationConfig, rootdir: Path
) -> None:
    """Render, with example values, every template the session will use: ``audit_NAME``
    of each ``agent:NAME`` dimension, and with agents, gap closure's ``close_gap`` and
    ``develop_feature``, so a broken template ends the session before its tests.

    :raises TemplateError: the first template that does not render (one line).
    """
    from pytest_orchestrator.agents.templates import FindingVars, TemplateError
    from pytest_orchestrator.models import Discovery, Severity

    example = Discovery(name="project", rootdir=str(rootdir), sources=[], files=0, lines_of_code=0)
    for dimension in settings.dimensions:
        if dimension.startswith("agent:"):
            name = dimension.removeprefix("agent:")
            try:
                audit_prompt(templates, name, settings, example, settings.budget_usd)
            except TemplateError as exc:
                raise TemplateError(f"--orchestrate-dimensions {dimension}: {exc}") from None
    if settings.agents:
        finding = FindingVars(
            severity=Severity.P0,
            rule_id="test-failed",
            message="tests/test_example.py::test_example: assert 1 == 2",
            path="tests/test_example.py",
            line=3,
            excerpt="> 3 |     assert 1 == 2",
            recommendation="run: pytest tests/test_example.py::test_example",
        )
        for name in ("close_gap", "develop_feature"):
            try:
                loop_prompt(
                    templates, name, settings, example, [finding], settings.budget_usd, 50.0
                )
            except TemplateError as exc:
                raise TemplateError(f"--orchestrate-agent (gap closure): {exc}") from None


def _schema_text(schema: dict[str, object]) -> str:
    import json

    return json.dumps(schema, indent=2, sort_keys=True)


def tests_command(exec_prefix: str, exec_command: str) -> str:
    """How the agent should run the tests: through the exec prefix when there is one."""
    return f"{exec_prefix} {exec_command}".strip() if exec_prefix else "python -m pytest"


def agent_auditor(name: str, config: pytest.Config) -> AgentAuditor:
    """An auditor of the dimension ``agent:NAME`` (template ``audit_NAME.j2``)."""
    cls = type(
        f"AgentAuditor[{name}]", (AgentAuditor,), {"dimension": f"agent:{name}", "name": name}
    )
    auditor: AgentAuditor = cls(config)
    return auditor


def audit_names(config: pytest.Config) -> list[str]:
    """NAMEs of the ``audit_NAME.j2`` templates: packaged and in ``orchestrate_templates_dir``.

    Only the file names are listed (no Jinja2 is imported: every session calls this); the
    templates are read, checked and frozen by :func:`session_templates` when an agent is
    used.
    """
    from importlib import resources

    files = {entry.name for entry in resources.files("pytest_orchestrator.templates").iterdir()}
    raw = config.getini("orchestrate_templates_dir")
    directory = config.rootpath / Path(str(raw).strip()).expanduser() if raw else None
    if directory is not None and directory.is_dir():  # else the setting's own check says so
        # on an error: read again, and reported, when an agent uses the templates
        with contextlib.suppress(OSError):
            files.update(entry.name for entry in directory.iterdir() if entry.is_file())
    return sorted(
        name.removeprefix("audit_").removesuffix(".j2")
        for name in files
        if name.startswith("audit_") and name.endswith(".j2") and len(name) > len("audit_.j2")
    )
