"""The agent adapters against fake CLIs run as real subprocesses (``tests/fakes``): argv,
the prompt's way in, parsing, pricing, and the classification of every kind of failure."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes import install_fakes

from pytest_orchestrator.agents.adapters import (
    ADAPTERS,
    AiderAdapter,
    ClaudeAdapter,
    CodexAdapter,
    CopilotAdapter,
    GeminiAdapter,
)
from pytest_orchestrator.agents.base import AgentRequest, AgentResult, AgentSpec
from pytest_orchestrator.agents.pricing import CHARS_PER_TOKEN, PricingTable
from pytest_orchestrator.agents.sandbox import Sandbox

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")

MARKER = "PROMPT-MARKER-7f3a"
PROMPT = f'Fix the failing test.\nIt\'s in tests/test_x.py; say "done" {MARKER}\n$(rm -rf /)\n'
AGENTS = ("claude", "codex", "gemini", "copilot", "aider")
TABLE = PricingTable.shipped()


@dataclass
class Fakes:
    """The fake CLIs on ``PATH``, a repository to run them in, and the log they write."""

    env: dict[str, str]
    log: Path
    repo: Path
    sandbox: Sandbox | None = None

    def run(
        self,
        agent: str,
        mode: str = "success",
        *,
        edit: bool = False,
        timeout: float = 60.0,
        budget_usd: float | None = None,
        max_turns: int | None = None,
        files: tuple[str, ...] = (),
        prompt: str = PROMPT,
        **fake: str,
    ) -> AgentResult:
        spec = AgentSpec.parse(agent)
        request = AgentRequest(
            prompt=prompt,
            cwd=self.repo,
            timeout=timeout,
            edit=edit,
            budget_usd=budget_usd,
            max_turns=max_turns,
            files=files,
        )
        env = {**self.env, "FAKE_AGENT_MODE": mode}
        if "edit_file" in fake:
            env["FAKE_AGENT_EDIT"] = fake.pop("edit_file")
        env.update({f"FAKE_AGENT_{key.upper()}": value for key, value in fake.items()})
        return ADAPTERS[spec.name](spec).run(request, env, TABLE, self.sandbox)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture(params=["none", "bwrap"])
def fakes(tmp_path: Path, request: pytest.FixtureRequest) -> Fakes:
    """The fakes, run without a sandbox and inside bubblewrap (its log directory made
    writable there)."""
    bin_dir = install_fakes(tmp_path / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AGENT_")}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    env["FAKE_AGENT_LOG"] = str(bin_dir / "calls.jsonl")
    repo = tmp_path / "repo"
    repo.mkdir()
    sandbox = None
    if request.param == "bwrap":
        request.getfixturevalue("bwrap")
        sandbox = Sandbox.choose("bwrap", [bin_dir])
    return Fakes(env, bin_dir / "calls.jsonl", repo, sandbox)


def request(edit: bool, **values: Any) -> AgentRequest:
    return AgentRequest(prompt=PROMPT, cwd=Path("."), edit=edit, **values)


# --- argv -------------------------------------------------------------------------------


def test_claude_argv_edit_with_model_budget_and_turns() -> None:
    adapter = ClaudeAdapter(AgentSpec.parse("claude:claude-haiku-4.5"))
    argv = adapter.argv(request(True, budget_usd=0.5, max_turns=7), None)
    assert argv == [
        "claude",
        "-p",
        "--output-format",
        "json",
        "--model",
        "claude-haiku-4-5",  # the CLI's spelling of the table's claude-haiku-4.5
        "--max-turns",
        "7",
        "--max-budget-usd",
        "0.5",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Bash,Edit,MultiEdit,Write",
    ]


def test_claude_argv_read_only_denies_the_writing_tools() -> None:
    argv = ClaudeAdapter(AgentSpec.parse("claude")).argv(request(False), None)
    assert argv[:4] == ["claude", "-p", "--output-format", "json"]
    assert "--model" not in argv and "--max-budget-usd" not in argv
    assert "acceptEdits" not in argv and "--allowedTools" not in argv
    denied = argv[argv.index("--disallowedTools") + 1].split(",")
    assert {"Edit", "Write", "MultiEdit", "NotebookEdit", "Bash"} <= set(denied)
    assert argv[argv.index("--permission-mode") + 1] == "default"


@pytest.mark.parametrize("agent", ["codex", "gemini", "copilot", "aider"])
def test_only_claude_takes_a_turn_limit(agent: str, tmp_path: Path) -> None:
    # claude's --max-turns is the only turn limit these CLIs document as an option (gemini's
    # is the settings.json key model.maxSessionTurns): the others' argv does not change.
    adapter = ADAPTERS[agent](AgentSpec.parse(agent))
    prompt_file = tmp_path / "prompt.md"
    for edit in (True, False):
        assert adapter.argv(request(edit, max_turns=5), prompt_file) == adapter.argv(
            request(edit), prompt_file
        )


def test_claude_budget_is_a_plain_decimal() -> None:
    argv = ClaudeAdapter(AgentSpec.parse("claude")).argv(request(False, budget_usd=1e-5), None)
    assert argv[argv.index("--max-budget-usd") + 1] == "0.00001"


def test_codex_argv_reads_the_prompt_from_stdin() -> None:
    adapter = CodexAdapter(AgentSpec.parse("codex:gpt-5-codex"))
    assert adapter.argv(request(True), None) == [
        "codex",
        "exec",
        "--json",
        "--model",
        "gpt-5-codex",
        "--sandbox",
        "workspace-write",
        "-",
    ]
    read_only = CodexAdapter(AgentSpec.parse("codex")).argv(request(False), None)
    assert read_only == [
        "codex",
        "exec",
        "--json",
        "--sandbox",
        "read-only",
        "--skip-git-repo-check",
        "-",
    ]


def test_gemini_argv_keeps_the_prompt_off_the_command_line() -> None:
    adapter = GeminiAdapter(AgentSpec.parse("gemini:gemini-2.0-flash"))
    argv = adapter.argv(request(True), None)
    assert argv == [
        "gemini",
        "--output-format",
        "json",
        "--approval-mode",
        "auto_edit",
        "--model",
        "gemini-2.0-flash",
        "--prompt",
        GeminiAdapter.STDIN_INSTRUCTION,
    ]
    read_only = GeminiAdapter(AgentSpec.parse("gemini")).argv(request(False), None)
    assert read_only[read_only.index("--approval-mode") + 1] == "default"
    assert "--model" not in read_only


def test_copilot_argv_edit_read_only_and_paths() -> None:
    adapter = CopilotAdapter(AgentSpec.parse("copilot:gpt-4o"))
    edit = adapter.argv(request(True), None)
    assert edit == ["copilot", "-s", "--no-ask-user", "--model", "gpt-4o", "--allow-all-tools"]
    everywhere = adapter.argv(request(True, allow_all_paths=True), None)
    assert everywhere[-1] == "--allow-all-paths"
    read_only = adapter.argv(request(False), None)
    assert "--deny-tool=write" in read_only and "--deny-tool=shell" in read_only
    assert "--allow-all-paths" not in read_only and "-p" not in read_only


def test_aider_argv_edit_and_ask_mode(tmp_path: Path) -> None:
    prompt_file = tmp_path / "prompt.md"
    adapter = AiderAdapter(AgentSpec.parse("aider:claude-sonnet-4.5"))
    edit = adapter.argv(request(True, files=("src/a.py", "-odd.py")), prompt_file)
    assert edit[:3] == ["aider", "--message-file", str(prompt_file)]
    for flag in ("--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-analytics"):
        assert flag in edit
    assert edit[edit.index("--model") + 1] == "claude-sonnet-4.5"
    assert edit[-3:] == ["--", "src/a.py", "-odd.py"]
    assert edit[edit.index("--chat-history-file") + 1].startswith(str(tmp_path))
    assert "--dry-run" not in edit and "ask" not in edit
    read_only = adapter.argv(request(False, files=("src/a.py",)), prompt_file)
    assert read_only[-4:] == ["--chat-mode", "ask", "--dry-run", "--read=src/a.py"]
    with pytest.raises(ValueError, match="file"):
        adapter.argv(request(False), None)


def test_adapters_cover_every_agent_name() -> None:
    assert set(ADAPTERS) == {*AGENTS, "command"}
    assert AgentSpec.parse("gemini:gemini-2.0-flash").model == "gemini-2.0-flash"
    with pytest.raises(ValueError, match="aider, claude, codex, copilot, gemini"):
        AgentSpec.parse("cursor")


# --- the prompt's way in, the environment -------------------------------------------------


@pytest.mark.parametrize("agent", AGENTS)
def test_prompt_arrives_on_stdin_or_in_a_file_never_in_argv(fakes: Fakes, agent: str) -> None:
    result = fakes.run(agent)
    assert result.ok, result.error
    [call] = fakes.calls()
    assert call["agent"] == agent
    assert not any(MARKER in arg for arg in call["argv"])
    assert call["cwd"] == str(fakes.repo)
    if agent == "aider":
        assert call["message_file"] == PROMPT
        assert call["stdin"] == ""
    else:
        assert PROMPT in call["stdin"]


def test_the_agent_environment_lacks_pytest_addopts(fakes: Fakes) -> None:
    fakes.env.update(PYTEST_ADDOPTS="-p no:cacheprovider", COV_CORE_SOURCE="src")
    fakes.env.pop("PYTEST_ORCHESTRATOR_AGENT", None)
    assert fakes.run("claude").ok
    [call] = fakes.calls()
    assert "PYTEST_ADDOPTS" not in call["env"]
    assert "COV_CORE_SOURCE" not in call["env"]
    assert call["env"]["PYTEST_ORCHESTRATOR_AGENT"] == "1"


@pytest.mark.parametrize("agent", AGENTS)
def test_edits_happen_only_when_the_argv_allows_them(fakes: Fakes, agent: str) -> None:
    target = fakes.repo / "module.py"
    target.write_text("x = 1\n")
    assert fakes.run(agent, edit=False, edit_file=str(target)).ok
    assert target.read_text() == "x = 1\n"
    assert fakes.run(agent, edit=True, edit_file=str(target)).ok
    assert target.read_text() == f"x = 1\nedited by fake {agent}\n"


# --- parsing and pricing ---------------------------------------------------------------------


def test_claude_success_reports_text_tokens_cost_and_session(fakes: Fakes) -> None:
    result = fakes.run(
        "claude", text="All green.", tokens_in="1000", tokens_out="250", cached="300", cost="0.042"
    )
    assert result.ok
    assert result.text == "All green."
    assert (result.tokens_in, result.tokens_out, result.cached_tokens) == (1300, 250, 300)
    assert result.cost_usd == 0.042 and result.cost_source == "reported"
    assert result.session_id == "fake-session-0001"
    assert result.exit_status == 0 and result.duration > 0
    # no model asked for: the one its modelUsage names
    assert result.model == "claude-sonnet-4-5-20250929" and result.agent == "claude"


def test_codex_sums_usage_over_turns_and_prices_it(fakes: Fakes) -> None:
    result = fakes.run(
        "codex", text="Patched.", turns="2", tokens_in="1500", tokens_out="400", cached="100"
    )
    assert result.ok
    assert result.text == "Patched."
    assert (result.tokens_in, result.tokens_out, result.cached_tokens) == (3000, 800, 200)
    rate = TABLE.highest  # no model asked for: codex's configured one is unknown
    assert result.cost_source == "computed"
    assert result.cost_usd == pytest.approx((3000 * rate.input + 800 * rate.output) / 1e6)
    assert result.session_id == "fake-0001"


def test_codex_stream_error_followed_by_a_completed_turn_is_a_warning(fakes: Fakes) -> None:
    result = fakes.run("codex", "reconnect")
    assert result.ok
    assert any("Reconnecting" in warning for warning in result.warnings)


def test_gemini_prices_the_model_asked_for(fakes: Fakes) -> None:
    result = fakes.run(
        "gemini:gemini-2.0-flash", text="Looks fine.", tokens_in="2000", tokens_out="500"
    )
    assert result.ok
    assert result.text == "Looks fine."
    assert (result.tokens_in, result.tokens_out) == (2000, 500)
    assert result.model == "gemini-2.0-flash"
    rate = TABLE.rate("gemini-2.0-flash")
    assert rate.known
    assert result.cost_source == "computed"
    assert result.cost_usd == pytest.approx((2000 * rate.input + 500 * rate.output) / 1e6)
    assert result.session_id == "fake-session-0001"


def test_gemini_without_a_model_prices_the_model_it_used(fakes: Fakes) -> None:
    result = fakes.run("gemini", model="gemini-2.5-pro", tokens_in="1000", tokens_out="200")
    assert result.ok
    assert result.model == "gemini-2.5-pro"
    rate = TABLE.rate("gemini-2.5-pro")
    assert rate.known and result.warnings == []
    assert result.cost_usd == pytest.approx((1000 * rate.input + 200 * rate.output) / 1e6)
    other = fakes.run("gemini", model="gemini-9-ultra", tokens_in="1000", tokens_out="200")
    highest = TABLE.highest  # a model the table does not know: the highest rate, said
    assert other.cost_usd == pytest.approx((1000 * highest.input + 200 * highest.output) / 1e6)
    assert any("gemini-9-ultra" in warning for warning in other.warnings)


def test_claude_without_a_model_prices_what_model_usage_names(fakes: Fakes) -> None:
    asked = fakes.run("claude:claude-haiku-4.5", model="claude-opus-4-1-20250805")
    assert asked.model == "claude-haiku-4.5"  # a model asked for stays the call's model
    unnamed = fakes.run("claude", model="claude-opus-4-1-20250805")
    assert unnamed.model == "claude-opus-4-1-20250805"
    assert unnamed.cost_source == "reported" and unnamed.warnings == []


def test_a_timed_out_claude_without_a_model_is_charged_the_highest_rate(fakes: Fakes) -> None:
    unnamed = fakes.run("claude", "timeout", timeout=0.5, sleep="30")
    highest = TABLE.highest
    tokens_in = len(PROMPT) // CHARS_PER_TOKEN + 1
    assert unnamed.model is None and unnamed.cost_source == "estimated"
    assert unnamed.cost_usd == pytest.approx((tokens_in * highest.input + highest.output) / 1e6)
    [warning] = unnamed.warnings
    assert warning.startswith("the model is not known (none was given); priced at the most")

    named = fakes.run("claude:claude-haiku-4.5", "timeout", timeout=0.5, sleep="30")
    haiku = TABLE.rate("claude-haiku-4.5")
    assert named.cost_usd == pytest.approx((tokens_in * haiku.input + haiku.output) / 1e6)
    assert named.warnings == [] and named.cost_usd < (unnamed.cost_usd or 0)


def test_gemini_without_a_model_or_stats_is_charged_the_highest_rate(fakes: Fakes) -> None:
    # no --model and no stats (the call failed): gemini's own choice is unknown
    result = fakes.run("gemini", "error")
    assert result.error is not None and result.model is None
    highest = TABLE.highest
    tokens_in = len(PROMPT) // CHARS_PER_TOKEN + 1
    assert result.cost_source == "estimated"
    assert result.cost_usd == pytest.approx((tokens_in * highest.input + highest.output) / 1e6)
    assert any("priced at the most expensive known rate" in w for w in result.warnings)


def test_copilot_cost_is_estimated_from_sizes(fakes: Fakes) -> None:
    answer = "The audit found two flaky tests." * 10
    result = fakes.run("copilot", text=answer)
    assert result.ok
    assert result.text == answer
    assert result.tokens_in is None and result.tokens_out is None
    rate = TABLE.highest  # no model asked for: copilot's own choice is unknown
    tokens_in = len(PROMPT) // CHARS_PER_TOKEN + 1
    tokens_out = len(answer) // CHARS_PER_TOKEN + 1
    assert result.cost_source == "estimated"
    assert any("priced at the most expensive known rate" in w for w in result.warnings)
    assert result.cost_usd == pytest.approx(
        (tokens_in * rate.input + tokens_out * rate.output) / 1e6
    )


def test_aider_usage_report_gives_tokens_and_reported_cost(fakes: Fakes) -> None:
    result = fakes.run("aider", tokens_in="2345", tokens_out="215", cost="0.0091")
    assert result.ok
    assert "Done: the fake aider answer." in result.text
    assert (result.tokens_in, result.tokens_out) == (2300, 215)  # aider prints "2.3k"
    assert result.cost_usd == 0.0091 and result.cost_source == "reported"


def test_aider_tokens_without_cost_are_priced(fakes: Fakes) -> None:
    result = fakes.run("aider", "tokens_only", tokens_in="12345", tokens_out="999")
    assert result.ok
    assert (result.tokens_in, result.tokens_out) == (12000, 999)
    rate = TABLE.highest  # no model asked for: aider's configured one is unknown
    assert result.cost_source == "computed"
    assert result.cost_usd == pytest.approx((12000 * rate.input + 999 * rate.output) / 1e6)


def test_aider_without_usage_report_is_estimated(fakes: Fakes) -> None:
    result = fakes.run("aider", "no_usage")
    assert result.ok
    assert result.tokens_in is None
    assert result.cost_source == "estimated" and (result.cost_usd or 0) > 0


def test_aider_error_then_successful_retry_is_ok(fakes: Fakes) -> None:
    result = fakes.run("aider", "retry_then_success")
    assert result.ok
    assert result.warnings == ["aider retried after RateLimitError"]


# --- failures ------------------------------------------------------------------------------

FAILURES = [
    ("claude", "auth", "auth"),
    ("claude", "rate_limit", "rate_limit"),
    ("claude", "is_error_success", "nonzero_exit"),
    ("claude", "error", "nonzero_exit"),
    ("claude", "max_budget", "budget"),
    ("claude", "max_turns", "budget"),
    ("claude", "garbage", "bad_output"),
    ("claude", "nonzero", "nonzero_exit"),
    ("codex", "auth", "auth"),
    ("codex", "rate_limit", "rate_limit"),
    ("codex", "turn_failed", "nonzero_exit"),
    ("codex", "garbage", "bad_output"),
    ("codex", "nonzero", "nonzero_exit"),
    ("gemini", "auth", "auth"),
    ("gemini", "rate_limit", "rate_limit"),
    ("gemini", "turn_limit", "budget"),
    ("gemini", "input_error", "nonzero_exit"),
    ("gemini", "config_error", "nonzero_exit"),
    ("gemini", "error", "nonzero_exit"),
    ("gemini", "garbage", "bad_output"),
    ("copilot", "auth", "auth"),
    ("copilot", "rate_limit", "rate_limit"),
    ("copilot", "error", "nonzero_exit"),
    ("copilot", "garbage", "bad_output"),
    ("aider", "auth", "auth"),
    ("aider", "rate_limit", "rate_limit"),
    ("aider", "error", "nonzero_exit"),
    ("aider", "garbage", "bad_output"),
    ("aider", "nonzero", "nonzero_exit"),
]


@pytest.mark.parametrize(("agent", "mode", "kind"), FAILURES)
def test_failures_are_classified(fakes: Fakes, agent: str, mode: str, kind: str) -> None:
    result = fakes.run(agent, mode)
    assert result.error is not None, result
    assert result.error.kind == kind, result.error
    assert "\n" not in result.error.message
    assert len(result.error.message) <= 600
    assert result.error.message.startswith(agent)
    if kind == "auth":
        auth_env = ADAPTERS[agent].auth_env
        assert any(variable in result.error.message for variable in auth_env)
    assert result.error.transient == (kind == "rate_limit")


def test_claude_is_error_wins_over_a_success_subtype(fakes: Fakes) -> None:
    result = fakes.run("claude", "is_error_success")
    assert result.error is not None
    assert "Internal server error" in result.error.message
    assert result.exit_status == 1
    assert result.cost_usd == 0 and result.cost_source == "reported"


def test_claude_budget_stop_keeps_the_spent_cost(fakes: Fakes) -> None:
    result = fakes.run("claude", "max_budget", budget_usd=0.25, cost="0.26")
    assert result.error is not None and result.error.kind == "budget"
    assert "--max-budget-usd" in result.error.message and "$0.25" in result.error.message
    assert result.cost_usd == 0.26
    [call] = fakes.calls()
    assert call["argv"][call["argv"].index("--max-budget-usd") + 1] == "0.25"


def test_claude_turn_limit(fakes: Fakes) -> None:
    result = fakes.run("claude", "max_turns", max_turns=5)
    assert result.error is not None and result.error.kind == "budget"
    assert "after 5 turns" in result.error.message


def test_aider_exit_status_zero_with_a_fatal_api_error_is_an_error(fakes: Fakes) -> None:
    result = fakes.run("aider", "auth")
    assert result.exit_status == 0
    assert result.error is not None and result.error.kind == "auth"
    assert "OPENAI_API_KEY" in result.error.message


def test_aider_auth_names_the_key_of_the_models_provider(fakes: Fakes) -> None:
    result = fakes.run("aider:claude-sonnet-4.5", "auth")
    assert result.error is not None and result.error.kind == "auth"
    assert "set ANTHROPIC_API_KEY for model 'claude-sonnet-4.5'" in result.error.message


def test_gemini_turn_limit_names_its_exit_code_meaning(fakes: Fakes) -> None:
    result = fakes.run("gemini", "turn_limit")
    assert result.exit_status == 53
    assert result.error is not None
    assert "turn limit exceeded" in result.error.message
    assert "maxSessionTurns" in result.error.message


def test_gemini_configuration_error_names_its_exit_code_meaning(fakes: Fakes) -> None:
    result = fakes.run("gemini", "config_error")
    assert result.exit_status == 52
    assert result.error is not None and result.error.kind == "nonzero_exit"
    assert result.error.message.startswith(
        "gemini failed (exit status 52, configuration error): Error in "
        "/home/user/.gemini/settings.json"
    )
    assert "Please fix the configuration file(s)" in result.error.message
    assert not result.error.transient


@pytest.mark.parametrize("agent", AGENTS)
def test_timeout(fakes: Fakes, agent: str) -> None:
    result = fakes.run(agent, "timeout", timeout=0.5, sleep="30")
    assert result.error is not None and result.error.kind == "timeout"
    assert not result.error.transient  # it may have spent: not retried
    assert result.cost_source == "estimated" and (result.cost_usd or 0) > 0  # charged
    assert result.duration < 10


@pytest.mark.parametrize("agent", AGENTS)
def test_missing_executable(fakes: Fakes, tmp_path: Path, agent: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    fakes.env["PATH"] = str(empty)
    result = fakes.run(agent)
    assert result.error is not None and result.error.kind == "missing_executable"
    assert repr(agent) in result.error.message
    assert fakes.calls() == []


# --- command: ------------------------------------------------------------------------------


def test_command_ruff_fix_changes_the_file_for_free(fakes: Fakes) -> None:
    source = fakes.repo / "mod.py"
    source.write_text("import os\n\nVALUE = 1\n")
    fakes.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), fakes.env["PATH"]])
    result = fakes.run("command:ruff check --fix --no-cache --select F401 mod.py", edit=True)
    assert result.ok, result.error
    assert source.read_text().strip() == "VALUE = 1"  # the unused import is gone
    assert result.cost_usd == 0.0 and result.cost_source == "free"
    assert result.agent == "command:ruff check --fix --no-cache --select F401 mod.py"


def test_command_gets_the_prompt_on_stdin(fakes: Fakes) -> None:
    script = "import sys; data = sys.stdin.read(); print(len(data), 'MARKER' in data)"
    result = fakes.run(f"command:{shlex.quote(sys.executable)} -c {shlex.quote(script)}")
    assert result.ok
    assert result.text.split() == [str(len(PROMPT)), "True"]


def test_command_nonzero_exit_is_an_error_with_its_output(fakes: Fakes) -> None:
    script = "import sys; sys.stderr.write('boom\\nsecond line'); sys.exit(3)"
    result = fakes.run(f"command:{shlex.quote(sys.executable)} -c {shlex.quote(script)}")
    assert result.error is not None and result.error.kind == "nonzero_exit"
    assert "exited with status 3: boom second line" in result.error.message
    assert result.exit_status == 3
    assert result.cost_source == "free"


def test_command_missing_program(fakes: Fakes) -> None:
    result = fakes.run("command:no-such-program-3b1f --fix")
    assert result.error is not None and result.error.kind == "missing_executable"
    assert "no-such-program-3b1f" in result.error.message


def test_aider_edit_request_without_an_applied_edit_is_an_error(fakes: Fakes) -> None:
    target = fakes.repo / "app.py"
    target.write_text("x = 1\n")
    edited = fakes.run("aider", edit=True, edit_file=str(target), files=("app.py",))
    unchanged = fakes.run("aider", edit=True, files=("app.py",))  # no FAKE_AGENT_EDIT

    assert edited.ok and "edited by fake aider" in target.read_text()
    assert unchanged.error is not None and unchanged.error.kind == "bad_output"
    assert "applied no edit" in unchanged.error.message


def test_what_an_agent_leaves_running_is_stopped_with_it(fakes: Fakes) -> None:
    late = fakes.repo / "late.txt"
    script = (
        "import subprocess; subprocess.Popen(['sh', '-c', 'sleep 1; echo late > "
        f"{late}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    )
    result = fakes.run(f"command:{sys.executable} -c {shlex.quote(script)}")
    time.sleep(2)

    assert result.ok
    assert not late.exists()
