"""The exec prefix: the command that runs a command where the code runs.

``--orchestrate-exec="docker compose exec -T odoo"`` is split like a POSIX shell would
(``shlex.split``) and never run through a shell. :class:`ExecPrefix` knows the exec
subcommands of ``docker compose`` (v2 plugin), ``docker-compose`` (v1), ``docker``,
``podman``, ``kubectl`` and ``ssh`` well enough to find the target (service, container,
pod or host), to build the full argv, and to turn their failure messages into one line
that says what to do. Any other prefix is used as given, with the target ``remote``.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Literal

Kind = Literal["compose", "compose-v1", "docker", "podman", "kubectl", "ssh", "other"]

# Options that take a separate value argument, per CLI (the ``--name=value`` form needs none).
_COMPOSE_GLOBAL = {
    "-f",
    "--file",
    "-p",
    "--project-name",
    "--project-directory",
    "--profile",
    "--env-file",
    "--ansi",
    "--progress",
    "--parallel",
    "-H",
    "--host",
    "--context",
    "-c",
    "--config",
    "-l",
    "--log-level",
}
_EXEC_VALUE = {
    "-e",
    "--env",
    "--env-file",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--index",
    "--detach-keys",
}
_KUBECTL_VALUE = {
    "-c",
    "--container",
    "-n",
    "--namespace",
    "--context",
    "--kubeconfig",
    "--cluster",
    "--user",
    "-f",
    "--filename",
    "--pod-running-timeout",
    "-s",
    "--server",
    "--token",
}
#: kubectl options that choose the cluster and namespace a pod is looked up in.
_KUBECTL_SCOPE = {"-n", "--namespace", "--context", "--kubeconfig", "--cluster", "-s", "--server"}
_SSH_VALUE = {f"-{c}" for c in "BbcDEeFIiJLlmOoPpQRSWw"}
_SECRET_OPTION = re.compile(r"token|passw|secret|auth|key", re.IGNORECASE)


def _positional(argv: list[str], start: int, takes_value: set[str]) -> int | None:
    """Index of the first positional argument at or after ``start``, skipping options."""
    index = start
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return index + 1 if index + 1 < len(argv) else None
        if arg.startswith("-") and arg != "-":
            index += 1 if "=" in arg or arg not in takes_value else 2
            continue
        return index
    return None


@dataclass(frozen=True)
class ExecPrefix:
    """A parsed exec prefix.

    :ivar argv: the prefix as given (``("docker", "compose", "exec", "-T", "odoo")``),
        with ``-T`` added to a compose exec that lacks it (no pseudo-terminal: the output
        is data) and ``--`` to a kubectl exec that lacks it.
    :ivar kind: which CLI it is.
    :ivar target: the service, container, pod or host name; None when not found.
    """

    argv: tuple[str, ...]
    kind: Kind
    target: str | None

    @classmethod
    def parse(cls, text: str | list[str] | tuple[str, ...]) -> ExecPrefix:
        """Parse ``text`` (a shell-like string or an argv list).

        :raises ValueError: empty, or unbalanced quotes (message says which).
        """
        if isinstance(text, str):
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                raise ValueError(f"cannot split {text!r} into arguments: {exc}") from None
        else:
            argv = list(text)
        if not argv:
            raise ValueError("the exec prefix is empty; give e.g. 'docker compose exec -T SERVICE'")
        program = os.path.basename(argv[0])
        kind: Kind = "other"
        target: str | None = None
        if program in ("docker", "podman") and "compose" in argv[1:]:
            sub = argv.index("compose")
            if "exec" in argv[sub + 1 :]:
                kind = "compose"
                argv, target = cls._compose(argv, argv.index("exec", sub))
        elif program in ("docker-compose", "podman-compose") and "exec" in argv[1:]:
            kind = "compose-v1"
            argv, target = cls._compose(argv, argv.index("exec"))
        elif program in ("docker", "podman") and "exec" in argv[1:]:
            kind = "docker" if program == "docker" else "podman"
            position = _positional(argv, argv.index("exec") + 1, _EXEC_VALUE)
            target = argv[position] if position is not None else None
        elif program == "kubectl" and "exec" in argv[1:]:
            kind = "kubectl"
            position = _positional(argv, argv.index("exec") + 1, _KUBECTL_VALUE)
            target = argv[position] if position is not None else None
            if "--" not in argv:
                argv = [*argv, "--"]
        elif program == "ssh":
            kind = "ssh"
            position = _positional(argv, 1, _SSH_VALUE)
            target = argv[position] if position is not None else None
        return cls(tuple(argv), kind, target)

    @staticmethod
    def _compose(argv: list[str], exec_index: int) -> tuple[list[str], str | None]:
        options = argv[exec_index + 1 :]
        if not any(o in ("-T", "--no-TTY", "--no-tty") for o in options):
            argv = [*argv[: exec_index + 1], "-T", *options]
        position = _positional(argv, exec_index + 1, _EXEC_VALUE)
        return argv, argv[position] if position is not None else None

    @property
    def tag(self) -> str:
        """Short name of where the tests ran, used in node ids (``odoo:tests/...``)."""
        if not self.target:
            return "remote"
        return re.sub(r"[^\w.@-]+", "-", self.target.split("/")[-1]) or "remote"

    def command(self, remote_argv: list[str]) -> list[str]:
        """The full argv: the prefix, then ``remote_argv``.

        ssh joins its arguments into one string for the remote shell, so for ssh each
        remote argument is quoted with ``shlex.quote`` (no word splitting, no expansion).
        """
        if self.kind == "ssh":
            return [*self.argv, shlex.join(remote_argv)]
        return [*self.argv, *remote_argv]

    def redacted(self) -> list[str]:
        """The prefix with secrets hidden (see :func:`redact`)."""
        return redact(self.argv)

    def display(self) -> str:
        """The redacted prefix as one shell-quoted line."""
        return shlex.join(self.redacted())

    def start_hint(self) -> str:
        """The command that starts the target, for error messages."""
        target = self.target or "SERVICE"
        compose = {"compose": f"{self.argv[0]} compose", "compose-v1": self.argv[0]}
        if self.kind in compose:
            sub = self.argv.index("exec")
            base = shlex.join(
                [a for a in self.argv[1:sub] if a != "compose"]
                if self.kind == "compose"
                else list(self.argv[1:sub])
            )
            return " ".join(p for p in (compose[self.kind], base, "up -d", target) if p)
        if self.kind in ("docker", "podman"):
            return f"{self.argv[0]} start {target}"
        return f"start {target}"

    def services_argv(self, running: bool) -> list[str] | None:
        """For compose: the argv listing its services (only running ones if ``running``).

        docker-compose v1 prints nothing when ``exec`` finds no running container or no
        such service, so a failed exec is explained by asking ``config`` and ``ps``. All
        services come from ``config --services``: compose v2's ``ps --services`` lists only
        services that have running containers.
        """
        if self.kind not in ("compose", "compose-v1"):
            return None
        base = list(self.argv[: self.argv.index("exec")])
        if not running:
            return [*base, "config", "--services"]
        return [*base, "ps", "--services", "--filter", "status=running"]

    def diagnose_services(self, services: str, running: str) -> str | None:
        """One line from the outputs of :meth:`services_argv` (all, then running)."""
        if self.target is None:
            return None
        if self.target not in services.split():
            return (
                f"compose has no service {self.target!r}; check the service name in the "
                "compose file"
            )
        if self.target not in running.split():
            return (
                f"compose service {self.target!r} is not running; "
                f"start it with '{self.start_hint()}'"
            )
        return None

    def diagnose(self, returncode: int, stderr: str, interpreter: str) -> str | None:
        """One line saying why the exec failed before our program ran, or None.

        ``stderr`` is what the exec client printed (both streams: docker prints
        "OCI runtime exec failed" on stdout). Recognises the messages of the Docker
        engine, docker compose v1 and v2, podman, kubectl and ssh for: engine not
        running, target not running or missing, and interpreter not found.
        """
        text = stderr.strip()
        low = text.lower()
        where = f"{self.kind} target {self.target!r}" if self.target else "the exec target"
        if any(
            s in low
            for s in (
                "cannot connect to the docker daemon",
                "couldn't connect to docker daemon",
                "is the docker daemon running",
                "error during connect",
                "error while fetching server api version",
            )
        ):
            return (
                "the Docker engine is not running or not reachable "
                f"({_last_line(text)}); start it (e.g. 'sudo systemctl start docker')"
            )
        if self.kind == "kubectl":
            found = self._diagnose_kubectl(text, low)
            if found is not None:
                return found
        if "no such service" in low:
            return (
                f"compose has no service {self.target!r}; check the service name in the "
                "compose file"
            )
        if "no such container" in low or ("not found" in low and "pods" in low):
            if self.kind in ("podman", "docker"):  # podman: no container with name or ID...
                lister = f"{self.kind} ps -a"
                return f"{where} does not exist; check its name ('{lister}' lists them)"
            return f"{where} does not exist; check its name"
        if any(
            s in low
            for s in (
                "is not running",  # docker; podman before 2.0: container that is not running
                "no container found",  # docker compose v2
                "can only create exec sessions on running containers",  # podman 2.0 and later
                "container state improper",  # podman's error class for the above
            )
        ):
            return f"{where} is not running; start it with '{self.start_hint()}'"
        interpreter_name = os.path.basename(interpreter)
        if (returncode in (126, 127) or "executable file not found" in low) and (
            interpreter_name.lower() in low or "not found" in low
        ):
            return (
                f"no {interpreter!r} in {where}: set --orchestrate-exec-command to its "
                "Python, e.g. 'python3 -m pytest' or '/venv/bin/python -m pytest'"
            )
        if self.kind == "ssh" and returncode == 255:
            return f"ssh could not reach {self.target!r}: {_last_line(text)}"
        return None

    def _diagnose_kubectl(self, text: str, low: str) -> str | None:
        """kubectl's messages for a pod that has completed or does not exist."""
        target = self.target or "POD"
        # error: cannot exec into a container in a completed pod; current phase is Succeeded
        if "cannot exec into a container in a completed pod" in low:
            phase = re.search(r"current phase is (\w+)", text)
            state = f" (phase {phase.group(1)})" if phase else ""
            return (
                f"kubectl pod {target!r} has completed{state}, so nothing can run in it; "
                f"exec into a running pod ('{self._kubectl_get('pods')}' lists the pods "
                "and their status)"
            )
        # Error from server (NotFound): pods "web-0" not found
        # Error from server (NotFound): deployments.apps "web" not found
        # Error from server (NotFound): namespaces "qa" not found
        # Only the API server's own line: a remote program's output may say "x" not found.
        missing = re.search(
            r'^Error from server \(NotFound\): (\S+) "([^"]*)" not found.*$', text, re.MULTILINE
        )
        if missing is None:
            return None
        line = missing.group(0).strip()[:300]
        if missing.group(1) == "namespaces":
            return (
                f"kubectl namespace {missing.group(2)!r} does not exist ({line}); check the "
                f"prefix's -n/--namespace ('{self._kubectl_get('namespaces')}' lists them)"
            )
        kind = target.split("/", 1)[0] if "/" in target else "pods"
        return (
            f"kubectl target {target!r} does not exist ({line}); "
            f"check its name and namespace ('{self._kubectl_get(kind)}' lists them)"
        )

    def _kubectl_get(self, kind: str) -> str:
        """``kubectl get KIND`` with the prefix's options that choose the cluster and the
        namespace (never its credentials: ``--token`` stays out, URL credentials are hidden)."""
        scope: list[str] = []
        end = self.argv.index("--") if "--" in self.argv else len(self.argv)
        index = 1
        while index < end:
            arg = self.argv[index]
            if arg in _KUBECTL_SCOPE and index + 1 < end:  # -n qa, --context prod
                scope += [arg, self.argv[index + 1]]
                index += 1
            elif arg.partition("=")[0] in _KUBECTL_SCOPE:  # --namespace=qa
                scope.append(arg)
            elif arg.startswith("-n") and not arg.startswith("--") and len(arg) > 2:
                scope.append(arg)  # -nqa
            index += 1
        return shlex.join(redact([self.argv[0], "get", kind, *scope]))


_ENV_OPTIONS = {"-e", "--env"}
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(argv: list[str] | tuple[str, ...]) -> list[str]:
    """``argv`` with secrets hidden, for logs and reports.

    Hidden: every value of ``-e``/``--env`` (``NAME=***``); values of options and of
    ``NAME=VALUE`` words whose name says token, password, secret, auth or key; the
    credentials of URLs (``tcp://***@host``); the password of ``sshpass -p``.
    """
    out: list[str] = []
    hide_next = env_next = False
    for index, arg in enumerate(argv):
        arg = _URL_CREDENTIALS.sub("***@", arg)
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, sep, _ = arg.partition("=")
        if env_next:
            out.append(f"{name}=***" if sep else arg)
            env_next = False
            continue
        if arg in _ENV_OPTIONS:
            out.append(arg)
            env_next = True
            continue
        if sep and name in _ENV_OPTIONS:
            variable = arg[len(name) + 1 :].partition("=")[0]
            out.append(f"{name}={variable}=***")
            continue
        if arg == "-p" and index and os.path.basename(argv[index - 1]) == "sshpass":
            out.append(arg)
            hide_next = True
            continue
        if sep and _SECRET_OPTION.search(name):
            out.append(f"{name}=***")  # --token=x, env API_TOKEN=x
            continue
        if arg.startswith("-") and _SECRET_OPTION.search(name):
            out.append(arg)
            hide_next = True
            continue
        out.append(arg)
    return out


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"
