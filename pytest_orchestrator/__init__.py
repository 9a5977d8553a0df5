"""pytest-orchestrator: a pytest quality gate.

``pytest --orchestrate --target-score=90`` audits the project around the test session
(tests, coverage, lint, security), scores it 0-100, gates pass/fail and writes reports.

The names below are imported lazily, so that installing the plugin costs nothing
measurable in a pytest run without ``--orchestrate``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pytest_orchestrator.auditors.base import AuditContext, Auditor
    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.errors import (
        OrchestratorError,
        OrchestratorWarning,
        ReportWriteError,
        ToolUnavailable,
    )
    from pytest_orchestrator.models import (
        AuditResult,
        Deduction,
        Finding,
        Report,
        Score,
        Severity,
        Verdict,
    )
    from pytest_orchestrator.orchestrator import EXIT_GATE_FAILED, EXIT_REPORT_FAILED

_EXPORTS = {
    "AuditContext": "pytest_orchestrator.auditors.base",
    "Auditor": "pytest_orchestrator.auditors.base",
    "AuditResult": "pytest_orchestrator.models",
    "Deduction": "pytest_orchestrator.models",
    "EXIT_GATE_FAILED": "pytest_orchestrator.orchestrator",
    "EXIT_REPORT_FAILED": "pytest_orchestrator.orchestrator",
    "Finding": "pytest_orchestrator.models",
    "OrchestrationConfig": "pytest_orchestrator.config",
    "OrchestratorError": "pytest_orchestrator.errors",
    "OrchestratorWarning": "pytest_orchestrator.errors",
    "Report": "pytest_orchestrator.models",
    "ReportWriteError": "pytest_orchestrator.errors",
    "Score": "pytest_orchestrator.models",
    "Severity": "pytest_orchestrator.models",
    "ToolUnavailable": "pytest_orchestrator.errors",
    "Verdict": "pytest_orchestrator.models",
}

__all__ = [
    "EXIT_GATE_FAILED",
    "EXIT_REPORT_FAILED",
    "AuditContext",
    "AuditResult",
    "Auditor",
    "Deduction",
    "Finding",
    "OrchestrationConfig",
    "OrchestratorError",
    "OrchestratorWarning",
    "Report",
    "ReportWriteError",
    "Score",
    "Severity",
    "ToolUnavailable",
    "Verdict",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
