"""The agent adapters against the real CLIs, without credentials.

The CLIs are pinned to exact versions (``tests/agent_clis/package.json`` and its lock for
claude, codex, gemini and copilot; the ``agent-clis`` extra of ``pyproject.toml`` for aider)
and installed by ``tests/agent_clis/install.sh`` (aider into a virtual environment of its
own). Each test runs one through :meth:`Adapter.run` on a tiny git repository, with ``HOME``
an empty directory and every credential variable removed, so the CLI can only answer "not
authenticated". That checks two things at once: the argv we build is accepted (a usage error
would come first), and the CLI's real answer without credentials becomes our ``auth`` error,
with the CLI's own words in the message.

What the pinned versions do without credentials (seen here; no LLM API is reachable):

- claude: prints its JSON result, ``"is_error": true, "subtype": "success", "result": "Not
  logged in · Please run /login"``, exit status 1, at once (no network needed).
- codex: checks nothing locally; it sends the request without an ``Authorization`` header.
  Online, the API answers 401; codex retries five times, then prints ``turn.failed``
  ``unexpected status 401 Unauthorized: ...``, exit status 1. Offline (no DNS) it prints
  ``Reconnecting... waiting for network`` and waits for the network without end (a call
  then ends at the request's timeout). So these tests point its built-in OpenAI provider
  (``openai_base_url`` in ``~/.codex/config.toml``; the argv stays ours) at a stand-in of
  the API on the loopback interface that answers every request as the API answers one
  without a key (401, ``Missing bearer or basic authentication in header``).
- gemini: the error JSON on stderr, ``"Please set an Auth method in your
  ~/.gemini/settings.json or specify one of the following environment variables ..."``,
  exit status 41, at once.
- copilot: ``Error: No authentication information found.`` and how to log in, on stderr,
  exit status 1 (it first unpacks itself into ``~/.cache/copilot``).
- aider, no model named: ``No LLM model was specified and no API keys were provided.``, then
  it offers a browser login to OpenRouter, ``--yes-always`` accepts, and it waits up to 5
  minutes (listening on a localhost port): the adapter stops it there (``auth``). A model
  named: ``litellm.AuthenticationError: ...`` (raised by litellm before any request, e.g.
  ``The api_key client option must be set ...``), exit status 0.

Without the CLIs (or node) these tests skip, unless ``ORCHESTRATOR_REQUIRE_AGENT_CLIS=1``
(set by ``.ci/run``, which installs them) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakes import install_fakes

from pytest_orchestrator.agents.adapters import ADAPTERS
from pytest_orchestrator.agents.base import AgentRequest, AgentResult, AgentSpec
from pytest_orchestrator.agents.sandbox import Sandbox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the CLIs are installed for POSIX")

ROOT = Path(__file__).resolve().parent.parent
CLIS = ROOT / "tests" / "agent_clis"
NODE_BIN = CLIS / "node_modules" / ".bin"
AIDER_VENV = CLIS / "aider-venv"
REQUIRE_AGENT_CLIS = os.environ.get("ORCHESTRATOR_REQUIRE_AGENT_CLIS") == "1"
#: The npm package of each CLI pinned in tests/agent_clis/package.json.
NPM_PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "codex": "@openai/codex",
    "gemini": "@google/gemini-cli",
    "copilot": "@github/copilot",
}
#: Variables that could authenticate a CLI, or point it at other credentials or settings.
CREDENTIALS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "COPILOT_GITHUB_TOKEN",
    "OPENROUTER_API_KEY",
    "DEEPSEEK_API_KEY",
    "VERTEXAI_PROJECT",
    "CODEX_HOME",
)
CREDENTIAL_PREFIXES = (
    "GOOGLE_",  # GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT, GOOGLE_GENAI_USE_*
    "GEMINI_",
    "ANTHROPIC_",
    "CLAUDE_CODE_",
    "OPENAI_",
    "CODEX_",
    "COPILOT_",
    "AIDER_",
    "XDG_",  # the CLIs' state goes under the empty HOME, as for a user without XDG_*
)
#: What a CLI prints when it rejects its command line (claude, codex, gemini, copilot and
#: aider, seen with an unknown option).
USAGE_ERROR = re.compile(
    r"unknown option|unknown argument|unexpected argument|unrecognized argument"
    r"|invalid value|error: argument|\busage:",
    re.IGNORECASE,
)
#: Seconds one call may take (codex, retrying a 401 five times, takes about 13).
TIMEOUT = 120.0


def _cli_missing(name: str) -> str | None:
    """Why the real ``name`` CLI cannot run here, or None."""
    if name == "aider":
        if not (AIDER_VENV / "bin" / "aider").is_file():
            return "aider is not installed in tests/agent_clis/aider-venv"
        return None
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_BIN / name).exists():
        return f"the npm package of {name} is not installed in tests/agent_clis"
    return None


def require_cli(name: str) -> None:
    """Skip unless the real ``name`` CLI is installed; with
    ``ORCHESTRATOR_REQUIRE_AGENT_CLIS=1`` fail instead."""
    reason = _cli_missing(name)
    if reason is None:
        return
    reason += " (bash tests/agent_clis/install.sh)"
    if REQUIRE_AGENT_CLIS:
        pytest.fail(f"ORCHESTRATOR_REQUIRE_AGENT_CLIS=1 but {reason}")
    pytest.skip(reason)


@dataclass
class StandIn:
    """The loopback stand-in of the OpenAI API: every request gets the API's answer to a
    request without a key; ``requests`` holds ``(method, path, Authorization header)``."""

    url: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)


@pytest.fixture
def openai_stand_in() -> Iterator[StandIn]:
    """A stand-in of api.openai.com on 127.0.0.1 (an unused port) for codex."""
    body = json.dumps(
        {
            "error": {
                "message": "Missing bearer or basic authentication in header",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    ).encode()
    seen: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _unauthorized(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _unauthorized

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StandIn(f"http://127.0.0.1:{server.server_address[1]}/v1", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def home() -> Iterator[Path]:
    """An empty home directory, outside /tmp when it can be (/var/tmp): the sandbox hides
    /tmp, and a real home is not there, so what the CLI may write under it is checked."""
    parent = Path("/var/tmp")
    where = str(parent) if parent.is_dir() and os.access(parent, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="orchestrator-home-", dir=where))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A tiny git repository with one commit and no git identity of its own."""
    path = tmp_path / "repo"
    path.mkdir()
    (path / "app.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["init", "-q"], ["add", "app.py"], ["commit", "-q", "-m", "app"]):
        subprocess.run([*git, *argv], cwd=path, check=True, capture_output=True, timeout=60)
    return path


def cli_environment(home: Path, bin_dir: Path) -> dict[str, str]:
    """This process's environment without credentials, ``HOME`` the empty ``home``, and
    the real CLIs first on ``PATH`` (aider alone from its virtual environment, through a
    link in ``bin_dir``: its other programs, ``python`` and ``pip``, stay off ``PATH``)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in CREDENTIALS and not name.startswith(CREDENTIAL_PREFIXES)
    }
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "aider"
    if not link.exists():
        link.symlink_to(AIDER_VENV / "bin" / "aider")
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join([str(NODE_BIN), str(bin_dir), env.get("PATH", os.defpath)])
    return env


@dataclass(frozen=True)
class Case:
    """One real call: the agent entry, the exit status the CLI ends with, and a phrase of
    its real answer that the error message must quote."""

    spec: str
    phrase: str
    exit_status: int | None  # None: stopped by the adapter (a signal)


CASES = [
    Case("claude", "Not logged in", 1),
    Case("claude:claude-sonnet-4.5", "Not logged in", 1),
    Case("codex", "unexpected status 401 Unauthorized", 1),
    Case("codex:gpt-5-codex", "unexpected status 401 Unauthorized", 1),
    Case("gemini", "Please set an Auth method", 41),
    Case("gemini:gemini-2.5-pro", "Please set an Auth method", 41),
    Case("copilot", "No authentication information found", 1),
    Case("copilot:gpt-5", "No authentication information found", 1),
    Case("aider", "No LLM model was specified and no API keys were provided", None),
    Case("aider:gpt-4o", "The api_key client option must be set", 0),
    # aider's (litellm's) spelling: "claude-sonnet-4.5" is no model of aider's, which it
    # answers with litellm.BadRequestError "LLM Provider NOT provided" (nonzero_exit).
    Case("aider:anthropic/claude-sonnet-4-5", "Missing Anthropic API Key", 0),
]
DEFAULTS = [case for case in CASES if ":" not in case.spec]


def run_real(
    case: Case,
    home: Path,
    repo: Path,
    tmp_path: Path,
    stand_in: StandIn,
    *,
    edit: bool = False,
    sandbox: Sandbox | None = None,
) -> AgentResult:
    """``case``'s CLI run for real through :meth:`Adapter.run` (codex pointed at the
    stand-in of its API)."""
    spec = AgentSpec.parse(case.spec)
    require_cli(spec.name)
    if spec.name == "codex":
        (home / ".codex").mkdir(exist_ok=True)
        config = f'openai_base_url = "{stand_in.url}"\n'
        (home / ".codex" / "config.toml").write_text(config, encoding="utf-8")
    request = AgentRequest(
        prompt="Say which function app.py defines. Do not change any file.\n",
        cwd=repo,
        timeout=TIMEOUT,
        edit=edit,
        budget_usd=0.25,  # claude: --max-budget-usd; the others ignore it
        max_turns=3,  # claude: --max-turns
        files=("app.py",),  # aider: --read (ask mode) or a file to edit
    )
    env = cli_environment(home, tmp_path / "bin")
    return ADAPTERS[spec.name](spec).run(request, env, None, sandbox)


def check_auth(result: AgentResult, case: Case, repo: Path, stand_in: StandIn) -> None:
    """The call failed for authentication, in the CLI's own words, not for its argv."""
    assert result.error is not None, result
    message = result.error.message
    assert result.error.kind == "auth", (result.error, result.text)
    assert case.phrase.lower() in message.lower(), message
    assert not USAGE_ERROR.search(f"{message}\n{result.text}"), (message, result.text)
    if case.exit_status is None:
        assert result.exit_status is not None and result.exit_status < 0  # stopped by us
    else:
        assert result.exit_status == case.exit_status, (result.exit_status, message)
    assert result.duration < TIMEOUT / 2
    assert not result.tokens_out
    name = case.spec.partition(":")[0]
    if name == "codex":  # it reached the stand-in, with no key to send
        assert stand_in.requests, "codex sent no request"
        assert {auth for _method, _path, auth in stand_in.requests} == {None}
        assert {path for _method, path, _auth in stand_in.requests} == {"/v1/responses"}
    if name == "aider":  # it wrote no placeholder identity into the repository
        assert "Your Name" not in (repo / ".git" / "config").read_text(encoding="utf-8")
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, timeout=60
    )
    changed = status.stdout.splitlines()
    # Nothing was changed. Left behind: only aider's repo-map cache, which aider (with a
    # model) creates in the repository's top directory, in ask mode too (it has no option
    # to put it elsewhere; in the sandbox, where the tree is read-only, it does without).
    assert [line for line in changed if not line.startswith("?? .aider.tags.cache.")] == []


@pytest.mark.parametrize("case", CASES, ids=[case.spec for case in CASES])
def test_without_credentials_the_real_cli_answers_auth(
    case: Case, home: Path, repo: Path, tmp_path: Path, openai_stand_in: StandIn
) -> None:
    result = run_real(case, home, repo, tmp_path, openai_stand_in)
    check_auth(result, case, repo, openai_stand_in)
    assert result.sandbox == "none"


@pytest.mark.parametrize("case", DEFAULTS, ids=[case.spec for case in DEFAULTS])
def test_the_edit_argv_is_accepted_too(
    case: Case, home: Path, repo: Path, tmp_path: Path, openai_stand_in: StandIn
) -> None:
    result = run_real(case, home, repo, tmp_path, openai_stand_in, edit=True)
    check_auth(result, case, repo, openai_stand_in)


@pytest.mark.usefixtures("bwrap")
@pytest.mark.parametrize("case", DEFAULTS, ids=[case.spec for case in DEFAULTS])
def test_in_the_sandbox_the_real_cli_answers_auth(
    case: Case, home: Path, repo: Path, tmp_path: Path, openai_stand_in: StandIn
) -> None:
    sandbox = Sandbox.choose("bwrap")
    result = run_real(case, home, repo, tmp_path, openai_stand_in, sandbox=sandbox)
    check_auth(result, case, repo, openai_stand_in)
    assert result.sandbox == "bwrap"


def test_aider_waiting_for_a_browser_login_is_stopped_on_the_fake(tmp_path: Path) -> None:
    """The same stop as for the real aider without a model or a key, on the fake (runs
    without the real CLIs)."""
    bin_dir = install_fakes(tmp_path / "bin", ("aider",))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AGENT_")}
    env.update(
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)]),
        FAKE_AGENT_MODE="login_wait",
        FAKE_AGENT_SLEEP="120",
    )
    request = AgentRequest(prompt="Review.", cwd=tmp_path, timeout=60)
    started = time.monotonic()
    result = ADAPTERS["aider"](AgentSpec.parse("aider")).run(request, env)
    assert time.monotonic() - started < 30
    assert result.error is not None and result.error.kind == "auth"
    assert "No LLM model was specified" in result.error.message
    assert "OPENAI_API_KEY" in result.error.message
    assert result.exit_status is not None and result.exit_status < 0


# --- the pins ---------------------------------------------------------------------------


def _npm_pins() -> dict[str, str]:
    package = json.loads((CLIS / "package.json").read_text(encoding="utf-8"))
    pins = package["dependencies"]
    assert isinstance(pins, dict)
    return pins


def _aider_pin() -> str:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    [requirement] = extras["agent-clis"]
    assert isinstance(requirement, str)
    return requirement


def test_the_pins_are_exact_and_locked() -> None:
    pins = _npm_pins()
    assert set(pins) == set(NPM_PACKAGES.values())
    lock = json.loads((CLIS / "package-lock.json").read_text(encoding="utf-8"))
    for package, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (package, version)
        assert lock["packages"][f"node_modules/{package}"]["version"] == version
    assert re.fullmatch(r"aider-chat==\d+\.\d+\.\d+", _aider_pin())


def test_install_script_reads_the_aider_pin_of_pyproject() -> None:
    done = subprocess.run(
        ["bash", str(CLIS / "install.sh"), "--aider-requirement"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == _aider_pin()


@pytest.mark.parametrize("name", [*NPM_PACKAGES, "aider"])
def test_the_installed_cli_is_the_pinned_version(name: str) -> None:
    require_cli(name)
    if name == "aider":
        done = subprocess.run(
            [str(AIDER_VENV / "bin" / "aider"), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert done.stdout.split() == ["aider", _aider_pin().partition("==")[2]]
        return
    package = NPM_PACKAGES[name]
    installed = json.loads(
        (CLIS / "node_modules" / package / "package.json").read_text(encoding="utf-8")
    )
    assert installed["version"] == _npm_pins()[package]
