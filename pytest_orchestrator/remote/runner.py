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
import shlex
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pytest_orchestrator.remote.bootstrap import BEGIN, END, PROTOCOL
from pytest_orchestrator.remote.prefix import ExecPrefix

#: Seconds the exec channel may take beyond the remote timeout before it is killed.
CHANNEL_GRACE = 60.0
#: Bytes of the exec client's stderr kept for messages.
STDERR_TAIL = 4096


class RemoteFault(Exception):
    """The suite could not run remotely at all; str() is one line saying what to do."""


@dataclass(frozen=True)
class ExecCommand:
    """``--orchestrate-exec-command`` split: ``PYTHON [PYTHON_OPTIONS] -m pytest [OPTIONS]``.

    :ivar interpreter: the Python and its options, e.g. ``("python3", "-X", "utf8")``.
    :ivar pytest_options: options after ``-m pytest``, passed to every remote run.
    """

    interpreter: tuple[str, ...]
    pytest_options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ExecCommand:
        """Parse ``text``.

        :raises ValueError: it is not ``PYTHON [OPTIONS] -m pytest [OPTIONS]``.
        """
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            raise ValueError(f"cannot split {text!r} into arguments: {exc}") from None
        for index in range(1, len(argv) - 1):
            if argv[index] == "-m" and argv[index + 1] == "pytest":
                return cls(tuple(argv[:index]), tuple(argv[index + 2 :]))
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

    bundle: dict[str, Any] | None
    returncode: int
    stderr: str
    duration: float
    channel_timed_out: bool = False
    problems: list[str] = field(default_factory=list)


def bootstrap_source() -> str:
    """The source of the remote program (``pytest_orchestrator/remote/bootstrap.py``)."""
    return resources.files("pytest_orchestrator.remote").joinpath("bootstrap.py").read_text("utf-8")


def decode_bundle(stdout: bytes) -> dict[str, Any]:
    """The bundle between the BEGIN and END lines of ``stdout``.

    :raises ValueError: no complete bundle, or it does not decode (message says which).
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
        bundle = json.loads(zlib.decompress(base64.b64decode(payload, validate=True)))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise ValueError(f"the result from the container is damaged ({exc})") from None
    if not isinstance(bundle, dict) or bundle.get("protocol") != PROTOCOL:
        raise ValueError("the result from the container has an unknown format")
    return bundle


def _tail(data: bytes, limit: int = STDERR_TAIL) -> str:
    return data[-limit:].decode("utf-8", "replace").strip()


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

    :param options: the bootstrap's options (``args``, ``coverage``, ``collect_only``);
        ``python_options``, ``pytest_options`` and ``timeout`` are filled in here.
    :param timeout: seconds the remote pytest may run.
    :raises RemoteFault: the exec prefix could not start, or the target, the Python or
        pytest is missing (one line naming the fix).
    """
    options = {
        **options,
        "python_options": list(command.interpreter[1:]),
        "pytest_options": list(command.pytest_options),
        "timeout": timeout,
    }
    remote = [*command.interpreter, "-c", bootstrap_source(), json.dumps(options)]
    argv = prefix.command(remote)
    started = time.monotonic()
    try:
        completed = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout + CHANNEL_GRACE,
            check=False,
        )
    except FileNotFoundError:
        raise RemoteFault(
            f"exec prefix {prefix.argv[0]!r} not found; install it or give its full path"
        ) from None
    except subprocess.TimeoutExpired as exc:
        return Exchange(
            None,
            -9,
            _tail(exc.stderr or b""),
            round(time.monotonic() - started, 3),
            channel_timed_out=True,
        )
    exchange = Exchange(
        None, completed.returncode, _tail(completed.stderr), round(time.monotonic() - started, 3)
    )
    try:
        exchange.bundle = decode_bundle(completed.stdout)
    except ValueError as exc:
        output = "\n".join(p for p in (_tail(completed.stdout), exchange.stderr) if p)
        reason = prefix.diagnose(completed.returncode, output, command.interpreter[0])
        reason = reason or _ask_compose(prefix)
        if reason:
            raise RemoteFault(reason) from None
        exchange.stderr = output
        exchange.problems.append(str(exc))
        return exchange
    if exchange.bundle.get("error") == "no-pytest":
        raise RemoteFault(
            f"pytest is not installed for {exchange.bundle.get('executable')} in "
            f"{prefix.tag!r}; install it there (python -m pip install pytest) or set "
            "--orchestrate-exec-command to a Python that has it"
        )
    return exchange
