"""One :class:`~pytest_orchestrator.agents.base.Adapter` per agent CLI, each following that
CLI's documented non-interactive contract (argv, where the prompt goes, output format, exit
codes). The prompt never goes on a command line: it is written to the CLI's stdin, or to a
temporary file whose path is passed (aider). No shell runs anything.

========  ===============================================  =================================
CLI       non-interactive call                             output read
========  ===============================================  =================================
claude    ``claude -p --output-format json`` (stdin)       one JSON ``result`` object
codex     ``codex exec --json ... -`` (stdin)              JSONL events (``turn.completed``)
gemini    ``gemini --output-format json --prompt I``       JSON ``{response, stats, error}``
          (stdin; ``I`` is a fixed one-line suffix)        and exit codes 41/42/52/53
copilot   ``copilot -s --no-ask-user ...`` (stdin)         plain text (cost estimated)
aider     ``aider --message-file F --yes-always ...``      text; exits 0 even on API errors
command   ``spec.argv`` as given (stdin)                   stdout; free
========  ===============================================  =================================

``ADAPTERS`` maps each name to its class.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pytest_orchestrator import jsonio
from pytest_orchestrator.agents.base import (
    Adapter,
    AgentError,
    AgentRequest,
    AgentResult,
    AgentSpec,
    ErrorKind,
    excerpt,
)

if TYPE_CHECKING:
    from pytest_orchestrator.agents.pricing import PricingTable
    from pytest_orchestrator.agents.sandbox import Sandbox

__all__ = [
    "ADAPTERS",
    "AiderAdapter",
    "ClaudeAdapter",
    "CodexAdapter",
    "CommandAdapter",
    "CopilotAdapter",
    "GeminiAdapter",
    "preflight",
]

# Messages of the CLIs and of the APIs behind them (Anthropic, OpenAI, Google, GitHub). Only
# read from an output the CLI itself marks as an error, never from a successful answer
# (which may well discuss rate limits or authentication).
# A status code counts only next to a word saying so ("API Error: 429", "status 401"): a bare
# number may be a line number in a traceback.
_STATUS = r"(?:status|code|error)\W{{0,3}}(?:{codes})\b"
_RATE_LIMIT = re.compile(
    _STATUS.format(codes="429|529")
    + r"|rate[ _-]?limit|too many requests|overloaded|quota|resource[ _]exhausted"
    r"|usage limit|exhausted your capacity",
    re.IGNORECASE,
)
_AUTH = re.compile(
    _STATUS.format(codes="401|403")
    + r"|unauthori[sz]ed|forbidden|authenticat|invalid (?:x-)?api[ -]key|incorrect api key"
    r"|api key (?:is )?(?:invalid|missing|not (?:set|valid))|not logged in|/login\b"
    r"|oauth token|(?:invalid|no|missing) credentials|permission denied",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(r"timed out|\btimeout\b", re.IGNORECASE)


def _classify(detail: str) -> ErrorKind | None:
    """The error kind a CLI's error message names, if any (rate limit before auth: an
    overloaded API's message may mention the key it was called with)."""
    if _RATE_LIMIT.search(detail):
        return "rate_limit"
    if _AUTH.search(detail):
        return "auth"
    if _TIMEOUT.search(detail):
        return "timeout"
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _count(value: object) -> int:
    """A token count: 0 when absent, negative or NaN; at most :data:`jsonio.MAX_INT` (an
    absurd count is charged as the largest, so the budget binds rather than not)."""
    number = _number(value)
    if number is None or not number > 0:
        return 0
    return int(min(number, jsonio.MAX_INT))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds: all of it, or the first one found after a prefix
    (gemini prints its error object after ``[ERROR] `` on stderr)."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        value = jsonio.loads(stripped, lenient=True)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    decoder = jsonio.decoder(lenient=True)
    start = stripped.find("{")
    for _ in range(50):
        if start < 0:
            break
        try:
            value, _end = decoder.raw_decode(stripped, start)
            jsonio.check_depth(value)
        except (ValueError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        start = stripped.find("{", start + 1)
    return None


def _usd(amount: float) -> str:
    """``0.5`` -> ``"0.5"``: a plain decimal (no exponent) for a CLI's USD option."""
    text = f"{max(amount, 0.0):.6f}".rstrip("0").rstrip(".")
    return text if text not in ("", "0") else "0.000001"


class _CliAdapter(Adapter):
    """Helpers shared by the adapters: one-line error messages of a classified kind."""

    def fail(self, detail: str, returncode: int, kind: ErrorKind | None = None) -> AgentError:
        """An error for ``detail`` (the CLI's own message) of ``kind``, else of the kind the
        message names, else ``nonzero_exit``; auth errors name the variable to set."""
        detail = " ".join(detail.split()) or "(no output)"
        kind = kind or _classify(detail) or "nonzero_exit"
        if kind == "auth":
            return AgentError("auth", self.auth_message(detail))
        if kind == "rate_limit":
            return AgentError(
                kind, f"{self.name} is rate limited or overloaded: {excerpt(detail, 300)}"
            )
        if kind == "timeout":
            return AgentError(kind, f"{self.name} timed out: {excerpt(detail, 300)}")
        return AgentError(
            kind, f"{self.name} failed (exit status {returncode}): {excerpt(detail, 300)}"
        )

    def bad_output(self, what: str, output: str) -> AgentError:
        """A ``bad_output`` error: the CLI's output is not ``what`` it should be."""
        shown = excerpt(output, 200) if output.strip() else "nothing"
        return AgentError("bad_output", f"{self.name} {what}; it printed: {shown}")

    def unreadable(self, what: str, stdout: str, stderr: str) -> AgentResult:
        """A result for output not in the CLI's format: a ``bad_output`` error, and what it
        printed (stdout, else stderr) as the text, for the excerpt a report shows."""
        printed = stdout if stdout.strip() else stderr
        return self.result(text=printed.strip(), error=self.bad_output(what, printed))


class ClaudeAdapter(_CliAdapter):
    """Claude Code in print mode: ``claude -p --output-format json``, the prompt on stdin.

    Output: one JSON object ``{"type": "result", "subtype", "is_error", "result",
    "total_cost_usd", "usage", "modelUsage", "session_id", "num_turns", ...}``. ``is_error``
    wins over ``subtype``: an API failure (bad key, 429) comes back as ``subtype: "success"``
    with ``is_error: true`` and the message in ``result``. ``modelUsage`` maps each model the
    call used to its ``inputTokens``, ``outputTokens``, ``costUSD``...: without a model asked
    for, the one that cost the most is the call's model.

    Turns: ``--max-turns`` (``AgentRequest.max_turns``) is claude's; it is the only one of
    these CLIs with a documented turn limit on its command line.
    """

    name = "claude"
    executable = "claude"
    install = "npm install -g @anthropic-ai/claude-code"
    reports_cost = True
    auth_env = ("ANTHROPIC_API_KEY",)
    default_model = None  # the CLI's configured model is unknown until it reports it

    #: Tools pre-approved for edits: ``acceptEdits`` approves file edits; ``Bash`` is added
    #: so the agent can run the tests (in print mode an unapproved tool is denied).
    EDIT_TOOLS = "Bash,Edit,MultiEdit,Write"
    #: Tools removed for read-only calls. ``--disallowedTools`` deny rules win over any allow
    #: rule in the user's settings and take the tools out of the model's context; plan mode
    #: (``--permission-mode plan``) would also forbid edits but makes the model write a plan
    #: instead of answering. Read, Grep and Glob stay.
    READ_ONLY_DENIED = "Bash,Edit,MultiEdit,NotebookEdit,Write"

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        argv = [self.executable, "-p", "--output-format", "json"]
        if self.spec.model:
            # claude names versions with dashes (claude-sonnet-4-5); our table with a dot
            argv += ["--model", re.sub(r"(?<=\d)\.(?=\d)", "-", self.spec.model)]
        if request.max_turns is not None:
            argv += ["--max-turns", str(request.max_turns)]
        if request.budget_usd is not None:
            argv += ["--max-budget-usd", _usd(request.budget_usd)]
        # The mode is always given: the user's settings may set another default mode.
        if request.edit:
            argv += ["--permission-mode", "acceptEdits", "--allowedTools", self.EDIT_TOOLS]
        else:
            argv += ["--permission-mode", "default", "--disallowedTools", self.READ_ONLY_DENIED]
        return argv

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        doc = _json_object(stdout)
        if doc is None or doc.get("type") != "result":
            if returncode != 0:
                return self.result(error=self.fail(stderr or stdout, returncode))
            return self.unreadable("printed no JSON result object", stdout, stderr)
        usage = _mapping(doc.get("usage"))
        cache_read = _count(usage.get("cache_read_input_tokens"))
        tokens_in = (
            _count(usage.get("input_tokens"))
            + _count(usage.get("cache_creation_input_tokens"))
            + cache_read
        )
        result = self.result(
            text=_text(doc.get("result")),
            tokens_in=tokens_in if usage else None,
            tokens_out=_count(usage.get("output_tokens")) if usage else None,
            cached_tokens=cache_read if usage else None,
            cost_usd=_number(doc.get("total_cost_usd")),
            session_id=_text(doc.get("session_id")) or None,
        )
        if self.spec.model is None:
            result.model = self._model_used(_mapping(doc.get("modelUsage"))) or result.model
        subtype = _text(doc.get("subtype"))
        if subtype == "success" and doc.get("is_error") is not True:
            if returncode != 0:
                result.warnings.append(f"claude exited with status {returncode} after success")
            return result
        errors = doc.get("errors")
        listed = [e for e in errors if isinstance(e, str)] if isinstance(errors, list) else []
        detail = result.text or "; ".join(listed) or subtype or "is_error is true"
        if subtype == "error_max_budget_usd":
            limit = f" of ${_usd(request.budget_usd)}" if request.budget_usd is not None else ""
            result.error = AgentError(
                "budget", f"claude stopped at its --max-budget-usd limit{limit} ({subtype})"
            )
        elif subtype == "error_max_turns":
            turns = _count(doc.get("num_turns"))
            result.error = AgentError(
                "budget", f"claude stopped at its --max-turns limit after {turns} turns"
            )
        else:
            shown = detail if subtype in ("success", "") else f"{subtype}: {detail}"
            result.error = self.fail(shown, returncode)
        return result

    @staticmethod
    def _model_used(usage: dict[str, Any]) -> str | None:
        """The model of ``modelUsage`` (``{NAME: {"costUSD", "inputTokens", "outputTokens",
        ...}}``) that cost the most, else used the most tokens; None when it names none."""
        spent: dict[str, tuple[float, int]] = {}
        for model, metrics in usage.items():
            numbers = _mapping(metrics)
            tokens = _count(numbers.get("inputTokens")) + _count(numbers.get("outputTokens"))
            spent[model] = (_number(numbers.get("costUSD")) or 0.0, tokens)
        return max(spent, key=lambda model: spent[model]) if spent else None


class CodexAdapter(_CliAdapter):
    """OpenAI Codex CLI: ``codex exec --json ... -`` (``-``: the prompt is read from stdin).

    Output: JSONL events ``thread.started`` (``thread_id``), ``turn.started``,
    ``item.completed`` (items ``agent_message`` with ``text``, ``reasoning``,
    ``command_execution``, ``file_change``, ...), ``turn.completed`` (``usage``:
    ``input_tokens``, ``cached_input_tokens``, ``output_tokens``), ``turn.failed``
    (``error.message``) and ``error`` (``message``). No cost: priced from the tokens.
    """

    name = "codex"
    executable = "codex"
    install = "npm install -g @openai/codex"
    #: ``CODEX_API_KEY`` is the documented key of ``codex exec``; ``OPENAI_API_KEY`` is read too.
    auth_env = ("CODEX_API_KEY", "OPENAI_API_KEY")
    default_model = None  # the CLI's configured model is unknown: priced at the highest rate

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        argv = [self.executable, "exec", "--json"]
        if self.spec.model:
            argv += ["--model", self.spec.model]
        if request.edit:
            # Outside a git repository codex refuses to edit (nothing could undo it): kept.
            argv += ["--sandbox", "workspace-write"]
        else:
            # The read-only sandbox writes nothing, so the git-repository check guards nothing.
            argv += ["--sandbox", "read-only", "--skip-git-repo-check"]
        return [*argv, "-"]

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        events: list[dict[str, Any]] = []
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                event = jsonio.loads(line, lenient=True)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        if not events:
            if returncode != 0:
                return self.result(error=self.fail(stderr or stdout, returncode))
            return self.unreadable("printed no JSONL events", stdout, stderr)
        texts: list[str] = []
        failures: list[str] = []
        errors: list[str] = []
        thread_id = None
        completed = 0
        tokens_in = tokens_out = cached = 0
        for event in events:
            kind = event.get("type")
            if kind == "thread.started":
                thread_id = _text(event.get("thread_id")) or thread_id
            elif kind == "item.completed":
                item = _mapping(event.get("item"))
                item_type = item.get("type", item.get("item_type"))
                if item_type == "agent_message":
                    texts.append(_text(item.get("text")))
            elif kind == "turn.completed":
                completed += 1
                usage = _mapping(event.get("usage"))
                tokens_in += _count(usage.get("input_tokens"))
                cached += _count(usage.get("cached_input_tokens"))
                tokens_out += _count(usage.get("output_tokens"))
            elif kind == "turn.failed":
                message = _text(_mapping(event.get("error")).get("message"))
                failures.append(message or "turn.failed")
            elif kind == "error":
                errors.append(_text(event.get("message")) or "error event")
        result = self.result(
            text=texts[-1] if texts else "",
            tokens_in=tokens_in if completed else None,
            tokens_out=tokens_out if completed else None,
            cached_tokens=cached if completed else None,
            session_id=thread_id,
        )
        if failures:
            result.error = self.fail(failures[-1], returncode)
        elif not completed:
            if errors:
                result.error = self.fail(errors[-1], returncode)
            elif returncode != 0:
                result.error = self.fail(stderr or stdout, returncode)
            else:
                result.error = self.bad_output("ended without a turn.completed event", stdout)
        else:
            # Stream errors followed by a completed turn were retried by codex itself.
            result.warnings += [f"codex reported: {excerpt(e, 200)}" for e in errors]
            if returncode != 0:
                result.warnings.append(f"codex exited with status {returncode} after success")
        return result


#: Gemini CLI exit codes (``FatalError`` subclasses): kind, and what the code means.
_GEMINI_EXIT: dict[int, tuple[ErrorKind, str]] = {
    41: ("auth", "authentication error"),
    42: ("nonzero_exit", "input error"),
    44: ("nonzero_exit", "sandbox error"),
    52: ("nonzero_exit", "configuration error"),
    53: ("budget", "turn limit exceeded"),
    54: ("nonzero_exit", "tool execution error"),
    55: ("nonzero_exit", "untrusted workspace"),
    130: ("nonzero_exit", "cancelled"),
}
_GEMINI_ERROR_TYPES: dict[str, ErrorKind] = {
    "FatalAuthenticationError": "auth",
    "FatalTurnLimitedError": "budget",
    "TerminalQuotaError": "rate_limit",
    "RetryableQuotaError": "rate_limit",
}


class GeminiAdapter(_CliAdapter):
    """Gemini CLI in headless mode: ``gemini --output-format json --prompt I``.

    The prompt goes on stdin: headless gemini reads stdin and appends the ``--prompt`` text
    after it, so ``--prompt`` carries only :attr:`STDIN_INSTRUCTION`, never the prompt.
    Output: ``{"session_id", "response", "stats": {"models": {NAME: {"tokens": {"prompt",
    "candidates", "cached", "thoughts", ...}}}}, "error": {"type", "message", "code"}}`` on
    stdout; with ``--output-format json`` an error object goes to stderr instead. Exit codes:
    41 authentication, 42 input, 52 configuration, 53 turn limit (see ``_GEMINI_EXIT``).
    Its turn limit is a setting (``model.maxSessionTurns`` in ``settings.json``), not an
    option, so ``AgentRequest.max_turns`` is not passed.
    """

    name = "gemini"
    executable = "gemini"
    install = "npm install -g @google/gemini-cli"
    auth_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_model = None  # the CLI's configured model is unknown until its stats name it
    STDIN_INSTRUCTION = "Carry out the task given above."

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        # auto_edit approves the edit tools; read-only calls use the default mode, where a
        # tool needing approval (edits, shell) is denied: headless gemini cannot ask.
        mode = "auto_edit" if request.edit else "default"
        argv = [self.executable, "--output-format", "json", "--approval-mode", mode]
        if self.spec.model:
            argv += ["--model", self.spec.model]
        return [*argv, "--prompt", self.STDIN_INSTRUCTION]

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        doc = _json_object(stdout)
        if doc is None or not {"response", "stats", "error"} & doc.keys():
            doc = _json_object(stderr)
            if doc is not None and "error" not in doc:
                doc = None
        if doc is None:
            if returncode != 0:
                return self.result(error=self._exit_error(stderr or stdout, "", returncode))
            return self.unreadable("printed no JSON object", stdout, stderr)
        result = self.result(
            text=_text(doc.get("response")), session_id=_text(doc.get("session_id")) or None
        )
        warnings = doc.get("warnings")
        if isinstance(warnings, list):
            result.warnings += [excerpt(w, 200) for w in warnings if isinstance(w, str) and w]
        self._read_tokens(result, _mapping(_mapping(doc.get("stats")).get("models")))
        error = _mapping(doc.get("error"))
        if error or returncode != 0:
            detail = _text(error.get("message")) or stderr or "no message"
            result.error = self._exit_error(detail, _text(error.get("type")), returncode)
        return result

    def _read_tokens(self, result: AgentResult, models: dict[str, Any]) -> None:
        """Tokens summed over the models the call used; without a model asked for, the one
        that used the most tokens is the one priced (not the cheaper default)."""
        totals: dict[str, int] = {}
        tokens_in = tokens_out = cached = 0
        for model, metrics in models.items():
            tokens = _mapping(_mapping(metrics).get("tokens"))
            if not tokens:
                continue
            # "prompt" includes the cached tokens; newer versions also give "input" (uncached).
            prompt = tokens.get("prompt")
            used_in = (
                _count(prompt)
                if prompt is not None
                else _count(tokens.get("input")) + _count(tokens.get("cached"))
            )
            used_out = _count(tokens.get("candidates")) + _count(tokens.get("thoughts"))
            tokens_in += used_in
            tokens_out += used_out
            cached += _count(tokens.get("cached"))
            totals[model] = used_in + used_out
        if not totals:
            return
        result.tokens_in, result.tokens_out, result.cached_tokens = tokens_in, tokens_out, cached
        if self.spec.model is None:
            result.model = max(totals, key=lambda model: totals[model])

    def _exit_error(self, detail: str, error_type: str, returncode: int) -> AgentError:
        """The error of exit status ``returncode``: its documented meaning, else the error
        type gemini names, else the words of the message."""
        kind: ErrorKind | None
        kind, meaning = _GEMINI_EXIT.get(returncode, (None, ""))
        kind = _GEMINI_ERROR_TYPES.get(error_type, kind)
        what = ", ".join(part for part in (meaning, error_type) if part)
        if kind == "budget":
            return AgentError(
                "budget", f"gemini stopped at a limit ({what}): {excerpt(' '.join(detail.split()))}"
            )
        if kind == "nonzero_exit" or (kind is None and _classify(detail) is None):
            label = ", ".join([f"exit status {returncode}", *([what] if what else [])])
            flat = " ".join(detail.split()) or "(no output)"
            return AgentError("nonzero_exit", f"gemini failed ({label}): {excerpt(flat, 300)}")
        return self.fail(detail, returncode, kind)


class CopilotAdapter(_CliAdapter):
    """GitHub Copilot CLI, programmatic mode, the prompt piped on stdin (documented as the
    alternative to ``-p PROMPT``; ``-p`` would put the prompt on the command line).

    ``-s`` prints only the agent's answer; ``--no-ask-user`` stops it from asking questions.
    Output is plain text without token counts, so the cost is estimated from the sizes.
    Authentication: ``COPILOT_GITHUB_TOKEN``, ``GH_TOKEN`` or ``GITHUB_TOKEN`` (that order).
    """

    name = "copilot"
    executable = "copilot"
    install = "npm install -g @github/copilot"
    auth_env = ("COPILOT_GITHUB_TOKEN", "GH_TOKEN", "GITHUB_TOKEN")
    default_model = None  # the CLI's configured model is unknown: priced at the highest rate

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        argv = [self.executable, "-s", "--no-ask-user"]
        if self.spec.model:
            argv += ["--model", self.spec.model]
        argv.append("--allow-all-tools")
        if not request.edit:
            # Deny rules win over --allow-all-tools: no file writes, no shell commands.
            argv += ["--deny-tool=write", "--deny-tool=shell"]
        if request.allow_all_paths:
            argv.append("--allow-all-paths")
        return argv

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        text = stdout.strip()
        result = self.result(text=text)
        if returncode != 0:
            result.error = self.fail(f"{stderr.strip()} {text}", returncode)
        elif not text:
            result.error = self.bad_output("gave no answer", stderr)
        return result


#: ``litellm.AuthenticationError: AuthenticationError: OpenAIException - ...`` (aider prints
#: the exception of a failed API call, then a hint, then carries on and exits 0). aider's
#: console wraps what it prints at 80 columns when its output is not a terminal, so the
#: message goes on over the next lines, up to an empty line, the hint (``The API provider
#: ...``), the next error, or ``Retrying in ...``.
_LITELLM_ERROR = re.compile(
    r"^litellm\.([A-Za-z]+):[ \t]*(.*(?:\n(?!litellm\.|The API provider |Retrying in |Tokens: )"
    r"[ \t]*\S.*)*)",
    re.MULTILINE,
)
# The usage report is wrapped too when long (cache counts): any whitespace between words.
_AIDER_TOKENS = re.compile(
    r"^Tokens:\s+([\d.]+[kM]?)\s+sent(?:,\s+([\d.]+[kM]?)\s+cache\s+write)?"
    r"(?:,\s+([\d.]+[kM]?)\s+cache\s+hit)?,\s+([\d.]+[kM]?)\s+received\.",
    re.MULTILINE,
)
_AIDER_COST = re.compile(r"Cost:\s+\$([\d.]+)\s+message,\s+\$([\d.]+)\s+session\.")
#: What aider prints when it starts to wait for a browser login to OpenRouter (up to 5
#: minutes, listening on a localhost port): it was named no model and found no API key
#: (or an ``openrouter/`` model and no ``OPENROUTER_API_KEY``), offered the login, and
#: ``--yes-always`` accepted. The call is stopped there (``AiderAdapter.waits_forever``).
_AIDER_LOGIN_WAIT = "Please open this URL in your browser to connect Aider with OpenRouter"
#: aider's own words for why it offers that login.
_AIDER_NO_KEY = re.compile(
    r"No\s+LLM\s+model\s+was\s+specified\s+and\s+no\s+API\s+keys\s+were\s+provided\."
    r"|The\s+specified\s+model\s+\S+\s+requires\s+an\s+OpenRouter\s+API\s+key,"
    r"\s+which\s+was\s+not\s+found\."
)
#: The identity aider gets when the repository has none (see :meth:`AiderAdapter.run`).
_AIDER_GIT_IDENTITY = (
    ("user.name", "pytest-orchestrator agent"),
    ("user.email", "agent@pytest-orchestrator.invalid"),
)
_LITELLM_KINDS: dict[str, ErrorKind] = {
    "AuthenticationError": "auth",
    "PermissionDeniedError": "auth",
    "RateLimitError": "rate_limit",
    "RouterRateLimitError": "rate_limit",
    "InternalServerError": "rate_limit",
    "ServiceUnavailableError": "rate_limit",
    "BadGatewayError": "rate_limit",
    "APIConnectionError": "timeout",
    "Timeout": "timeout",
}
#: The variable of each provider a model name points to (aider reaches them via litellm).
_AIDER_KEYS = (
    ("claude", "ANTHROPIC_API_KEY"),
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("sonnet", "ANTHROPIC_API_KEY"),
    ("opus", "ANTHROPIC_API_KEY"),
    ("haiku", "ANTHROPIC_API_KEY"),
    ("gemini", "GEMINI_API_KEY"),
    ("deepseek", "DEEPSEEK_API_KEY"),
    ("openrouter/", "OPENROUTER_API_KEY"),
)


def _aider_tokens(text: str | None) -> int:
    """``2.3k`` -> 2300 (aider rounds what it prints)."""
    if not text:
        return 0
    scale = {"k": 1_000, "M": 1_000_000}.get(text[-1], 1)
    try:
        return min(int(float(text.rstrip("kM")) * scale), jsonio.MAX_INT)
    except (ValueError, OverflowError):  # not a number, or infinite
        return 0


class AiderAdapter(_CliAdapter):
    """aider scripted with ``--message-file F`` (the prompt in a temporary file).

    ``--yes-always`` answers its confirmations; ``--no-auto-commits`` and
    ``--no-dirty-commits`` leave committing to the user; ``--no-analytics`` and
    ``--no-gitignore`` keep ``--yes-always`` from opting in to analytics or editing
    ``.gitignore``; its history files go to the temporary directory, not the repository.
    Read-only calls use ask mode (``--chat-mode ask``: questions, no edits), ``--dry-run``
    and ``--read`` for the files. aider prints text and exits 0 even when the API call
    failed, so failures are read from the ``litellm.<Error>:`` lines it prints; its usage
    report (``Tokens: 2.3k sent, 215 received. Cost: $0.01 message, $0.01 session.``) gives
    the tokens and the cost when it prints one.

    Two things of aider's start-up are dealt with: with no model named and no API key, it
    waits for a browser login instead of answering (:attr:`waits_forever`: the call is
    stopped there and is an ``auth`` error); in a repository without a git identity it
    writes one into ``.git/config`` (see :meth:`run`).
    """

    name = "aider"
    executable = "aider"
    install = "pip install aider-chat"
    reports_cost = True
    auth_env = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    prompt_via: ClassVar[Literal["stdin", "file"]] = "file"
    default_model = None  # the CLI's configured model is unknown: priced at the highest rate
    waits_forever = _AIDER_LOGIN_WAIT.encode()

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        if prompt_file is None:
            raise ValueError("aider takes its prompt from a file")
        scratch = prompt_file.parent
        argv = [
            self.executable,
            "--message-file",
            str(prompt_file),
            "--yes-always",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-stream",
            "--no-pretty",
            "--no-fancy-input",
            "--no-check-update",
            "--no-show-release-notes",
            "--no-show-model-warnings",
            "--no-analytics",
            "--no-gitignore",
            "--input-history-file",
            str(scratch / "aider.input.history"),
            "--chat-history-file",
            str(scratch / "aider.chat.history.md"),
        ]
        if self.spec.model:
            argv += ["--model", self.spec.model]
        if request.edit:
            return [*argv, "--", *request.files] if request.files else argv
        return [*argv, "--chat-mode", "ask", "--dry-run", *(f"--read={f}" for f in request.files)]

    def auth_message(self, detail: str) -> str:
        if self.model is None:
            return (
                f"aider is not authenticated ({excerpt(detail, 200)}); set the API key of "
                "the model aider uses (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY...), "
                "or name the model (aider:MODEL) and set its key"
            )
        model = self.model.lower()
        needs = next((key for part, key in _AIDER_KEYS if part in model), "OPENAI_API_KEY")
        return (
            f"aider is not authenticated ({excerpt(detail, 200)}); set {needs} "
            f"for model {self.model!r}"
        )

    def run(
        self,
        request: AgentRequest,
        env: dict[str, str] | None = None,
        pricing: PricingTable | None = None,
        sandbox: Sandbox | None = None,
    ) -> AgentResult:
        """:meth:`Adapter.run` with a git identity for aider: in a repository with no
        ``user.name``/``user.email`` configured, aider writes placeholders into
        ``.git/config`` (and crashes in the sandbox, where ``.git`` is read-only); it gets
        one through ``GIT_CONFIG_*`` variables instead (git 2.31+) and commits nothing
        (``--no-auto-commits``). (Its wait for a browser login is :attr:`waits_forever`.)"""
        environment = dict(os.environ if env is None else env)
        environment.update(_git_identity(request.cwd, environment))
        return super().run(request, environment, pricing, sandbox)

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        output = f"{stdout}\n{stderr}" if stderr.strip() else stdout
        reports = list(_AIDER_TOKENS.finditer(output))
        costs = list(_AIDER_COST.finditer(output))
        result = self.result(text=stdout.strip())
        if reports:
            result.tokens_in = sum(_aider_tokens(r.group(1)) for r in reports)
            result.cached_tokens = sum(_aider_tokens(r.group(3)) for r in reports)
            result.tokens_out = sum(_aider_tokens(r.group(4)) for r in reports)
        if costs:
            result.cost_usd = float(costs[-1].group(2))  # the session's total so far
        if _AIDER_LOGIN_WAIT in output:  # stopped there (waits_forever), or gave up after 5 min
            said = _AIDER_NO_KEY.search(output)
            reason = " ".join(said.group(0).split()) if said else "no API key found."
            result.error = AgentError(
                "auth",
                self.auth_message(f"{reason} It waited for a browser login to OpenRouter"),
            )
            return result
        if returncode != 0:
            result.error = self.fail(output, returncode)
            return result
        errors = list(_LITELLM_ERROR.finditer(output))
        # An error followed by a usage report was retried by aider and then answered.
        if errors and not (reports and reports[-1].start() > errors[-1].start()):
            last = errors[-1]
            kind = _LITELLM_KINDS.get(last.group(1), "nonzero_exit")
            detail = f"litellm.{last.group(1)}: {' '.join(last.group(2).split())}"
            if kind == "nonzero_exit":
                result.error = AgentError(
                    kind, f"aider reported {excerpt(detail, 300)} (and exited 0 all the same)"
                )
            else:
                result.error = self.fail(detail, returncode, kind)
        elif errors:
            result.warnings.append(f"aider retried after {errors[-1].group(1)}")
        elif not output.strip():
            result.error = self.bad_output("gave no answer", output)
        if result.error is None and request.edit and "Applied edit to " not in output:
            # aider exits 0 whatever happened: an edit request without an applied edit failed
            result.error = self.bad_output("applied no edit", output)
        return result


def _git_identity(cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """``GIT_CONFIG_COUNT``/``KEY``/``VALUE`` variables that give git, in ``cwd`` with
    ``env``, the parts of :data:`_AIDER_GIT_IDENTITY` it has none of (empty: nothing
    missing, or git is not there to ask)."""
    git = shutil.which("git", path=env.get("PATH"))
    if git is None:
        return {}
    missing: list[tuple[str, str]] = []
    for key, value in _AIDER_GIT_IDENTITY:
        try:
            done = subprocess.run(
                [git, "config", "--get", key],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return {}
        if done.returncode == 1 and not done.stdout.strip():  # 1: the key is not set
            missing.append((key, value))
    if not missing:
        return {}
    try:
        first = int(env.get("GIT_CONFIG_COUNT") or 0)
    except ValueError:
        return {}
    extra = {"GIT_CONFIG_COUNT": str(first + len(missing))}
    for index, (key, value) in enumerate(missing, start=first):
        extra[f"GIT_CONFIG_KEY_{index}"] = key
        extra[f"GIT_CONFIG_VALUE_{index}"] = value
    return extra


class CommandAdapter(_CliAdapter):
    """``command:ARGV``: any program run as given (no shell), e.g. ``ruff check --fix``.

    The prompt is written to its stdin (most commands ignore it); its stdout is the text; a
    nonzero exit status is an error; the call is free.
    """

    name = "command"
    executable = ""

    def argv(self, request: AgentRequest, prompt_file: Path | None) -> list[str]:
        return list(self.spec.argv)

    def parse(
        self, stdout: str, stderr: str, returncode: int, request: AgentRequest
    ) -> AgentResult:
        result = self.result(text=stdout)
        if returncode != 0:
            detail = stderr.strip() or stdout.strip() or "(no output)"
            result.error = AgentError(
                "nonzero_exit",
                f"{shlex.join(self.spec.argv)} exited with status {returncode}: "
                f"{excerpt(detail, 300)}",
            )
        return result


def preflight(option: str, specs: Sequence[str], table: PricingTable, path: str | None) -> None:
    """Check, before any test runs, that each agent of ``option`` (its ``NAME[:MODEL]`` or
    ``command:ARGV`` entries) can be called: its program is on ``path`` (a ``PATH`` value;
    None: this process's), and a model named for a CLI we price from tokens (codex, gemini,
    copilot) has a rate in ``table`` (a budget cannot be kept for an unknown price).

    :raises ValueError: one line naming the option, the agent and the fix.
    """
    for text in specs:
        spec = AgentSpec.parse(text)
        adapter = ADAPTERS[spec.name]
        program = spec.argv[0] if spec.argv else adapter.executable
        if shutil.which(program, path=path) is None:
            how = f"install it ({adapter.install})" if adapter.install else "install it"
            raise ValueError(
                f"{option}={spec.label}: {program!r} is not on PATH; {how}, give its "
                "directory in PATH, or choose another agent"
            )
        if spec.model and not adapter.reports_cost and not table.knows(spec.model):
            raise ValueError(
                f"{option}={spec.label}: no price for model {spec.model!r} ({spec.name} reports "
                "tokens, not a cost); add one with orchestrate_pricing = "
                f"{spec.model}=INPUT/OUTPUT (USD per 1M tokens), or name a priced model"
            )


ADAPTERS: dict[str, type[Adapter]] = {
    "claude": ClaudeAdapter,
    "codex": CodexAdapter,
    "gemini": GeminiAdapter,
    "copilot": CopilotAdapter,
    "aider": AiderAdapter,
    "command": CommandAdapter,
}
