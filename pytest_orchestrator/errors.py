"""Exceptions and warnings of pytest-orchestrator.

- ``OrchestratorError``: base of our exceptions.
    - ``ToolUnavailable``: an audit tool is missing, crashed, timed out or printed
      output we cannot read; the dimension becomes ``unavailable`` with the message.
    - ``ReportWriteError``: a report file could not be written.
- ``OrchestratorWarning`` (a ``pytest.PytestWarning``): something worth knowing that
  does not stop the session.
"""

from __future__ import annotations

import pytest


class OrchestratorError(Exception):
    """Base class of pytest-orchestrator's exceptions."""


class ToolUnavailable(OrchestratorError):
    """An audit tool could not give a result; the message says why and how to fix it."""


class ReportWriteError(OrchestratorError):
    """A report file could not be written; the message names the file and the cause."""


class OrchestratorWarning(pytest.PytestWarning):
    """A pytest-orchestrator warning."""
