"""Root conftest: pytester for plugin tests, and the bundled demo project as a fixture."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coverage.tracer  # noqa: F401
import pytest

# pytester's in-process runs drop the modules a run imported; C extensions (coverage's
# tracer, pydantic-core) cannot be imported twice in one process, so import them here.
import pytest_orchestrator.orchestrator
import pytest_orchestrator.reports.junitreport
import pytest_orchestrator.reports.terminal  # noqa: F401

pytest_plugins = ["pytester"]

# The suite starts over a thousand Python processes (pytest sessions, re-tests, re-audits,
# agents). Where PYTHONDONTWRITEBYTECODE is set (this project's CI image sets it), none of
# them could cache bytecode: each compiled every module it imported, and pytest rewrote the
# asserts of every plugin distribution's modules again (pytest caches rewritten modules only
# where bytecode may be written). Tests that need the variable set it in their own children.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


#: Test files whose module-scoped fixtures are expensive (real projects downloaded and
#: gated, the shard sessions of ``merge``, a compose project): under pytest-xdist each runs
#: whole on one worker, so those fixtures are made once, not once per worker.
ONE_WORKER_MODULES = frozenset(
    {"tests/test_realproject.py", "tests/test_cli.py", "tests/test_remote_docker.py"}
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist=loadgroup`` (set in ``addopts``), with the files of :data:`ONE_WORKER_MODULES`
    as groups of their own. (pytest-xdist 3.8 marks a group by appending ``@NAME`` to the
    node id, which pytest 9 no longer lets a plugin change: its ``xdist_group`` marks have no
    effect there, so the groups are chosen here, from the node ids the controller sees.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleGroups(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else super()._split_scope(nodeid)

    return ModuleGroups(config, log)


@pytest.fixture(autouse=True)
def _serial(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests marked ``serial`` (a time limit that a busy machine could break) run alone:
    under pytest-xdist every other test holds a shared lock while it runs, and a serial test
    takes it exclusively, so it waits for the running tests to end and no test starts until
    it ends. A second lock, taken briefly before the first, keeps a stream of other tests
    from starving it. (The workers' base temporary directories share the session's as
    their parent.)"""
    import fcntl  # POSIX, as the suite

    serial = request.node.get_closest_marker("serial") is not None
    base = tmp_path_factory.getbasetemp().parent
    with (base / "serial.gate").open("a") as gate, (base / "serial.lock").open("a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
        fcntl.flock(lock, fcntl.LOCK_EX if serial else fcntl.LOCK_SH)
        if not serial:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: twice the CPUs (at most four more). Much of this suite waits on child
    processes (real agent CLIs retrying their API, timeouts waited out on purpose, the
    Docker engine), so two workers per CPU keep the CPUs busy."""
    cpus = os.cpu_count() or 1
    return min(2 * cpus, cpus + 4)


DEMO = Path(__file__).resolve().parent / "examples" / "demo"


@pytest.fixture(autouse=True)
def _child_session_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tools' user caches out of the test projects.

    pytester sets HOME to the project directory, and bandit loads its plugins through
    stevedore, which caches entry points under ``$XDG_CACHE_HOME`` or ``~/.cache`` (unless
    the interpreter lives under /tmp). Without this, a ``.cache/`` directory appears in
    the project mid-test and tree hashes and ``git status`` differ.

    The pytest sessions the tests start do not load hypothesis's plugin: see
    :data:`CHILD_ADDOPTS`.
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    addopts = os.environ.get("PYTEST_ADDOPTS", "")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"{addopts} {CHILD_ADDOPTS}".strip())


#: What the pytest sessions the tests start get as PYTEST_ADDOPTS. hypothesis's plugin
#: imports all of hypothesis at the end of every session (``pytest_terminal_summary``), and
#: pytest rewrites the asserts of a plugin's whole distribution: measured, 0.1 s a session
#: with rewritten bytecode cached and 0.6 s without (PYTHONDONTWRITEBYTECODE). The suite
#: starts over a thousand sessions; its own property tests run in the outer session.
CHILD_ADDOPTS = "-p no:hypothesispytest"


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> Iterator[pytest.Pytester]:
    """pytest's ``pytester``, whose child sessions get :data:`CHILD_ADDOPTS` (pytester
    removes PYTEST_ADDOPTS, so the autouse fixture's value does not reach them)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_ADDOPTS", CHILD_ADDOPTS)
        yield pytester


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
