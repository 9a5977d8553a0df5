"""Score formulas and the gate: monotone, size-aware, explained, rounded as printed."""

from __future__ import annotations

import pytest

from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.models import AuditResult, Finding, Severity
from pytest_orchestrator.scoring import apportion, evaluate_gate, finding_score, overall_score

POINTS = OrchestrationConfig().severity_points


def finding(severity: Severity, rule: str = "R1") -> Finding:
    return Finding(
        dimension="lint", severity=severity, rule_id=rule, message="m", tool="t", fingerprint="f"
    )


def test_apportion_adds_up_exactly() -> None:
    values = [100 / 3, 100 / 3, 100 / 3]
    assert apportion(values, 100.0) == [33.34, 33.33, 33.33]
    assert sum(apportion([0.004] * 10, 0.04)) == pytest.approx(0.04)


def test_finding_score_is_monotone() -> None:
    scores = [
        finding_score("lint", [finding(Severity.P3)] * n, 500, POINTS)[0] for n in range(0, 150, 7)
    ]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] == 0.0
    worse = finding_score("lint", [finding(Severity.P1)], 500, POINTS)[0]
    assert worse < finding_score("lint", [finding(Severity.P3)], 500, POINTS)[0]


def test_fifty_kloc_with_thirty_nits_does_not_score_zero() -> None:
    score, deductions = finding_score("lint", [finding(Severity.P3)] * 30, 50_000, POINTS)
    assert score == 99.4
    assert [(d.reason, d.points, d.count) for d in deductions] == [
        ("30 x R1 (P3, 1 point each per 50 KLOC)", 0.6, 30)
    ]


def test_floored_score_scales_its_deductions() -> None:
    findings = [finding(Severity.P0, "A")] * 4 + [finding(Severity.P1, "B")] * 5
    score, deductions = finding_score("lint", findings, 100, POINTS)
    assert score == 0.0
    assert sum(d.points for d in deductions) == pytest.approx(100.0)
    assert deductions[0].reason.endswith("[scaled to the 100 points available]")


def result(
    dimension: str, score: float | None, findings: list[Finding] | None = None
) -> AuditResult:
    return AuditResult(
        dimension=dimension,
        status="ok" if score is not None else "unavailable",
        score=score,
        reason=None if score is not None else "tool missing",
        findings=findings or [],
    )


def test_overall_is_the_weighted_mean_and_explained() -> None:
    settings = OrchestrationConfig()
    results = [
        result("tests", 100.0),
        result("coverage", 70.0),
        result("lint", 95.0),
        result("security", None),
    ]
    score = overall_score(results, settings)
    assert score.overall == pytest.approx((100 * 30 + 70 * 30 + 95 * 20) / 80, abs=0.005)
    assert round(sum(d.points for d in score.deductions), 2) == round(100 - score.overall, 2)
    assert [r.counted for r in score.dimensions] == [True, True, True, False]


def test_gate_compares_the_printed_figure() -> None:
    settings = OrchestrationConfig(target_score=89.999)
    verdict = evaluate_gate(
        overall_score([result("tests", 90.0)], settings), [result("tests", 90.0)], settings
    )
    assert verdict.passed
    assert verdict.conditions[0].message == "overall score 90.00 >= target 90.00"


def test_gate_fails_on_severity_whatever_the_score() -> None:
    settings = OrchestrationConfig(target_score=0, fail_on="P0,P1")
    results = [result("lint", 99.0, [finding(Severity.P1)])]
    verdict = evaluate_gate(overall_score(results, settings), results, settings)
    assert not verdict.passed
    assert verdict.reasons == ["1 P1 finding at a failing severity (P0, P1): - R1"]


def test_dimension_minimums() -> None:
    settings = OrchestrationConfig(target_score=0, min_scores="tests=95")
    results = [result("tests", 94.99), result("coverage", 69.99)]
    verdict = evaluate_gate(overall_score(results, settings), results, settings)
    assert verdict.reasons == ["tests 94.99 < minimum 95.00", "coverage 69.99 < minimum 70.00"]
