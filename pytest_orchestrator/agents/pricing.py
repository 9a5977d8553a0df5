"""Prices of models, and the cost of a call when the CLI does not report one.

The table ships as data (``pricing.json``: USD per 1,000,000 input and output tokens, the
vendors' published prices, each vendor with its pricing page and the date of the figures)
and is overridden by the ini setting ``orchestrate_pricing`` (lines ``MODEL=INPUT/OUTPUT``)
or a file named by ``orchestrate_pricing_file`` (the same JSON shape). A cost the CLI
reports wins over a computed one, unless it is negative, NaN or infinite.

Model names are matched after :func:`normalize`: without a provider prefix and without the
version suffixes the providers document (a date ``-YYYYMMDD``, ``@YYYYMMDD`` or
``-YYYY-MM-DD``, or ``-latest``). Any other difference makes another model: an unnamed
model, or one not in the table (``claude-sonnet-4.5-xyz``, ``gpt-4o-mini``), is priced at
the most expensive rates in the table, with a warning (a model dearer than any in the
table is still under-counted: give its price in ``orchestrate_pricing``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_orchestrator import jsonio

if TYPE_CHECKING:
    from pytest_orchestrator.agents.base import AgentRequest, AgentResult

#: Characters per token when a CLI reports no token counts (a common rough figure).
CHARS_PER_TOKEN = 4
#: The version suffixes that name a snapshot of the same model: Anthropic's and OpenAI's
#: dates (``-20250929``, ``-2024-08-06``), Vertex AI's (``@20250929``), and ``-latest``.
_VERSION_SUFFIX = re.compile(r"(?:[-@]\d{8}|-\d{4}-\d{2}-\d{2}|-latest)$")


def normalize(model: str) -> str:
    """The name a model is priced under: lower case, without a provider prefix
    (``anthropic/``) or a documented version suffix (see :data:`_VERSION_SUFFIX`), version
    numbers with a dot: ``anthropic/claude-sonnet-4-5-20250929`` -> ``claude-sonnet-4.5``,
    ``claude-sonnet-4-5@20250929`` -> ``claude-sonnet-4.5``, ``gpt-4o-2024-08-06`` ->
    ``gpt-4o``. Other suffixes stay: ``claude-sonnet-4.5-xyz`` is another model."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = _VERSION_SUFFIX.sub("", name)
    return re.sub(r"(?<=\d)-(?=\d(?:\D|$))", ".", name)


@dataclass(frozen=True)
class Rate:
    """USD per 1,000,000 tokens; ``known`` is False for the fallback rate."""

    input: float
    output: float
    known: bool = True


@dataclass
class PricingTable:
    """Model -> :class:`Rate` (names normalised with :func:`normalize`)."""

    rates: dict[str, Rate] = field(default_factory=dict)

    @classmethod
    def shipped(cls) -> PricingTable:
        """The table shipped with the package."""
        data = json.loads(
            resources.files("pytest_orchestrator.agents").joinpath("pricing.json").read_text()
        )
        return cls.from_mapping(data["models"])

    @classmethod
    def from_mapping(cls, models: dict[str, list[float] | tuple[float, float]]) -> PricingTable:
        """From ``{"model": [input, output]}``.

        :raises ValueError: a rate that is not two non-negative numbers.
        """
        rates = {}
        for model, pair in models.items():
            try:
                low, high = (float(v) for v in pair)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(
                    f"price of {model!r} must be [input, output] USD per 1M tokens"
                ) from None
            if not (0 <= low < math.inf and 0 <= high < math.inf):  # NaN fails too
                raise ValueError(f"price of {model!r} must be non-negative finite numbers")
            rates[normalize(model)] = Rate(low, high)
        return cls(rates)

    @classmethod
    def parse_lines(cls, lines: list[str]) -> PricingTable:
        """From ini lines ``MODEL=INPUT/OUTPUT`` (USD per 1M tokens).

        :raises ValueError: a line not in that form.
        """
        models: dict[str, list[float] | tuple[float, float]] = {}
        for line in lines:
            model, sep, pair = line.partition("=")
            low, slash, high = pair.partition("/")
            try:
                if not (sep and slash and model.strip()):
                    raise ValueError
                models[model.strip()] = (float(low), float(high))
            except ValueError:
                raise ValueError(
                    f"{line!r} is not MODEL=INPUT/OUTPUT (USD per 1M tokens), e.g. gpt-4o=5/15"
                ) from None
        return cls.from_mapping(models)

    @classmethod
    def load(cls, lines: list[str] | None = None, file: Path | None = None) -> PricingTable:
        """The shipped table, updated by ``file`` then by ``lines``.

        :raises ValueError: an unreadable file or a bad rate (message names which).
        """
        table = cls.shipped()
        if file is not None:
            try:
                data = jsonio.loads(file.read_bytes())
                models = data["models"] if isinstance(data, dict) and "models" in data else data
                table.rates.update(cls.from_mapping(models).rates)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"cannot read prices from {str(file)!r}: {exc}") from None
        if lines:
            table.rates.update(cls.parse_lines(lines).rates)
        return table

    @property
    def highest(self) -> Rate:
        """The fallback for unknown models: the highest input and output rates known."""
        return Rate(
            max((r.input for r in self.rates.values()), default=0.0),
            max((r.output for r in self.rates.values()), default=0.0),
            known=False,
        )

    def knows(self, model: str) -> bool:
        """Whether ``model`` has its own rate (see :meth:`rate`)."""
        return normalize(model) in self.rates

    def rate(self, model: str | None) -> Rate:
        """The rate of ``model`` (USD per 1M tokens): the table's entry for its name after
        :func:`normalize`, else :attr:`highest` (``known`` False) for an unnamed model
        (None: the CLI's own choice) or one the table lacks. No prefix matching: a name the
        table does not hold exactly is another model, whose price is unknown."""
        if model:
            name = normalize(model)
            if name in self.rates:
                return self.rates[name]
        return self.highest

    def cost(self, model: str | None, tokens_in: int, tokens_out: int) -> tuple[float, str | None]:
        """(USD, warning or None) for a call of ``model`` that used ``tokens_in`` and
        ``tokens_out`` tokens; the warning, for a model priced at :attr:`highest`, says so."""
        rate = self.rate(model)
        usd = (tokens_in * rate.input + tokens_out * rate.output) / 1_000_000
        return round(usd, 6), None if rate.known else unpriced_warning(model, rate)


def unpriced_warning(model: str | None, rate: Rate) -> str:
    """One line: ``model`` (None: the CLI's own, unknown choice) has no price and was charged
    ``rate``, the most expensive known."""
    what = f"model {model!r} has no price" if model else "the model is not known (none was given)"
    return (
        f"{what}; priced at the most expensive known rate ({rate.input:g}/{rate.output:g} USD "
        "per 1M tokens), to keep the budget on the safe side; "
        + ("add it to orchestrate_pricing" if model else "give the agent as NAME:MODEL")
    )


def price_result(
    result: AgentResult, request: AgentRequest, table: PricingTable | None = None
) -> AgentResult:
    """``result`` with its cost in USD: reported by the CLI, else computed from its tokens,
    else estimated from the prompt's and the answer's size (:data:`CHARS_PER_TOKEN`), or
    free for commands. Computed and estimated costs use ``table`` (default: the shipped
    one): ``result.model``'s rate, or for an unnamed or unknown model the highest, with
    :func:`unpriced_warning` added to ``result.warnings``."""
    if result.cost_usd is not None and not (
        math.isfinite(result.cost_usd) and result.cost_usd >= 0
    ):
        bad = f"the agent reported a cost of {result.cost_usd} USD, which no call costs"
        result = replace(
            result, cost_usd=None, warnings=[*result.warnings, f"{bad}; priced as unreported"]
        )
    if result.cost_usd is not None:
        return replace(result, cost_source="reported")
    if result.agent.startswith("command:"):
        return replace(result, cost_usd=0.0, cost_source="free")
    table = table or PricingTable.shipped()
    if result.tokens_in is not None or result.tokens_out is not None:
        usd, warning = table.cost(result.model, result.tokens_in or 0, result.tokens_out or 0)
        source = "computed"
    else:
        tokens_in = len(request.prompt) // CHARS_PER_TOKEN + 1
        tokens_out = len(result.text) // CHARS_PER_TOKEN + 1
        usd, warning = table.cost(result.model, tokens_in, tokens_out)
        source = "estimated"
    warnings = [*result.warnings, warning] if warning else result.warnings
    return replace(result, cost_usd=usd, cost_source=source, warnings=warnings)  # type: ignore[arg-type]
