"""Scores and the quality gate.

Formulas (docs/scoring.md, "Score", says the same):

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
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.models import (
    SCORE_DIGITS,
    AuditResult,
    BaselineComparison,
    Deduction,
    DimensionScore,
    Finding,
    GateCondition,
    NewCode,
    Score,
    Severity,
    Verdict,
    finding_order,
)


def fmt(value: float) -> str:
    """A score as printed everywhere: 2 decimals (the same figure the gate compares)."""
    return f"{value:.{SCORE_DIGITS}f}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``'1 changed line'``, ``'3 changed lines'``; ``words`` for an irregular plural
    (``plural(2, 'branch', 'branches')``)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


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
                f"{count} x {rule} ({severity.value}, {each:g} point{'' if each == 1 else 's'} "
                f"each per {kloc:g} KLOC)",
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
        elif settings.unavailable_rule(result.dimension) == "zero":
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
    score: Score,
    results: Sequence[AuditResult],
    settings: OrchestrationConfig,
    new_code: NewCode | None = None,
    new_results: Sequence[AuditResult] = (),
    baseline: BaselineComparison | None = None,
) -> Verdict:
    """The quality gate: overall >= target, no fail-on finding, per-dimension minimums.

    Compares the rounded figures it prints (``SCORE_DIGITS`` decimals), so a printed
    "89.99 < 90.00" is always a failure and a printed "90.00" always meets 90.

    :param new_code: with ``--orchestrate-diff-base``, the new code (``newcode.assess``).
        The gate then judges only it: the target applies to the new-code score, fail-on to
        the findings on new code (failing tests always count), each minimum to the new-code
        dimension score (the coverage minimum to the diff coverage, stated with the number
        of changed executable lines, and "not applicable" when there is none); the overall
        figures are reported for information. Unavailable dimensions are judged as usual.
    :param new_results: the new-code audit results (``newcode.Assessment.results``).
    :param baseline: with ``--orchestrate-baseline``, the ratchet's comparison; its
        conditions (score, new findings, coverage) are added.
    """
    target = round(settings.target_score, SCORE_DIGITS)
    if new_code is None:
        conditions = _conditions(score.overall, results, settings, target)
        judged = score.overall
    else:
        conditions = _new_code_conditions(score, new_code, new_results, settings, target)
        judged = new_code.score.overall if new_code.score is not None else score.overall
    if baseline is not None:
        conditions += _baseline_conditions(baseline, score, results)
    return Verdict(
        passed=all(c.passed for c in conditions),
        target=target,
        score=judged,
        conditions=conditions,
        scope="overall" if new_code is None else "new code",
    )


def _fail_on(
    findings: Sequence[Finding], settings: OrchestrationConfig, where: str
) -> GateCondition:
    names = ", ".join(s.value for s in settings.fail_on)
    blocking = sorted((f for f in findings if f.severity in settings.fail_on), key=finding_order)
    if blocking:
        by_sev = Counter(f.severity.value for f in blocking)
        counts = ", ".join(f"{n} {sev}" for sev, n in sorted(by_sev.items()))
        word = "finding" if len(blocking) == 1 else "findings"
        named = "; ".join(_where(f) for f in blocking[:SHOWN_FINDINGS])
        left = len(blocking) - SHOWN_FINDINGS
        more = f"; and {left} more" if left > 0 else ""
        message = f"{counts} {word} at a failing severity ({names}){where}: {named}{more}"
    else:
        message = f"no finding at a failing severity ({names}){where}"
    name = "new-code fail-on" if where else "fail-on"
    return GateCondition(name=name, passed=not blocking, message=message)


#: Findings a failed fail-on condition names (it counts all).
SHOWN_FINDINGS = 3


def _where(finding: Finding) -> str:
    """``pkg/calc.py:45 B324``, or the node id of a failing test."""
    if finding.tool == "pytest" and ": " in finding.message:
        return finding.message.split(": ", 1)[0]
    place = (finding.path or "-") + (f":{finding.line}" if finding.line else "")
    return f"{place} {finding.rule_id}"


def _available(result: AuditResult, settings: OrchestrationConfig) -> GateCondition:
    """A requested dimension that could not be measured fails the gate, unless allowed
    (``orchestrate_allow_unavailable``) or ``orchestrate_unavailable`` says skip or zero:
    a gate whose score rose when a measurement broke would invite breaking it."""
    rule = settings.unavailable_rule(result.dimension)
    allowed = result.dimension in settings.allow_unavailable
    if rule == "fail":
        message = f"{result.dimension} {result.status}: {result.reason}"
    else:
        how = (
            "allowed by orchestrate_allow_unavailable"
            if allowed
            else (f"orchestrate_unavailable = {rule}")
        )
        effect = "left out of the score" if rule == "skip" else "counted as 0"
        message = f"{result.dimension} {result.status} ({result.reason}); {how}: {effect}"
    return GateCondition(
        name=f"{result.dimension} available", passed=rule != "fail", message=message
    )


def _conditions(
    overall: float,
    results: Sequence[AuditResult],
    settings: OrchestrationConfig,
    target: float,
) -> list[GateCondition]:
    """The conditions on the whole project."""
    conditions = [
        GateCondition(
            name="target score",
            passed=overall >= target,
            message=f"overall score {fmt(overall)} "
            f"{'>=' if overall >= target else '<'} target {fmt(target)}",
        )
    ]
    if settings.fail_on:
        conditions.append(_fail_on([f for r in results for f in r.findings], settings, ""))

    def overall_minimum(result: AuditResult, score: float, relation: str) -> tuple[str, str]:
        return f"{result.dimension} minimum", f"{result.dimension} {fmt(score)} {relation}"

    return conditions + _minimums(results, settings, overall_minimum)


def _minimums(
    results: Sequence[AuditResult],
    settings: OrchestrationConfig,
    describe: Callable[[AuditResult, float, str], tuple[str, str]],
) -> list[GateCondition]:
    """Per dimension: its availability, or its minimum (``orchestrate_min_scores``).

    :param describe: ``(result, score, ">= minimum 70.00")`` -> the condition's name and
        message.
    """
    conditions = []
    for result in results:
        minimum = settings.min_scores.get(result.dimension)
        if result.status != "ok":
            conditions.append(_available(result, settings))
            continue
        if minimum is None or result.score is None:
            continue
        ok = result.score >= round(minimum, SCORE_DIGITS)
        name, message = describe(
            result, result.score, f"{'>=' if ok else '<'} minimum {fmt(minimum)}"
        )
        conditions.append(GateCondition(name=name, passed=ok, message=message))
    return conditions


def _new_code_conditions(
    score: Score,
    new_code: NewCode,
    new_results: Sequence[AuditResult],
    settings: OrchestrationConfig,
    target: float,
) -> list[GateCondition]:
    """The conditions on the new code (see :func:`evaluate_gate`)."""
    from pytest_orchestrator.reports.newcode_text import size_words

    size = size_words(new_code)
    if new_code.score is None:
        target_condition = GateCondition(
            name="new-code target score",
            passed=True,
            message=f"no new-code score: no dimension could be scored on the {size}; "
            f"target not applicable (overall {fmt(score.overall)}, for information)",
        )
    else:
        value = new_code.score.overall
        target_condition = GateCondition(
            name="new-code target score",
            passed=value >= target,
            message=f"new-code score {fmt(value)} {'>=' if value >= target else '<'} "
            f"target {fmt(target)} on {size} (overall {fmt(score.overall)}, for information)",
        )
    conditions = [target_condition]
    if settings.fail_on:
        findings = [f for r in new_results for f in r.findings]
        conditions.append(_fail_on(findings, settings, " on new code"))
    scored = {r.dimension for r in new_results}
    coverage_min = settings.min_scores.get("coverage")
    if new_code.coverage_measured and "coverage" not in scored and coverage_min is not None:
        conditions.append(
            GateCondition(
                name="diff coverage minimum",
                passed=True,
                message=f"no changed executable lines: diff coverage condition not applicable "
                f"({size})",
            )
        )

    def new_code_minimum(result: AuditResult, score: float, relation: str) -> tuple[str, str]:
        if result.dimension == "coverage":
            lines = plural(new_code.executable_lines, "changed executable line")
            return (
                "diff coverage minimum",
                f"diff coverage {fmt(score)} {relation} on {lines} ({size})",
            )
        if result.dimension == "tests":
            return "tests minimum", f"tests {fmt(score)} {relation} (all tests, whatever changed)"
        name = f"{result.dimension} new-code minimum"
        return name, f"{result.dimension} {fmt(score)} {relation} on new code"

    return conditions + _minimums(new_results, settings, new_code_minimum)


def _baseline_conditions(
    baseline: BaselineComparison, score: Score, results: Sequence[AuditResult]
) -> list[GateCondition]:
    """The ratchet: score, new findings and coverage against the baseline report."""
    ok = score.overall >= baseline.score
    conditions = [
        GateCondition(
            name="baseline score",
            passed=ok,
            message=f"overall score {fmt(score.overall)} {'>=' if ok else '<'} baseline "
            f"{fmt(baseline.score)}"
            + ("" if ok else f": it dropped {fmt(baseline.score - score.overall)}"),
        )
    ]
    if baseline.new_findings:
        by_fingerprint = {f.fingerprint: f for r in results for f in r.findings}
        shown = []
        for print_ in baseline.new_fingerprints[:5]:
            finding = by_fingerprint.get(print_)
            if finding is None:
                shown.append(print_)
                continue
            where = (finding.path or "-") + (f":{finding.line}" if finding.line else "")
            shown.append(f"{finding.severity.value} {finding.rule_id} {where} [{print_}]")
        more = baseline.new_findings - len(shown)
        message = (
            f"{baseline.new_findings} new finding(s) the baseline lacks: {'; '.join(shown)}"
            + (f"; and {more} more" if more > 0 else "")
        )
    else:
        message = f"no finding the baseline lacks ({baseline.fixed_findings} fixed)"
    conditions.append(
        GateCondition(name="baseline findings", passed=not baseline.new_findings, message=message)
    )
    coverage = next((r for r in results if r.dimension == "coverage"), None)
    if baseline.coverage is None:
        passed, message = (
            True,
            "the baseline has no coverage figure: coverage ratchet not applicable",
        )
    elif coverage is None:
        passed, message = True, "coverage not audited in this run: coverage ratchet not applicable"
    elif coverage.status != "ok" or coverage.score is None:
        passed = False
        message = (
            f"coverage {coverage.status} in this run ({coverage.reason}), so it cannot be "
            f"compared with the baseline's {fmt(baseline.coverage)}"
        )
    else:
        from pytest_orchestrator.baseline import coverage_percent

        now = coverage_percent([coverage]) or 0.0  # ok, with a score: never None here
        passed = now >= baseline.coverage
        message = f"coverage {fmt(now)} {'>=' if passed else '<'} baseline {fmt(baseline.coverage)}"
    conditions.append(GateCondition(name="baseline coverage", passed=passed, message=message))
    if baseline.suppressions is not None and baseline.suppressions_now is not None:
        grew = baseline.suppressions_now > baseline.suppressions
        kinds = ", ".join(f"{k} {v:+d}" for k, v in baseline.suppressions_by_kind.items())
        message = (
            f"suppressions {baseline.suppressions_now} {'>' if grew else '<='} baseline "
            f"{baseline.suppressions}" + (f" ({kinds})" if kinds else "")
        )
        if grew:
            message += ": fix the findings instead of silencing them"
        conditions.append(
            GateCondition(name="baseline suppressions", passed=not grew, message=message)
        )
    return conditions


def path_conditions(
    results: Sequence[AuditResult], settings: OrchestrationConfig, rootdir: Path
) -> list[GateCondition]:
    """One gate condition per ``orchestrate_path_minimums`` line.

    Coverage: coverage.py's percent over the matching measured files,
    ``100 * (statements - missing + branches - missing branches) / (statements + branches)``.
    Another dimension: :func:`finding_score` of its findings in the matching files, over
    their lines of code (:func:`pytest_orchestrator.discovery.count_lines`). A dimension
    that did not run fails the condition, unless ``orchestrate_allow_unavailable`` names it.
    """
    from pytest_orchestrator.discovery import count_lines
    from pytest_orchestrator.suppressions import python_files

    by_dimension = {r.dimension: r for r in results}
    files: list[str] | None = None
    conditions = []
    for rule in settings.path_minimums:
        name = f"path minimum {rule.pattern} {rule.dimension}"
        result = by_dimension.get(rule.dimension)
        if result is None or result.status != "ok":
            allowed = settings.unavailable_rule(rule.dimension) == "skip" and result is not None
            why = result.reason if result is not None and result.reason else "it did not run"
            conditions.append(
                GateCondition(
                    name=name,
                    passed=allowed,
                    message=f"{rule.pattern} {rule.dimension}: not measured ({why})",
                )
            )
            continue
        if rule.dimension == "coverage":
            measured = [
                f
                for f in (result.coverage.files if result.coverage else [])
                if rule.matches(f.path)
            ]
            units = sum(f.statements + f.branches for f in measured)
            missed = sum(f.missing + f.missing_branches for f in measured)
            if not measured:
                conditions.append(
                    GateCondition(
                        name=name,
                        passed=False,
                        message=f"{rule.pattern} coverage: no file it matches was measured",
                    )
                )
                continue
            score = round(100.0 * (units - missed) / units, SCORE_DIGITS) if units else 100.0
            count = len(measured)
        else:
            if files is None:
                files = python_files(rootdir)
            group = [f for f in files if rule.matches(f)]
            lines = 0
            for rel in group:
                try:
                    lines += count_lines(
                        (rootdir / rel).read_text(encoding="utf-8", errors="replace")
                    )
                except OSError:
                    continue
            findings = [f for f in result.findings if f.path and rule.matches(f.path)]
            score, _ = finding_score(rule.dimension, findings, lines, settings.severity_points)
            count = len(group)
        ok = score >= round(rule.minimum, SCORE_DIGITS)
        conditions.append(
            GateCondition(
                name=name,
                passed=ok,
                message=f"{rule.pattern} {rule.dimension} {fmt(score)} "
                f"{'>=' if ok else '<'} minimum {fmt(rule.minimum)} "
                f"({plural(count, 'file')})",
            )
        )
    return conditions
