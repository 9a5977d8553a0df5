"""Remote tests as ordinary pytest items of the host session.

With ``--orchestrate-exec``, :class:`RemoteSession` replaces pytest's collection: it runs
the whole suite once in the container (one exec round trip, see ``runner``), then builds
one :class:`RemoteModule` per remote test file and one :class:`RemoteItem` per remote
test. Nothing runs on the host: each item's setup, call and teardown reports are made from
the remote outcome (passed, failed with the remote traceback, skipped with its reason,
xfailed, xpassed, error) and handed to ``pytest_runtest_logreport``, as pytest-xdist's
controller does with its workers' reports. So ``--junitxml``, ``-rA``, ``--durations``,
``-x``, the terminal, other plugins' ``pytest_runtest_logreport`` and the ``tests`` auditor
see ordinary results; hooks that wrap running a test (``pytest_runtest_setup``, ``_call``,
``_teardown``, ``_makereport``) ran in the container, not here.

Node ids are ``TARGET:PATH::NAME``, e.g. ``odoo:addons/l10n_x/tests/test_tax.py::test_vat``:
the target (service, container, pod or host) and the repository path of the test file.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import shlex
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from _pytest._code.code import TerminalRepr

from pytest_orchestrator.models import RemoteRun
from pytest_orchestrator.remote.junit import CaseResult, Detail, JUnitError, mangle, parse_junit
from pytest_orchestrator.remote.pathmap import PathMap, PathMapping
from pytest_orchestrator.remote.prefix import ExecPrefix, redact
from pytest_orchestrator.remote.runner import (
    CHANNEL_GRACE,
    Bundle,
    Exchange,
    ExecCommand,
    RemoteFault,
    printable,
    run_remote,
)

if TYPE_CHECKING:
    from _pytest._io import TerminalWriter
    from coverage import CoverageData

    from pytest_orchestrator.config import OrchestrationConfig

REMOTE_KEY = pytest.StashKey["RemoteSession"]()
_HEADER = re.compile(r"^-{3,} Captured (\w+) -{3,}$")
_PHASE_MESSAGE = re.compile(r'^failed on (?:setup|teardown) with "(.*)"$', re.DOTALL)
#: Characters of remote output quoted in a test error.
OUTPUT_TAIL = 2000


class RemoteOutcome(Exception):
    """A remote collection error, replayed by its module; carries the remote text."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.message = message
        self.text = text


#: ``path/to/test_x.py:12: AssertionError`` or ``...:12: in test_y``: where a traceback
#: entry of pytest's long or short format is.
_ENTRY = re.compile(r"^(\S+?\.py):(\d+): ", re.MULTILINE)


class _Crash:
    """The short message pytest's summaries read (``longrepr.reprcrash.message``)."""

    def __init__(self, path: str, lineno: int, message: str) -> None:
        self.path = path
        self.lineno = lineno
        self.message = message


class RemoteFailureRepr(TerminalRepr):
    """The remote traceback text, shown as it was printed in the container."""

    def __init__(self, text: str, crash: _Crash) -> None:
        self.text = text
        self.reprcrash = crash

    def toterminal(self, tw: TerminalWriter) -> None:
        for line in self.text.rstrip("\n").splitlines():
            tw.line(line, red=line.startswith("E "))


class RemoteItem(pytest.Item):
    """One remote test. ``case`` is its JUnit result; ``fault`` an error to report instead.

    Nothing runs here: :meth:`replay` makes the setup, call and teardown reports of the
    remote outcome, which :meth:`RemoteSession.pytest_runtest_protocol` hands to
    ``pytest_runtest_logreport`` as pytest-xdist's controller does with its workers' reports.
    """

    case: CaseResult | None = None
    fault: str | None = None
    xpassed: str | None = None
    lineno: int | None = None
    remote_nodeid: str = ""
    #: (phase, crash message, failure text) of each failed attempt that ran again remotely.
    reruns: tuple[tuple[str, str, str], ...] = ()

    def runtest(self) -> None:
        raise RuntimeError(f"{self.nodeid} ran remotely; only its reports are replayed here")

    def replay(self) -> list[pytest.TestReport]:
        """The reports pytest's runner would have made for the remote outcome: setup and
        teardown, and call unless setup failed, each with its outcome, the remote text as
        ``longrepr``, the remote captured output as sections, and the remote duration; each
        failed attempt that ran again (``--orchestrate-reruns``, pytest-rerunfailures) first,
        as its ``rerun`` report between a passed setup and teardown, as the rerun made them."""
        case = self.case
        reports = []
        for when, message, text in self.reruns:
            attempt = self._report(
                "call" if when == "call" else "setup",
                "failed",
                self._failure(printable(message) or "failed", printable(text) or "failed"),
            )
            attempt.__dict__["outcome"] = "rerun"  # a word pytest's Literal lacks
            if when == "call":
                reports.append(self._report("setup", "passed"))
            reports += [attempt, self._report("teardown", "passed")]
        if self.fault is not None:
            setup = self._report(
                "setup", "failed", self._failure(self.fault.splitlines()[0], self.fault)
            )
            return [*reports, setup, self._report("teardown", "passed")]
        sections: list[tuple[str, str]] = []
        if case is not None and (case.failure or case.setup_error or case.teardown_error):
            for text in (case.system_out, case.system_err):
                sections += [
                    (f"Captured remote {name} call", content)
                    for name, content in _sections(printable(text))
                ]
        if case is not None and case.setup_error is not None:
            reports.append(
                self._report("setup", "failed", self._detail(case.setup_error), sections)
            )
        else:
            reports.append(self._report("setup", "passed"))
            call = self._report("call", "passed", None, sections)
            if case is not None:
                call.duration = case.time
                call.stop = call.start + case.time
                if case.failure is not None:
                    call.outcome = "failed"
                    call.longrepr = self._detail(case.failure, failing_line=True)
                elif case.skipped is not None:
                    call.outcome = "skipped"
                    reason = case.skipped.message or "skipped in the remote run"
                    path, lineno, _ = self.location
                    call.longrepr = (path, (lineno or 0) + 1, f"Skipped: {reason}")
                    if case.xfailed:
                        call.wasxfail = case.skipped.message
                elif self.xpassed is not None:  # JUnit has no XPASS: the manifest says it
                    call.wasxfail = self.xpassed
            reports.append(call)
        if case is not None and case.teardown_error is not None:
            reports.append(
                self._report("teardown", "failed", self._detail(case.teardown_error), sections)
            )
        else:
            reports.append(self._report("teardown", "passed"))
        return reports

    def _report(
        self,
        when: Literal["setup", "call", "teardown"],
        outcome: Literal["passed", "failed", "skipped"],
        longrepr: Any = None,
        sections: list[tuple[str, str]] | None = None,
    ) -> pytest.TestReport:
        now = time.time()  # the replay's time: the remote run records none per phase
        return pytest.TestReport(
            self.nodeid,
            self.location,
            self._keywords,
            outcome,
            longrepr,
            when,
            sections or (),
            start=now,
            stop=now,
            user_properties=self.user_properties,
        )

    @functools.cached_property
    def _keywords(self) -> dict[str, Literal[1]]:
        return {name: 1 for name in self.keywords}

    def _detail(self, detail: Detail, failing_line: bool = False) -> RemoteFailureRepr:
        """The remote failure; with ``failing_line``, its crash line is the test's own line
        in the remote traceback (see :meth:`_test_line`), else the test's ``def`` line."""
        message = printable(_unwrap(detail.message))
        text = printable(detail.text) or message
        return self._failure(message, text, self._test_line(text) if failing_line else None)

    def _test_line(self, text: str) -> int | None:
        """The first ``FILE:LINE:`` of the remote traceback ``text`` in the test's own file
        (pytest's long and short tracebacks end each entry with one): the line of the test
        function's frame."""
        own = self.remote_nodeid.split("::", 1)[0].replace("\\", "/")
        for match in _ENTRY.finditer(text):
            where = match.group(1).replace("\\", "/")
            if own and (where == own or where.endswith("/" + own) or own.endswith("/" + where)):
                return int(match.group(2))
        return None

    def _failure(self, message: str, text: str, line: int | None = None) -> RemoteFailureRepr:
        path, lineno, _ = self.location
        return RemoteFailureRepr(text, _Crash(path, line or (lineno or 0) + 1, message))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        rest = self.remote_nodeid.partition("::")[2]
        return self.path, self.lineno, rest.replace("::", ".") or self.name


class RemoteModule(pytest.Collector):
    """One remote test file; ``collect`` yields its items or replays its collection error."""

    remote_items: list[RemoteItem]
    shown_path: str = ""
    collect_error: str | None = None
    collect_skip: str | None = None

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        if self.collect_error is not None:
            lines = self.collect_error.strip().splitlines() or ["collection failed"]
            raise RemoteOutcome(lines[-1], self.collect_error)
        if self.collect_skip is not None and not self.remote_items:
            pytest.skip(self.collect_skip)
        return list(self.remote_items)

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, RemoteOutcome):
            return excinfo.value.text
        return super().repr_failure(excinfo)


def _teardown_only(case: CaseResult) -> bool:
    return case.teardown_error is not None and not (
        case.failure or case.setup_error or case.skipped
    )


def _sections(text: str) -> list[tuple[str, str]]:
    """pytest's captured-output text in JUnit (``--- Captured Out ---`` headed parts) as
    (name, content) pairs with content, e.g. [("stdout", "dividing 1 by 3\n")]."""
    names = {"Out": "stdout", "Err": "stderr", "Log": "log"}
    out: list[tuple[str, str]] = []
    name, lines = "output", list[str]()
    for line in text.splitlines(keepends=True):
        match = _HEADER.match(line.strip())
        if match:
            if "".join(lines).strip():
                out.append((name, "".join(lines)))
            name, lines = names.get(match.group(1), match.group(1).lower()), []
        else:
            lines.append(line)
    if "".join(lines).strip():
        out.append((name, "".join(lines)))
    return out


def _unwrap(message: str) -> str:
    """'failed on setup with "RuntimeError: x"' -> 'RuntimeError: x' (pytest's JUnit)."""
    match = _PHASE_MESSAGE.match(message)
    return match.group(1) if match else message


def _tail(text: str) -> str:
    text = printable(text).strip()
    if len(text) > OUTPUT_TAIL:
        text = "..." + text[-OUTPUT_TAIL:]
    return text


class RemoteSession:
    """The pytest plugin that runs the suite remotely and replays it (see module doc)."""

    def __init__(self, config: pytest.Config, settings: OrchestrationConfig) -> None:
        self.config = config
        self.settings = settings
        self.prefix = ExecPrefix.parse(settings.exec_prefix)
        self.command = ExecCommand.parse(settings.exec_command)
        rootdir = config.rootpath
        self.explicit_map = bool(settings.path_map)
        self.pathmap = PathMap([PathMapping.parse(m, rootdir) for m in settings.path_map])
        self.rootdir = rootdir
        self.exchange: Exchange | None = None
        self.round_trips = 0
        self.unmapped: list[str] = []
        self.problems: list[str] = []
        self.coverage_data: CoverageData | None = None
        self.coverage_error: str | None = None
        self.relative_files = False
        self.items = 0

    # -- what is sent -------------------------------------------------------------------

    def _remote_path(self, local: Path) -> str | None:
        if self.pathmap.mappings:
            return self.pathmap.to_remote(local)
        try:
            rel = local.resolve().relative_to(self.rootdir.resolve())
        except ValueError:
            return None
        return rel.as_posix() or "."

    def _unmapped_hint(self, what: str) -> str:
        if self.pathmap.mappings:
            return (
                f"{what} is not under any --orchestrate-path-map LOCAL directory; "
                "add --orchestrate-path-map=REMOTE=LOCAL for it"
            )
        return (
            f"{what} is outside the rootdir {str(self.rootdir)!r}, which the container's "
            "working directory stands for; add --orchestrate-path-map=REMOTE=LOCAL"
        )

    def _map_arg(self, arg: str, base: Path, what: str) -> str:
        """A local test path (``PATH[::NAME]``, maybe ``TARGET:PATH``) as a container path.

        :raises pytest.UsageError: no path map covers it.
        """
        if arg.startswith(f"{self.prefix.tag}:"):
            arg = arg[len(self.prefix.tag) + 1 :]  # a node id copied from our output
        path, sep, rest = arg.partition("::")
        remote = self._remote_path(base / path)
        if remote is None:
            raise pytest.UsageError(self._unmapped_hint(f"{what} {path!r}"))
        return remote + sep + rest

    def remote_args(self) -> list[str]:
        """The remote pytest's arguments (docs/containers.md says what passes through).

        Test paths, ``--deselect`` and ``--ignore`` are mapped to container paths; ``-k``,
        ``-m``, ``-x``/``--maxfail`` (not with ``--lf``, ``--ff``, ``--nf`` or ``--sw``,
        which pick or order the replayed items on the host), ``--ignore-glob``,
        ``--doctest-modules`` and ``--continue-on-collection-errors`` are passed as given.

        :raises pytest.UsageError: a path that no path map covers.
        """
        config = self.config
        option = config.option
        invocation = config.invocation_params.dir
        args: list[str] = []
        for flag, value in (("-k", "keyword"), ("-m", "markexpr")):
            if getattr(option, value, ""):
                args += [flag, getattr(option, value)]
        reordered = any(  # the host picks or orders its replayed items: see remote_args
            getattr(option, name, False) for name in ("lf", "failedfirst", "newfirst", "stepwise")
        )
        if getattr(option, "maxfail", 0) and not reordered:
            # (reordered, the host's -x stops where its own order meets a failure; a remote
            # run stopped in its order would leave those items without a result)
            args.append(f"--maxfail={option.maxfail}")
        for flag in ("continue_on_collection_errors", "doctestmodules"):
            if getattr(option, flag, False):
                args.append("--" + flag.replace("_", "-").replace("doctestm", "doctest-m"))
        for deselect in getattr(option, "deselect", None) or []:
            args.append("--deselect=" + self._map_arg(deselect, invocation, "--deselect path"))
        for ignore in getattr(option, "ignore", None) or []:
            args.append("--ignore=" + self._map_arg(ignore, invocation, "--ignore path"))
        for pattern in getattr(option, "ignore_glob", None) or []:
            args.append(f"--ignore-glob={pattern}")
        base = invocation
        if config.args_source == pytest.Config.ArgsSource.TESTPATHS:
            base = self.rootdir
        for arg in config.args:
            args.append(self._map_arg(arg, base, "test path"))
        return args

    def coverage_options(self) -> dict[str, Any] | None:
        """``{"source": [...], "branch": bool, "rcfile": str | None}`` for the container's
        coverage (container paths), or None when the coverage dimension is off."""
        if "coverage" not in self.settings.dimensions:
            return None
        from pytest_orchestrator.auditors.measure import config_file, coverage_settings

        settings = coverage_settings(self.config)
        self.relative_files = settings.relative_files
        remote_sources = []
        for source in settings.sources:
            local = Path(source)
            if not local.is_absolute() or not local.exists():
                remote_sources.append(source)  # a package name
                continue
            remote = self._remote_path(local)
            if remote is None:
                self.problems.append(self._unmapped_hint(f"coverage source {source!r}"))
            else:
                remote_sources.append(remote)
        rcfile = config_file(self.rootdir)
        remote_rcfile = None
        if isinstance(rcfile, str):
            remote_rcfile = self._remote_path(Path(rcfile))
            if remote_rcfile is None:
                self.problems.append(
                    self._unmapped_hint(f"coverage configuration {rcfile!r}")
                    + " (the container's coverage runs without it)"
                )
        return {"source": remote_sources, "branch": settings.branch, "rcfile": remote_rcfile}

    # -- the round trip -----------------------------------------------------------------

    def _announce(self) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.get_verbosity() >= 0:
            reporter.write_line(
                f"running the tests in {self.prefix.tag!r} through: {self.prefix.display()}"
            )

    def run(self) -> Exchange:
        """Run the remote suite once.

        :raises pytest.UsageError: the remote side could not run at all (one line).
        """
        from pytest_orchestrator.plugin import ini_names

        options: dict[str, Any] = {
            "ini_names": ini_names(),
            "args": self.remote_args(),
            "coverage": self.coverage_options(),
            "collect_only": bool(self.config.getoption("collectonly", default=False)),
        }
        if self.settings.reruns:
            from pytest_orchestrator import reruns

            options["reruns"] = self.settings.reruns
            options["reruns_source"] = Path(reruns.__file__).read_text(encoding="utf-8")
        self._announce()
        self.round_trips += 1
        try:
            exchange = run_remote(self.prefix, self.command, options, self.settings.exec_timeout)
        except RemoteFault as exc:
            raise pytest.UsageError(f"--orchestrate-exec: {exc}") from None
        self.exchange = exchange
        bundle = exchange.bundle
        if (
            bundle is not None
            and not bundle.timed_out
            and bundle.returncode == pytest.ExitCode.USAGE_ERROR
        ):
            raise pytest.UsageError(
                "--orchestrate-exec: the remote pytest refused its arguments: "
                + _error_line(bundle.output_tail)
            )
        return exchange

    # -- collection ---------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool:
        exchange = self.run()
        bundle = exchange.bundle
        if bundle is not None:
            self.pathmap = self.pathmap.with_default(bundle.cwd, self.rootdir)
            rootdir = bundle.manifest.rootdir if bundle.manifest else None
            if not self.explicit_map and rootdir and rootdir != bundle.cwd:
                self.problems.append(
                    f"the remote rootdir {rootdir!r} is not the container's working directory "
                    f"{bundle.cwd!r}, which stands for the rootdir when no path map is given; "
                    f"paths may be wrong: add --orchestrate-path-map={rootdir}=."
                )
            self._coverage(bundle)
        nodes = self.build(session, exchange)
        hook = self.config.hook
        hook.pytest_collectstart(collector=session)
        report = pytest.CollectReport(session.nodeid, "passed", None, list(nodes))
        hook.pytest_collectreport(report=report)
        items: list[pytest.Item] = []
        for node in nodes:
            items.extend(self._genitems(node))
        session.items = items
        self.config.pluginmanager.check_pending()
        option = self.config.option
        saved = (getattr(option, "keyword", ""), getattr(option, "markexpr", ""))
        option.keyword, option.markexpr = "", ""  # already applied by the remote pytest
        try:
            hook.pytest_collection_modifyitems(session=session, config=self.config, items=items)
        finally:
            option.keyword, option.markexpr = saved
            hook.pytest_collection_finish(session=session)
        session.testscollected = len(items)
        self.items = len(items)
        return True

    def _genitems(self, node: pytest.Item | pytest.Collector) -> Iterator[pytest.Item]:
        if isinstance(node, pytest.Item):
            node.ihook.pytest_itemcollected(item=node)
            yield node
            return
        node.ihook.pytest_collectstart(collector=node)
        report: pytest.CollectReport = node.ihook.pytest_make_collect_report(collector=node)
        report.__dict__.pop("call", None)
        if isinstance(node, RemoteModule):
            report.local_path = node.shown_path  # type: ignore[attr-defined]
        if report.passed:
            for child in report.result:
                yield from self._genitems(child)
        node.ihook.pytest_collectreport(report=report)

    def _module(
        self, session: pytest.Session, modules: dict[str, RemoteModule], remote_abs: str
    ) -> RemoteModule:
        remote_abs = posixpath.normpath(remote_abs)
        if remote_abs in modules:
            return modules[remote_abs]
        local = self.pathmap.to_local(remote_abs)
        if local is None:
            self.unmapped.append(remote_abs)
            path, shown = Path(remote_abs), remote_abs
        else:
            path = local
            try:
                shown = local.relative_to(self.rootdir.resolve()).as_posix()
            except ValueError:
                shown = local.as_posix()
        module = RemoteModule.from_parent(
            session,
            name=posixpath.basename(remote_abs) or remote_abs,
            path=path,
            nodeid=f"{self.prefix.tag}:{shown}",
        )
        module.remote_items = []
        module.shown_path = shown
        modules[remote_abs] = module
        return module

    def _cases(self, junit: str) -> dict[tuple[str, str], deque[CaseResult]]:
        """JUnit testcases by (classname, name), a failed test's teardown error merged in.

        :raises JUnitError: the XML cannot be read.
        """
        cases: dict[tuple[str, str], deque[CaseResult]] = defaultdict(deque)
        for case in parse_junit(junit):
            queue = cases[case.key]
            if queue and _teardown_only(case) and queue[-1].teardown_error is None:
                # pytest writes a failed test's teardown error as a second testcase
                queue[-1] = replace(queue[-1], teardown_error=case.teardown_error)
            else:
                queue.append(case)
        return cases

    def _fault(self, bundle: Bundle, tail: str) -> str | None:
        """Why tests without a JUnit result have none, when the run did not end normally."""
        if bundle.timed_out:
            return (
                f"the remote run timed out after {self.settings.exec_timeout:g} s before this "
                f"test reported; last remote output:\n{tail}"
            )
        if bundle.returncode is not None and bundle.returncode < 0:
            return (
                f"the remote pytest was killed by signal {-bundle.returncode} before this "
                f"test reported; last remote output:\n{tail}"
            )
        if bundle.junit is None:
            return f"the remote pytest wrote no JUnit XML; last remote output:\n{tail}"
        return None

    def build(
        self, session: pytest.Session, exchange: Exchange
    ) -> list[pytest.Item | pytest.Collector]:
        """The host nodes for the remote run (see the module docstring)."""
        bundle = exchange.bundle
        tail = _tail(bundle.output_tail if bundle else exchange.stderr)
        if bundle is None or bundle.manifest is None or bundle.manifest.items is None:
            return [self._session_error(session, exchange, tail)]
        manifest = bundle.manifest
        fault = self._fault(bundle, tail)
        cases: dict[tuple[str, str], deque[CaseResult]] = defaultdict(deque)
        if bundle.junit:
            try:
                cases = self._cases(bundle.junit)
            except JUnitError as exc:
                self.problems.append(f"remote JUnit XML: {exc}")
                fault = f"the remote JUnit XML could not be read: {exc}"
        remote_root = manifest.rootdir or bundle.cwd
        xpassed = dict(manifest.xpassed)
        reruns: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for rerun_id, when, message, text in manifest.reruns:
            reruns[rerun_id].append((when, message, text))
        if manifest.reruns_unsupported:
            self.problems.append(
                f"--orchestrate-reruns needs pytest 7 or newer in the container (it has "
                f"{printable(manifest.reruns_unsupported)[:40]}): failed tests were not run again"
            )
        modules: dict[str, RemoteModule] = {}
        collect_only = bool(self.config.getoption("collectonly", default=False))
        for nodeid, location, lineno, file_path in manifest.items or []:
            file, _, rest = nodeid.partition("::")
            remote_abs = file_path or posixpath.join(remote_root, file)
            module = self._module(session, modules, remote_abs)
            name = rest.rsplit("::", 1)[-1] if rest else file
            item = RemoteItem.from_parent(module, name=name, nodeid=f"{module.nodeid}::{rest}")
            item.remote_nodeid = nodeid
            item.lineno = lineno if location == file else None
            item.reruns = tuple(reruns.get(nodeid, ()))
            found = cases.get(mangle(nodeid))
            for _ in item.reruns:  # each attempt that ran again left an empty testcase
                if found and len(found) > 1:
                    found.popleft()
            if found:
                item.case = found.popleft()
            elif not collect_only:
                item.fault = fault or (
                    "no result for this test in the remote JUnit XML (remote pytest exit "
                    f"status {bundle.returncode}); last remote output:\n{tail}"
                )
            if nodeid in xpassed and item.case is not None:
                item.xpassed = xpassed[nodeid]
            module.remote_items.append(item)
        for nodeid, text in manifest.collect_errors:
            file = nodeid.partition("::")[0] or "."
            module = self._module(session, modules, posixpath.join(remote_root, file))
            module.collect_error = printable(text)
        for nodeid, reason in manifest.collect_skips:
            file = nodeid.partition("::")[0] or "."
            module = self._module(session, modules, posixpath.join(remote_root, file))
            module.collect_skip = reason
        return list(modules.values())

    def _session_error(self, session: pytest.Session, exchange: Exchange, tail: str) -> RemoteItem:
        bundle = exchange.bundle
        if exchange.channel_timed_out:
            why = (
                f"the exec channel gave no answer within "
                f"{self.settings.exec_timeout + CHANNEL_GRACE:g} s and was killed"
            )
        elif bundle is None:
            reason = "; ".join(exchange.problems) or "no result came back"
            why = f"{reason} (exec exit status {exchange.returncode})"
        elif bundle.timed_out:
            why = (
                f"the remote run timed out after {self.settings.exec_timeout:g} s while collecting"
            )
        elif bundle.error:
            why = f"the remote program failed: {printable(bundle.error)}"
        else:
            why = f"the remote pytest stopped before collecting (exit status {bundle.returncode})"
        self.problems.append(why)
        item = RemoteItem.from_parent(
            session,
            name=f"{self.prefix.tag}:<remote run>",
            nodeid=f"{self.prefix.tag}:<remote run>",
        )
        item.fault = f"{why}; last output:\n{tail}" if tail else why
        return item

    # -- coverage -----------------------------------------------------------------------

    def _coverage(self, bundle: Bundle) -> None:
        if "coverage" not in self.settings.dimensions:
            return
        if bundle.coverage_error:
            self.coverage_error = (
                printable(bundle.coverage_error)
                + "; install coverage there (python -m pip install coverage)"
            )
            return
        raw = bundle.coverage_data
        if raw is None:
            self.coverage_error = "no coverage data came back from the remote run" + (
                " (it timed out)" if bundle.timed_out else ""
            )
            return
        from coverage import CoverageData

        data = CoverageData(no_disk=True)
        lines: dict[str, list[int]] = {}
        arcs: dict[str, list[tuple[int, int]]] = {}
        for remote, found in raw.files.items():
            # relative_files = true in the project's coverage configuration
            remote_abs = posixpath.join(bundle.cwd, remote)
            local = self.pathmap.to_local(remote_abs)
            if local is None:
                self.unmapped.append(remote_abs)
                continue
            name = str(local)
            if self.relative_files:  # name files as coverage does here: from the rootdir
                name = os.path.relpath(local, self.rootdir)
            if raw.branch:
                arcs[name] = [pair for pair in found if isinstance(pair, tuple)]
            else:
                lines[name] = [n for n in found if isinstance(n, int)]
        if arcs:
            data.add_arcs(arcs)
        if lines:
            data.add_lines(lines)
        if arcs or lines:
            # add_arcs drops files with no arc: files no test imported must stay, at 0 %
            data.touch_files([*arcs, *lines])
        self.coverage_data = data

    # -- replay details -----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        """Replay a remote item's reports; nothing of it runs on this host."""
        if not isinstance(item, RemoteItem):
            return None
        hook = item.ihook
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in item.replay():
            hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def summary(self) -> RemoteRun:
        """The ``remote`` section of the report."""
        exchange = self.exchange
        bundle = exchange.bundle if exchange else None
        manifest = bundle.manifest if bundle else None
        return RemoteRun(
            target=self.prefix.tag,
            kind=self.prefix.kind,
            prefix=self.prefix.display(),
            command=shlex.join(
                redact([*self.command.interpreter, "-m", "pytest", *self.command.pytest_options])
            ),
            python=bundle.python if bundle else None,
            pytest=manifest.pytest if manifest else None,
            coverage=bundle.coverage if bundle else None,
            cwd=bundle.cwd if bundle else None,
            rootdir=manifest.rootdir if manifest else None,
            returncode=bundle.returncode if bundle else None,
            timed_out=bool(
                (bundle and bundle.timed_out) or (exchange and exchange.channel_timed_out)
            ),
            duration=exchange.duration if exchange else 0.0,
            round_trips=self.round_trips,
            tests=self.items,
            unmapped=sorted(set(self.unmapped)),
            problems=self.problems,
        )


def _error_line(output: str) -> str:
    """The line of pytest's output that says why it refused its arguments."""
    lines = [line.strip() for line in printable(output).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR") or "error:" in line]
    line: str = (errors or lines or ["no output"])[-1]
    return line.removeprefix("ERROR: ").split("error: ", 1)[-1][:300]
