"""Fake agent CLIs for tests: ``fake_agent.py NAME ARGS...`` behaves like the ``NAME`` CLI
(claude, codex, gemini, copilot, aider) in its non-interactive mode, printing exactly the
output format that CLI documents. Standard library only.

Controlled by environment variables (all optional):

``FAKE_AGENT_MODE``
    ``success`` (default), ``error``, ``rate_limit``, ``auth``, ``garbage`` (output that is
    not the CLI's format, exit 0), ``nonzero`` (a usage error: nothing on stdout, a message
    on stderr, exit 2), ``timeout`` (sleeps ``FAKE_AGENT_SLEEP`` seconds, default 30), and
    ``rate_limit_once`` (``rate_limit`` when the file ``FAKE_AGENT_STATE`` does not exist,
    which it then creates; ``success`` when it does), and per CLI: claude
    ``is_error_success`` (``subtype: success`` with ``is_error: true``), ``max_budget``,
    ``max_turns``; codex ``turn_failed``, ``reconnect`` (a stream ``error`` event, then
    success); gemini ``turn_limit`` (exit 53), ``input_error`` (exit 42), ``config_error``
    (an invalid ``settings.json``: the message on stderr, exit 52); aider ``tokens_only``
    (usage report without cost), ``no_usage`` (no usage report), ``retry_then_success`` (a
    RateLimitError, a retry, then success), ``login_wait`` (no model and no API key: offers
    the OpenRouter browser login and waits ``FAKE_AGENT_SLEEP`` seconds, default 300, as
    aider 0.86 does). aider's messages are wrapped at 80 columns, as its console does when
    its output is not a terminal.
``FAKE_AGENT_TEXT``
    The answer; a path to an existing file means that file's text; empty: an empty answer.
``FAKE_AGENT_EDIT``
    A file to append ``edited by fake NAME`` to, on success, when the argv lets the agent
    edit (claude ``acceptEdits``, codex ``workspace-write``, gemini ``auto_edit``/``yolo``,
    copilot without ``--deny-tool=write``, aider without ``--dry-run``/ask mode).
``FAKE_AGENT_SCRIPT``
    A Python file run (in the agent's working directory) on success when the argv lets the
    agent edit: the edits a test wants (fix a test, delete files, make things worse).
``FAKE_AGENT_LOG``
    A file the fake appends one JSON line to per call: ``agent``, ``argv``, ``stdin``,
    ``message_file`` (aider: the text of ``--message-file``), ``cwd``, ``env`` (the
    ``PYTEST*``, ``COV_CORE_*`` and ``COVERAGE_*`` variables it saw).
``FAKE_AGENT_TOKENS_IN``, ``FAKE_AGENT_TOKENS_OUT``, ``FAKE_AGENT_CACHED``
    Token counts reported (defaults 1000, 200, 0); codex reports them per turn.
``FAKE_AGENT_COST``
    USD reported by claude (``total_cost_usd`` and the model's ``modelUsage.costUSD``) and
    aider (session cost); default 0.0123. A failing claude reports 0 unless it is set.
``FAKE_AGENT_TURNS``
    codex: the number of turns in the stream (default 1).
``FAKE_AGENT_MODEL``
    The model claude (``modelUsage``) and gemini (``stats.models``) report when no
    ``--model`` is given (defaults claude-sonnet-4-5-20250929, gemini-2.5-pro).
``FAKE_AGENT_SESSION``
    The session or thread id reported (default ``fake-session-0001``).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAMES = ("claude", "codex", "gemini", "copilot", "aider")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _int(name: str, default: int) -> int:
    return int(_env(name, str(default)))


def _answer(name: str) -> str:
    text = _env("FAKE_AGENT_TEXT", f"Done: the fake {name} answer.")
    try:
        return Path(text).read_text(encoding="utf-8") if Path(text).is_file() else text
    except (OSError, ValueError):  # not a file name at all (too long, NUL...)
        return text


def _option(args: list[str], *names: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def _may_edit(name: str, args: list[str]) -> bool:
    if name == "claude":
        return _option(args, "--permission-mode") in ("acceptEdits", "bypassPermissions")
    if name == "codex":
        return _option(args, "--sandbox", "-s") in ("workspace-write", "danger-full-access")
    if name == "gemini":
        return _option(args, "--approval-mode") in ("auto_edit", "yolo")
    if name == "copilot":
        denied = [a for a in args if a.startswith("--deny-tool")]
        return "--allow-all-tools" in args and not any("write" in a for a in denied)
    return "--dry-run" not in args and _option(args, "--chat-mode", "--edit-format") != "ask"


def _log(name: str, args: list[str], stdin: str) -> None:
    path = os.environ.get("FAKE_AGENT_LOG")
    if not path:
        return
    message_file = _option(args, "--message-file", "-f") if name == "aider" else None
    record = {
        "agent": name,
        "argv": args,
        "stdin": stdin,
        "message_file": (Path(message_file).read_text(encoding="utf-8") if message_file else None),
        "cwd": os.getcwd(),
        "env": {
            key: value
            for key, value in os.environ.items()
            if key.startswith(("PYTEST", "COV_CORE_", "COVERAGE_"))
        },
    }
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def _edit(name: str, args: list[str]) -> bool:
    target = os.environ.get("FAKE_AGENT_EDIT")
    script = os.environ.get("FAKE_AGENT_SCRIPT")
    if not (target or script) or not _may_edit(name, args):
        return False
    if target:
        with open(target, "a", encoding="utf-8") as file:
            file.write(f"edited by fake {name}\n")
    if script:  # a Python file run in the working directory: the agent's edits
        with open(script, encoding="utf-8") as handle:
            source = handle.read()
        exec(compile(source, script, "exec"), {"__name__": "__fake_edit__"})
    return True


def _print_json(value: dict[str, Any], stream: Any = None) -> None:
    print(json.dumps(value), file=stream or sys.stdout, flush=True)


def _claude(args: list[str], mode: str) -> int:
    tokens_in, tokens_out = _int("FAKE_AGENT_TOKENS_IN", 1000), _int("FAKE_AGENT_TOKENS_OUT", 200)
    model = _option(args, "--model") or _env("FAKE_AGENT_MODEL", "claude-sonnet-4-5-20250929")
    cost = float(_env("FAKE_AGENT_COST", "0.0123"))
    doc: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1234,
        "duration_api_ms": 1100,
        "num_turns": 3,
        "result": _answer("claude"),
        "session_id": _env("FAKE_AGENT_SESSION", "fake-session-0001"),
        "total_cost_usd": cost,
        "usage": {
            "input_tokens": tokens_in,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": _int("FAKE_AGENT_CACHED", 0),
            "output_tokens": tokens_out,
            "server_tool_use": {"web_search_requests": 0},
            "service_tier": "standard",
        },
        "modelUsage": {
            model: {
                "inputTokens": tokens_in,
                "outputTokens": tokens_out,
                "cacheReadInputTokens": _int("FAKE_AGENT_CACHED", 0),
                "cacheCreationInputTokens": 0,
                "webSearchRequests": 0,
                "costUSD": cost,
                "contextWindow": 200000,
            }
        },
        "permission_denials": [],
        "uuid": "00000000-0000-4000-8000-000000000001",
    }
    failures = {
        "auth": "Invalid API key · Please run /login",
        "rate_limit": 'API Error: 429 {"type":"error","error":{"type":"rate_limit_error",'
        '"message":"This request would exceed the rate limit for your organization"}}',
        "is_error_success": 'API Error: 500 {"type":"error","error":{"type":"api_error",'
        '"message":"Internal server error"}}',
    }
    if mode == "success":
        _edit("claude", args)
        _print_json(doc)
        return 0
    if mode in failures:
        spent = float(os.environ.get("FAKE_AGENT_COST", "0"))  # what it spent before failing
        doc.update(is_error=True, result=failures[mode], total_cost_usd=spent, num_turns=1)
        doc["usage"].update(input_tokens=0, output_tokens=0, cache_read_input_tokens=0)
        doc["modelUsage"] = {}
    elif mode in ("max_budget", "max_turns", "error"):
        doc.pop("result")
        doc["is_error"] = True
        doc["subtype"] = {
            "max_budget": "error_max_budget_usd",
            "max_turns": "error_max_turns",
            "error": "error_during_execution",
        }[mode]
        doc["errors"] = ["the fake claude stopped"]
        if mode == "max_turns":
            doc["num_turns"] = int(_option(args, "--max-turns") or 3)
    elif mode == "garbage":
        print("Segmentation fault in the fake claude (not JSON)")
        return 0
    else:
        print(f"error: unknown option '--fake-{mode}'", file=sys.stderr)
        return 1
    _print_json(doc)
    return 1


def _codex(args: list[str], mode: str) -> int:
    if mode == "garbage":
        print("codex: the fake printed text instead of JSONL")
        return 0
    if mode == "nonzero":
        print("error: unexpected argument '--fake' found", file=sys.stderr)
        return 2
    _print_json({"type": "thread.started", "thread_id": _env("FAKE_AGENT_SESSION", "fake-0001")})
    _print_json({"type": "turn.started"})
    failures = {
        "auth": "unexpected status 401 Unauthorized: Missing bearer or basic authentication "
        "in header, url: https://api.openai.com/v1/responses",
        "rate_limit": "exceeded retry limit, last status: 429 Too Many Requests",
        "turn_failed": "stream disconnected before completion: the fake model went away",
        "error": "stream disconnected before completion: the fake model went away",
    }
    if mode in failures:
        message = failures[mode]
        if mode in ("auth", "rate_limit"):  # codex retries 5 times, then gives up
            for attempt in range(1, 6):
                retry = f"Reconnecting... {attempt}/5 ({message})"
                _print_json({"type": "error", "message": retry})
            _print_json({"type": "error", "message": message})
        _print_json({"type": "turn.failed", "error": {"message": message}})
        return 1
    if mode == "reconnect":
        _print_json({"type": "error", "message": "Reconnecting... 1/5 (stream disconnected)"})
    for turn in range(_int("FAKE_AGENT_TURNS", 1)):
        if turn:
            _print_json({"type": "turn.started"})
        item: dict[str, Any] = {"id": f"item_{turn}_0", "type": "reasoning", "text": "**Reading**"}
        _print_json({"type": "item.completed", "item": item})
        item = {
            "id": f"item_{turn}_1",
            "type": "command_execution",
            "command": "bash -lc 'ls'",
            "aggregated_output": "tests\n",
            "exit_code": 0,
            "status": "completed",
        }
        _print_json({"type": "item.completed", "item": item})
        target = os.environ.get("FAKE_AGENT_EDIT")
        if turn == 0 and target and _edit("codex", args):
            change = {"path": target, "kind": "update"}
            item = {"id": "item_0_2", "type": "file_change", "changes": [change]}
            _print_json({"type": "item.completed", "item": {**item, "status": "completed"}})
        item = {"id": f"item_{turn}_3", "type": "agent_message", "text": _answer("codex")}
        _print_json({"type": "item.completed", "item": item})
        usage = {
            "input_tokens": _int("FAKE_AGENT_TOKENS_IN", 1000),
            "cached_input_tokens": _int("FAKE_AGENT_CACHED", 0),
            "output_tokens": _int("FAKE_AGENT_TOKENS_OUT", 200),
        }
        _print_json({"type": "turn.completed", "usage": usage})
    return 0


def _gemini(args: list[str], mode: str) -> int:
    session = _env("FAKE_AGENT_SESSION", "fake-session-0001")
    model = _option(args, "--model", "-m") or _env("FAKE_AGENT_MODEL", "gemini-2.5-pro")
    if mode == "success":
        _edit("gemini", args)
        tokens_in, cached = _int("FAKE_AGENT_TOKENS_IN", 1000), _int("FAKE_AGENT_CACHED", 0)
        tokens = {
            "input": tokens_in - cached,
            "prompt": tokens_in,
            "candidates": _int("FAKE_AGENT_TOKENS_OUT", 200),
            "total": tokens_in + _int("FAKE_AGENT_TOKENS_OUT", 200),
            "cached": cached,
            "thoughts": 0,
            "tool": 0,
        }
        api = {"totalRequests": 1, "totalErrors": 0, "totalLatencyMs": 900}
        stats = {
            "models": {model: {"api": api, "tokens": tokens, "roles": {}}},
            "tools": {"totalCalls": 0, "totalSuccess": 0, "totalFail": 0, "byName": {}},
            "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
        }
        body = {"session_id": session, "response": _answer("gemini"), "stats": stats}
        print(json.dumps(body, indent=2))
        return 0
    if mode == "garbage":
        print("Loaded cached credentials.\nnot the JSON the fake gemini should print")
        return 0
    # Errors: with --output-format json the error object goes to stderr, as the CLI does.
    errors: dict[str, tuple[int, str, str, str]] = {
        "auth": (
            41,
            "Error",
            f"Please set an Auth method in your {Path.home() / '.gemini' / 'settings.json'} or "
            "specify one of the following environment variables before running: "
            "GEMINI_API_KEY, GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA",
            "",
        ),
        "rate_limit": (
            1,
            "TerminalQuotaError",
            "You have exhausted your capacity on this model. Your quota will reset after 2s.",
            "[ERROR] ",
        ),
        "turn_limit": (
            53,
            "FatalTurnLimitedError",
            "Reached max session turns for this session. Increase the number of turns by "
            "specifying maxSessionTurns in settings.json.",
            "[ERROR] ",
        ),
        "input_error": (
            42,
            "FatalInputError",
            "No input provided via stdin. Input can be provided by piping data into gemini "
            "or using the --prompt option.",
            "",
        ),
        "error": (1, "Error", "[API Error: An unexpected critical error occurred]", "[ERROR] "),
    }
    if mode == "config_error":
        # FatalConfigError: settings.json is read before any output format applies
        print(
            "Error in /home/user/.gemini/settings.json: Unexpected token } in JSON at "
            "position 42\nPlease fix the configuration file(s) and try again.",
            file=sys.stderr,
        )
        return 52
    if mode not in errors:
        print(f"Unknown argument: fake-{mode}", file=sys.stderr)
        return 1
    code, kind, message, prefix = errors[mode]
    error = {"type": kind, "message": message, "code": code}
    print(prefix + json.dumps({"session_id": session, "error": error}, indent=2), file=sys.stderr)
    return code


def _copilot(args: list[str], mode: str) -> int:
    if mode == "success":
        _edit("copilot", args)
        print(_answer("copilot"))
        return 0
    if mode == "garbage":
        return 0  # nothing at all: plain text has no format to break
    messages = {
        "auth": "Error: No authentication information found.\n\nCopilot can be authenticated "
        "with GitHub using an OAuth Token or a Fine-Grained Personal Access Token.\n\n"
        "To authenticate, you can use any of the following methods:\n"
        "  \u2022 Start 'copilot' and run the '/login' command\n"
        "  \u2022 Set the COPILOT_GITHUB_TOKEN, GH_TOKEN, or GITHUB_TOKEN environment variable\n"
        "  \u2022 Run 'gh auth login' to authenticate with the GitHub CLI",
        "rate_limit": "Error: Sorry, you have been rate-limited (429). Please wait a moment "
        "before trying again.",
        "error": 'Error: Model "fake" from --model flag is not available.',
    }
    usage = (
        f"error: unexpected argument '--fake-{mode}' found\n\nUsage: copilot --silent\n\n"
        "For more information, try '--help'."
    )
    print(messages.get(mode, usage), file=sys.stderr)
    return 1


def _wrapped(text: str) -> str:
    """``text`` as aider's console prints it when its output is not a terminal: each line
    wrapped at 80 columns."""
    return "\n".join(
        "\n".join(textwrap.wrap(line, 80, break_on_hyphens=False)) or line
        for line in text.split("\n")
    )


def _aider(args: list[str], mode: str) -> int:
    if mode == "garbage":
        return 0  # nothing at all
    if mode == "login_wait" and _option(args, "--model") is None:
        print("No LLM model was specified and no API keys were provided.")
        print("OpenRouter provides free and paid access to many LLMs.")
        print("\nPlease open this URL in your browser to connect Aider with OpenRouter:\n")
        print("https://openrouter.ai/auth?callback_url=http://localhost:8484/callback/aider")
        print("\nWaiting up to 5 minutes for you to finish in the browser...", flush=True)
        time.sleep(float(_env("FAKE_AGENT_SLEEP", "300")))
        print("OpenRouter authentication did not complete successfully.")
        return 1
    model = _option(args, "--model") or "gpt-4o"
    print(f"Aider v0.86.2\nMain model: {model} with diff edit format\nWeak model: gpt-4o-mini")
    print("Git repo: .git with 3 files\nRepo-map: using 4096 tokens, auto refresh\n")
    message_file = _option(args, "--message-file", "-f")
    if message_file is None or not Path(message_file).is_file():
        print(f"Message file not found: {message_file}")
        return 1
    tokens_in = _int("FAKE_AGENT_TOKENS_IN", 1000)
    tokens_out = _int("FAKE_AGENT_TOKENS_OUT", 200)
    usage = f"Tokens: {_k(tokens_in)} sent, {_k(tokens_out)} received."
    cost = float(_env("FAKE_AGENT_COST", "0.0123"))
    cost_report = f" Cost: ${cost:.4f} message, ${cost:.4f} session."
    errors = {
        "auth": (
            "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API "
            "key provided: sk-fake. You can find your API key at "
            "https://platform.openai.com/account/api-keys.\n"
            "The API provider is not able to authenticate you. Check your API key."
        ),
        "rate_limit": (
            "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for "
            "gpt-4o on tokens per min (TPM).\n"
            "The API provider has rate limited you. Try again later or check your quotas."
        ),
        "error": (
            "litellm.BadRequestError: OpenAIException - Invalid 'messages': the fake request "
            "was malformed."
        ),
    }
    if mode in errors:
        print(_wrapped(errors[mode]))
        return 0  # aider exits 0 after a failed API call
    if mode == "nonzero":
        print("aider: error: unrecognized arguments: --fake", file=sys.stderr)
        return 2
    if mode == "retry_then_success":
        print(_wrapped(errors["rate_limit"] + "\nRetrying in 0.2 seconds..."))
    print(_answer("aider") + "\n")
    if mode == "no_usage":
        pass
    elif mode == "tokens_only":
        print(_wrapped(usage))
    else:
        print(_wrapped(usage + cost_report))
    if _edit("aider", args):
        print(f"Applied edit to {os.environ['FAKE_AGENT_EDIT']}")
    return 0


def _k(count: int) -> str:
    """Like aider's format_tokens: 215, 2.3k, 12k."""
    if count < 1000:
        return str(count)
    if count < 10000:
        return f"{count / 1000:.1f}k"
    return f"{round(count / 1000)}k"


HANDLERS: dict[str, Callable[[list[str], str], int]] = {
    "claude": _claude,
    "codex": _codex,
    "gemini": _gemini,
    "copilot": _copilot,
    "aider": _aider,
}


def main(name: str, args: list[str]) -> int:
    """Behave like the ``name`` CLI called with ``args``; the exit status."""
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    _log(name, args, stdin)
    mode = _env("FAKE_AGENT_MODE", "success")
    if mode == "rate_limit_once":
        state = Path(os.environ["FAKE_AGENT_STATE"])
        mode = "success" if state.exists() else "rate_limit"
        state.touch()
    if mode == "timeout":
        time.sleep(float(_env("FAKE_AGENT_SLEEP", "30")))
        return 0
    return HANDLERS[name](args, mode)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in HANDLERS:
        print(f"usage: fake_agent.py {{{','.join(NAMES)}}} ARGS...", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
