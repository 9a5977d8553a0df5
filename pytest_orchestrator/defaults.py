"""Our default implementations of pytest-orchestrator's hooks, all ``trylast``.

A conftest.py or plugin that implements the same hook runs first, and for the
``firstresult`` hook (``pytest_orchestrator_score``) its result wins.
"""

from __future__ import annotations

import pytest

from pytest_orchestrator.auditors.base import Auditor
from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.models import AuditResult, Score


@pytest.hookimpl(trylast=True)
def pytest_orchestrator_auditors(config: pytest.Config) -> list[Auditor]:
    from pytest_orchestrator.auditors.agent import agent_auditor, audit_names
    from pytest_orchestrator.auditors.cov import CoverageAuditor
    from pytest_orchestrator.auditors.lint import RuffAuditor
    from pytest_orchestrator.auditors.security import security_auditor
    from pytest_orchestrator.auditors.tests import TestsAuditor
    from pytest_orchestrator.auditors.types import TypesAuditor

    builtin: list[Auditor] = [
        TestsAuditor(),
        CoverageAuditor(config),
        RuffAuditor(),
        security_auditor(config),
        TypesAuditor(),  # opt-in: not among the default dimensions
    ]
    return builtin + [agent_auditor(name, config) for name in audit_names(config)]


@pytest.hookimpl(trylast=True)
def pytest_orchestrator_score(
    config: pytest.Config, results: list[AuditResult], settings: OrchestrationConfig
) -> Score:
    from pytest_orchestrator.scoring import overall_score

    return overall_score(results, settings)
