"""The auditor interface.

An auditor audits one dimension. The orchestrator calls :meth:`Auditor.start` at session
start (begin work that can overlap the test run, e.g. a subprocess) and
:meth:`Auditor.finish` after the run loop. An auditor is also registered as a pytest
plugin for the session, so it may implement pytest hooks (the ``tests`` auditor reads
``pytest_runtest_logreport``). Third parties add auditors through the
``pytest_orchestrator_auditors`` hook::

    # conftest.py
    from pytest_orchestrator import AuditContext, Auditor, AuditResult

    class DocsAuditor(Auditor):
        dimension = "docs"
        tool = "my-doc-checker"

        def finish(self, context: AuditContext) -> AuditResult:
            findings = [...]
            return self.scored(context, findings)

    def pytest_orchestrator_auditors(config):
        return [DocsAuditor()]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import pytest

    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.models import AuditResult, Discovery, Finding, Severity


@dataclass
class AuditContext:
    """What an auditor may read: the pytest config, the settings, the rootdir, the project."""

    config: pytest.Config
    settings: OrchestrationConfig
    rootdir: Path
    project: Discovery
    _real_root: Path | None = field(default=None, init=False, repr=False, compare=False)
    _lines: dict[str, list[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _relpaths: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: SHA-256 of each file (rootdir-relative POSIX path) that an audit cache plan hashed,
    #: so ruff's and bandit's plans read a file once (see ``auditors.cache``).
    digests: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def relpath(self, path: str | Path) -> str:
        """``path`` as a POSIX path relative to the rootdir (unchanged if outside it).

        Paths inside the rootdir as written (relative, or absolute under the rootdir or its
        resolved form) need no file system call; others are resolved first. Answers are
        remembered for the session (findings name the same files many times).
        """
        key = str(path)
        known = self._relpaths.get(key)
        if known is None:
            known = self._relpaths[key] = self._relpath(path)
        return known

    def _relpath(self, path: str | Path) -> str:
        target = Path(path)
        if ".." not in target.parts:
            if not target.is_absolute():
                return target.as_posix()
            if self._real_root is None:
                self._real_root = self.rootdir.resolve()
            for root in (self.rootdir, self._real_root):
                if target.is_relative_to(root):
                    return target.relative_to(root).as_posix()
        if not target.is_absolute():
            target = self.rootdir / target
        try:
            return target.resolve().relative_to(self.rootdir.resolve()).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def source_line(self, rel: str, line: int | None) -> str:
        """Text of 1-based ``line`` of the rootdir-relative file ``rel`` ('' when unreadable).

        Each file is read once per session (the tree does not change while it is audited).
        """
        if line is None or line < 1:
            return ""
        lines = self._lines.get(rel)
        if lines is None:
            try:
                text = (self.rootdir / rel).read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            # newlines as the tools number lines (not str.splitlines, which splits at \f too)
            lines = self._lines[rel] = text.split("\n")
        return lines[line - 1] if line <= len(lines) else ""


class Auditor:
    """Base class of auditors; subclasses set ``dimension`` and ``tool`` and define finish."""

    dimension: ClassVar[str] = ""
    tool: ClassVar[str] = ""

    def start(self, context: AuditContext) -> None:
        """Begin work that can overlap the test run. The default does nothing."""

    def finish(self, context: AuditContext) -> AuditResult:
        """Return the audit result; called on the controller after the run loop.

        Raise :class:`pytest_orchestrator.errors.ToolUnavailable` when the tool is missing
        or broken: the dimension is then reported ``unavailable`` with your message.
        """
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop background work (the session was interrupted). The default does nothing."""

    def unavailable(self, reason: str) -> AuditResult:
        """An ``unavailable`` result with a one-line reason that says how to fix it."""
        from pytest_orchestrator.models import AuditResult

        return AuditResult(
            dimension=self.dimension, status="unavailable", reason=reason, tool=self.tool
        )

    def scored(
        self,
        context: AuditContext,
        findings: list[Finding],
        *,
        lines: int | None = None,
        **extra: object,
    ) -> AuditResult:
        """An ``ok`` result scored from ``findings`` by the documented finding formula.

        :param lines: the lines of code of the files the audit looked at (the formula's
            size); default: the project's audited sources (``Discovery.lines_of_code``).
        """
        from pytest_orchestrator.models import AuditResult
        from pytest_orchestrator.scoring import finding_score

        score, deductions = finding_score(
            self.dimension,
            findings,
            context.project.lines_of_code if lines is None else lines,
            context.settings.severity_points,
        )
        return AuditResult(
            dimension=self.dimension,
            status="ok",
            score=score,
            findings=findings,
            deductions=deductions,
            tool=self.tool,
            **extra,
        )


def make_finding(
    context: AuditContext,
    *,
    dimension: str,
    severity: Severity,
    rule_id: str,
    message: str,
    path: str | Path | None,
    line: int | None,
    tool: str,
    url: str | None = None,
    recommendation: str | None = None,
    anchor: str | None = None,
) -> Finding:
    """A finding with its path made rootdir-relative and its fingerprint computed.

    :param anchor: what the fingerprint follows; default: the finding's source line.
    """
    from pytest_orchestrator.models import Finding, fingerprint

    rel = context.relpath(path) if path is not None else None
    if anchor is None:
        anchor = context.source_line(rel, line) if rel else ""
        anchor = anchor or message
    return Finding(
        dimension=dimension,
        severity=severity,
        rule_id=rule_id,
        message=message,
        path=rel,
        line=line if line and line > 0 else None,
        tool=tool,
        url=url,
        recommendation=recommendation,
        fingerprint=fingerprint(rule_id, rel, anchor),
    )


def outside_tests(findings: list[Finding], notes: list[str]) -> list[Finding]:
    """``findings`` without those in test code (:func:`pytest_orchestrator.sources.is_test_file`),
    with a note appended to ``notes`` counting them: for the dimensions whose size, the
    project's lines of code, leaves test code out (security, types), so findings and size
    cover the same files."""
    from pytest_orchestrator.sources import is_test_file

    kept = [f for f in findings if f.path is None or not is_test_file(f.path)]
    if len(kept) < len(findings):
        left = len(findings) - len(kept)
        notes.append(
            f"{left} finding{'s' if left != 1 else ''} in test code inside the sources left out "
            "(test code is not in the size the score divides by)"
        )
    return kept
