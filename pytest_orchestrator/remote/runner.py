"""Host side of a remote run: one exec round trip, and the bundle it brings back.

:func:`run_remote` runs ``PREFIX PYTHON -c BOOTSTRAP OPTIONS`` (see ``bootstrap``) as an
argv list, with stdin closed and a deadline of the remote timeout plus
:data:`CHANNEL_GRACE` seconds (the remote side enforces the timeout itself, because
killing a ``docker exec`` client does not stop the process in the container).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shlex
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_orchestrator import jsonio
from pytest_orchestrator.redact import strip_control
from pytest_orchestrator.remote.bootstrap import BEGIN, END, PROTOCOL
from pytest_orchestrator.remote.prefix import ExecPrefix

#: Seconds the exec channel may take beyond the remote timeout before it is killed.
CHANNEL_GRACE = 60.0
#: Bytes of the exec client's stderr kept for messages.
STDERR_TAIL = 4096
#: Bytes of stdout read from the exec client; the bundle must fit (base64 of zlib).
MAX_OUTPUT = 128 * 1024 * 1024
#: Bytes the bundle may take once decompressed.
MAX_BUNDLE = 512 * 1024 * 1024


class Manifest(BaseModel):
    """What the probe plugin saw in the remote pytest (see ``bootstrap.PROBE_SOURCE``).

    ``items`` rows are (node id, location path, 0-based line, absolute file path), the
    last three None under pytest-xdist.
    """

    model_config = ConfigDict(extra="ignore")

    pytest: str | None = None
    rootdir: str | None = None
    items: list[tuple[str, str | None, int | None, str | None]] | None = None
    collect_errors: list[tuple[str, str]] = Field(default_factory=list)
    collect_skips: list[tuple[str, str]] = Field(default_factory=list)
    xpassed: list[tuple[str, str]] = Field(default_factory=list)
    #: (node id, phase, crash message, failure text) of each failed attempt run again.
    reruns: list[tuple[str, str, str, str]] = Field(default_factory=list)
    #: The container's pytest version when it is too old for ``--orchestrate-reruns``.
    reruns_unsupported: str | None = None


class RemoteCoverage(BaseModel):
    """Covered lines (or arcs, when ``branch``) per file, container paths."""

    model_config = ConfigDict(extra="ignore")

    branch: bool = False
    files: dict[str, list[int] | list[tuple[int, int]]] = Field(default_factory=dict)


class Bundle(BaseModel):
    """The remote program's result (``bootstrap.main``); every field is untrusted data."""

    model_config = ConfigDict(extra="ignore")

    protocol: int
    python: str | None = None
    executable: str | None = None
    cwd: str = "/"
    error: str | None = None
    timed_out: bool = False
    duration: float = 0.0
    returncode: int | None = None
    output_tail: str = ""
    junit: str | None = None
    manifest: Manifest | None = None
    coverage: str | None = None
    coverage_error: str | None = None
    coverage_data: RemoteCoverage | None = None


class RemoteFault(Exception):
    """The suite could not run remotely at all; str() is one line saying what to do."""


@dataclass(frozen=True)
class ExecCommand:
    """``--orchestrate-exec-command`` split: ``[WRAPPER ...] PYTHON [OPTIONS] -m pytest [OPTIONS]``.

    :ivar interpreter: everything before ``-m pytest``, e.g. ``("sudo", "-u", "odoo",
        "python3", "-X", "utf8")``; the bootstrap runs with it.
    :ivar python_options: the Python's own options (after the word naming the Python, a
        ``python*`` word, else the first word), given again to the remote pytest's Python.
    :ivar pytest_options: options after ``-m pytest``, passed to every remote run.
    """

    interpreter: tuple[str, ...]
    python_options: tuple[str, ...] = ()
    pytest_options: tuple[str, ...] = ()

    @property
    def python(self) -> str:
        """The word naming the Python (for messages)."""
        return self.interpreter[len(self.interpreter) - len(self.python_options) - 1]

    @classmethod
    def parse(cls, text: str) -> ExecCommand:
        """Parse ``text``.

        :raises ValueError: it is not ``[WRAPPER] PYTHON [OPTIONS] -m pytest [OPTIONS]``.
        """
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            raise ValueError(f"cannot split {text!r} into arguments: {exc}") from None
        for index in range(1, len(argv) - 1):
            if argv[index] == "-m" and argv[index + 1] == "pytest":
                interpreter = argv[:index]
                named = [
                    i
                    for i, word in enumerate(interpreter)
                    if os.path.basename(word).startswith("python") and "=" not in word
                ]
                python = named[-1] if named else 0
                return cls(
                    tuple(interpreter), tuple(interpreter[python + 1 :]), tuple(argv[index + 2 :])
                )
        raise ValueError(
            f"{text!r} is not 'PYTHON -m pytest [OPTIONS]'; "
            "give e.g. 'python3 -m pytest' or '/venv/bin/python -m pytest'"
        )


@dataclass
class Exchange:
    """What one round trip brought back.

    :ivar bundle: the decoded bundle (see ``bootstrap``), or None when none came back.
    :ivar returncode: exit status of the exec client.
    :ivar stderr: the tail of the exec client's stderr.
    :ivar duration: seconds of the round trip.
    :ivar channel_timed_out: the exec client was killed at the host-side deadline.
    """

    bundle: Bundle | None
    returncode: int
    stderr: str
    duration: float
    channel_timed_out: bool = False
    problems: list[str] = field(default_factory=list)


def bootstrap_source() -> str:
    """The source of the remote program (``pytest_orchestrator/remote/bootstrap.py``)."""
    return resources.files("pytest_orchestrator.remote").joinpath("bootstrap.py").read_text("utf-8")


def decode_bundle(stdout: bytes) -> Bundle:
    """The bundle between the BEGIN and END lines of ``stdout``, validated.

    :raises ValueError: no complete bundle, or it does not decode, is larger than
        :data:`MAX_BUNDLE` bytes once decompressed, or has the wrong shape (message says which).
    """
    text = stdout.decode("ascii", "replace")
    start = text.rfind(BEGIN)
    if start < 0:
        raise ValueError("no result came back from the container")
    end = text.find(END, start)
    if end < 0:
        raise ValueError("the result from the container is cut short")
    payload = "".join(text[start + len(BEGIN) : end].split())
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(base64.b64decode(payload, validate=True), MAX_BUNDLE)
        if inflate.unconsumed_tail:
            raise ValueError(f"the result from the container is larger than {MAX_BUNDLE} bytes")
        data = jsonio.loads(raw)
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ValueError(f"the result from the container is damaged ({exc})") from None
    if not isinstance(data, dict) or data.get("protocol") != PROTOCOL:
        raise ValueError("the result from the container has an unknown format")
    try:
        return Bundle.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ValueError(
            f"the result from the container is malformed ({where}: {error['msg']})"
        ) from None


def _tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    return printable(data[-limit:].decode("utf-8", "replace")).strip()


def printable(text: str) -> str:
    """``text`` without terminal control sequences: container output is data, not commands."""
    return strip_control(text)


def _read(handle: IO[bytes], limit: int, tail: bool = False) -> bytes:
    """At most ``limit`` bytes of a temporary file: its start, or its end if ``tail``."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - limit) if tail else 0)
    return handle.read(limit)


def _ask_compose(prefix: ExecPrefix) -> str | None:
    """For compose prefixes: whether the service exists and runs (see services_argv)."""
    outputs = []
    for running in (False, True):
        argv = prefix.services_argv(running)
        if argv is None:
            return None
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return prefix.diagnose(done.returncode, _tail(done.stderr), "")
        outputs.append(done.stdout.decode("utf-8", "replace"))
    return prefix.diagnose_services(*outputs)


def run_remote(
    prefix: ExecPrefix, command: ExecCommand, options: dict[str, Any], timeout: float
) -> Exchange:
    """Run the suite once through ``prefix``; see the module docstring.

    :param options: the bootstrap's options (``args``, ``coverage``, ``collect_only``,
        ``ini_names``);
        ``python_options``, ``pytest_options`` and ``timeout`` are filled in here.
    :param timeout: seconds the remote pytest may run.
    :raises RemoteFault: the exec prefix could not start, or the target, the Python or
        pytest is missing (one line naming the fix).
    """
    options = {
        **options,
        "python_options": list(command.python_options),
        "pytest_options": list(command.pytest_options),
        "timeout": timeout,
    }
    remote = [*command.interpreter, "-c", bootstrap_source(), json.dumps(options)]
    argv = prefix.command(remote)
    started = time.monotonic()
    # Output goes to files, not memory: what a container prints is bounded by MAX_OUTPUT.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except FileNotFoundError:
            raise RemoteFault(
                f"exec prefix {prefix.argv[0]!r} not found; install it or give its full path"
            ) from None
        channel_timed_out = False
        try:
            process.wait(timeout + CHANNEL_GRACE)
        except subprocess.TimeoutExpired:
            channel_timed_out = True
            process.kill()
            process.wait()
        stdout, stderr = _read(out, MAX_OUTPUT), _read(err, STDERR_TAIL, tail=True)
    exchange = Exchange(
        None,
        process.returncode,
        _tail(stderr),
        round(time.monotonic() - started, 3),
        channel_timed_out=channel_timed_out,
    )
    if channel_timed_out:
        return exchange
    try:
        exchange.bundle = decode_bundle(stdout)
    except ValueError as exc:
        output = "\n".join(p for p in (_tail(stdout), exchange.stderr) if p)
        reason = prefix.diagnose(process.returncode, output, command.python)
        reason = reason or _ask_compose(prefix)
        if reason:
            raise RemoteFault(reason) from None
        exchange.stderr = output
        exchange.problems.append(str(exc))
        return exchange
    if exchange.bundle.error == "no-pytest":
        raise RemoteFault(
            f"pytest is not installed for {exchange.bundle.executable} in "
            f"{prefix.tag!r}; install it there (python -m pip install pytest) or set "
            "--orchestrate-exec-command to a Python that has it"
        )
    return exchange
