"""Run an audit tool in a background subprocess that overlaps the test run.

Commands are argv lists (never a shell string). Output goes to temporary files rather than
pipes, so a chatty tool cannot block on a full pipe while pytest runs the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import IO, ClassVar

from pytest_orchestrator.auditors.base import AuditContext, Auditor
from pytest_orchestrator.errors import ToolUnavailable


def find_executable(name: str) -> str | None:
    """``name`` next to the running Python (its venv's bin) first, then on PATH."""
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
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
            )
        except OSError as exc:
            self._error = f"cannot run {self.argv[0]!r} ({exc.strerror}); {self.install_hint}"

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
            self.duration = time.monotonic() - self._started
            return code, _read(self._out), _read(self._err)
        finally:
            self._close()

    def cancel(self) -> None:
        """Kill the command if it still runs and drop its output."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        for stream in (self._out, self._err):
            if stream is not None:
                stream.close()
        self._out = self._err = None


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


class CommandAuditor(Auditor):
    """An auditor whose tool runs as one background command, started at session start.

    :meth:`start` runs :meth:`begin` in a thread, so what comes before the launch (the audit
    cache's file listing and hashing, see ``cache``) overlaps collection and the run as the
    tool itself does. Subclasses define :meth:`command` (the argv, or raise ToolUnavailable),
    may override :meth:`begin`, and read the output in ``finish`` through :meth:`wait`,
    calling :meth:`ready` first if they read what ``begin`` set.
    """

    install_hint: ClassVar[str] = ""

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
            if self._cancelled:
                return
            self._command = BackgroundCommand(
                argv, context.rootdir, context.settings.tool_timeout, self.install_hint
            )
            self._command.start()

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
