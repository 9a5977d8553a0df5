# mypy: disable-error-code="empty-body"
"""Hook specifications of pytest-orchestrator.

Implement them in a ``conftest.py`` or a plugin; names start with ``pytest_orchestrator_``.
Our own defaults are ``trylast`` implementations (in ``pytest_orchestrator.defaults``), so
an implementation of yours runs first and, for ``firstresult`` hooks, wins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pytest

    from pytest_orchestrator.auditors.base import Auditor
    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.models import AuditResult, Report, Score

hookspec = pluggy.HookspecMarker("pytest")


@hookspec
def pytest_orchestrator_auditors(config: pytest.Config) -> list[Auditor]:
    """Return auditors to add, each an :class:`pytest_orchestrator.Auditor`.

    Called once at configure time; the dimensions of all returned auditors are the ones
    ``--orchestrate-dimensions`` accepts. When two auditors claim the same dimension, the
    first one returned wins, so yours replace the builtin ones (which are ``trylast``).

    :param config: the pytest config.
    """


@hookspec
def pytest_orchestrator_audit_result(config: pytest.Config, result: AuditResult) -> None:
    """Observe one dimension's audit result, after the run loop, before scoring.

    :param config: the pytest config.
    :param result: the audit result (treat it as read-only).
    """


@hookspec(firstresult=True)
def pytest_orchestrator_score(
    config: pytest.Config, results: list[AuditResult], settings: OrchestrationConfig
) -> Score | None:
    """Compute the overall score from the audit results.

    Stops at first non-None result. The default is the weighted mean described in the
    documentation (docs/scoring.md); return a :class:`pytest_orchestrator.Score` to replace it.

    :param config: the pytest config.
    :param results: one audit result per dimension, in ``--orchestrate-dimensions`` order.
    :param settings: the resolved settings (weights, unavailable rule, ...).
    """


@hookspec
def pytest_orchestrator_report(config: pytest.Config, report: Report) -> None:
    """Amend the report in place before any report file or terminal summary is written.

    :param config: the pytest config.
    :param report: the report; changes to it reach every report format.
    """


@hookspec(firstresult=True)
def pytest_orchestrator_confirm(
    config: pytest.Config, question: str, checks: list[str]
) -> bool | None:
    """Answer the guard's question about a risky change an agent made (gap closure).

    Stops at first non-None result: True keeps the change, False rolls it back. Return
    None to leave the answer to ``--orchestrate-confirm`` (ask on a terminal, else no).
    Every question and answer is recorded in the session.

    :param config: the pytest config.
    :param question: one line, e.g. "keep iteration 2? it deletes 20 files (...)".
    :param checks: the names of the guard checks that asked, e.g. ["files-deleted"].
    """
