"""The ratchet (``--orchestrate-baseline``): real sessions against an earlier JSON report.

Each test writes a baseline with ``--orchestrate-report=json:PATH`` in a real session
(real ruff, bandit and coverage, in a subprocess), changes the project, and gates again.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_newcode import REPORT, conditions, load, project

from pytest_orchestrator.baseline import BaselineError, compare
from pytest_orchestrator.baseline import load as load_baseline
from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.models import (
    AuditResult,
    BaselineComparison,
    Finding,
    Report,
    Score,
    Severity,
)
from pytest_orchestrator.scoring import evaluate_gate

#: Only the ratchet decides: no target, no fail-on severity, no minimums.
RATCHET_ONLY = ("--target-score=0", "--orchestrate-fail-on=none")
BASELINE = "--orchestrate-baseline=base/baseline.json"


def write_baseline(pytester: pytest.Pytester) -> Report:
    (pytester.path / "base").mkdir()
    first = pytester.runpytest_subprocess(
        "--orchestrate", *RATCHET_ONLY, "--orchestrate-report=json:base/baseline.json"
    )
    assert first.ret == pytest.ExitCode.OK
    return load(pytester.path / "base" / "baseline.json")


def test_same_tree_passes_the_ratchet(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    base = write_baseline(pytester)

    result = pytester.runpytest_subprocess("--orchestrate", *RATCHET_ONLY, BASELINE, REPORT)

    assert result.ret == pytest.ExitCode.OK
    report = load(pytester.path / "out" / "report.json")
    assert report.baseline is not None
    assert (report.baseline.score, report.baseline.coverage) == (base.score.overall, 80.0)
    assert (report.baseline.new_findings, report.baseline.fixed_findings) == (0, 0)
    found = conditions(report)
    assert found["baseline score"] == (True, "overall score 93.40 >= baseline 93.40")
    assert found["baseline findings"] == (True, "no finding the baseline lacks (0 fixed)")
    assert found["baseline coverage"] == (True, "coverage 80.00 >= baseline 80.00")


def test_a_new_ruff_finding_fails_listing_its_fingerprint(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    write_baseline(pytester)
    calc = pytester.path / "pkg" / "calc.py"
    calc.write_text("import json\n" + calc.read_text())

    result = pytester.runpytest_subprocess(
        "--orchestrate", *RATCHET_ONLY, BASELINE, REPORT, "--orchestrate-report=terminal"
    )

    assert result.ret == 6
    report = load(pytester.path / "out" / "report.json")
    new = next(f for f in report.findings() if f.rule_id == "F401" and "json" in f.message)
    assert report.baseline is not None
    assert report.baseline.new_fingerprints == [new.fingerprint]
    assert conditions(report)["baseline findings"] == (
        False,
        f"1 new finding(s) the baseline lacks: P2 F401 pkg/calc.py:1 [{new.fingerprint}]",
    )
    result.stdout.fnmatch_lines(
        [
            "baseline *baseline.json (*): score 93.40 -> 93.80, coverage 80.00 -> 83.33, "
            "1 new finding(s), 0 fixed, suppressions 0 -> 0",
            f"*FAIL 1 new finding(s) the baseline lacks: P2 F401 pkg/calc.py:1 "
            f"[[]{new.fingerprint}[]]",
        ]
    )


def test_lower_coverage_fails(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    write_baseline(pytester)
    with (pytester.path / "pkg" / "calc.py").open("a") as handle:
        handle.write("\n\ndef untested(y):\n    z = y + 1\n    return z\n")

    result = pytester.runpytest_subprocess("--orchestrate", *RATCHET_ONLY, BASELINE, REPORT)

    assert result.ret == 6
    report = load(pytester.path / "out" / "report.json")
    assert conditions(report)["baseline coverage"] == (False, "coverage 62.50 < baseline 80.00")
    passed, message = conditions(report)["baseline score"]
    assert not passed and message.startswith("overall score 88.15 < baseline 93.40: it dropped")


def test_diff_base_and_baseline_both_apply(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    write_baseline(pytester)
    calc = pytester.path / "pkg" / "calc.py"
    calc.write_text(calc.read_text().replace("import os\n", "import os\nimport json\n"))

    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-diff-base=main", BASELINE, REPORT
    )

    assert result.ret == 6
    report = load(pytester.path / "out" / "report.json")
    found = conditions(report)
    assert found["new-code target score"][0] is True  # 97 on new code: one P2 nit
    assert found["baseline findings"][0] is False  # but the ratchet sees the new finding
    assert report.new_code is not None and report.baseline is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            None, "baseline '*missing.json' does not exist; write one with *", id="missing"
        ),
        pytest.param(b"{not json", "baseline '*bad.json' is not JSON (Expecting *", id="not-json"),
        pytest.param(
            b"[1, 2]", "baseline '*bad.json' is not a pytest-orchestrator report *", id="not-report"
        ),
        pytest.param(
            b'{"schema_version": "2.0"}',
            "baseline '*bad.json' has schema_version '2.0', this version reads "
            "'1.0', '1.1' or '1.2'; *",
            id="incompatible",
        ),
        pytest.param(
            b'{"schema_version": "1.0", "tool": {"version": "0"}}',
            "baseline '*bad.json' does not match the report schema 1.0 (created: Field "
            "required); write one with --orchestrate-report=json:PATH",
            id="wrong-schema",
        ),
    ],
)
def test_unusable_baseline_is_a_one_line_usage_error(
    pytester: pytest.Pytester, content: bytes | None, message: str
) -> None:
    pytester.makepyfile("def test_ok():\n    assert True\n")
    name = "missing.json" if content is None else "bad.json"
    if content is not None:
        (pytester.path / name).write_bytes(content)

    result = pytester.runpytest_subprocess(
        "--orchestrate", f"--orchestrate-baseline={name}", "--orchestrate-report=json:out.json"
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1
    result.stderr.fnmatch_lines([f"ERROR: --orchestrate-baseline: {message}"])
    assert not (pytester.path / "out.json").exists()


def test_ini_twin_is_relative_to_the_invocation_directory(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\norchestrate_baseline = nowhere/base.json\n")
    pytester.makepyfile("def test_ok():\n    assert True\n")

    result = pytester.runpytest("--orchestrate")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: orchestrate_baseline (ini): baseline '{pytester.path}/nowhere/base.json' *"]
    )


# --------------------------------------------------------------------------- units


def finding(fingerprint: str, line: int = 1) -> Finding:
    return Finding(
        dimension="lint",
        severity=Severity.P2,
        rule_id="F401",
        message="m",
        path="a.py",
        line=line,
        tool="ruff",
        fingerprint=fingerprint,
    )


def test_fingerprints_are_compared_as_a_multiset(tmp_path: Path) -> None:
    from test_reports import make_report

    base = make_report()
    base.audits[0].findings = [finding("aaaa"), finding("bbbb")]
    now = [finding("aaaa"), finding("aaaa", 7), finding("cccc")]

    comparison = compare(tmp_path / "b.json", base, now)

    assert (comparison.new_findings, comparison.fixed_findings) == (2, 1)
    assert comparison.new_fingerprints == ["aaaa", "cccc"]


def test_unavailable_coverage_cannot_pass_the_coverage_ratchet() -> None:
    comparison = BaselineComparison(
        path="b.json", created=datetime(2026, 1, 1, tzinfo=timezone.utc), score=50, coverage=80
    )
    results = [
        AuditResult(dimension="coverage", status="unavailable", reason="coverage is missing")
    ]
    score = Score(overall=60, dimensions=[], deductions=[])

    verdict = evaluate_gate(
        score, results, OrchestrationConfig(target_score=0, fail_on="none"), baseline=comparison
    )

    assert not verdict.passed
    assert [c.message for c in verdict.conditions if not c.passed] == [
        "coverage unavailable: coverage is missing",
        "coverage unavailable in this run (coverage is missing), so it cannot be compared "
        "with the baseline's 80.00",
    ]


def test_a_report_round_trips_as_a_baseline(tmp_path: Path) -> None:
    from test_reports import make_report

    path = tmp_path / "r.json"
    path.write_text(make_report().model_dump_json())
    assert load_baseline(path).score.overall == 92.0
    path.write_text(json.dumps({**json.loads(path.read_text()), "extra": 1}))
    with pytest.raises(BaselineError, match=r"\(extra: Extra inputs are not permitted\)"):
        load_baseline(path)
