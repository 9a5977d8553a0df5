"""Root conftest: pytester for plugin tests, and the bundled demo project as a fixture."""

from __future__ import annotations

import shutil
from pathlib import Path

import coverage.tracer  # noqa: F401
import pytest

# pytester's in-process runs drop the modules a run imported; C extensions (coverage's
# tracer, pydantic-core) cannot be imported twice in one process, so import them here.
import pytest_orchestrator.orchestrator
import pytest_orchestrator.reports.junitreport
import pytest_orchestrator.reports.terminal  # noqa: F401

pytest_plugins = ["pytester"]

DEMO = Path(__file__).resolve().parent / "examples" / "demo"


@pytest.fixture
def demo(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester whose directory holds a copy of examples/demo (seeded defects)."""
    shutil.copytree(DEMO, pytester.path, dirs_exist_ok=True)
    return pytester
