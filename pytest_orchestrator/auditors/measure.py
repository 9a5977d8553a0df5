"""Coverage measurement of the session, with coverage.py's API.

This module is imported before the measurement starts, so it imports only the standard
library, pytest and (when it starts) coverage.

Which measurement is read, in this order:

1. pytest-cov's, when ``--cov`` is active: its combined data is read after it finishes,
   so nothing is traced twice;
2. a coverage measurement already running in this process (``coverage run -m pytest``);
3. our own: started in ``pytest_load_initial_conftests`` (before conftest.py files import
   the project), with the project's coverage configuration read from the rootdir
   (``.coveragerc``, ``setup.cfg``, ``tox.ini`` or ``pyproject.toml``). When that
   configuration sets no ``source``, ``source_pkgs`` or ``include``, the discovered
   packages are measured (not tests, not site-packages). On Python 3.12+ coverage's
   ``sysmon`` core is chosen when the configuration allows it (no branch coverage before
   Python 3.14, no plugins or dynamic contexts, no core chosen by the user). Data stays in
   memory: no ``.coverage`` file is written.

Under pytest-xdist each worker measures itself and sends its data to the controller at
the end (``workeroutput``), where it is combined before the audit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

if TYPE_CHECKING:
    from coverage import Coverage
    from coverage.data import CoverageData

WORKER_KEY = "pytest_orchestrator_coverage"
CONFIG_FILES = (".coveragerc", ".coveragerc.toml", "setup.cfg", "tox.ini", "pyproject.toml")


#: coverage's variables that make a new Python process measure itself.
PROCESS_ENV = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")


@dataclass
class Measurement:
    """The coverage measurement of this process and whose it is.

    :ivar modules: top-level module files measured (``rootdir/six.py``): reported even
        when no test imported them.
    :ivar subprocess_env: with ``patch = ["subprocess"]``, the ``COVERAGE_PROCESS_CONFIG``
        value that makes the tests' subprocesses measure themselves (set only while the
        tests run).
    :ivar subprocess_dir: where those subprocesses write their data files.
    """

    measured_by: Literal["pytest-orchestrator", "pytest-cov", "coverage"]
    cov: Coverage | None = None
    core: str | None = None
    notes: list[str] = field(default_factory=list)
    modules: list[Path] = field(default_factory=list)
    subprocess_env: str | None = None
    subprocess_dir: Path | None = None

    def absorb_subprocesses(self, data: CoverageData) -> None:
        """Add the data files the tests' subprocesses wrote to ``data``, then remove them
        (and their directory)."""
        folder = self.subprocess_dir
        if folder is None:
            return
        from coverage.data import CoverageData

        for path in sorted(folder.glob(".coverage*")):
            other = CoverageData(basename=str(path))
            try:
                other.read()
                data.update(other)
            except Exception as exc:  # a truncated file of a killed subprocess
                self.notes.append(f"a subprocess's coverage data was unreadable ({exc})")
        shutil.rmtree(folder, ignore_errors=True)
        self.subprocess_dir = None


class SubprocessCoverage:
    """Sets coverage's subprocess variable while the tests run in this process (not under
    pytest-xdist's controller, whose workers run them and measure themselves)."""

    def __init__(self, value: str) -> None:
        self.value = value

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> object:
        if session.config.pluginmanager.has_plugin("dsession"):
            return (yield)
        os.environ["COVERAGE_PROCESS_CONFIG"] = self.value
        try:
            return (yield)
        finally:
            os.environ.pop("COVERAGE_PROCESS_CONFIG", None)


class TestContexts:
    """Records which test ran each line: coverage's dynamic context is the running test's
    node id (as pytest-cov's ``--cov-context=test``). Only in gap-closure sessions, whose
    loop re-tests first the tests that cover the lines an agent changed
    (:func:`covering_tests`)."""

    def __init__(self, cov: Coverage) -> None:
        self.cov = cov

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> object:
        self.cov.switch_context(item.nodeid)
        try:
            return (yield)
        finally:
            self.cov.switch_context("")


def covering_tests(
    data: CoverageData,
    filename: str,
    lines: set[int] | None,
    after: AbstractSet[int] = frozenset(),
) -> set[str] | None:
    """The node ids of the tests that ran ``lines`` of ``filename`` (every line: None), or,
    for each line of ``after`` (where code was inserted), the next line a test ran, from the
    contexts :class:`TestContexts` recorded; None when ``data`` has no test contexts (the
    session did not record them, or pytest-cov measured without ``--cov-context=test``)."""
    if not data.measured_contexts() - {""}:
        return None
    by_line = {
        line: {n for n in names if n}
        for line, names in data.contexts_by_lineno(filename).items()
        if any(names)
    }
    found: set[str] = set()
    for line, names in by_line.items():
        if lines is None or line in lines:
            found |= names
    ran = sorted(by_line)
    for point in after:
        nxt = next((line for line in ran if line > point), None)
        if nxt is not None:
            found |= by_line[nxt]
    return found


MEASUREMENT_KEY = pytest.StashKey[Measurement]()


@contextlib.contextmanager
def cwd(path: Path) -> Iterator[None]:
    """coverage.py reads its configuration and relative sources from the cwd."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _wants_coverage(config: pytest.Config) -> bool:
    from pytest_orchestrator.plugin import early_dimensions

    return "coverage" in early_dimensions(config)


def _pytest_cov_active(config: pytest.Config) -> bool:
    namespace = config.known_args_namespace
    return bool(getattr(namespace, "cov_source", None)) and not getattr(namespace, "no_cov", False)


def config_file(rootdir: Path) -> str | bool:
    """The coverage configuration file in ``rootdir`` (coverage's search order), or False."""
    for name in CONFIG_FILES:
        path = rootdir / name
        if path.is_file():
            if name.startswith(".coveragerc"):
                return str(path)
            text = path.read_text(encoding="utf-8", errors="replace")
            if "[tool.coverage" in text or "[coverage:" in text:
                return str(path)
    return False


def _choose_core(cov: Coverage, contexts: bool = False) -> str | None:
    """Pick the sysmon core on Python 3.12+ when the configuration allows it (not with
    per-test ``contexts``, which sysmon does not record)."""
    if os.environ.get("COVERAGE_CORE") or cov.get_option("run:core"):
        return str(os.environ.get("COVERAGE_CORE") or cov.get_option("run:core"))
    if sys.version_info < (3, 12) or contexts:
        return None
    if cov.get_option("run:branch") and sys.version_info < (3, 14):
        return None
    if cov.get_option("run:plugins") or cov.get_option("run:dynamic_context"):
        return None
    cov.set_option("run:core", "sysmon")
    return "sysmon"


def _configured(rootdir: Path) -> tuple[Coverage, list[Path]]:
    """A Coverage object with the project's configuration, and the top-level module files
    it measures; call it with the cwd at rootdir.

    With no ``source``, ``source_pkgs`` or ``include`` configured, the discovered packages
    are the source (directories) and the discovered top-level modules ``source_pkgs``
    (their names: coverage's ``source`` takes directories and packages, not files).
    """
    from coverage import Coverage

    from pytest_orchestrator.sources import find_sources

    cov = Coverage(data_file=None, config_file=config_file(rootdir))
    modules: list[Path] = []
    if not any(cov.get_option(f"run:{k}") for k in ("source", "source_pkgs", "include")):
        found = find_sources(rootdir)
        directories = [str(p) for p in found if p.is_dir()]
        modules = [p for p in found if p.is_file()]
        if directories or not modules:
            cov.set_option("run:source", directories or [str(rootdir)])
        if modules:
            cov.set_option("run:source_pkgs", [p.stem for p in modules])
    return cov, modules


@dataclass(frozen=True)
class CoverageSettings:
    """What a remote run measures, from the project's coverage configuration.

    :ivar sources: absolute paths or package names.
    :ivar branch: branch coverage.
    :ivar relative_files: data files name files relative to the working directory.
    """

    sources: list[str]
    branch: bool
    relative_files: bool


def coverage_settings(config: pytest.Config) -> CoverageSettings:
    """The :class:`CoverageSettings` of this session (relative sources made absolute)."""
    measurement = config.stash.get(MEASUREMENT_KEY, None)
    rootdir = config.rootpath
    with warnings.catch_warnings(), cwd(rootdir):
        warnings.simplefilter("ignore")
        cov = measurement.cov if measurement and measurement.cov else _configured(rootdir)[0]
        sources = [str(s) for s in cov.get_option("run:source") or []]  # type: ignore[union-attr]
        sources += [str(s) for s in cov.get_option("run:source_pkgs") or []]  # type: ignore[union-attr]
        branch = bool(cov.get_option("run:branch"))
        relative = bool(cov.get_option("run:relative_files"))
    out = []
    for source in sources:
        path = rootdir / source
        out.append(str(path.resolve()) if path.exists() else str(source))
    return CoverageSettings(out, branch, relative)


def start_measurement(config: pytest.Config, remote: bool = False, contexts: bool = False) -> None:
    """Start (or find) the coverage measurement of this process; stash it in ``config``.

    :param remote: the tests run in a container (``--orchestrate-exec``): nothing of the
        project runs here, so the Coverage object is only configured, not started (a
        tracer would slow the replay), and the container's data is added to it later.
    :param contexts: record each line's tests (:class:`TestContexts`; gap closure).
    """
    if not _wants_coverage(config):
        return
    if _pytest_cov_active(config):
        config.stash[MEASUREMENT_KEY] = Measurement("pytest-cov")
        return
    from coverage import Coverage

    running = Coverage.current()
    if running is not None:
        config.stash[MEASUREMENT_KEY] = Measurement("coverage", cov=running)
        return
    before = {name: os.environ.get(name) for name in PROCESS_ENV}
    with warnings.catch_warnings(record=True) as caught, cwd(config.rootpath):
        warnings.simplefilter("always")
        cov, modules = _configured(config.rootpath)
        core = None
        folder = None
        patch = cov.get_option("run:patch")
        if not remote and isinstance(patch, list) and "subprocess" in patch:
            # the subprocesses' data files go to a private directory, with suffixes
            folder = Path(tempfile.mkdtemp(prefix="pytest-orchestrator-coverage-"))
            cov.set_option("run:data_file", str(folder / ".coverage"))
            cov.set_option("run:parallel", True)
        if not remote:
            core = _choose_core(cov, contexts)
            cov.start()
            if contexts:
                config.pluginmanager.register(TestContexts(cov), "orchestrator-contexts")
    exported = os.environ.get("COVERAGE_PROCESS_CONFIG")
    if exported is not None and exported != before["COVERAGE_PROCESS_CONFIG"]:
        # only while the tests run (SubprocessCoverage): not for our tools, not for
        # pytest-xdist's workers
        os.environ.pop("COVERAGE_PROCESS_CONFIG")
        config.pluginmanager.register(SubprocessCoverage(exported), "orchestrator-subprocesses")
    else:
        exported = None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            folder = None
    if folder is not None:
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    notes = [str(w.message) for w in caught]
    config.stash[MEASUREMENT_KEY] = Measurement(
        "pytest-orchestrator",
        cov=cov,
        core=core,
        notes=notes,
        modules=modules,
        subprocess_env=exported,
        subprocess_dir=folder,
    )
