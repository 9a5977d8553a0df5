"""Scores and the quality gate.

Formulas (the README's "Score" section says the same):

- tests: pass rate, ``100 * (passed + xpassed) / (passed + xpassed + failed + errors)``;
- coverage: coverage.py's percent covered, ``100 * (executed lines + executed branches) /
  (lines + branches)``;
- finding-based dimensions (lint, security, third-party): ``100 - sum(points[severity]) /
  KLOC``, floored at 0, where KLOC is the project's lines of code / 1000, at least 1. It is
  monotone (one more finding, or a worse one, never raises it) and size-aware (30 P3 nits
  cost 30 points in a 1,000-line project and 0.6 in a 50,000-line one);
- overall: the weighted mean of the counted dimension scores.

Every score comes with deductions that add up to exactly ``100 - score`` at
``SCORE_DIGITS`` decimals (largest-remainder rounding).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.models import (
    SCORE_DIGITS,
    AuditResult,
    Deduction,
    DimensionScore,
    Finding,
    GateCondition,
    Score,
    Severity,
    Verdict,
)


def fmt(value: float) -> str:
    """A score as printed everywhere: 2 decimals (the same figure the gate compares)."""
    return f"{value:.{SCORE_DIGITS}f}"


def apportion(values: Sequence[float], total: float, digits: int = SCORE_DIGITS) -> list[float]:
    """Round ``values`` to ``digits`` decimals so that they add up to ``round(total, digits)``.

    Largest-remainder (Hamilton) rounding: floor every value, then give the missing units
    to the largest remainders. ``values`` are non-negative and sum to ``total`` up to
    float error.
    """
    if not values:
        return []
    unit = 10**digits
    target = round(round(total, digits) * unit)
    floors = [math.floor(v * unit + 1e-9) for v in values]
    rest = target - sum(floors)
    order = sorted(range(len(values)), key=lambda i: values[i] * unit - floors[i], reverse=True)
    for i in order[: max(rest, 0)]:
        floors[i] += 1
    return [f / unit for f in floors]


def deductions_for(
    dimension: str, lost: Sequence[tuple[str, float, int]], score: float
) -> list[Deduction]:
    """Deductions from ``(reason, raw points, count)`` triples, rounded to sum to 100 - score."""
    points = apportion([p for _, p, _ in lost], 100.0 - score)
    return [
        Deduction(dimension=dimension, reason=reason, points=pts, count=count)
        for (reason, _, count), pts in zip(lost, points, strict=True)
        if count or pts
    ]


def finding_score(
    dimension: str,
    findings: Sequence[Finding],
    lines_of_code: int,
    points: dict[Severity, float],
) -> tuple[float, list[Deduction]]:
    """Score of a finding-based dimension and its deductions, one per severity and rule.

    :param lines_of_code: size of the audited code; below 1,000 it counts as 1,000.
    :param points: points one finding of each severity costs per 1,000 lines.
    :returns: (score 0-100 rounded to SCORE_DIGITS, deductions adding up to 100 - score).
    """
    kloc = max(lines_of_code / 1000.0, 1.0)
    groups = Counter((f.severity, f.rule_id) for f in findings)
    lost: list[tuple[str, float, int]] = []
    for (severity, rule), count in sorted(groups.items(), key=lambda kv: (kv[0][0].rank, kv[0][1])):
        each = points.get(severity, 0.0)
        lost.append(
            (
                f"{count} x {rule} ({severity.value}, {each:g} points each per {kloc:g} KLOC)",
                count * each / kloc,
                count,
            )
        )
    raw = sum(p for _, p, _ in lost)
    if raw > 100.0:  # the score is floored at 0: scale the deductions to the 100 points there are
        lost = [
            (f"{r} [scaled to the 100 points available]", p * 100.0 / raw, c) for r, p, c in lost
        ]
        raw = 100.0
    score = round(100.0 - raw, SCORE_DIGITS)
    return score, deductions_for(dimension, lost, score)


def overall_score(results: Sequence[AuditResult], settings: OrchestrationConfig) -> Score:
    """The default overall score: weighted mean of the counted dimension scores.

    A dimension counts when its status is ``ok`` and its weight is above 0; an unavailable
    one counts as 0 only under ``orchestrate_unavailable = zero``. With no counted
    dimension the overall score is 0.
    """
    rows: list[DimensionScore] = []
    counted: list[tuple[str, float, float]] = []
    for result in results:
        weight = settings.weight(result.dimension)
        if result.status == "ok" and result.score is not None:
            value: float | None = result.score
        elif settings.unavailable == "zero":
            value = 0.0
        else:
            value = None
        is_counted = value is not None and weight > 0
        if value is not None and weight > 0:
            counted.append((result.dimension, value, weight))
        rows.append(
            DimensionScore(
                dimension=result.dimension,
                status=result.status,
                score=result.score,
                weight=weight,
                counted=is_counted,
            )
        )
    total_weight = sum(w for _, _, w in counted)
    if not total_weight:
        return Score(overall=0.0, dimensions=rows, deductions=[])
    overall = round(sum(v * w for _, v, w in counted) / total_weight, SCORE_DIGITS)
    lost = [
        (f"{dim}: {fmt(v)} with weight {w:g} of {total_weight:g}", (100 - v) * w / total_weight, 1)
        for dim, v, w in counted
    ]
    deductions = deductions_for("overall", lost, overall)
    by_dim = {dim: d.points for (dim, _, _), d in zip(counted, deductions, strict=True)}
    for row in rows:
        row.points_lost = by_dim.get(row.dimension, 0.0)
    return Score(overall=overall, dimensions=rows, deductions=deductions)


def evaluate_gate(
    score: Score, results: Sequence[AuditResult], settings: OrchestrationConfig
) -> Verdict:
    """The quality gate: overall >= target, no fail-on finding, per-dimension minimums.

    Compares the rounded figures it prints (``SCORE_DIGITS`` decimals), so a printed
    "89.99 < 90.00" is always a failure and a printed "90.00" always meets 90.
    """
    target = round(settings.target_score, SCORE_DIGITS)
    conditions = [
        GateCondition(
            name="target score",
            passed=score.overall >= target,
            message=f"overall score {fmt(score.overall)} "
            f"{'>=' if score.overall >= target else '<'} target {fmt(target)}",
        )
    ]
    if settings.fail_on:
        names = ", ".join(s.value for s in settings.fail_on)
        blocking = [f for r in results for f in r.findings if f.severity in settings.fail_on]
        if blocking:
            by_sev = Counter(f.severity.value for f in blocking)
            counts = ", ".join(f"{n} {sev}" for sev, n in sorted(by_sev.items()))
            message = f"{counts} finding(s) at a failing severity ({names})"
        else:
            message = f"no finding at a failing severity ({names})"
        conditions.append(GateCondition(name="fail-on", passed=not blocking, message=message))
    for result in results:
        minimum = settings.min_scores.get(result.dimension)
        if result.status != "ok":
            rule = settings.unavailable
            conditions.append(
                GateCondition(
                    name=f"{result.dimension} available",
                    passed=rule != "fail",
                    message=f"{result.dimension} {result.status} ({result.reason}); "
                    + {
                        "skip": "left out of the score",
                        "zero": "counted as 0",
                        "fail": "orchestrate_unavailable = fail",
                    }[rule],
                )
            )
            continue
        if minimum is None or result.score is None:
            continue
        ok = result.score >= round(minimum, SCORE_DIGITS)
        conditions.append(
            GateCondition(
                name=f"{result.dimension} minimum",
                passed=ok,
                message=f"{result.dimension} {fmt(result.score)} "
                f"{'>=' if ok else '<'} minimum {fmt(minimum)}",
            )
        )
    return Verdict(
        passed=all(c.passed for c in conditions),
        target=target,
        score=score.overall,
        conditions=conditions,
    )
