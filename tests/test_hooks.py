"""Each hook, tested the pytest-xdist way: a conftest implements it, then a run."""

from __future__ import annotations

import json

import pytest

PASSING = "def test_ok():\n    assert True\n"

DOCS_AUDITOR = """
from pytest_orchestrator import Auditor, Severity
from pytest_orchestrator.auditors.base import make_finding


class DocsAuditor(Auditor):
    dimension = "docs"
    tool = "doc-checker"

    def finish(self, context):
        finding = make_finding(
            context, dimension="docs", severity=Severity.P3, rule_id="DOC1",
            message="README lacks an example", path="README.md", line=1, tool=self.tool,
        )
        return self.scored(context, [finding])


def pytest_orchestrator_auditors(config):
    return [DocsAuditor()]
"""


def test_third_party_auditor_adds_a_dimension(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(DOCS_AUDITOR)
    pytester.makepyfile(PASSING)
    (pytester.path / "README.md").write_text("# demo\n")
    result = pytester.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=tests,docs",
        "--orchestrate-report=terminal",
        "--orchestrate-report=json:r.json",
    )

    result.stdout.fnmatch_lines(["*docs*99.00*20*ok*", "*P3 docs*README.md:1 DOC1 README lacks*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert [a["dimension"] for a in report["audits"]] == ["tests", "docs"]


def test_own_auditor_replaces_a_builtin_one(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        DOCS_AUDITOR.replace('dimension = "docs"', 'dimension = "lint"').replace(
            'dimension="docs"', 'dimension="lint"'
        )
    )
    pytester.makepyfile(PASSING)
    (pytester.path / "README.md").write_text("# demo\n")
    result = pytester.runpytest("--orchestrate", "--orchestrate-dimensions=tests,lint")

    result.stdout.fnmatch_lines(["*P3 lint*README.md:1 DOC1*"])


def test_crashing_auditor_is_unavailable_not_a_traceback(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from pytest_orchestrator import Auditor\n"
        "class Broken(Auditor):\n"
        "    dimension = 'broken'\n"
        "    def finish(self, context):\n"
        "        raise RuntimeError('boom')\n"
        "def pytest_orchestrator_auditors(config):\n"
        "    return [Broken()]\n"
    )
    pytester.makepyfile(PASSING)
    result = pytester.runpytest("--orchestrate", "--orchestrate-dimensions=tests,broken")

    assert result.ret == 6  # a requested dimension that could not be measured fails the gate
    result.stdout.fnmatch_lines(
        [
            "*! broken is unavailable: auditor Broken crashed: RuntimeError: boom -> the gate "
            "fails (allow it with orchestrate_allow_unavailable)",
            "Quality gate FAILED: score 100.00 (target 90.00); over tests (broken unavailable)",
            "*FAIL broken unavailable: auditor Broken crashed: RuntimeError: boom",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_tool_auditor_failing_in_its_start_thread_is_unavailable(
    pytester: pytest.Pytester,
) -> None:
    # CommandAuditor.start may plan and launch in a thread; what fails there is reported
    # when the audit is joined, like a crash in finish, not lost with the thread
    pytester.makeconftest(
        "from pytest_orchestrator.auditors.tools import CommandAuditor\n"
        "class Broken(CommandAuditor):\n"
        "    dimension = 'broken'\n"
        "    tool = 'broken'\n"
        "    begin_in_thread = True\n"
        "    def command(self, context):\n"
        "        raise ValueError('no argv')\n"
        "    def finish(self, context):\n"
        "        self.wait()\n"
        "def pytest_orchestrator_auditors(config):\n"
        "    return [Broken()]\n"
    )
    pytester.makepyfile(PASSING)
    result = pytester.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=tests,broken",
        "-o",
        "orchestrate_allow_unavailable=broken",
    )

    assert result.ret == pytest.ExitCode.OK  # allowed to be unavailable
    result.stdout.fnmatch_lines(
        [
            "*! broken is unavailable: auditor Broken crashed: ValueError: no argv -> left out "
            "of the score (orchestrate_allow_unavailable)",
            "*ok   broken unavailable (auditor Broken crashed: ValueError: no argv); allowed by "
            "orchestrate_allow_unavailable: left out of the score",
        ]
    )


def test_audit_result_hook_observes_each_dimension(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "def pytest_orchestrator_audit_result(config, result):\n"
        "    print('AUDITED', result.dimension, result.status, result.score)\n"
    )
    pytester.makepyfile(PASSING)
    result = pytester.runpytest("--orchestrate", "--orchestrate-dimensions=tests", "-s")

    result.stdout.fnmatch_lines(["*AUDITED tests ok 100.0"])


def test_score_hook_replaces_the_computation(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from pytest_orchestrator import Score\n"
        "def pytest_orchestrator_score(config, results, settings):\n"
        "    return Score(overall=42.0, dimensions=[], deductions=[], formula='answer')\n"
    )
    pytester.makepyfile(PASSING)
    result = pytester.runpytest("--orchestrate", "--orchestrate-dimensions=tests")

    assert result.ret == 6
    result.stdout.fnmatch_lines(["*Quality gate FAILED: score 42.00 (target 90.00)"])


def test_report_hook_amends_every_report(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "def pytest_orchestrator_report(config, report):\n"
        "    report.project.name = 'renamed-by-hook'\n"
    )
    pytester.makepyfile(PASSING)
    result = pytester.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=tests",
        "--orchestrate-report=terminal",
        "--orchestrate-report=markdown:r.md",
    )

    result.stdout.fnmatch_lines(["renamed-by-hook: *"])
    assert "`renamed-by-hook`" in (pytester.path / "r.md").read_text()
