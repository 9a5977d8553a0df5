"""The ``security`` dimension: bandit over the project's sources, through its JSON output.

Targets are the discovered sources (packages and top-level modules, not tests). A
``[tool.bandit]`` table in ``pyproject.toml`` is passed with ``-c`` so its ``skips``,
``tests`` and ``exclude_dirs`` apply; ``# nosec`` comments work as in bandit.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from pytest_orchestrator.auditors.base import AuditContext, make_finding
from pytest_orchestrator.auditors.tools import CommandAuditor, distribution_version, last_line
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import AuditResult, Finding
from pytest_orchestrator.severity import bandit_severity

INSTALL_HINT = "install it with: pip install bandit"


class BanditAuditor(CommandAuditor):
    """Audit security with ``bandit -r SOURCES -f json``; one finding per result."""

    dimension = "security"
    tool = "bandit"

    install_hint = INSTALL_HINT

    def command(self, context: AuditContext) -> list[str]:
        if importlib.util.find_spec("bandit") is None:
            raise ToolUnavailable(f"bandit is not installed in {sys.executable}; {INSTALL_HINT}")
        targets = context.project.sources
        if not targets:
            raise ToolUnavailable("no Python package or module found under the rootdir to audit")
        argv = [sys.executable, "-m", "bandit", "-r", *targets, "-f", "json", "-q"]
        pyproject = context.rootdir / "pyproject.toml"
        if _has_table(pyproject, "[tool.bandit"):
            argv += ["-c", str(pyproject)]
        return argv

    def finish(self, context: AuditContext) -> AuditResult:
        code, out, err, seconds = self.wait()
        try:
            data = json.loads(out)
            results = data["results"]
        except (ValueError, KeyError, TypeError):
            raise ToolUnavailable(f"bandit failed (exit {code}): {last_line(err or out)}") from None
        findings = [self._finding(context, item) for item in results if isinstance(item, dict)]
        notes = [
            f"bandit could not scan {context.relpath(e.get('filename', '?'))}: {e.get('reason')}"
            for e in data.get("errors", [])
            if isinstance(e, dict)
        ]
        result = self.scored(context, findings, duration=seconds, notes=notes)
        result.tool_version = distribution_version("bandit")
        return result

    def _finding(self, context: AuditContext, item: dict[str, object]) -> Finding:
        test_id = str(item.get("test_id") or "bandit")
        line = item.get("line_number")
        return make_finding(
            context,
            dimension=self.dimension,
            severity=bandit_severity(
                test_id,
                str(item.get("issue_severity") or "LOW"),
                str(item.get("issue_confidence") or "LOW"),
                context.settings.severity_map,
            ),
            rule_id=test_id,
            message=f"{item.get('issue_text', '')} ({item.get('test_name', test_id)})",
            path=str(item.get("filename") or "") or None,
            line=line if isinstance(line, int) else None,
            tool=self.tool,
            url=str(item["more_info"]) if item.get("more_info") else None,
        )


def _has_table(path: Path, header: str) -> bool:
    try:
        return header in path.read_text(encoding="utf-8")
    except OSError:
        return False
