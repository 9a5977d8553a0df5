"""The SARIF 2.1.0 report: valid against the OASIS schema, and what GitHub code scanning needs.

Every log is checked against the vendored OASIS schema (tests/data/, draft-04) and against
the rules GitHub and github/codeql-action/upload-sarif apply on top of it (``github_rules``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_orchestrator.models import (
    AuditResult,
    ConfigSummary,
    Discovery,
    Finding,
    Report,
    Score,
    Severity,
    ToolInfo,
    Verdict,
    fingerprint,
)
from pytest_orchestrator.reports import render_file
from pytest_orchestrator.reports import sarif as sarif_report

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
# The OASIS schema says "$schema": "http://json-schema.org/draft-04/schema#".
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)
KEY = "pytestOrchestrator/v1"
LEVELS = {"error", "warning", "note"}


def github_rules(log: dict[str, Any]) -> None:
    """What GitHub's "SARIF support for code scanning" and upload-sarif require beyond the
    schema: required properties present and non-empty, every result located (upload-sarif
    rejects the file otherwise), limits, ruleIndex pointing at the rule of ruleId."""
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    runs = log["runs"]
    assert 1 <= len(runs) <= 20
    names = [run["tool"]["driver"]["name"] for run in runs]
    assert len(set(names)) == len(names), names  # one run per tool (same category)
    for run in runs:
        assert "automationDetails" not in run  # left to upload-sarif's category input
        rules = run["tool"]["driver"]["rules"]
        assert len({r["id"] for r in rules}) == len(rules)
        for rule in rules:
            for key in ("shortDescription", "fullDescription", "help"):
                assert rule[key]["text"].strip()
            tags = rule["properties"]["tags"]
            assert 0 < len(tags) <= 20 and len(set(tags)) == len(tags)
            if "security-severity" in rule["properties"]:
                assert 0.0 < float(rule["properties"]["security-severity"]) <= 10.0
                assert "security" in tags
        base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        assert base.startswith("file:///") and base.endswith("/")
        assert len(run["results"]) <= 25_000
        for result in run["results"]:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert result["level"] in LEVELS
            assert result["message"]["text"].strip()
            assert len(result["locations"]) == 1
            physical = result["locations"][0]["physicalLocation"]
            assert physical["artifactLocation"]["uri"]
            assert physical["region"]["startLine"] >= 1
            assert result["partialFingerprints"][KEY]


def load(data: bytes) -> dict[str, Any]:
    """The SARIF log in ``data``, checked: UTF-8, one final newline, schema, GitHub's rules."""
    assert data.endswith(b"}\n")
    log: dict[str, Any] = json.loads(data.decode("utf-8"))
    VALIDATOR.validate(log)
    github_rules(log)
    return log


def run_of(log: dict[str, Any], name: str) -> dict[str, Any]:
    return next(run for run in log["runs"] if run["tool"]["driver"]["name"] == name)


def result_of(run: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in run["results"] if r["ruleId"] == rule_id)


def location(result: dict[str, Any]) -> tuple[str, str | None, int]:
    physical = result["locations"][0]["physicalLocation"]
    artifact = physical["artifactLocation"]
    return artifact["uri"], artifact.get("uriBaseId"), physical["region"]["startLine"]


def finding(
    severity: Severity = Severity.P2,
    *,
    dimension: str = "lint",
    rule_id: str = "X1",
    message: str = "m",
    path: str | None = "a.py",
    line: int | None = 3,
    tool: str = "ruff",
    recommendation: str | None = None,
    url: str | None = None,
) -> Finding:
    return Finding(
        dimension=dimension,
        severity=severity,
        rule_id=rule_id,
        message=message,
        path=path,
        line=line,
        tool=tool,
        recommendation=recommendation,
        url=url,
        fingerprint=fingerprint(rule_id, path, ascii(message)),
    )


def make_report(rootdir: Path | str, audits: list[AuditResult]) -> Report:
    dimensions = [a.dimension for a in audits]
    return Report(
        tool=ToolInfo(version="0.1.0"),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
        duration=1.0,
        project=Discovery(name="p", rootdir=str(rootdir), sources=["p"], files=1, lines_of_code=9),
        config=ConfigSummary(
            target_score=90,
            dimensions=dimensions,
            fail_on=[Severity.P0],
            weights={d: 20 for d in dimensions},
            min_scores={},
            unavailable="skip",
        ),
        audits=audits,
        score=Score(overall=92.0, dimensions=[], deductions=[]),
        verdict=Verdict(passed=True, target=90, score=92.0, conditions=[]),
    )


def audit(dimension: str, tool: str, *findings: Finding) -> AuditResult:
    return AuditResult(
        dimension=dimension,
        status="ok",
        score=90.0,
        findings=list(findings),
        tool=tool,
        tool_version="1.2.3",
    )


def test_demo_session_writes_a_valid_sarif_log(demo: pytest.Pytester) -> None:
    result = demo.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-report=sarif:out/report.sarif",
        "--orchestrate-report=json:out/report.json",
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    log = load((demo.path / "out" / "report.sarif").read_bytes())
    report = Report.model_validate_json((demo.path / "out" / "report.json").read_text())
    names = [run["tool"]["driver"]["name"] for run in log["runs"]]
    # lint and security (ruff's S rules: the demo has no bandit configuration) in one run
    assert names == ["pytest", "coverage", "ruff", "pytest-orchestrator"]
    # every finding is a result, in the run of its tool, with its fingerprint
    results = {
        (run["tool"]["driver"]["name"], r["ruleId"]): r
        for run in log["runs"]
        for r in run["results"]
    }
    assert len(results) == sum(len(run["results"]) for run in log["runs"]) == 5
    for f in report.findings():
        assert results[(f.tool, f.rule_id)]["partialFingerprints"][KEY] == f.fingerprint
    rootdir = demo.path.resolve().as_uri() + "/"
    for run in log["runs"]:
        assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == rootdir
        assert run["invocations"][0]["executionSuccessful"] is True
        gate = run["properties"]["qualityGate"]
        assert (gate["passed"], gate["score"], gate["target"]) == (False, 78.8, 90.0)
        assert "coverage 56.67 < minimum 70.00" in gate["reasons"]

    ruff = run_of(log, "ruff")
    lint = report.audit("lint")
    assert lint is not None and ruff["tool"]["driver"]["version"] == lint.tool_version
    f401 = result_of(ruff, "F401")
    assert location(f401) == ("shop/cart.py", "%SRCROOT%", 3)
    assert f401["level"] == "warning"
    assert f401["message"]["text"].startswith("`os` imported but unused\nRecommendation: ")
    assert set(f401["partialFingerprints"]) == {KEY}  # upload-sarif adds its line hash
    rule = ruff["tool"]["driver"]["rules"][f401["ruleIndex"]]
    assert rule["helpUri"] == "https://docs.astral.sh/ruff/rules/unused-import"
    assert rule["name"] == "unused-import"
    assert rule["properties"]["tags"] == ["lint"]
    assert "security-severity" not in rule["properties"]
    assert ruff["properties"]["dimensions"] == [
        {"name": "lint", "status": "ok", "score": 97.0, "weight": 20.0},
        {"name": "security", "status": "ok", "score": 92.0, "weight": 20.0},
    ]

    b307 = result_of(ruff, "B307")  # bandit's id for ruff's S307, graded as bandit grades it
    assert location(b307) == ("shop/pricing.py", "%SRCROOT%", 6)
    assert b307["level"] == "error"  # P1
    rule = ruff["tool"]["driver"]["rules"][b307["ruleIndex"]]
    assert rule["properties"]["security-severity"] == "8.0"  # GitHub: high
    assert rule["properties"]["tags"] == ["security"]
    assert rule["helpUri"] == "https://docs.astral.sh/ruff/rules/suspicious-eval-usage"

    failed = result_of(run_of(log, "pytest"), "test-failed")
    assert location(failed) == ("tests/test_cart.py", "%SRCROOT%", 30)
    assert failed["level"] == "error"
    coverage = run_of(log, "coverage")
    whole_file = result_of(coverage, "uncovered-file")
    assert location(whole_file) == ("shop/export.py", "%SRCROOT%", 1)
    assert whole_file["properties"]["wholeFile"] is True
    fp = whole_file["partialFingerprints"][KEY]
    assert whole_file["partialFingerprints"]["primaryLocationLineHash"] == f"{fp}:1"
    assert result_of(coverage, "uncovered-lines")["level"] == "note"  # P3

    orchestrator = run_of(log, "pytest-orchestrator")
    assert orchestrator["results"] == []
    assert [d["name"] for d in orchestrator["properties"]["dimensions"]] == [
        "tests",
        "coverage",
        "lint",
        "security",
    ]


def test_no_sarif_file_when_the_session_fails_before_reporting(demo: pytest.Pytester) -> None:
    demo.makepyfile(test_broken="import does_not_exist\n")
    result = demo.runpytest_subprocess(
        "--orchestrate", "--orchestrate-report=sarif:out/report.sarif", "tests", "test_broken.py"
    )

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*quality gate not evaluated*"])
    assert not (demo.path / "out").exists()


HOSTILE_AUDITOR = """
from pytest_orchestrator import Auditor, Severity
from pytest_orchestrator.auditors.base import make_finding

HOSTILE = 'evil\\x00\\x1b[31m "quoted" </script> [click](https://evil.example) {0} \\u202eok'


class DocsAuditor(Auditor):
    dimension = "docs"
    tool = "doc-checker"

    def finish(self, context):
        findings = [
            make_finding(
                context, dimension="docs", severity=Severity.P3, rule_id="DOC1",
                message=HOSTILE, path="README.md", line=1, tool=self.tool,
                recommendation="write {it}",
            ),
            make_finding(
                context, dimension="docs", severity=Severity.P1, rule_id="DOC2",
                message="no documentation at all", path=None, line=None, tool=self.tool,
            ),
        ]
        return self.scored(context, findings)


def pytest_orchestrator_auditors(config):
    return [DocsAuditor()]
"""


def test_third_party_findings_and_hostile_text(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[project]\nname = "docs-demo"\n')
    pytester.makeconftest(HOSTILE_AUDITOR)
    pytester.makepyfile("def test_ok():\n    assert True\n")
    (pytester.path / "README.md").write_text("# demo\n")
    result = pytester.runpytest(
        "--orchestrate", "--orchestrate-dimensions=tests,docs", "--orchestrate-report=sarif"
    )

    result.assert_outcomes(passed=1)
    log = load((pytester.path / "orchestrator-report.sarif").read_bytes())  # default path
    docs = run_of(log, "doc-checker")
    hostile = result_of(docs, "DOC1")
    assert hostile["message"]["text"] == (
        'evil "quoted" </script> [click] (https://evil.example) {{0}} ok\nRecommendation: '
        "write {{it}}"
    )
    assert location(hostile) == ("README.md", "%SRCROOT%", 1)
    # a finding with no file is shown at the project's manifest, with its own identity
    project = result_of(docs, "DOC2")
    assert location(project) == ("pyproject.toml", "%SRCROOT%", 1)
    assert project["properties"]["projectLevel"] is True
    fp = project["partialFingerprints"][KEY]
    assert project["partialFingerprints"]["primaryLocationLineHash"] == f"{fp}:1"
    assert project["level"] == "error"  # P1
    assert [r["ruleId"] for r in docs["results"]] == ["DOC2", "DOC1"]  # worst first


def test_hostile_text_is_only_ever_json_string_data(tmp_path: Path) -> None:
    hostile = 'a\x00\x1b]0;title\x07b\r\n"</script>\\ {x} ](1) \u202e\u2066c\ud800 \U0001f600'
    report = make_report(
        tmp_path,
        [
            audit(
                "lint",
                "ruff",
                finding(message=hostile, recommendation=hostile, path="dir ä/x:y.py"),
                finding(message="\x1b[2J", rule_id="X2"),  # nothing left: rule id instead
            )
        ],
    )
    data = sarif_report.render(report)

    log = load(data)
    ruff = run_of(log, "ruff")
    expected = 'ab\n"</script>\\ {{x}} ] (1) c\ufffd \U0001f600'
    assert result_of(ruff, "X1")["message"]["text"] == f"{expected}\nRecommendation: {expected}"
    assert result_of(ruff, "X2")["message"]["text"] == "X2"
    assert location(result_of(ruff, "X1"))[0] == "dir%20%C3%A4/x%3Ay.py"
    assert b"\x1b" not in data and b"\x00" not in data and b"\\u001b" not in data


def test_same_report_same_bytes(tmp_path: Path) -> None:
    report = make_report(
        tmp_path,
        [
            audit("lint", "ruff", finding(Severity.P3), finding(Severity.P0, rule_id="E9")),
            audit("security", "bandit", finding(dimension="security", tool="bandit")),
        ],
    )
    data = render_file(report, "sarif")
    again = Report.model_validate_json(render_file(report, "json"))

    assert render_file(again, "sarif") == data
    assert data.count(b"\n") > 10  # indented, one final newline
    log = load(data)
    ruff = run_of(log, "ruff")
    assert [r["ruleId"] for r in ruff["results"]] == ["E9", "X1"]  # worst first
    assert [r["id"] for r in ruff["tool"]["driver"]["rules"]] == ["E9", "X1"]


def github_security_level(score: str) -> str:
    """GitHub: over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium, 0.1-3.9 low."""
    value = float(score)
    if value > 9.0:
        return "critical"
    if value >= 7.0:
        return "high"
    if value >= 4.0:
        return "medium"
    assert value >= 0.1
    return "low"


@pytest.mark.parametrize(
    ("severity", "level", "security"),
    [
        (Severity.P0, "error", "critical"),
        (Severity.P1, "error", "high"),
        (Severity.P2, "warning", "medium"),
        (Severity.P3, "note", "low"),
        (Severity.P4, "note", "low"),
    ],
)
def test_severity_maps_to_level_and_security_severity(
    tmp_path: Path, severity: Severity, level: str, security: str
) -> None:
    report = make_report(
        tmp_path,
        [
            audit("lint", "ruff", finding(severity, rule_id="F401"), finding(rule_id="S307")),
            audit("security", "bandit", finding(severity, dimension="security", tool="bandit")),
        ],
    )
    log = load(sarif_report.render(report))

    ruff = run_of(log, "ruff")
    f401 = result_of(ruff, "F401")
    assert f401["level"] == level
    assert "security-severity" not in f401["properties"]
    assert ruff["tool"]["driver"]["rules"][f401["ruleIndex"]]["properties"]["tags"] == ["lint"]
    s307 = result_of(ruff, "S307")  # ruff's flake8-bandit rules are security rules too
    assert ruff["tool"]["driver"]["rules"][s307["ruleIndex"]]["properties"]["tags"] == [
        "lint",
        "security",
    ]
    bandit = run_of(log, "bandit")
    result = bandit["results"][0]
    rule = bandit["tool"]["driver"]["rules"][0]
    assert result["level"] == rule["defaultConfiguration"]["level"] == level
    assert github_security_level(rule["properties"]["security-severity"]) == security
    assert result["properties"]["severity"] == severity.value


def test_rule_takes_the_worst_finding_of_the_run(tmp_path: Path) -> None:
    report = make_report(
        tmp_path,
        [
            audit(
                "security",
                "bandit",
                finding(Severity.P3, dimension="security", tool="bandit", rule_id="B1", line=1),
                finding(Severity.P0, dimension="security", tool="bandit", rule_id="B1", line=2),
            )
        ],
    )
    rule = run_of(load(sarif_report.render(report)), "bandit")["tool"]["driver"]["rules"][0]

    assert rule["defaultConfiguration"]["level"] == "error"
    assert rule["properties"]["security-severity"] == "9.5"


def test_unavailable_audit_gets_no_run(tmp_path: Path) -> None:
    broken = AuditResult(
        dimension="security",
        status="unavailable",
        reason="bandit is not installed; pip install bandit",
        tool="bandit",
    )
    report = make_report(tmp_path, [audit("lint", "ruff", finding()), broken])
    log = load(sarif_report.render(report))

    # no bandit run: GitHub keeps bandit's earlier alerts instead of closing them
    assert [run["tool"]["driver"]["name"] for run in log["runs"]] == ["ruff", "pytest-orchestrator"]
    assert run_of(log, "ruff")["invocations"][0]["executionSuccessful"] is True
    invocation = run_of(log, "pytest-orchestrator")["invocations"][0]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert note["level"] == "error"
    assert note["message"]["text"].startswith(
        "security (bandit) unavailable: bandit is not installed; pip install bandit"
    )

    nothing_ran = load(sarif_report.render(make_report(tmp_path, [broken])))
    assert [run["tool"]["driver"]["name"] for run in nothing_ran["runs"]] == ["pytest-orchestrator"]


def test_ok_audit_without_findings_still_has_a_run(tmp_path: Path) -> None:
    log = load(sarif_report.render(make_report(tmp_path, [audit("lint", "ruff")])))

    ruff = run_of(log, "ruff")
    assert ruff["results"] == [] and ruff["tool"]["driver"]["rules"] == []  # closes old alerts


def test_agent_audits_are_runs_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    report = make_report(
        tmp_path,
        [
            audit(
                "agent:security",
                "claude",
                finding(Severity.P1, dimension="agent:security", tool="claude", path=None),
                finding(
                    Severity.P2,
                    dimension="agent:security",
                    tool="claude",
                    path=None,
                    message="another",
                ),
            ),
            audit("agent:backend", "claude", finding(dimension="agent:backend", tool="claude")),
        ],
    )
    log = load(sarif_report.render(report))

    security = run_of(log, "pytest-orchestrator agent:security")
    assert security["tool"]["driver"]["version"] == "0.1.0"  # our prompt, not the agent's
    assert security["tool"]["driver"]["properties"] == {"agents": ["claude"]}
    assert [location(r) for r in security["results"]] == [("setup.py", "%SRCROOT%", 1)] * 2
    hashes = {r["partialFingerprints"]["primaryLocationLineHash"] for r in security["results"]}
    assert len(hashes) == 2  # two project-level findings stay two alerts
    rule = security["tool"]["driver"]["rules"][0]
    assert rule["properties"]["security-severity"] == "8.0"
    assert run_of(log, "pytest-orchestrator agent:backend")["results"][0]["level"] == "warning"


def test_finding_without_file_and_no_manifest_is_left_out_and_counted(tmp_path: Path) -> None:
    report = make_report(
        tmp_path, [audit("docs", "doc-checker", finding(path=None), finding(rule_id="D2"))]
    )
    run = run_of(load(sarif_report.render(report)), "doc-checker")

    assert [r["ruleId"] for r in run["results"]] == ["D2"]
    assert run["properties"]["findingsWithoutLocation"] == 1


def test_paths_are_relative_to_the_repository_root(tmp_path: Path) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    rootdir = tmp_path / "repo" / "pkg"
    rootdir.mkdir()
    report = make_report(
        rootdir,
        [
            audit(
                "lint",
                "ruff",
                finding(path="src/a.py", line=1),
                finding(path="../top.py", line=2),
                finding(path="../../outside.py", line=3),
            )
        ],
    )
    run = run_of(load(sarif_report.render(report)), "ruff")

    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == (tmp_path / "repo").as_uri() + "/"
    artifacts = {
        location(r)[2]: r["locations"][0]["physicalLocation"]["artifactLocation"]
        for r in run["results"]
    }
    assert artifacts == {
        1: {"uri": "pkg/src/a.py", "uriBaseId": "%SRCROOT%"},
        2: {"uri": "top.py", "uriBaseId": "%SRCROOT%"},
        3: {"uri": (tmp_path / "outside.py").as_uri()},  # absolute: no uriBaseId (SARIF 3.4.4)
    }


def test_results_beyond_githubs_limit_are_left_out_worst_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sarif_report, "MAX_RESULTS_PER_RUN", 2)
    report = make_report(
        tmp_path,
        [
            audit(
                "lint",
                "ruff",
                finding(Severity.P3, rule_id="A"),
                finding(Severity.P0, rule_id="B"),
                finding(Severity.P2, rule_id="C"),
            )
        ],
    )
    run = run_of(load(sarif_report.render(report)), "ruff")

    assert [r["ruleId"] for r in run["results"]] == ["B", "C"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["B", "C"]
    assert run["properties"]["resultsLeftOut"] == 1
