"""The agent runner: retries with backoff, fallback, authentication stops, the budget.

The agents are the fake CLIs of ``tests/fakes`` (real subprocesses printing each CLI's
documented output) and real commands through ``command:``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakes import install_fakes

from pytest_orchestrator.agents.base import AgentRequest, AgentSpec
from pytest_orchestrator.agents.pricing import PricingTable
from pytest_orchestrator.agents.runner import AgentRunner, Ledger

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")

PROMPT = "Review the project and answer with a score.\n" * 20


class Sleeps(list[float]):
    """Records the backoff delays instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = install_fakes(tmp_path / "bin")
    values = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_AGENT_")}
    values["PATH"] = os.pathsep.join([str(bin_dir), values.get("PATH", os.defpath)])
    values["FAKE_AGENT_LOG"] = str(tmp_path / "calls.jsonl")
    return values


def calls(env: dict[str, str]) -> list[dict[str, object]]:
    log = Path(env["FAKE_AGENT_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def runner(
    chain: str, env: dict[str, str], ledger: Ledger, sleeps: Sleeps, **options: float
) -> AgentRunner:
    specs = [AgentSpec.parse(s) for s in chain.split(",")]
    return AgentRunner(
        specs,
        ledger,
        PricingTable.shipped(),
        env=env,
        sleep=sleeps,
        **options,  # type: ignore[arg-type]
    )


def request(tmp_path: Path) -> AgentRequest:
    return AgentRequest(prompt=PROMPT, cwd=tmp_path, timeout=30)


def test_rate_limits_are_retried_with_doubling_backoff_then_given_up(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["FAKE_AGENT_MODE"] = "rate_limit"
    ledger, sleeps = Ledger(budget_usd=5.0), Sleeps()
    result = runner("claude", env, ledger, sleeps, retries=3, backoff=0.5).call(
        request(tmp_path), "audit:security"
    )

    assert result.error is not None and result.error.kind == "rate_limit"
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(calls(env)) == 4
    assert [c.attempt for c in ledger.calls] == [1, 2, 3, 4]
    assert {c.outcome for c in ledger.calls} == {"rate_limit"}
    assert all(c.purpose == "audit:security" for c in ledger.calls)


def test_backoff_stops_at_the_total_wait_limit(env: dict[str, str], tmp_path: Path) -> None:
    env["FAKE_AGENT_MODE"] = "rate_limit"
    sleeps = Sleeps()
    runner("claude", env, Ledger(), sleeps, retries=5, backoff=10, max_wait=25).call(
        request(tmp_path), "x"
    )

    assert sleeps == [10]  # the next wait (20) would pass 25 s in all
    assert len(calls(env)) == 2


def test_authentication_is_not_retried_and_names_the_variable(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["FAKE_AGENT_MODE"] = "auth"
    ledger, sleeps = Ledger(), Sleeps()
    result = runner("claude,codex", env, ledger, sleeps).call(request(tmp_path), "x")

    assert result.error is not None and result.error.kind == "auth"
    assert "ANTHROPIC_API_KEY" in result.error.message and "CODEX_API_KEY" in result.error.message
    assert sleeps == []
    assert [c["agent"] for c in calls(env)] == ["claude", "codex"]


def test_falls_back_to_the_next_agent(env: dict[str, str], tmp_path: Path) -> None:
    (Path(env["PATH"].split(os.pathsep)[0]) / "aider").unlink()  # aider is not installed
    env["FAKE_AGENT_TEXT"] = "all good"
    ledger = Ledger(budget_usd=5.0)
    result = runner("aider,claude", env, ledger, Sleeps()).call(request(tmp_path), "x")

    assert result.ok and result.text == "all good" and result.agent == "claude"
    assert [c.outcome for c in ledger.calls] == ["missing_executable", "ok"]
    assert ledger.spent_usd == 0.0123  # claude's reported cost
    assert ledger.left_usd == round(5.0 - 0.0123, 6)


def test_what_is_left_of_the_budget_is_passed_to_claude(
    env: dict[str, str], tmp_path: Path
) -> None:
    ledger = Ledger(budget_usd=1.0)
    ledger.record(
        runner("command:true", env, ledger, Sleeps()).call(request(tmp_path), "x"), "x", 1
    )
    ledger.calls[-1] = ledger.calls[-1].model_copy(update={"cost_usd": 0.25})
    runner("claude", env, ledger, Sleeps()).call(request(tmp_path), "x")

    argv = calls(env)[-1]["argv"]
    assert isinstance(argv, list)
    assert argv[argv.index("--max-budget-usd") + 1] == "0.75"


def test_a_call_that_cannot_fit_the_budget_is_not_started(
    env: dict[str, str], tmp_path: Path
) -> None:
    ledger = Ledger(budget_usd=0.0001)  # the prompt alone costs more at claude's rate
    result = runner("claude", env, ledger, Sleeps()).call(request(tmp_path), "x")

    assert result.error is not None and result.error.kind == "budget"
    assert "not started" in result.error.message and "$0.0001" in result.error.message
    assert calls(env) == []
    assert ledger.spent_usd == 0


def test_no_retry_starts_once_what_is_left_cannot_cover_the_worst_case(
    env: dict[str, str], tmp_path: Path
) -> None:
    # copilot reports no tokens: each rate-limited attempt is charged an estimate.
    env["FAKE_AGENT_MODE"] = "rate_limit"
    probe = Ledger()
    probing = runner("copilot", env, probe, Sleeps(), retries=0)
    probing.call(request(tmp_path), "x")
    each = probe.calls[0].cost_usd
    assert each > 0 and probe.calls[0].cost_source == "estimated"
    worst, _ = probing.worst_case(AgentSpec.parse("copilot"), request(tmp_path))
    assert worst > each

    ledger = Ledger(budget_usd=round(worst + each / 2, 6))  # one attempt's worth
    result = runner("copilot", env, ledger, Sleeps(), retries=10, backoff=0.01).call(
        request(tmp_path), "x"
    )

    assert result.error is not None and result.error.kind == "budget"
    assert len(calls(env)) == 1 + 1  # the probe, then one attempt
    assert [c.outcome for c in ledger.calls] == ["rate_limit", "budget"]
    assert ledger.spent_usd == each and ledger.spent_usd <= (ledger.budget_usd or 0)
    assert f"may cost up to ${worst:.4f}" in result.error.message


def test_a_rate_limited_codex_with_a_long_answer_cannot_pass_the_budget(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Rate limited once, then an answer of 100k output tokens: $3 at the highest rate.
    env.update(
        FAKE_AGENT_MODE="rate_limit_once",
        FAKE_AGENT_STATE=str(tmp_path / "limited-once"),
        FAKE_AGENT_TOKENS_OUT="100000",
    )
    unlimited = Ledger()
    runner("codex", env, unlimited, Sleeps()).call(request(tmp_path), "x")
    assert [c.outcome for c in unlimited.calls] == ["rate_limit", "ok"]
    assert unlimited.spent_usd > 3  # what the scenario spends when nothing stops it

    (tmp_path / "limited-once").unlink()
    before = len(calls(env))
    ledger = Ledger(budget_usd=0.05)
    result = runner("codex", env, ledger, Sleeps()).call(request(tmp_path), "x")

    assert result.error is not None and result.error.kind == "budget"
    assert len(calls(env)) == before  # no attempt started
    assert ledger.spent_usd == 0 and [c.outcome for c in ledger.calls] == ["budget"]
    # the reason says what the call may cost, from what, and what is left
    message = result.error.message
    assert message.startswith("not started: the call may cost up to $0.12")
    assert "4096 output tokens at the most expensive known rates" in message
    assert message.endswith("and $0.0500 of the $0.05 budget is left")


def test_the_largest_output_of_the_session_is_the_next_calls_allowance(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["FAKE_AGENT_TOKENS_OUT"] = "100000"
    ledger = Ledger(budget_usd=5.0)
    first = runner("codex", env, ledger, Sleeps()).call(request(tmp_path), "x")
    assert first.ok and 3 < ledger.spent_usd < 3.1

    second = runner("codex", env, ledger, Sleeps()).call(request(tmp_path), "x")

    assert second.error is not None and second.error.kind == "budget"
    assert "100000 output tokens" in second.error.message
    assert len(calls(env)) == 1
    assert ledger.left_usd is not None and ledger.left_usd > 1.9  # a 4096-token call would fit


def test_a_retry_needs_what_the_attempt_before_it_cost(env: dict[str, str], tmp_path: Path) -> None:
    # claude spent $0.60 before it was rate limited; $0.40 is left, more than a worst case
    # of 4096 output tokens but less than the attempt before.
    env.update(FAKE_AGENT_MODE="rate_limit", FAKE_AGENT_COST="0.6")
    ledger = Ledger(budget_usd=1.0)
    chain = runner("claude", env, ledger, Sleeps())
    worst, _ = chain.worst_case(AgentSpec.parse("claude"), request(tmp_path))
    assert worst < 0.4
    result = chain.call(request(tmp_path), "x")

    assert result.error is not None and result.error.kind == "budget"
    assert result.error.message == (
        "not started: a retry may cost as much as the attempt before it, $0.6000, "
        "and $0.4000 of the $1.00 budget is left"
    )
    assert [c.outcome for c in ledger.calls] == ["rate_limit", "budget"]
    assert len(calls(env)) == 1 and ledger.spent_usd == 0.6


def test_command_agents_are_free_and_their_failures_are_not_retried(
    env: dict[str, str], tmp_path: Path
) -> None:
    ledger, sleeps = Ledger(budget_usd=0.0), Sleeps()
    ok = runner("command:true", env, ledger, sleeps).call(request(tmp_path), "x")
    failed = runner("command:false", env, ledger, sleeps).call(request(tmp_path), "x")

    assert ok.ok and ok.cost_usd == 0.0 and ok.cost_source == "free"
    assert failed.error is not None and failed.error.kind == "nonzero_exit"
    assert sleeps == [] and ledger.spent_usd == 0
    assert [c.cost_source for c in ledger.calls] == ["free", "free"]
