"""Run an audit tool in a background subprocess that overlaps the test run.

Commands are argv lists (never a shell string). Output goes to temporary files rather than
pipes, so a chatty tool cannot block on a full pipe while pytest runs the tests.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO, ClassVar

import pytest

from pytest_orchestrator.auditors.base import AuditContext, Auditor
from pytest_orchestrator.errors import ToolUnavailable

#: Variables that would make a Python tool of ours start coverage (the project's subprocess
#: measurement, pytest-cov's) and write a data file into the project.
_COVERAGE_ENV = (
    "COVERAGE_PROCESS_START",
    "COVERAGE_PROCESS_CONFIG",
    "COV_CORE_SOURCE",
    "COV_CORE_CONFIG",
    "COV_CORE_DATAFILE",
)


def tool_environment() -> dict[str, str]:
    """The environment of our tools (ruff, bandit): this process's, without the variables
    that would start coverage in them."""
    return {k: v for k, v in os.environ.items() if k not in _COVERAGE_ENV}


def find_executable(name: str) -> str | None:
    """``name`` as gap closure pinned it for a re-audit (``programs``), else next to the
    running Python (its venv's bin), else on PATH."""
    from pytest_orchestrator.programs import pinned

    chosen = pinned(name)
    if chosen is not None:
        return chosen
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


class BackgroundCommand:
    """One argv run in the background; :meth:`wait` returns (exit code, stdout, stderr).

    :param argv: the command as a list of arguments.
    :param cwd: working directory.
    :param timeout: seconds, counted from :meth:`start`.
    :param install_hint: what to tell the user when the executable is missing.
    """

    def __init__(self, argv: list[str], cwd: Path, timeout: float, install_hint: str) -> None:
        self.argv = argv
        self.cwd = cwd
        self.timeout = timeout
        self.install_hint = install_hint
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._err: IO[bytes] | None = None
        self._started = 0.0
        self._error: str | None = None
        self._stdin: int = subprocess.DEVNULL
        self._ended: float | None = None
        #: Seconds the tool ran: from its start (or, for a prelaunched bandit, from when it
        #: got its arguments) to its exit, not to when the session asked for its result.
        self.duration = 0.0

    def start(self) -> None:
        """Start the command; a missing executable is remembered and raised by :meth:`wait`."""
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait/cancel
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self._started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=self._stdin,
                stdout=self._out,
                stderr=self._err,
                env=tool_environment(),
            )
        except OSError as exc:
            self._error = f"cannot run {self.argv[0]!r} ({exc.strerror}); {self.install_hint}"
            return
        threading.Thread(target=self._watch, name="orchestrator-tool", daemon=True).start()

    def _watch(self) -> None:
        """Note when the tool exits (its own run time, whenever its result is read)."""
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait()
            self._ended = time.monotonic()

    def wait(self) -> tuple[int, str, str]:
        """Wait for the command; returns (exit code, stdout, stderr) as text.

        :raises ToolUnavailable: the executable is missing or the timeout passed.
        """
        try:
            if self._error or self._proc is None:
                raise ToolUnavailable(self._error or f"{self.argv[0]} was not started")
            left = max(self.timeout - (time.monotonic() - self._started), 0.1)
            try:
                code = self._proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                raise ToolUnavailable(
                    f"{Path(self.argv[0]).name} ran longer than {self.timeout:g} s and was "
                    "stopped; raise orchestrate_tool_timeout"
                ) from None
            self.duration = (self._ended or time.monotonic()) - self._started
            return code, _read(self._out), _read(self._err)
        finally:
            self._close()

    def cancel(self) -> None:
        """Kill the command if it still runs and drop its output."""
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        for stream in (self._out, self._err):
            if stream is not None:
                stream.close()
        self._out = self._err = None


#: What :class:`BanditWorker` runs: it imports bandit at once, then reads bandit's
#: arguments as one JSON line on stdin and runs bandit's own command line with them, as
#: ``python -m bandit ARGS`` does; an empty line or the end of stdin ends it unrun.
BANDIT_WORKER = """\
import json, sys
try:
    from bandit.cli import main
except BaseException:
    main = None
line = sys.stdin.readline()
if not line.strip():
    sys.exit(0)
sys.argv = ["bandit"] + json.loads(line)
if main is None:
    from bandit.cli import main
sys.exit(main.main())
"""

BANDIT_WORKER_KEY = pytest.StashKey["BanditWorker"]()


class BanditWorker(BackgroundCommand):
    """``python -m bandit`` started before its arguments are known.

    Importing bandit takes most of a bandit run on a few files (about 0.1 s); started as
    pytest starts (:func:`prelaunch_bandit`), that overlaps pytest's own start-up, and the
    security auditor hands it its arguments (:meth:`run`) once its plan is known. Output,
    exit status and timeout (counted from :meth:`run`) are those of a
    :class:`BackgroundCommand`.
    """

    def __init__(self, python: str, cwd: Path, timeout: float, install_hint: str) -> None:
        super().__init__([python, "-c", BANDIT_WORKER], cwd, timeout, install_hint)
        self._stdin = subprocess.PIPE

    def fits(self, argv: list[str], cwd: Path) -> bool:
        """True when ``argv`` is ``[PYTHON, "-m", "bandit", ...]`` with this Python and dir."""
        return argv[:3] == [self.argv[0], "-m", "bandit"] and cwd == self.cwd

    def run(self, args: list[str]) -> None:
        """Give bandit its arguments (``args``: what follows ``python -m bandit``)."""
        self.argv = [self.argv[0], "-m", "bandit", *args]
        self._started = time.monotonic()
        process = self._proc
        if process is None or process.stdin is None:
            return  # not started: wait() says why
        try:
            process.stdin.write(json.dumps(args).encode("utf-8") + b"\n")
        except OSError:
            pass  # it ended already: wait() returns its status and output
        finally:
            with contextlib.suppress(OSError):
                process.stdin.close()


def prelaunch_bandit(config: pytest.Config) -> None:
    """Start a :class:`BanditWorker` in the rootdir and keep it in ``config.stash``.

    Call it only when a security audit is expected. The security auditor adopts it (see
    ``BanditAuditor.run_command``); when nothing did, it is ended with the config (also when
    pytest stops at a usage error before the session: a config cleanup).
    """
    worker = BanditWorker(sys.executable, config.rootpath, 0.0, "")  # set when adopted
    worker.start()
    config.stash[BANDIT_WORKER_KEY] = worker
    config.add_cleanup(lambda: drop_bandit_worker(config))


def run_in_bandit_worker(
    config: pytest.Config, argv: list[str], cwd: Path, timeout: float, install_hint: str
) -> BanditWorker | None:
    """The prelaunched worker running ``argv`` (``[PYTHON, "-m", "bandit", ...]``) in
    ``cwd`` with ``timeout`` (seconds) and ``install_hint``, removed from ``config.stash``
    once it runs; None when there is none or it cannot run ``argv`` (then it is ended)."""
    worker = config.stash.get(BANDIT_WORKER_KEY, None)
    if worker is None:
        return None
    if not worker.fits(argv, cwd):
        drop_bandit_worker(config)
        return None
    worker.timeout, worker.install_hint = timeout, install_hint
    worker.run(argv[3:])
    del config.stash[BANDIT_WORKER_KEY]  # the caller owns it now (interrupted: the cleanup)
    return worker


def drop_bandit_worker(config: pytest.Config) -> None:
    """End a prelaunched worker nothing adopted: the security audit launched nothing (every
    file cached, bandit unavailable) or did not run (a usage error, settings without the
    dimension)."""
    worker = config.stash.get(BANDIT_WORKER_KEY, None)
    if worker is not None:
        del config.stash[BANDIT_WORKER_KEY]
        worker.cancel()


def _read(stream: IO[bytes] | None) -> str:
    if stream is None:
        return ""
    stream.seek(0)
    return stream.read().decode("utf-8", errors="replace")


def last_line(text: str, limit: int = 200) -> str:
    """The last non-blank line of ``text``, shortened to ``limit`` characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def distribution_version(name: str) -> str | None:
    """Installed version of the distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the garbage collector. What a tool's start decodes (the audit cache: tens of
    thousands of containers) would set off a collection of the session's whole heap before
    the tool is launched; paused, the collection comes after, while the tool runs."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CommandAuditor(Auditor):
    """An auditor whose tool runs as one background command, started at session start.

    :meth:`start` runs :meth:`begin`, in a thread when :attr:`begin_in_thread` is set, so
    that what comes before the launch (ruff's file listing, a subprocess, see ``cache``)
    overlaps collection and the run as the tool itself does. Work that is quick and mostly
    Python (bandit's plan: hashing files) is better done at once: in a thread it would
    compete for the GIL and launch its tool later. Subclasses define :meth:`command` (the
    argv, or raise ToolUnavailable), may override :meth:`begin`, and read the output in
    ``finish`` through :meth:`wait`, calling :meth:`ready` first if they read what ``begin``
    set.
    """

    install_hint: ClassVar[str] = ""
    #: Run :meth:`begin` in a background thread (else in :meth:`start` itself).
    begin_in_thread: ClassVar[bool] = False

    def __init__(self) -> None:
        self._command: BackgroundCommand | None = None
        self._not_started = f"{self.tool} was not started"
        self._starter: threading.Thread | None = None
        self._failure: Exception | None = None
        self._lock = threading.Lock()
        self._cancelled = False

    def command(self, context: AuditContext) -> list[str]:
        """The argv to run in the rootdir. :raises ToolUnavailable: it cannot run."""
        raise NotImplementedError

    def start(self, context: AuditContext) -> None:
        if not self.begin_in_thread:
            with gc_paused():
                self._begin(context)
            return
        self._starter = threading.Thread(
            target=self._begin, args=(context,), name=f"pytest-orchestrator-{self.tool}"
        )
        self._starter.daemon = True
        self._starter.start()

    def _begin(self, context: AuditContext) -> None:
        try:
            self.begin(context)
        except ToolUnavailable as exc:
            self._not_started = str(exc)
        except Exception as exc:  # a bug: ready() raises it in the main thread
            self._failure = exc

    def begin(self, context: AuditContext) -> None:
        """Launch the tool (in the start thread). The default launches :meth:`command`.

        :raises ToolUnavailable: it cannot run; ``finish`` then reports it unavailable.
        """
        self.launch(self.command(context), context)

    def ready(self) -> None:
        """Wait until :meth:`begin` is done.

        :raises Exception: what ``begin`` raised, other than ToolUnavailable.
        """
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        if self._failure is not None:
            raise self._failure

    def launch(self, argv: list[str], context: AuditContext) -> None:
        """Start ``argv`` in the background in the rootdir (not once cancelled)."""
        with self._lock:
            if not self._cancelled:
                self._command = self.run_command(argv, context)

    def run_command(self, argv: list[str], context: AuditContext) -> BackgroundCommand:
        """``argv`` running in the background in the rootdir."""
        command = BackgroundCommand(
            argv, context.rootdir, context.settings.tool_timeout, self.install_hint
        )
        command.start()
        return command

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._command is not None:
                self._command.cancel()

    def wait(self) -> tuple[int, str, str, float]:
        """(exit code, stdout, stderr, seconds) of the command.

        :raises ToolUnavailable: it was not started, is missing or timed out.
        """
        self.ready()
        if self._command is None:
            raise ToolUnavailable(self._not_started)
        code, out, err = self._command.wait()
        return code, out, err, self._command.duration
