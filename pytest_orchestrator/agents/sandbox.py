"""The sandbox around every agent call and every gap-closure re-audit (bubblewrap on Linux).

An agent CLI, and the code it writes, are untrusted programs that run in the user's
repository. With ``bwrap`` (`bubblewrap <https://github.com/containers/bubblewrap>`_,
Debian package ``bubblewrap``) each one runs in a new mount and PID namespace:

- the whole file system is read-only (``--ro-bind / /``), with a private ``/tmp`` (a
  tmpfs: our snapshots and other programs' files there are out of reach) and a fresh
  ``/dev``;
- the working tree is writable (read-only for an LLM audit, which must not edit), but its
  git directory is read-only (no commit, no hook, no ``git config``), and so is a virtual
  environment inside the tree (``sys.prefix``);
- writable too: the CLI's own state under ``$HOME`` (:data:`STATE_PATHS`, e.g. ``~/.claude``:
  logins, sessions) and the paths of ``orchestrate_sandbox_writable`` (and of
  :data:`WRITABLE_ENV`);
- what the call needs from ``/tmp`` stays visible, read-only: the directories on ``PATH``,
  the Python running us and its ``sys.path``, the prompt file;
- a new PID namespace (``--unshare-pid``): when the agent's own process exits, every process
  it started is killed with it, daemons (``setsid``) included; ``--die-with-parent`` ends it
  when pytest dies; ``--new-session`` detaches it from the terminal;
- no way to start a process outside: the container engines' sockets and the system bus
  are masked, the user's runtime directory (``/run/user/UID``: the session bus that
  ``systemd-run --user`` uses, ssh and gpg agents) is hidden, the variables that point at
  them unset (:data:`MASKED_SOCKETS`, :data:`MASKED_ENV`); a re-audit whose tests run in a
  container (``--orchestrate-exec``) keeps the engine's socket, since only our replay runs
  on this side;
- read-only too inside the tree: the ``.git`` of nested repositories and gap closure's
  session files (``protected``);
- the network is kept: agents call their APIs.

``--orchestrate-sandbox=auto`` (the default) uses bwrap when a probe (one ``bwrap ... true``,
once per process) shows it works, and otherwise runs unsandboxed with a warning in the
terminal and the report; ``bwrap`` requires it (a usage error when it does not work);
``none`` turns it off. Without a sandbox an agent runs in its own process group, killed
when its call ends; a process that leaves the group (``setsid``) escapes that, which is the
documented limit of running without bwrap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

Mode = Literal["auto", "bwrap", "none"]
#: Environment variable of more writable paths (``os.pathsep``-separated), beside the ini
#: setting ``orchestrate_sandbox_writable``.
WRITABLE_ENV = "PYTEST_ORCHESTRATOR_SANDBOX_WRITABLE"
#: Sockets a sandboxed call may not reach (each made an empty file for it): the container
#: engines (root on the machine) and the system bus. The user's own runtime directory
#: (``/run/user/UID``: the session bus, ssh and gpg agents) is hidden whole.
MASKED_SOCKETS = (
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/dbus/system_bus_socket",
)
#: Variables that point a call at those sockets, unset in the sandbox.
MASKED_ENV = ("DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK", "DOCKER_HOST", "CONTAINER_HOST")
#: Seconds the probe may take.
PROBE_TIMEOUT = 10
#: State each CLI keeps under ``$HOME`` (made writable in the sandbox; directories are
#: created when missing, as the CLI would on its first run).
STATE_PATHS: dict[str, tuple[str, ...]] = {
    "claude": (".claude/", ".claude.json", ".claude.json.backup", ".config/claude/"),
    "codex": (".codex/",),
    "gemini": (".gemini/",),
    # ~/.cache/copilot: the npm package unpacks the CLI there on its first run of a version
    # and exits 1 ("Failed to extract bundled package") when it cannot
    "copilot": (".copilot/", ".config/github-copilot/", ".cache/copilot/"),
    "aider": (".aider/",),
    "command": (),
}
#: Where the sandbox hides what was there: paths under it are bound back read-only when a
#: call needs them.
PRIVATE_TMP = Path("/tmp")  # noqa: S108 - the path we mount over, not one we write to


class SandboxUnavailable(Exception):
    """``--orchestrate-sandbox=bwrap`` was asked for and bwrap does not work here."""


@lru_cache(maxsize=4)
def probe(bwrap: str | None) -> str | None:
    """Why bwrap cannot sandbox here (one line), or None when it works: runs ``bwrap
    --ro-bind / / --dev /dev --proc /proc --unshare-pid true`` once per process."""
    if bwrap is None:
        return "bwrap (bubblewrap) is not installed; install it (Debian: apt install bubblewrap)"
    argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    argv += ["--unshare-pid", "--die-with-parent", "true"]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run ({exc})"
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = message[-1] if message else f"exit {done.returncode}"
        return (
            f"bwrap does not work here ({detail}); user namespaces may be off "
            "(sysctl kernel.unprivileged_userns_clone=1) or the container forbids them"
        )
    return None


def _under(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Sandbox:
    """How a call is contained.

    :ivar kind: ``bwrap`` or ``none``.
    :ivar reason: with ``none`` under ``auto``, why bwrap was not used (warned about).
    :ivar program: bwrap's path.
    :ivar writable: extra writable paths (``orchestrate_sandbox_writable``).
    """

    kind: Literal["bwrap", "none"]
    reason: str | None = None
    program: str | None = None
    writable: tuple[Path, ...] = ()

    @classmethod
    def choose(cls, mode: Mode, writable: Iterable[Path] = ()) -> Sandbox:
        """The sandbox of ``mode``.

        :raises SandboxUnavailable: ``bwrap`` asked for and it does not work here.
        """
        extra = tuple(Path(p) for p in writable)
        if mode == "none":
            return cls("none", "turned off (--orchestrate-sandbox=none)", writable=extra)
        if sys.platform != "linux":
            why = f"bwrap needs Linux, this is {sys.platform}"
        else:
            program = shutil.which("bwrap")
            why = probe(program)
            if why is None:
                return cls("bwrap", program=program, writable=extra)
        if mode == "bwrap":
            raise SandboxUnavailable(why)
        return cls("none", why, writable=extra)

    @property
    def warning(self) -> str | None:
        """The one-line warning of an unsandboxed call under ``auto``; None otherwise."""
        if self.kind == "bwrap" or self.reason is None or self.reason.startswith("turned off"):
            return None
        return (
            f"agents run without a sandbox: {self.reason}; give --orchestrate-sandbox=none "
            "to run them so without this warning"
        )

    def wrap(
        self,
        argv: Sequence[str],
        *,
        tree: Path,
        cwd: Path,
        edit: bool = True,
        home_state: Iterable[str] = (),
        readable: Iterable[Path] = (),
        writable: Iterable[Path] = (),
        protected: Iterable[Path] = (),
        env: dict[str, str] | None = None,
        sockets: bool = False,
    ) -> list[str]:
        """``argv`` to run in the sandbox (unchanged without one).

        :param tree: the working tree (its top directory): writable when ``edit``.
        :param cwd: the directory to start in.
        :param home_state: paths relative to ``$HOME`` to make writable (a trailing ``/``
            marks a directory, created when missing).
        :param readable: more paths to keep visible read-only (a prompt file's directory).
        :param writable: more paths to make writable (a re-audit's report directory).
        :param protected: paths inside the tree to keep read-only.
        :param env: the environment the call gets (its ``PATH``, ``HOME`` are read).
        :param sockets: keep the container engines' sockets reachable (a re-audit through
            an exec prefix).
        """
        if self.kind != "bwrap" or self.program is None:
            return list(argv)
        env = dict(os.environ if env is None else env)
        tree = Path(os.path.realpath(tree))
        args = [self.program, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        args += ["--tmpfs", str(PRIVATE_TMP)]
        hidden: list[Path] = []
        for entry in env.get("PATH", "").split(os.pathsep):
            if entry:
                hidden.append(Path(entry))
        hidden += [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent]
        hidden += [Path(p) for p in sys.path if p]
        if argv and os.sep in argv[0]:
            hidden.append(Path(argv[0]).parent)
        hidden += [Path(p) for p in readable]
        seen: set[str] = set()
        for path in hidden:
            real = Path(os.path.realpath(path))
            if (
                _under(real, PRIVATE_TMP)
                and not _under(real, tree)
                and real.exists()
                and str(real) not in seen
            ):
                seen.add(str(real))
                args += ["--ro-bind", str(real), str(real)]
        args += ["--bind" if edit else "--ro-bind", str(tree), str(tree)]
        git = tree / ".git"
        if git.is_dir() and not git.is_symlink():
            args += ["--ro-bind", str(git), str(git)]
        prefix = Path(os.path.realpath(sys.prefix))
        if _under(prefix, tree):
            args += ["--ro-bind", str(prefix), str(prefix)]
        for path in protected:
            real = Path(os.path.realpath(path))
            if _under(real, tree) and real.exists():
                args += ["--ro-bind", str(real), str(real)]
        if not sockets:
            runtime = Path("/run/user")
            if runtime.is_dir():
                args += ["--tmpfs", str(runtime)]
            # one bind per real socket: /var/run is often a link to /run, and bwrap cannot
            # mount through a link it has already mounted over
            for socket in dict.fromkeys(os.path.realpath(s) for s in MASKED_SOCKETS):
                if os.path.exists(socket):
                    args += ["--ro-bind", "/dev/null", socket]
            for name in MASKED_ENV:
                args += ["--unsetenv", name]
        home = Path(env.get("HOME") or Path.home())
        for rel in home_state:
            path = home / rel.rstrip("/")
            if rel.endswith("/") and not path.exists():
                try:
                    path.mkdir(parents=True, mode=0o700)
                except OSError:
                    continue
            args += ["--bind-try", str(path), str(path)]
        for path in [*self.writable, *writable]:
            real = Path(os.path.realpath(path))
            if real.exists():
                args += ["--bind", str(real), str(real)]
        args += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"]
        args += ["--setenv", "TMPDIR", str(PRIVATE_TMP), "--chdir", str(cwd), "--", *argv]
        return args
