"""End to end: the bundled demo project (seeded defects) through the whole gate.

Coverage-related runs go through a subprocess (``runpytest_subprocess``), as pytest-cov's
tests do, so the measurement is the child's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from junitparser import Failure, JUnitXml, Skipped
from markdown_it import MarkdownIt

from pytest_orchestrator import EXIT_GATE_FAILED
from pytest_orchestrator.models import Report

SCHEMA = json.loads(
    (Path(__file__).parent.parent / "pytest_orchestrator" / "report.schema.json").read_text()
)
REPORTS = (
    "--orchestrate-report=terminal",
    "--orchestrate-report=json:out/report.json",
    "--orchestrate-report=junit:out/gate.xml",
    "--orchestrate-report=markdown:out/report.md",
)
XDIST = [pytest.param([], id="plain"), pytest.param(["-n", "2"], id="xdist")]


def load_report(path: Path) -> Report:
    data = json.loads(path.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    return Report.model_validate(data)


@pytest.mark.parametrize("extra", XDIST)
def test_demo_findings_scores_and_reports(demo: pytest.Pytester, extra: list[str]) -> None:
    result = demo.runpytest_subprocess("--orchestrate", *REPORTS, *extra)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= quality gate =*",
            "shop-demo: 4 Python files, 35 lines of code in shop",
            "*Quality gate FAILED: score 78.80 (target 90.00)",
            "*FAIL overall score 78.80 < target 90.00",
            "*FAIL 1 P0 finding at a failing severity (P0): "
            "tests/test_cart.py::test_discount_is_applied_once",
            "*ok   tests 80.00 >= minimum 80.00",
            "*FAIL coverage 56.67 < minimum 70.00",
        ]
    )
    report = load_report(demo.path / "out" / "report.json")
    found = {(f.dimension, f.severity.value, f.rule_id, f.path, f.line) for f in report.findings()}
    assert found == {
        ("tests", "P0", "test-failed", "tests/test_cart.py", 30),
        ("coverage", "P2", "uncovered-file", "shop/export.py", None),
        ("coverage", "P3", "uncovered-lines", "shop/pricing.py", 6),
        ("lint", "P2", "F401", "shop/cart.py", 3),
        ("security", "P1", "B307", "shop/pricing.py", 6),
    }
    scores = {a.dimension: a.score for a in report.audits}
    assert scores == {"tests": 80.0, "coverage": 56.67, "lint": 97.0, "security": 92.0}
    assert report.score.overall == 78.8
    tests = report.audit("tests")
    assert tests is not None and tests.tests is not None
    assert (tests.tests.passed, tests.tests.failed) == (4, 1)
    coverage = report.audit("coverage")
    assert coverage is not None and coverage.coverage is not None
    uncovered = {f.path: f.missing_lines for f in coverage.coverage.files if f.missing}
    assert uncovered == {"shop/export.py": "3-4, 7-13", "shop/pricing.py": "6, 12-14"}
    # every lost point is explained: deductions add up to 100 - score
    for audit in report.audits:
        assert audit.score is not None
        assert round(sum(d.points for d in audit.deductions), 2) == round(100 - audit.score, 2)
    assert round(sum(d.points for d in report.score.deductions), 2) == round(100 - 78.8, 2)
    assert not report.verdict.passed
    assert report.verdict.reasons == [
        "overall score 78.80 < target 90.00",
        "1 P0 finding at a failing severity (P0): "
        "tests/test_cart.py::test_discount_is_applied_once",
        "coverage 56.67 < minimum 70.00",
    ]

    junit = JUnitXml.fromfile(str(demo.path / "out" / "gate.xml"))
    suites = {suite.name: suite for suite in junit}
    assert set(suites) == {
        "quality-gate",
        "orchestrator.tests",
        "orchestrator.coverage",
        "orchestrator.lint",
        "orchestrator.security",
    }
    gate = {case.name: case.result for case in suites["quality-gate"]}
    assert [name for name, res in gate.items() if res] == [
        "target score",
        "fail-on",
        "coverage minimum",
    ]
    lint_cases = {case.name: case.result for case in suites["orchestrator.lint"]}
    assert isinstance(lint_cases["P2 F401 shop/cart.py:3"][0], Skipped)
    test_cases = {case.name: case.result for case in suites["orchestrator.tests"]}
    assert isinstance(test_cases["P0 test-failed tests/test_cart.py:30"][0], Failure)

    markdown = (demo.path / "out" / "report.md").read_text()
    tokens = MarkdownIt().enable("table").parse(markdown)
    headings = [t.content for t in tokens if t.type == "inline" and t.map and t.map[0] == 0]
    assert headings == ["Quality gate FAILED :x:"]
    assert sum(1 for t in tokens if t.type == "table_open") >= 3
    assert "| lint | 97.00 | 20 | 0.60 | 0 | 0 | 1 | 0 | 0 | ok |" in markdown
    assert "| `shop/export.py` | 0.00 | 3-4, 7-13 |" in markdown


def test_gate_failure_with_passing_tests_has_its_own_exit_status(demo: pytest.Pytester) -> None:
    result = demo.runpytest_subprocess("--orchestrate", "-k", "not discount")

    assert result.ret == EXIT_GATE_FAILED == 6
    result.stdout.fnmatch_lines(["*Quality gate FAILED*", "*4 passed, 1 deselected*"])


def test_clean_project_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[project]\nname = "clean"\n')
    pkg = pytester.mkpydir("clean")
    (pkg / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    pytester.makepyfile(
        test_calc="from clean.calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    )
    result = pytester.runpytest_subprocess("--orchestrate", "--target-score=100")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*Quality gate PASSED: score 100.00 (target 100.00)"])


def test_exit_first_still_gates(demo: pytest.Pytester) -> None:
    result = demo.runpytest_subprocess("--orchestrate", "-x", "--orchestrate-dimensions=tests")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*Quality gate FAILED: score 80.00*"])


def test_interrupted_session_is_not_gated_and_writes_no_report(demo: pytest.Pytester) -> None:
    demo.makepyfile(test_broken="import does_not_exist\n")
    result = demo.runpytest_subprocess(
        "--orchestrate", "--orchestrate-report=json:out/report.json", "tests", "test_broken.py"
    )

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*quality gate not evaluated*"])
    assert not (demo.path / "out").exists()


def test_pytest_cov_data_is_reused_not_traced_twice(demo: pytest.Pytester) -> None:
    result = demo.runpytest_subprocess(
        "--orchestrate",
        "--cov=shop",
        "--orchestrate-dimensions=tests,coverage",
        "--orchestrate-report=json:out/report.json",
    )

    result.stdout.fnmatch_lines(["*TOTAL*30*13*57%*"])
    coverage = load_report(demo.path / "out" / "report.json").audit("coverage")
    assert coverage is not None and coverage.coverage is not None
    assert coverage.coverage.measured_by == "pytest-cov"
    assert coverage.score == 56.67
