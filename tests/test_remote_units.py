"""Pure pieces of a remote run: the exec prefix, path maps, the exec command, the bundle."""

from __future__ import annotations

import base64
import json
import os
import platform
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import pytest

from pytest_orchestrator.remote import runner
from pytest_orchestrator.remote.bootstrap import BEGIN, END, PROTOCOL
from pytest_orchestrator.remote.pathmap import PathMap, PathMapping
from pytest_orchestrator.remote.prefix import ExecPrefix, redact
from pytest_orchestrator.remote.runner import Bundle, ExecCommand, bootstrap_source, decode_bundle

# --------------------------------------------------------------------------- ExecPrefix.parse


@pytest.mark.parametrize(
    ("text", "kind", "target", "argv", "tag"),
    [
        (
            "docker compose exec -T odoo",
            "compose",
            "odoo",
            ["docker", "compose", "exec", "-T", "odoo"],
            "odoo",
        ),
        (
            "docker compose -f dc.yml -p proj exec -u root -e A=1 odoo",
            "compose",
            "odoo",
            [
                "docker",
                "compose",
                "-f",
                "dc.yml",
                "-p",
                "proj",
                "exec",
                "-T",
                "-u",
                "root",
                "-e",
                "A=1",
                "odoo",
            ],
            "odoo",
        ),
        (
            "docker-compose exec web",
            "compose-v1",
            "web",
            ["docker-compose", "exec", "-T", "web"],
            "web",
        ),
        (
            "docker-compose exec --no-TTY web",
            "compose-v1",
            "web",
            ["docker-compose", "exec", "--no-TTY", "web"],
            "web",
        ),
        (
            "podman exec -w /src ctr",
            "podman",
            "ctr",
            ["podman", "exec", "-w", "/src", "ctr"],
            "ctr",
        ),
        (
            "docker exec -i --env X=1 mycontainer",
            "docker",
            "mycontainer",
            ["docker", "exec", "-i", "--env", "X=1", "mycontainer"],
            "mycontainer",
        ),
        (
            "kubectl exec -i -n ns -c app mypod --",
            "kubectl",
            "mypod",
            ["kubectl", "exec", "-i", "-n", "ns", "-c", "app", "mypod", "--"],
            "mypod",
        ),
        (
            "kubectl exec -i deploy/web",
            "kubectl",
            "deploy/web",
            ["kubectl", "exec", "-i", "deploy/web", "--"],
            "web",
        ),
        (
            "ssh -p 2222 -i key.pem user@host",
            "ssh",
            "user@host",
            ["ssh", "-p", "2222", "-i", "key.pem", "user@host"],
            "user@host",
        ),
        ("env -C /x", "other", None, ["env", "-C", "/x"], "remote"),
    ],
)
def test_parse_finds_kind_target_and_completes_argv(
    text: str, kind: str, target: str | None, argv: list[str], tag: str
) -> None:
    prefix = ExecPrefix.parse(text)
    assert prefix.kind == kind
    assert prefix.target == target
    assert prefix.argv == tuple(argv)
    assert prefix.tag == tag


def test_parse_accepts_an_argv_list_without_splitting_it() -> None:
    prefix = ExecPrefix.parse(["docker", "compose", "--project-directory", "/a b", "exec", "odoo"])
    assert prefix.kind == "compose"
    assert prefix.target == "odoo"
    assert prefix.argv == ("docker", "compose", "--project-directory", "/a b", "exec", "-T", "odoo")
    assert ExecPrefix.parse(("ssh", "host")).target == "host"


@pytest.mark.parametrize("text", ["", "   ", []])
def test_parse_rejects_an_empty_prefix(text: str | list[str]) -> None:
    with pytest.raises(ValueError, match=r"the exec prefix is empty; give e\.g\. 'docker compose"):
        ExecPrefix.parse(text)


def test_parse_rejects_unbalanced_quotes_naming_the_text() -> None:
    with pytest.raises(ValueError, match=r"cannot split .*docker exec 'ctr.* No closing quotation"):
        ExecPrefix.parse("docker exec 'ctr")


# --------------------------------------------------------------------------- command()

HOSTILE = ["python3", "-c", "print('a b')", 'say "hi"', "$(rm -rf /)", "; echo pwned", "*", ""]


@pytest.mark.parametrize(
    "text", ["docker compose exec -T odoo", "docker exec ctr", "podman exec ctr", "env -C /x"]
)
def test_command_appends_remote_argv_verbatim(text: str) -> None:
    prefix = ExecPrefix.parse(text)
    assert prefix.command(HOSTILE) == [*prefix.argv, *HOSTILE]


def test_command_for_kubectl_follows_the_double_dash() -> None:
    prefix = ExecPrefix.parse("kubectl exec -i deploy/web")
    assert prefix.command(["python3", "-V"]) == [
        "kubectl",
        "exec",
        "-i",
        "deploy/web",
        "--",
        "python3",
        "-V",
    ]


def test_command_for_ssh_is_one_quoted_argument_that_splits_back_exactly() -> None:
    prefix = ExecPrefix.parse("ssh -p 2222 user@host")
    argv = prefix.command(HOSTILE)
    assert argv[:-1] == ["ssh", "-p", "2222", "user@host"]
    assert len(argv) == 5
    assert shlex.split(argv[-1]) == HOSTILE
    # The remote shell would see exactly these words, never a command substitution.
    assert "'$(rm -rf /)'" in argv[-1]


# --------------------------------------------------------------------------- redacted/display


def test_redacted_hides_a_token_given_with_equals() -> None:
    prefix = ExecPrefix.parse("kubectl --token=abc exec pod --")
    assert prefix.redacted() == ["kubectl", "--token=***", "exec", "pod", "--"]
    assert "abc" not in prefix.display()
    assert prefix.display() == "kubectl '--token=***' exec pod --"
    assert prefix.argv[1] == "--token=abc"  # the real argv keeps it
    assert prefix.target == "pod"


def test_redacted_hides_a_token_given_as_the_next_argument() -> None:
    prefix = ExecPrefix.parse("kubectl --token abc exec pod --")
    assert prefix.redacted() == ["kubectl", "--token", "***", "exec", "pod", "--"]
    assert "abc" not in prefix.display()
    assert prefix.target == "pod"


def test_redacted_hides_secret_environment_values() -> None:
    prefix = ExecPrefix.parse(
        "docker -H tcp://admin:s3cret@h exec -e DB_PASSWORD=hunter2 -e URL=pg://u:pw@db "
        "--env=PGPASSWORD=x2 ctr"
    )
    assert prefix.redacted() == [
        "docker",
        "-H",
        "tcp://***@h",
        "exec",
        "-e",
        "DB_PASSWORD=***",
        "-e",
        "URL=***",
        "--env=PGPASSWORD=***",
        "ctr",
    ]
    for secret in ("hunter2", "s3cret", "pw@", "x2"):
        assert secret not in prefix.display()
    assert redact(["sshpass", "-p", "pw", "ssh", "-p", "22", "h"]) == [
        "sshpass",
        "-p",
        "***",
        "ssh",
        "-p",
        "22",
        "h",
    ]
    assert redact(["env", "API_TOKEN=abc", "python3"]) == ["env", "API_TOKEN=***", "python3"]


@pytest.mark.parametrize(
    "text", ["ssh -o IdentityFile=k host", "docker compose --env-file .env exec -T x"]
)
def test_redacted_keeps_non_secret_options(text: str) -> None:
    prefix = ExecPrefix.parse(text)
    assert prefix.redacted() == shlex.split(text)
    assert prefix.display() == text


# --------------------------------------------------------------------------- start_hint


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (
            "docker compose -f dc.yml -p proj exec odoo",
            "docker compose -f dc.yml -p proj up -d odoo",
        ),
        ("docker compose exec -T odoo", "docker compose up -d odoo"),
        ("docker-compose exec web", "docker-compose up -d web"),
        ("docker-compose -f 'my dc.yml' exec web", "docker-compose -f 'my dc.yml' up -d web"),
        ("docker exec -i ctr", "docker start ctr"),
        ("podman exec ctr", "podman start ctr"),
    ],
)
def test_start_hint(text: str, hint: str) -> None:
    assert ExecPrefix.parse(text).start_hint() == hint


# --------------------------------------------------------------------------- services


def test_services_argv_for_compose_v2_keeps_the_global_options() -> None:
    prefix = ExecPrefix.parse("docker compose -f dc.yml -p proj exec -u root odoo")
    base = ["docker", "compose", "-f", "dc.yml", "-p", "proj"]
    # all services come from the model: v2's ``ps --services`` lists running ones only
    assert prefix.services_argv(running=False) == [*base, "config", "--services"]
    assert prefix.services_argv(running=True) == [
        *base,
        "ps",
        "--services",
        "--filter",
        "status=running",
    ]


def test_services_argv_for_compose_v1() -> None:
    prefix = ExecPrefix.parse("docker-compose -p proj exec web")
    assert prefix.services_argv(running=False) == [
        "docker-compose",
        "-p",
        "proj",
        "config",
        "--services",
    ]
    assert prefix.services_argv(running=True) == [
        "docker-compose",
        "-p",
        "proj",
        "ps",
        "--services",
        "--filter",
        "status=running",
    ]


@pytest.mark.parametrize("text", ["docker exec ctr", "kubectl exec pod", "ssh host", "env"])
def test_services_argv_is_none_outside_compose(text: str) -> None:
    prefix = ExecPrefix.parse(text)
    assert prefix.services_argv(running=False) is None
    assert prefix.services_argv(running=True) is None


def test_diagnose_services() -> None:
    prefix = ExecPrefix.parse("docker-compose exec web")
    missing = prefix.diagnose_services("db\nwebapp\n", "db\n")
    assert missing == "compose has no service 'web'; check the service name in the compose file"
    stopped = prefix.diagnose_services("db\nweb\n", "db\n")
    assert stopped == (
        "compose service 'web' is not running; start it with 'docker-compose up -d web'"
    )
    assert prefix.diagnose_services("db\nweb\n", "web\ndb\n") is None


# --------------------------------------------------------------------------- diagnose

V1_ENGINE_DOWN = """Traceback (most recent call last):
  File "/usr/lib/python3/dist-packages/docker/api/client.py", line 214, in _retrieve_server_version
    return self.version(api_version=False)["ApiVersion"]
requests.exceptions.ConnectionError: ('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/usr/bin/docker-compose", line 33, in <module>
    sys.exit(load_entry_point('docker-compose==1.29.2', 'console_scripts', 'docker-compose')())
  File "/usr/lib/python3/dist-packages/docker/api/client.py", line 221, in _retrieve_server_version
    raise DockerException(
docker.errors.DockerException: Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))
"""  # noqa: E501
CONTAINER_ID = "b9a39ac66f2d48d4bf534ca909ab0495bcd1662c94c813c8582f7cdd8a01b03b"
HINT = "set --orchestrate-exec-command to its Python"


def diagnosis(prefix: str, returncode: int, text: str, interpreter: str = "python3") -> str:
    found = ExecPrefix.parse(prefix).diagnose(returncode, text, interpreter)
    assert found is not None, text
    assert "\n" not in found and "\r" not in found
    return found


def test_diagnose_docker_engine_unreachable() -> None:
    text = (
        "Cannot connect to the Docker daemon at unix:///tmp/nonexistent.sock. "
        "Is the docker daemon running?\n"
    )
    found = diagnosis("docker exec ctr", 1, text)
    assert found.startswith("the Docker engine is not running or not reachable (Cannot connect")
    assert found.endswith("start it (e.g. 'sudo systemctl start docker')")


def test_diagnose_compose_v1_engine_unreachable_from_its_traceback() -> None:
    found = diagnosis("docker-compose exec web", 1, V1_ENGINE_DOWN)
    assert found.startswith(
        "the Docker engine is not running or not reachable (docker.errors.DockerException: "
        "Error while fetching server API version"
    )
    assert "Traceback" not in found
    assert "sudo systemctl start docker" in found


def test_diagnose_stopped_container() -> None:
    text = f"Error response from daemon: Container {CONTAINER_ID} is not running\n"
    found = diagnosis("docker exec -i ctr", 1, text)
    assert found == "docker target 'ctr' is not running; start it with 'docker start ctr'"


@pytest.mark.parametrize(
    "text",
    [
        "Error response from daemon: No such container: nosuchcontainer\n",  # client 28
        "Error: No such container: nosuchcontainer\n",  # client 20.10
    ],
)
def test_diagnose_missing_container(text: str) -> None:
    found = diagnosis("docker exec nosuchcontainer", 1, text)
    assert found == (
        "docker target 'nosuchcontainer' does not exist; check its name ('docker ps -a' lists them)"
    )


@pytest.mark.parametrize(
    ("prefix", "interpreter", "text", "where"),
    [
        (
            "docker exec ctr",
            "python2",
            "OCI runtime exec failed: exec failed: unable to start container process: exec: "
            '"python2": executable file not found in $PATH: unknown\n',
            "docker target 'ctr'",
        ),
        (
            "docker-compose exec web",
            "/usr/bin/python2",
            "OCI runtime exec failed: exec failed: unable to start container process: exec: "
            '"/usr/bin/python2": stat /usr/bin/python2: no such file or directory: unknown\n',
            "compose-v1 target 'web'",
        ),
    ],
)
def test_diagnose_missing_interpreter_in_a_container(
    prefix: str, interpreter: str, text: str, where: str
) -> None:
    # docker and compose v1 print this on stdout; the caller joins both streams
    found = diagnosis(prefix, 126, "\n" + text, interpreter)
    assert found.startswith(f"no {interpreter!r} in {where}: {HINT}")
    assert "'/venv/bin/python -m pytest'" in found


def test_diagnose_missing_program_behind_env() -> None:
    text = "env: 'nosuchpython': No such file or directory\n"
    found = diagnosis("env -C /x", 127, text, "nosuchpython")
    assert found.startswith(f"no 'nosuchpython' in the exec target: {HINT}")


def test_diagnose_ssh_unreachable() -> None:
    text = "ssh: connect to host example.invalid port 22: Connection refused\n"
    found = diagnosis("ssh example.invalid", 255, text)
    assert found == (
        "ssh could not reach 'example.invalid': "
        "ssh: connect to host example.invalid port 22: Connection refused"
    )


# podman's messages: libpod's ErrCtrStateInvalid ("container state improper") and
# ErrNoSuchCtr ("no such container"), as podman 1.x and podman 2.0 and later print them.
PODMAN_STOPPED = [
    "Error: can only create exec sessions on running containers: container state improper\n",
    "Error: cannot exec into container that is not running: container state improper\n",
]
PODMAN_MISSING = [
    'Error: no container with name or ID "nosuch" found: no such container\n',
    "Error: unable to exec into nosuch: no container with name or ID nosuch found: "
    "no such container\n",
]


@pytest.mark.parametrize("text", PODMAN_STOPPED, ids=["podman-2+", "podman-1"])
@pytest.mark.parametrize("returncode", [125, 126])
def test_diagnose_podman_stopped_container(text: str, returncode: int) -> None:
    # 126 is also a missing interpreter's status: the message decides, not the status
    found = diagnosis("podman exec -w /src web", returncode, text)
    assert found == "podman target 'web' is not running; start it with 'podman start web'"


@pytest.mark.parametrize("text", PODMAN_MISSING, ids=["podman-4+", "podman-1"])
def test_diagnose_podman_missing_container(text: str) -> None:
    found = diagnosis("podman exec nosuch", 125, text)
    assert found == (
        "podman target 'nosuch' does not exist; check its name ('podman ps -a' lists them)"
    )


def test_diagnose_podman_compose_stopped_service() -> None:
    # podman-compose runs 'podman exec PROJECT_SERVICE_1 ...' and passes podman's error on
    found = diagnosis("podman-compose -f dc.yml exec web", 125, PODMAN_STOPPED[0])
    assert found == (
        "compose-v1 target 'web' is not running; start it with 'podman-compose -f dc.yml up -d web'"
    )


# kubectl 1.32 against an API server: the pod is missing, or its phase is Succeeded/Failed
# (kubectl refuses to exec before it contacts the container).
KUBECTL_DISCOVERY_NOISE = (
    'E1122 04:26:44.953131   27633 memcache.go:265] "Unhandled Error" err="couldn\'t get '
    'current server API group list: the server could not find the requested resource"\n'
)


@pytest.mark.parametrize(
    ("prefix", "text", "expected"),
    [
        (
            "kubectl exec -i web-0 --",
            'Error from server (NotFound): pods "web-0" not found\n',
            "kubectl target 'web-0' does not exist (Error from server (NotFound): pods "
            "\"web-0\" not found); check its name and namespace ('kubectl get pods' lists them)",
        ),
        (
            "kubectl --context prod exec -i -n qa -c app web-0 --",
            KUBECTL_DISCOVERY_NOISE + 'Error from server (NotFound): pods "web-0" not found\n',
            "kubectl target 'web-0' does not exist (Error from server (NotFound): pods "
            '"web-0" not found); check its name and namespace (\'kubectl get pods --context '
            "prod -n qa' lists them)",
        ),
        (
            "kubectl exec -i --namespace=qa deploy/web",
            'Error from server (NotFound): deployments.apps "web" not found\n',
            "kubectl target 'deploy/web' does not exist (Error from server (NotFound): "
            'deployments.apps "web" not found); check its name and namespace (\'kubectl get '
            "deploy --namespace=qa' lists them)",
        ),
        (
            "kubectl exec -i -nqa web-0",
            'Error from server (NotFound): namespaces "qa" not found\n',
            "kubectl namespace 'qa' does not exist (Error from server (NotFound): namespaces "
            "\"qa\" not found); check the prefix's -n/--namespace ('kubectl get namespaces "
            "-nqa' lists them)",
        ),
    ],
    ids=["pod", "pod-in-namespace", "deployment", "namespace"],
)
def test_diagnose_kubectl_missing_pod(prefix: str, text: str, expected: str) -> None:
    assert diagnosis(prefix, 1, text) == expected


def test_diagnose_kubectl_leaves_a_remote_programs_not_found_alone() -> None:
    # the remote program's own output reaches diagnose too when no result came back
    text = 'Traceback (most recent call last):\nKeyError: "setting" not found in config\n'
    prefix = ExecPrefix.parse("kubectl exec -i web-0 --")
    assert prefix.diagnose(1, text, "python3") is None


def test_diagnose_kubectl_hint_hides_credentials() -> None:
    prefix = "kubectl --server=https://admin:hunter2@k8s.example:6443 --token abc exec web-0"
    found = diagnosis(prefix, 1, 'Error from server (NotFound): pods "web-0" not found\n')
    # the cluster is named, its credentials are not (the hint is shell-quoted)
    assert found.endswith("('kubectl get pods '--server=https://***@k8s.example:6443'' lists them)")
    assert "hunter2" not in found and "abc" not in found


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_diagnose_kubectl_completed_pod(phase: str) -> None:
    text = f"error: cannot exec into a container in a completed pod; current phase is {phase}\n"
    found = diagnosis("kubectl exec -i -n batch job-x-4kq --", 1, text)
    assert found == (
        f"kubectl pod 'job-x-4kq' has completed (phase {phase}), so nothing can run in it; "
        "exec into a running pod ('kubectl get pods -n batch' lists the pods and their status)"
    )


@pytest.mark.parametrize(
    "text",
    [
        # API discovery failing is not a missing pod
        KUBECTL_DISCOVERY_NOISE
        + "Error from server (NotFound): the server could not find the requested resource\n",
        "error: unable to upgrade connection: Forbidden\n",
    ],
)
def test_diagnose_kubectl_leaves_other_failures_alone(text: str) -> None:
    assert ExecPrefix.parse("kubectl exec -i web-0").diagnose(1, text, "python3") is None


@pytest.mark.parametrize(
    "prefix", ["docker exec ctr", "docker-compose exec web", "ssh host", "podman exec ctr"]
)
def test_diagnose_leaves_unrelated_failures_alone(prefix: str) -> None:
    assert ExecPrefix.parse(prefix).diagnose(1, "something else broke\n", "python3") is None


# --------------------------------------------------------------------------- path maps


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/srv", "is not REMOTE=LOCAL"),
        ("=addons", "is not REMOTE=LOCAL"),
        ("/srv=", "is not REMOTE=LOCAL"),
        ("srv/app=.", "the container path 'srv/app' must be absolute"),
    ],
)
def test_path_mapping_parse_errors(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        PathMapping.parse(text, tmp_path)


def test_path_mapping_parse_normalises_both_sides(tmp_path: Path) -> None:
    mapping = PathMapping.parse("/srv/app/=sub/../addons", tmp_path)
    assert mapping == PathMapping("/srv/app", tmp_path / "addons")
    absolute = tmp_path / "elsewhere"
    assert PathMapping.parse(f"/x={absolute}", Path("/nowhere")).local == absolute


def test_nested_maps_use_the_longest_prefix_both_ways(tmp_path: Path) -> None:
    paths = PathMap(
        [
            PathMapping.parse("/srv=.", tmp_path),
            PathMapping.parse("/srv/addons=vendor/addons", tmp_path),
        ]
    )
    assert paths.to_local("/srv/tests/test_a.py") == tmp_path / "tests" / "test_a.py"
    assert paths.to_local("/srv/addons/mod/x.py") == tmp_path / "vendor" / "addons" / "mod" / "x.py"
    assert paths.to_local("/srv/addons") == tmp_path / "vendor" / "addons"
    assert paths.to_local("/srv/addons2/x.py") == tmp_path / "addons2" / "x.py"
    assert paths.to_local("/srv") == tmp_path
    assert paths.to_local("/srv/./tests/../x.py") == tmp_path / "x.py"
    assert paths.to_local("/srvx/a.py") is None
    assert paths.to_local("/opt/a.py") is None

    assert (
        paths.to_remote(tmp_path / "vendor" / "addons" / "mod" / "x.py") == "/srv/addons/mod/x.py"
    )
    assert paths.to_remote(tmp_path / "tests" / "test_a.py") == "/srv/tests/test_a.py"
    assert paths.to_remote(tmp_path / "vendor" / "other.py") == "/srv/vendor/other.py"
    assert paths.to_remote(tmp_path) == "/srv"
    assert paths.to_remote(tmp_path.parent / "outside.py") is None


def test_nested_maps_win_regardless_of_order(tmp_path: Path) -> None:
    paths = PathMap(
        [
            PathMapping.parse("/mnt/extra-addons=addons", tmp_path),
            PathMapping.parse("/mnt=.", tmp_path),
        ]
    )
    assert paths.to_local("/mnt/extra-addons/m/x.py") == tmp_path / "addons" / "m" / "x.py"
    assert paths.to_remote(tmp_path / "addons" / "m" / "x.py") == "/mnt/extra-addons/m/x.py"


def test_root_map_covers_every_absolute_path(tmp_path: Path) -> None:
    paths = PathMap([PathMapping.parse("/=.", tmp_path)])
    assert paths.to_local("/") == tmp_path
    assert paths.to_local("/usr/lib/x.py") == tmp_path / "usr" / "lib" / "x.py"
    assert paths.to_remote(tmp_path / "usr" / "x.py") == "/usr/x.py"
    assert paths.to_remote(tmp_path) == "/"
    assert paths.to_remote(tmp_path.parent) is None


def test_with_default_maps_the_remote_cwd_only_when_no_map_was_given(tmp_path: Path) -> None:
    default = PathMap([]).with_default("/srv/app/", tmp_path)
    assert default.mappings == [PathMapping("/srv/app", tmp_path.resolve())]
    assert default.to_local("/srv/app/tests/t.py") == tmp_path / "tests" / "t.py"
    assert default.to_remote(tmp_path / "tests" / "t.py") == "/srv/app/tests/t.py"

    explicit = PathMap([PathMapping.parse("/mnt=src", tmp_path)])
    kept = explicit.with_default("/srv/app", tmp_path)
    assert kept.mappings == [PathMapping("/mnt", tmp_path / "src")]
    assert kept.to_local("/srv/app/t.py") is None


# --------------------------------------------------------------------------- ExecCommand


@pytest.mark.parametrize(
    ("text", "interpreter", "python_options", "options", "python"),
    [
        ("python -m pytest", ("python",), (), (), "python"),
        (
            "python3 -X utf8 -m pytest -p no:randomly",
            ("python3", "-X", "utf8"),
            ("-X", "utf8"),
            ("-p", "no:randomly"),
            "python3",
        ),
        ("/venv/bin/python -m pytest", ("/venv/bin/python",), (), (), "/venv/bin/python"),
        (  # wrappers before the Python are not Python options
            "sudo -u odoo env PYTHONHASHSEED=0 /usr/bin/python3 -I -m pytest",
            ("sudo", "-u", "odoo", "env", "PYTHONHASHSEED=0", "/usr/bin/python3", "-I"),
            ("-I",),
            (),
            "/usr/bin/python3",
        ),
        ("poetry run python -m pytest", ("poetry", "run", "python"), (), (), "python"),
    ],
)
def test_exec_command_parse(
    text: str,
    interpreter: tuple[str, ...],
    python_options: tuple[str, ...],
    options: tuple[str, ...],
    python: str,
) -> None:
    parsed = ExecCommand.parse(text)
    assert parsed == ExecCommand(interpreter, python_options, options)
    assert parsed.python == python


@pytest.mark.parametrize("text", ["pytest", "python -m coverage run", "", "-m pytest"])
def test_exec_command_parse_rejects_other_commands(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not 'PYTHON -m pytest \[OPTIONS\]'; give e\.g\."):
        ExecCommand.parse(text)


def test_exec_command_parse_rejects_unbalanced_quotes() -> None:
    with pytest.raises(ValueError, match="cannot split"):
        ExecCommand.parse("python -m pytest -k 'a")


# --------------------------------------------------------------------------- bundles


def encode(result: dict[str, Any]) -> str:
    """The bundle as bootstrap.main prints it."""
    blob = base64.b64encode(zlib.compress(json.dumps(result).encode("utf-8"), 6)).decode("ascii")
    lines = [blob[start : start + 76] for start in range(0, len(blob), 76)]
    return "\n".join(["", BEGIN, *lines, END, ""])


BANNER = "Welcome to Ubuntu 24.04 LTS\r\n* Documentation: https://help.ubuntu.com\n\u00e9\n"


def test_decode_bundle_between_noise() -> None:
    result = {"protocol": PROTOCOL, "junit": "<testsuites/>" * 50, "python": "3.12.1"}
    stdout = (BANNER + encode(result) + "Connection to host closed.\n").encode("utf-8")
    assert decode_bundle(stdout) == Bundle.model_validate(result)


@pytest.mark.parametrize(
    "result",
    [
        {"protocol": PROTOCOL, "manifest": {"items": [[1, 2, 3]]}},
        {"protocol": PROTOCOL, "manifest": "oops"},
        {"protocol": PROTOCOL, "junit": 5},
        {"protocol": PROTOCOL, "coverage_data": {"files": {"/a.py": ["a"]}}},
    ],
)
def test_decode_bundle_refuses_malformed_bundles(result: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="the result from the container is malformed"):
        decode_bundle(encode(result).encode())


def test_decode_bundle_refuses_a_decompression_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "MAX_BUNDLE", 1024 * 1024)
    bomb = {"protocol": PROTOCOL, "output_tail": "x" * (4 * 1024 * 1024)}  # 4 MiB -> ~4 KiB
    stdout = encode(bomb).encode()
    assert len(stdout) < 64 * 1024
    with pytest.raises(ValueError, match="larger than 1048576 bytes"):
        decode_bundle(stdout)


def test_decode_bundle_takes_the_last_bundle() -> None:
    first = {"protocol": PROTOCOL, "returncode": 1}
    second = {"protocol": PROTOCOL, "returncode": 2}
    assert decode_bundle((encode(first) + encode(second)).encode()).returncode == 2


def test_decode_bundle_errors_are_distinct() -> None:
    good = encode({"protocol": PROTOCOL})
    cases = {
        "no result came back from the container": BANNER,
        "the result from the container is cut short": good.split(END)[0],
        "the result from the container is damaged": good.replace(BEGIN + "\n", BEGIN + "\n@@"),
        "the result from the container has an unknown format": encode({"protocol": PROTOCOL + 1}),
    }
    messages = set()
    for expected, stdout in cases.items():
        with pytest.raises(ValueError) as info:
            decode_bundle(stdout.encode())
        assert str(info.value).startswith(expected)
        messages.add(str(info.value))
    assert len(messages) == 4


@pytest.mark.parametrize(
    "payload",
    [
        base64.b64encode(b"not zlib").decode(),  # base64 but not compressed
        base64.b64encode(zlib.compress(b"{not json")).decode(),
    ],
)
def test_decode_bundle_rejects_undecodable_payloads(payload: str) -> None:
    with pytest.raises(ValueError, match="the result from the container is damaged"):
        decode_bundle(f"{BEGIN}\n{payload}\n{END}\n".encode())


def test_decode_bundle_rejects_json_that_is_not_an_object() -> None:
    payload = base64.b64encode(zlib.compress(b"[1]")).decode()
    with pytest.raises(ValueError, match="unknown format"):
        decode_bundle(f"{BEGIN}\n{payload}\n{END}\n".encode())


# --------------------------------------------------------------------------- real bootstrap

OPTIONS: dict[str, Any] = {
    "args": [],
    "coverage": None,
    "timeout": 60,
    "python_options": [],
    "pytest_options": [],
}


def run_bootstrap(
    project: Path, scratch: Path, **options: Any
) -> subprocess.CompletedProcess[bytes]:
    """Run the real bootstrap with ``scratch`` as its temporary directory."""
    env = {**os.environ, "TMPDIR": str(scratch)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-c", bootstrap_source(), json.dumps({**OPTIONS, **options})],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )


def make_project(root: Path, source: str) -> Path:
    project = root / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (project / "test_tiny.py").write_text(source, encoding="utf-8")
    return project


def test_real_bootstrap_runs_pytest_and_cleans_up(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        "def test_pass():\n    assert True\n\n\ndef test_fail():\n    assert 1 == 2\n",
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = run_bootstrap(project, scratch)
    assert done.returncode == 0, done.stderr
    stdout = done.stdout.decode("ascii")
    # nothing but the bundle on stdout
    assert stdout.startswith("\n" + BEGIN + "\n")
    assert stdout.endswith(END + "\n")
    bundle = decode_bundle(done.stdout)

    assert bundle.error is None
    assert bundle.returncode == 1
    assert bundle.timed_out is False
    assert bundle.python == platform.python_version()
    assert bundle.cwd == str(project)
    manifest = bundle.manifest
    assert manifest is not None and manifest.items is not None
    assert manifest.rootdir == str(project)
    assert [item[0] for item in manifest.items] == [
        "test_tiny.py::test_pass",
        "test_tiny.py::test_fail",
    ]
    assert manifest.items[0][1:] == ("test_tiny.py", 0, str(project / "test_tiny.py"))
    assert manifest.collect_errors == []
    assert bundle.junit is not None
    cases = {case.get("name"): case for case in ET.fromstring(bundle.junit).iter("testcase")}
    assert set(cases) == {"test_pass", "test_fail"}
    assert cases["test_fail"].find("failure") is not None
    assert cases["test_pass"].find("failure") is None
    assert "1 failed, 1 passed" in bundle.output_tail
    # the work directory (probe, junit, manifest) is gone
    assert list(scratch.glob("pytest-orchestrator-*")) == []


def test_real_bootstrap_enforces_its_timeout(tmp_path: Path) -> None:
    project = make_project(tmp_path, "import time\n\n\ndef test_slow():\n    time.sleep(30)\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = run_bootstrap(project, scratch, timeout=1)
    assert done.returncode == 0, done.stderr
    bundle = decode_bundle(done.stdout)
    assert bundle.timed_out is True
    assert bundle.duration < 20
    assert bundle.returncode != 0
    assert list(scratch.glob("pytest-orchestrator-*")) == []
