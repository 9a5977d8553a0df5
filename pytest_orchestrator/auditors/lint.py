"""The ``lint`` dimension: ruff, run once over the rootdir with the project's own config.

Results are cached per file content (see :mod:`pytest_orchestrator.auditors.cache`): a
session runs ruff only on the files changed since a cached run.

When the project has no ruff configuration (``ruff.toml``, ``.ruff.toml`` or
``[tool.ruff]`` in ``pyproject.toml``), rules are pinned to ``orchestrate_ruff_select``
(default ``E4,E7,E9,F``) so scores do not jump when ruff widens its defaults.

The score is the finding formula over the files ruff checks (``ruff check --show-files``):
their findings, divided by their lines of code, so findings and size come from one set of
files. Test code (``tests/``, ``test_*.py``, ``*_test.py``, ``conftest.py``) is part of it,
or, with ``orchestrate_lint_tests``: ``lower`` (its findings one severity lower) or ``skip``
(left out: neither its findings nor its lines count).
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_orchestrator.auditors import cache
from pytest_orchestrator.auditors.base import AuditContext, make_finding
from pytest_orchestrator.auditors.tools import (
    CommandAuditor,
    distribution_version,
    find_executable,
    last_line,
)
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import AuditResult, Finding, Severity
from pytest_orchestrator.scoring import plural
from pytest_orchestrator.severity import ruff_severity
from pytest_orchestrator.sources import is_test_file

INSTALL_HINT = "install it with: pip install ruff"


def _lines_of_code(rootdir: Path, files: list[str]) -> int:
    """Non-blank, non-comment lines of ``files`` (as the project's size is counted)."""
    from pytest_orchestrator.discovery import count_lines

    total = 0
    for rel in files:
        try:
            total += count_lines((rootdir / rel).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return total


def has_ruff_config(rootdir: Path) -> bool:
    """True when ``rootdir`` has ruff.toml, .ruff.toml or a [tool.ruff] table."""
    if (rootdir / "ruff.toml").is_file() or (rootdir / ".ruff.toml").is_file():
        return True
    pyproject = rootdir / "pyproject.toml"
    try:
        return "[tool.ruff" in pyproject.read_text(encoding="utf-8")
    except OSError:
        return False


class RuffAuditor(CommandAuditor):
    """Lint with ``ruff check --output-format=json``; one finding per violation."""

    dimension = "lint"
    tool = "ruff"

    install_hint = INSTALL_HINT
    begin_in_thread = True  # ruff --show-files runs before ruff itself

    def __init__(self) -> None:
        super().__init__()
        self._plan: cache.CachePlan | None = None
        self._files: list[str] | None = None

    def begin(self, context: AuditContext) -> None:
        """List the files ruff checks, then run it on the ones changed since the cached run
        (none: do not run it)."""
        argv = self.command(context)
        self._files = cache.ruff_files(context, argv[0], argv[2:-1])
        self._plan = cache.ruff_plan(context, argv[0], argv[2:-1], self._files)
        if self._plan is None or self._plan.run is None:
            self.launch(argv, context)
        elif self._plan.run:
            self.launch([*argv[:-1], "--force-exclude", *self._plan.run], context)

    def command(self, context: AuditContext) -> list[str]:
        ruff = find_executable("ruff") or "ruff"
        argv = [ruff, "check", "--output-format=json", "--exit-zero", "--no-fix"]
        if not has_ruff_config(context.rootdir):
            argv += ["--select", context.settings.ruff_select]
        return [*argv, "."]

    def finish(self, context: AuditContext) -> AuditResult:
        self.ready()
        plan = self._plan
        if plan is not None and plan.complete:
            items = [item for _, payload in plan.merge({}) for item in payload["items"]]
            return self._result(context, items, 0.0)
        code, out, err, seconds = self.wait()
        if code != 0:
            raise ToolUnavailable(f"ruff failed (exit {code}): {last_line(err or out)}")
        try:
            items = json.loads(out or "[]")
            if not isinstance(items, list):
                raise TypeError("not a list")
        except (ValueError, TypeError) as exc:
            raise ToolUnavailable(
                f"ruff printed output that is not its JSON format ({exc})"
            ) from None
        rootdir = cache.real_rootdir(context)
        items = cache.ordered(rootdir, [i for i in items if isinstance(i, dict)], "filename")
        if plan is not None:
            checked = list(plan.files) if plan.run is None else plan.run
            fresh = cache.split(rootdir, checked, items, "filename", "items")
            if fresh is not None:
                items = [item for _, payload in plan.merge(fresh) for item in payload["items"]]
            elif plan.run is not None:
                cached = [item for payload in plan.hits.values() for item in payload["items"]]
                items = cache.ordered(rootdir, cached + items, "filename")
        return self._result(context, items, seconds)

    def _result(
        self, context: AuditContext, items: list[dict[str, object]], seconds: float
    ) -> AuditResult:
        policy = context.settings.lint_tests
        findings = []
        for item in items:
            finding = self._finding(context, item)
            if finding.path is not None and is_test_file(finding.path):
                if policy == "skip":
                    continue
                if policy == "lower" and finding.severity.rank < len(Severity) - 1:
                    lower = list(Severity)[finding.severity.rank + 1]
                    finding = finding.model_copy(update={"severity": lower})
            findings.append(finding)
        notes: list[str] = []
        lines = None
        if self._files is not None:
            counted = [f for f in self._files if policy != "skip" or not is_test_file(f)]
            lines = _lines_of_code(context.rootdir, counted)
            tests = {
                "count": "test code included",
                "lower": "test code included, its findings one severity lower",
                "skip": "test code left out",
            }[policy]
            notes.append(
                f"scored over the {plural(lines, 'line')} of code of the "
                f"{plural(len(counted), 'file')} ruff checks ({tests})"
            )
        result = self.scored(context, findings, duration=seconds, notes=notes, lines=lines)
        result.tool_version = distribution_version("ruff")
        return result

    def _finding(self, context: AuditContext, item: dict[str, object]) -> Finding:
        code = item.get("code")
        message = str(item.get("message") or "")
        rule = str(code) if code else "syntax-error"
        location = item.get("location")
        line = location.get("row") if isinstance(location, dict) else None
        fix = item.get("fix")
        recommendation = None
        if isinstance(fix, dict) and fix.get("message"):
            recommendation = f"{fix['message']} (ruff check --fix)"
        return make_finding(
            context,
            dimension=self.dimension,
            severity=ruff_severity(rule, context.settings.severity_map),
            rule_id=rule,
            message=message,
            path=str(item.get("filename") or "") or None,
            line=line if isinstance(line, int) else None,
            tool=self.tool,
            url=str(item["url"]) if item.get("url") else None,
            recommendation=recommendation,
        )
