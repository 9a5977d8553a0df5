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


def test_no_retry_starts_once_the_budget_is_spent(env: dict[str, str], tmp_path: Path) -> None:
    # copilot reports no tokens: each rate-limited attempt is charged an estimate.
    env["FAKE_AGENT_MODE"] = "rate_limit"
    probe = Ledger()
    runner("copilot", env, probe, Sleeps(), retries=0).call(request(tmp_path), "x")
    each = probe.calls[0].cost_usd
    assert each > 0 and probe.calls[0].cost_source == "estimated"

    ledger = Ledger(budget_usd=2 * each)
    result = runner("copilot", env, ledger, Sleeps(), retries=10, backoff=0.01).call(
        request(tmp_path), "x"
    )

    assert result.error is not None and result.error.kind == "budget"
    assert len(calls(env)) == 1 + 2  # the probe, then two attempts
    assert ledger.spent_usd == round(2 * each, 6) and ledger.left_usd == 0
    assert [c.outcome for c in ledger.calls] == ["rate_limit", "rate_limit", "budget"]


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
