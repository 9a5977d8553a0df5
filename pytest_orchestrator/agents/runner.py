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

Calls run one at a time (:attr:`Ledger.turn`). Before every attempt, the cheapest the call
can cost (its prompt's tokens at the model's input rate, see ``pricing``) is compared with
what is left of the budget; an attempt that cannot fit is not started (error kind
``budget``), so no retry starts beyond the budget. Every attempt, successful or not, is
recorded in the :class:`Ledger` shared by the session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pytest_orchestrator.agents.base import (
    AgentError,
    AgentRequest,
    AgentResult,
    AgentSpec,
    excerpt,
)
from pytest_orchestrator.agents.pricing import CHARS_PER_TOKEN, PricingTable
from pytest_orchestrator.models import AgentCall, AgentUsage


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

    def minimum_cost(self, spec: AgentSpec, request: AgentRequest) -> float:
        """The least the call can cost: its prompt at the model's input rate (USD)."""
        from pytest_orchestrator.agents.adapters import ADAPTERS

        if spec.name == "command":
            return 0.0
        adapter = ADAPTERS[spec.name](spec)
        tokens = len(request.prompt) // CHARS_PER_TOKEN
        return round(tokens * self.pricing.rate(adapter.model).input / 1_000_000, 6)

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
            for attempt in range(1, self.retries + 2):
                if cancelled():
                    return adapter.result(
                        error=AgentError("nonzero_exit", "not started: the session ended")
                    )
                left = self.ledger.left_usd
                needed = self.minimum_cost(spec, request)
                if left is not None and (needed > left or (left <= 0 and spec.name != "command")):
                    result = adapter.result(
                        error=AgentError(
                            "budget",
                            f"not started: the call needs at least ${needed:.4f} and "
                            f"${left:.4f} of the ${self.ledger.budget_usd:.2f} budget is left",
                        )
                    )
                    self.ledger.record(result, purpose, attempt)
                    last = result
                    break  # a cheaper agent further down the chain may still fit
                result = adapter.run(replace(request, budget_usd=left), self.env, self.pricing)
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
