"""Root conftest: pytester for plugin tests, and the bundled demo project as a fixture."""

from __future__ import annotations

import os
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``serial`` (a time limit that a busy machine could break) share one
    pytest-xdist group: under ``-n`` (with ``--dist loadgroup``, set in ``addopts``) they
    run one after another on one worker, never two of them at once."""
    for item in items:
        if item.get_closest_marker("serial") is not None:
            item.add_marker(pytest.mark.xdist_group("serial"))


DEMO = Path(__file__).resolve().parent / "examples" / "demo"


@pytest.fixture(autouse=True)
def _tool_caches_outside_projects(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tools' user caches out of the test projects.

    pytester sets HOME to the project directory, and bandit loads its plugins through
    stevedore, which caches entry points under ``$XDG_CACHE_HOME`` or ``~/.cache`` (unless
    the interpreter lives under /tmp). Without this, a ``.cache/`` directory appears in
    the project mid-test and tree hashes and ``git status`` differ.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture
def demo(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester whose directory holds a copy of examples/demo (seeded defects)."""
    shutil.copytree(DEMO, pytester.path, dirs_exist_ok=True)
    return pytester


@pytest.fixture
def bwrap() -> None:
    """Needs a working bubblewrap: skips without one, unless ``ORCHESTRATOR_REQUIRE_BWRAP=1``
    (set by ``.ci/run``, which installs it) makes that a failure."""
    from pytest_orchestrator.agents.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox.choose("bwrap")
    except SandboxUnavailable as exc:
        if os.environ.get("ORCHESTRATOR_REQUIRE_BWRAP") == "1":
            pytest.fail(f"ORCHESTRATOR_REQUIRE_BWRAP=1 but {exc}")
        pytest.skip(str(exc))
