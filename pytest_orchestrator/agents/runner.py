"""Calling agents within a budget: retries with backoff, fallback, and the ledger of calls.

:class:`AgentRunner` calls the first agent of a chain (``--orchestrate-agent=claude,codex``)
and, on failure:

- a rate limit is retried after 1, 2, 4 ... seconds (``backoff`` doubling), at most
  ``retries`` times and ``max_wait`` seconds in all;
- a timeout is not retried (the CLI may have spent money we cannot see): the attempt is
  charged its prompt's estimated cost and the next agent is tried;
- an authentication error is not retried: the next agent is tried, and when none is left
  the call fails with a message naming the variable the CLI needs;
- any other error (bad output, non-zero exit, missing executable) moves to the next agent.

Calls run one at a time (:attr:`Ledger.turn`). Before every attempt, first or retry, what
is left of the budget must cover a worst case (:meth:`AgentRunner.worst_case`): the
prompt's tokens at the model's input rate plus an output allowance (the largest output of
any call of the session, at least :data:`OUTPUT_ALLOWANCE` tokens) at its output rate, an
unnamed or unknown model at the most expensive known rates (see ``pricing``); a retry must
also be able to cost as much as the attempt before it. An attempt that cannot fit is not
started (error kind ``budget``, the message says what it needed and what was left) and the
next agent of the chain is tried. Every attempt, successful, failed or not started, is
recorded in the :class:`Ledger` shared by the session.

This is an estimate made before the call: a CLI without a budget cap of its own (all but
claude, which gets what is left as ``--max-budget-usd``) can still spend more within one
call when its answer is longer than the allowance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pytest_orchestrator.agents.base import (
    AgentError,
    AgentRequest,
    AgentResult,
    AgentSpec,
    excerpt,
)
from pytest_orchestrator.agents.pricing import CHARS_PER_TOKEN, PricingTable
from pytest_orchestrator.models import AgentCall, AgentUsage

if TYPE_CHECKING:
    from pytest_orchestrator.agents.sandbox import Sandbox

#: Output tokens a call is assumed to produce before a call of the session has produced
#: more: one answer of 4,096 tokens, a common default ``max_tokens`` of the model APIs.
OUTPUT_ALLOWANCE = 4096


@dataclass
class Ledger:
    """The session's agent calls and spending (thread-safe: audits run in threads).

    :ivar budget_usd: the budget in USD; None for no limit.
    """

    budget_usd: float | None = None
    calls: list[AgentCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Held for the whole of an agent call: calls run one at a time, so that each sees (and
    #: gives its CLI as a cap) what is truly left, even when several audits run at once.
    turn: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spent_usd(self) -> float:
        return round(sum(c.cost_usd for c in self.calls), 6)

    @property
    def left_usd(self) -> float | None:
        """USD left of the budget, or None for no limit."""
        if self.budget_usd is None:
            return None
        return max(0.0, round(self.budget_usd - self.spent_usd, 6))

    @property
    def largest_output(self) -> int:
        """The most output tokens one recorded call reported (0 before any did)."""
        with self._lock:
            return max((c.tokens_out or 0 for c in self.calls), default=0)

    def record(self, result: AgentResult, purpose: str, attempt: int) -> AgentCall:
        """Add one attempt."""
        call = AgentCall(
            agent=result.agent,
            model=result.model,
            purpose=purpose,
            attempt=attempt,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            cached_tokens=result.cached_tokens,
            cost_usd=max(0.0, result.cost_usd or 0.0),
            cost_source=result.cost_source if result.cost_usd is not None else "none",
            duration=result.duration,
            outcome="ok" if result.error is None else result.error.kind,
            sandbox="bwrap" if result.sandbox == "bwrap" else "none",
            message=result.error.message if result.error else None,
            warnings=list(result.warnings),
        )
        with self._lock:
            self.calls.append(call)
        return call

    def usage(self) -> AgentUsage:
        """The ledger as the report's ``agents`` section."""
        with self._lock:
            calls = list(self.calls)
        return AgentUsage(budget_usd=self.budget_usd, spent_usd=self.spent_usd, calls=calls)


class AgentRunner:
    """Calls a chain of agents under the :class:`Ledger`'s budget (see the module doc).

    :param retries: retries of a transient error per agent.
    :param backoff: seconds before the first retry; doubled each time.
    :param max_wait: seconds of backoff per agent in all.
    :param sleep: how to wait (tests pass a recorder).
    :param sandbox: what every call runs in (``agents.sandbox``); None: no sandbox.
    """

    def __init__(
        self,
        specs: Sequence[AgentSpec],
        ledger: Ledger,
        pricing: PricingTable | None = None,
        *,
        retries: int = 3,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        env: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        sandbox: Sandbox | None = None,
    ) -> None:
        if not specs:
            raise ValueError("no agent given")
        self.specs = list(specs)
        self.ledger = ledger
        self.pricing = pricing or PricingTable.shipped()
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.env = env
        self.sleep = sleep
        self.sandbox = sandbox

    def worst_case(self, spec: AgentSpec, request: AgentRequest) -> tuple[float, str]:
        """What one attempt of ``request`` with ``spec`` is assumed to cost at most, in USD,
        and how that was reckoned (for the message of a refused attempt).

        The prompt's tokens (:data:`CHARS_PER_TOKEN` characters each) at the model's input
        rate plus the output allowance, the largest output of the session's calls but at
        least :data:`OUTPUT_ALLOWANCE` tokens, at its output rate; the model's rate is the
        pricing table's, the most expensive known for an unnamed or unknown model.
        ``command:`` agents are free: ``(0.0, "free")``.
        """
        from pytest_orchestrator.agents.adapters import ADAPTERS

        if spec.name == "command":
            return 0.0, "free"
        model = ADAPTERS[spec.name](spec).model
        rate = self.pricing.rate(model)
        tokens_in = len(request.prompt) // CHARS_PER_TOKEN + 1
        tokens_out = max(OUTPUT_ALLOWANCE, self.ledger.largest_output)
        usd = (tokens_in * rate.input + tokens_out * rate.output) / 1_000_000
        priced = f"{model}'s rates" if rate.known else "the most expensive known rates"
        how = f"{tokens_in} prompt and {tokens_out} output tokens at {priced}"
        return round(usd, 6), how

    def call(self, request: AgentRequest, purpose: str) -> AgentResult:
        """Run ``request`` through the chain; the last attempt's result is returned.

        Never raises for an agent's failure: the result's ``error`` says what went wrong.
        """

        with self.ledger.turn:
            return self._call(request, purpose)

    def _call(self, request: AgentRequest, purpose: str) -> AgentResult:
        from pytest_orchestrator.agents.adapters import ADAPTERS
        from pytest_orchestrator.agents.base import cancelled

        last: AgentResult | None = None
        auth_failures: list[str] = []
        for spec in self.specs:
            adapter = ADAPTERS[spec.name](spec)
            waited = 0.0
            previous: AgentResult | None = None
            for attempt in range(1, self.retries + 2):
                if cancelled():
                    return adapter.result(
                        error=AgentError("nonzero_exit", "not started: the session ended")
                    )
                left = self.ledger.left_usd
                refused = self._refusal(spec, request, left, previous)
                if refused is not None:
                    result = adapter.result(error=AgentError("budget", refused))
                    self.ledger.record(result, purpose, attempt)
                    last = result
                    break  # a cheaper agent further down the chain may still fit
                result = adapter.run(
                    replace(request, budget_usd=left), self.env, self.pricing, self.sandbox
                )
                warning = self.sandbox.warning if self.sandbox is not None else None
                if warning is not None:
                    result.warnings.append(warning)
                previous = result
                self.ledger.record(result, purpose, attempt)
                last = result
                if result.error is None:
                    return result
                if result.error.kind == "auth":
                    auth_failures.append(result.error.message)
                    break
                if not result.error.transient or attempt > self.retries:
                    break
                delay = self.backoff * 2 ** (attempt - 1)
                if waited + delay > self.max_wait:
                    break
                waited += delay
                self.sleep(delay)
        assert last is not None
        if auth_failures and last.error is not None and last.error.kind == "auth":
            return replace(
                last, error=AgentError("auth", "; ".join(excerpt(m, 300) for m in auth_failures))
            )
        return last

    def _refusal(
        self,
        spec: AgentSpec,
        request: AgentRequest,
        left: float | None,
        previous: AgentResult | None,
    ) -> str | None:
        """Why an attempt may not start with ``left`` USD of the budget (None: no limit),
        after ``previous`` (the agent's attempt before, for a retry); None when it may."""
        if left is None or spec.name == "command":
            return None
        needed, how = self.worst_case(spec, request)
        budget = f"${left:.4f} of the ${self.ledger.budget_usd:.2f} budget is left"
        before = max(0.0, previous.cost_usd or 0.0) if previous is not None else 0.0
        if before > needed and before > left:
            return (
                f"not started: a retry may cost as much as the attempt before it, "
                f"${before:.4f}, and {budget}"
            )
        if needed > left or left <= 0:
            return f"not started: the call may cost up to ${needed:.4f} ({how}) and {budget}"
        return None
