"""The agent interface: one request in, one :class:`AgentResult` out, whatever the CLI.

An :class:`Adapter` knows one CLI's documented non-interactive contract: the argv it takes
(a list, never a shell string), how the prompt reaches it (stdin or a temporary file, never
the command line: ``ps`` shows arguments and ``ARG_MAX`` limits them), and how to read its
output into text, tokens, cost and a classified :class:`AgentError`.
:meth:`Adapter.run` does the rest the same way for every CLI: finds the executable, runs it
with a timeout in the working directory, and prices the call when the CLI reports tokens
but no cost (see ``pricing``).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from pytest_orchestrator.agents.pricing import PricingTable
    from pytest_orchestrator.agents.sandbox import Sandbox

ErrorKind = Literal[
    "timeout", "rate_limit", "auth", "bad_output", "nonzero_exit", "missing_executable", "budget"
]
#: Error kinds worth retrying after a pause (not timeouts: a timed-out CLI may have spent).
TRANSIENT: frozenset[str] = frozenset({"rate_limit"})
CostSource = Literal["reported", "computed", "estimated", "free"]
#: Characters of an agent's output kept in an error message or a report.
EXCERPT = 500

#: Variables removed from the environment an agent runs in: they would change how a pytest
#: the agent starts behaves (ours, or pytest-cov's subprocess measurement).
_DROPPED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_CURRENT_TEST",
    "PYTEST_PLUGINS",
    "COV_CORE_SOURCE",
    "COV_CORE_CONFIG",
    "COV_CORE_DATAFILE",
    "COVERAGE_PROCESS_START",
)


@dataclass(frozen=True)
class AgentError:
    """Why a call failed: ``kind`` (see :data:`ErrorKind`) and a one-line ``message``."""

    kind: ErrorKind
    message: str

    @property
    def transient(self) -> bool:
        """Whether retrying later may succeed (rate limits)."""
        return self.kind in TRANSIENT


@dataclass(frozen=True)
class AgentSpec:
    """One ``--orchestrate-agent`` entry: ``NAME[:MODEL]`` or ``command:ARGV``.

    :ivar name: ``claude``, ``codex``, ``gemini``, ``copilot``, ``aider`` or ``command``.
    :ivar model: the model to ask for (None: the CLI's default).
    :ivar argv: for ``command``, the command split like a shell would (no shell runs it).
    """

    name: str
    model: str | None = None
    argv: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AgentSpec:
        """Parse one entry.

        :raises ValueError: empty, an unknown agent, or ``command:`` with no command.
        """
        from pytest_orchestrator.agents.adapters import ADAPTERS

        text = text.strip()
        name, _, rest = text.partition(":")
        if name == "command":
            try:
                argv = tuple(shlex.split(rest))
            except ValueError as exc:
                raise ValueError(f"cannot split {rest!r} into arguments: {exc}") from None
            if not argv:
                raise ValueError("command: needs a command, e.g. 'command:ruff check --fix'")
            return cls("command", None, argv)
        if name not in ADAPTERS:
            known = ", ".join([*sorted(n for n in ADAPTERS if n != "command"), "command:ARGV"])
            raise ValueError(f"unknown agent {name!r}; use one of {known}")
        return cls(name, rest.strip() or None)

    @property
    def label(self) -> str:
        """``claude:claude-sonnet-4.5``, ``codex``, or ``command:ruff check --fix``."""
        if self.name == "command":
            return "command:" + shlex.join(self.argv)
        return f"{self.name}:{self.model}" if self.model else self.name


@dataclass(frozen=True)
class AgentRequest:
    """What to ask an agent.

    :ivar prompt: the rendered prompt.
    :ivar cwd: the working directory (the repository).
    :ivar timeout: seconds the call may take.
    :ivar edit: whether the agent may change files (audits: False).
    :ivar budget_usd: USD the call may still spend (None: no limit); passed to CLIs that
        can enforce it (claude's ``--max-budget-usd``).
    :ivar max_turns: agent turns allowed (``--orchestrate-max-turns``; None: the CLI's
        default); only claude has such an option (``--max-turns``), the others ignore it.
    :ivar files: files to hand to CLIs that take them (aider).
    :ivar allow_all_paths: let copilot touch paths outside the repository.
    :ivar tree: the working tree's top directory, writable in the sandbox when ``edit``
        (None: ``cwd``).
    :ivar protected: paths inside the tree that stay read-only in the sandbox.
    """

    prompt: str
    cwd: Path
    timeout: float = 900.0
    edit: bool = False
    budget_usd: float | None = None
    max_turns: int | None = None
    files: tuple[str, ...] = ()
    allow_all_paths: bool = False
    tree: Path | None = None
    protected: tuple[Path, ...] = ()


@dataclass
class AgentResult:
    """One call's outcome (units: tokens, USD, seconds).

    :ivar cost_source: ``reported`` by the CLI, ``computed`` from tokens x price,
        ``estimated`` from prompt and output size (no token counts), or ``free``.
    """

    agent: str
    model: str | None
    text: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: CostSource = "free"
    duration: float = 0.0
    exit_status: int | None = None
    error: AgentError | None = None
    session_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    sandbox: str = "none"

    @property
    def ok(self) -> bool:
        return self.error is None


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` shortened to about ``limit`` characters, on one line, secrets and control
    sequences removed (``redact.redact_text``)."""
    from pytest_orchestrator.redact import redact_text

    flat = " ".join(redact_text(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def agent_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an agent runs in: this process's, minus :data:`_DROPPED_ENV`, plus
    ``PYTEST_ORCHESTRATOR_AGENT=1`` (so a pytest the agent starts does not orchestrate)."""
    env = dict(os.environ if base is None else base)
    for name in _DROPPED_ENV:
        env.pop(name, None)
    env["PYTEST_ORCHESTRATOR_AGENT"] = "1"
    return env


class Adapter:
    """Base of the CLI adapters; subclasses define :meth:`argv` and :meth:`parse`.

    :cvar executable: the program to run.
    :cvar auth_env: environment variables that authenticate the CLI (for messages).
    :cvar prompt_via: ``stdin`` or ``file`` (the file's path is given to :meth:`argv`).
    :cvar default_model: the model priced when none is given; None when the CLI's own
        choice is unknown (priced at the most expensive known rate, with a warning, unless
        the CLI reports the model it used).
    :cvar reports_cost: whether the CLI reports what a call cost (else it is priced from
        our table, which must then know a model given by name).
    :cvar install: how to install the CLI (for the message when it is missing).
    :cvar waits_forever: see :meth:`_wait`.
    """

    name: ClassVar[str] = ""
    executable: ClassVar[str] = ""
    auth_env: ClassVar[tuple[str, ...]] = ()
    prompt_via: ClassVar[Literal["stdin", "file"]] = "stdin"
    default_model: ClassVar[str | None] = None
    reports_cost: ClassVar[bool] = False
    install: ClassVar[str] = ""
    #: Output showing that the CLI waits for what no batch call gets (aider's browser
    #: login): once its stdout shows it, the call is stopped and parsed as it is.
    waits_forever: ClassVar[bytes | None] = None

    def __init__(self, spec: AgentSpec) -> None:
        self.spec = spec

    @property
    def model(self) -> str | None:
        return self.spec.model or self.default_model

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        """The command line (the prompt is not on it)."""
        raise NotImplementedError

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        """Read the CLI's output into a result (duration and pricing are filled in by run)."""
        raise NotImplementedError

    def result(self, **values: object) -> AgentResult:
        """An :class:`AgentResult` of this adapter with ``values``."""
        return AgentResult(agent=self.spec.label, model=self.model, **values)  # type: ignore[arg-type]

    def auth_message(self, detail: str) -> str:
        """One line: authentication failed, and which variable the CLI needs."""
        needs = " or ".join(self.auth_env) if self.auth_env else "its login"
        return f"{self.name} is not authenticated ({excerpt(detail, 200)}); set {needs}"

    def run(
        self,
        request: AgentRequest,
        env: dict[str, str] | None = None,
        pricing: PricingTable | None = None,
        sandbox: Sandbox | None = None,
    ) -> AgentResult:
        """Run the CLI once (no retries: see ``runner``) in ``sandbox`` (default: none);
        price the call with ``pricing``.

        The prompt, stdout and stderr go through files in a private directory, not pipes:
        the call ends when the CLI's own process exits (a process it left in the background
        holding its output cannot keep us waiting), and then everything it started is
        killed (its process group; in the sandbox, its PID namespace).
        """
        from pytest_orchestrator.agents.pricing import price_result

        program = self.spec.argv[0] if self.spec.argv else self.executable
        environment = agent_environment(env)
        if shutil.which(program, path=environment.get("PATH")) is None:
            return self.result(
                error=AgentError(
                    "missing_executable",
                    f"{program!r} not found on PATH; install the {self.name} CLI",
                )
            )
        started = time.monotonic()
        kind = sandbox.kind if sandbox is not None else "none"
        with tempfile.TemporaryDirectory(prefix="pytest-orchestrator-agent-") as scratch:
            folder = Path(scratch)
            prompt_file = None
            if self.prompt_via == "file":
                prompt_file = folder / "prompt.md"
                prompt_file.write_text(request.prompt, encoding="utf-8")
            (folder / "stdin").write_text(
                request.prompt if self.prompt_via == "stdin" else "", encoding="utf-8"
            )
            argv = self.argv(request, prompt_file)
            if sandbox is not None:
                argv = sandbox.wrap(
                    argv,
                    tree=request.tree or request.cwd,
                    cwd=request.cwd,
                    edit=request.edit,
                    home_state=self.state_paths(),
                    writable=[folder],
                    protected=request.protected,
                    env=environment,
                )
            try:
                with (
                    open(folder / "stdin", "rb") as stdin,
                    open(folder / "stdout", "wb") as stdout,
                    open(folder / "stderr", "wb") as stderr,
                ):
                    process = subprocess.Popen(
                        argv,
                        stdin=stdin,
                        stdout=stdout,
                        stderr=stderr,
                        cwd=request.cwd,
                        env=environment,
                        start_new_session=True,  # its own process group: stopped as a whole
                    )
            except OSError as exc:
                return self.result(error=AgentError("missing_executable", f"{program!r}: {exc}"))
            with _RUNNING_LOCK:
                _RUNNING.add(process)
            try:
                self._wait(process, request.timeout, folder / "stdout")
            except subprocess.TimeoutExpired:
                _stop(process)
                timed_out = self.result(
                    duration=round(time.monotonic() - started, 3),
                    sandbox=kind,
                    error=AgentError(
                        "timeout", f"{self.name} gave no answer within {request.timeout:g} s"
                    ),
                )
                return price_result(timed_out, request, pricing)  # charged an estimate
            except BaseException:  # Ctrl-C while waiting: the agent stops with us
                _stop(process)
                raise
            finally:
                with _RUNNING_LOCK:
                    _RUNNING.discard(process)
            with contextlib.suppress(OSError):  # what it left running in the background
                os.killpg(process.pid, signal.SIGKILL)
            if process.returncode < 0 and _CANCELLED.is_set():
                return self.result(
                    duration=round(time.monotonic() - started, 3),
                    sandbox=kind,
                    error=AgentError("nonzero_exit", f"{self.name} was stopped: the session ended"),
                )
            out = _read_output(folder / "stdout")
            err = _read_output(folder / "stderr")
        result = self.parse(out, err, process.returncode, request)
        result.duration = round(time.monotonic() - started, 3)
        result.exit_status = process.returncode
        result.sandbox = kind
        return price_result(result, request, pricing)

    def _wait(self, process: subprocess.Popen[bytes], timeout: float, stdout: Path) -> None:
        """Wait for ``process`` to end, at most ``timeout`` seconds; with
        :attr:`waits_forever`, look at the first 64 KiB of its ``stdout`` file every
        :data:`WATCH_INTERVAL` seconds and stop it once they show that marker.

        :raises subprocess.TimeoutExpired: it did not end in time.
        """
        if self.waits_forever is None:
            process.wait(timeout=timeout)
            return
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(process.args, timeout)
            try:
                process.wait(timeout=min(WATCH_INTERVAL, left))
                return
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(OSError), open(stdout, "rb") as handle:
                if self.waits_forever in handle.read(1 << 16):
                    _stop(process)
                    return

    def state_paths(self) -> list[str]:
        """What the CLI keeps under ``$HOME`` (writable in the sandbox; see
        :data:`~pytest_orchestrator.agents.sandbox.STATE_PATHS`)."""
        from pytest_orchestrator.agents.sandbox import STATE_PATHS

        return list(STATE_PATHS.get(self.name, ()))


#: Bytes of an agent's stdout or stderr read back (its end is kept past this).
OUTPUT_MAX = 64 << 20


def _read_output(path: Path) -> str:
    """A call's output file as text (UTF-8, errors replaced), at most :data:`OUTPUT_MAX`
    bytes: its end when longer (a CLI's result comes last)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - OUTPUT_MAX))
        return handle.read().decode("utf-8", "replace")


#: Seconds between two looks at the output of a CLI that may wait forever (see
#: ``Adapter._wait``).
WATCH_INTERVAL = 0.25
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
_CANCELLED = threading.Event()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process``'s group, wait up to 5 s for its leader, then kill what is
    left of the group (members may ignore SIGTERM), and reap it."""
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.wait(timeout=5)


def cancelled() -> bool:
    """Whether :func:`stop_running_agents` was called: no new agent call may start."""
    return _CANCELLED.is_set()


def reset_cancelled() -> None:
    """Allow agent calls again (a new session in the same process)."""
    _CANCELLED.clear()


def stop_running_agents() -> None:
    """Stop every agent CLI still running (the session was interrupted or ended): no agent
    goes on working, or spending, after pytest exits."""
    _CANCELLED.set()
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _stop(process)
