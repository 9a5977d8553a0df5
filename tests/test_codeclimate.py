"""The codeclimate report (GitLab Code Quality) and the GitLab CI example.

The fields checked are those of GitLab's documentation, "Code Quality" > "Code Quality report
format": a JSON array of objects with ``description`` (string), ``check_name`` (string),
``fingerprint`` (string, unique), ``severity`` (one of info, minor, major, critical, blocker),
``location.path`` (relative to the repository) and ``location.lines.begin`` (integer).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_orchestrator.reports.codeclimate import SEVERITIES

ROOT = Path(__file__).resolve().parent.parent
GITLAB_CI = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
GITLAB_SEVERITIES = {"info", "minor", "major", "critical", "blocker"}


def check_code_quality(issues: Any, repository: Path) -> None:
    """Fail unless ``issues`` is a valid Code Quality report for ``repository``."""
    assert isinstance(issues, list)
    fingerprints = [issue["fingerprint"] for issue in issues]
    assert len(set(fingerprints)) == len(fingerprints), "fingerprints must be unique"
    for issue in issues:
        assert isinstance(issue["description"], str) and issue["description"]
        assert isinstance(issue["check_name"], str) and issue["check_name"]
        assert isinstance(issue["fingerprint"], str) and issue["fingerprint"]
        assert issue["severity"] in GITLAB_SEVERITIES
        path = issue["location"]["path"]
        assert isinstance(path, str) and not path.startswith("/") and ".." not in path.split("/")
        assert (repository / path).is_file(), path
        begin = issue["location"]["lines"]["begin"]
        assert type(begin) is int and begin >= 1
        assert issue["type"] == "issue"


def test_the_demo_gets_one_issue_per_finding(demo: pytest.Pytester) -> None:
    result = demo.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-report=codeclimate:gl.json",
        "--orchestrate-report=json:r.json",
        "-p",
        "no:randomly",
    )
    assert result.ret == 1
    issues = json.loads((demo.path / "gl.json").read_text())
    check_code_quality(issues, demo.path)
    report = json.loads((demo.path / "r.json").read_text())
    findings = [f for audit in report["audits"] for f in audit["findings"]]
    assert len(issues) == len(findings) >= 4
    by_rule = {issue["check_name"]: issue for issue in issues}
    failed = by_rule["test-failed"]
    assert failed["severity"] == "blocker"
    assert failed["location"] == {"path": "tests/test_cart.py", "lines": {"begin": 30}}
    assert failed["categories"] == ["Bug Risk"]
    assert {f["fingerprint"] for f in findings} == {i["fingerprint"] for i in issues}
    result.stdout.fnmatch_lines([f"codeclimate report: {demo.path / 'gl.json'}"])


def test_severities_follow_p0_to_p4() -> None:
    assert SEVERITIES == {
        "P0": "blocker",
        "P1": "critical",
        "P2": "major",
        "P3": "minor",
        "P4": "info",
    }
    assert set(SEVERITIES.values()) == GITLAB_SEVERITIES


def test_paths_are_relative_to_the_repository_not_the_rootdir(
    pytester: pytest.Pytester,
) -> None:
    project = pytester.mkdir("services") / "shop"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (project / "shop.py").write_text("import os\n")
    (project / "test_shop.py").write_text("import shop\n\ndef test_ok():\n    assert shop\n")
    subprocess.run(["git", "init", "-q", str(pytester.path)], check=True)
    result = pytester.runpytest_subprocess(
        str(project),
        f"--rootdir={project}",
        f"-c={project / 'pyproject.toml'}",
        "--orchestrate",
        "--orchestrate-dimensions=tests,lint",
        f"--orchestrate-report=codeclimate:{pytester.path / 'gl.json'}",
    )
    assert result.ret == 0  # one P3 finding in 3 lines: the score stays above the target
    issues = json.loads((pytester.path / "gl.json").read_text())
    check_code_quality(issues, pytester.path)
    [unused] = [i for i in issues if i["check_name"] == "F401"]
    assert unused["location"] == {"path": "services/shop/shop.py", "lines": {"begin": 1}}


def test_duplicate_fingerprints_are_made_unique(demo: pytest.Pytester) -> None:
    (demo.path / "shop" / "twice.py").write_text("import os\nimport os\n")
    demo.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=lint", "--orchestrate-report=codeclimate:gl.json"
    )
    issues = json.loads((demo.path / "gl.json").read_text())
    check_code_quality(issues, demo.path)
    twice = [i for i in issues if i["location"]["path"] == "shop/twice.py"]
    assert len(twice) >= 2


#: GitLab CI's job keywords ("CI/CD YAML syntax reference"): a typo such as ``artifact:``
#: would be an error there.
JOB_KEYWORDS = {
    "after_script",
    "allow_failure",
    "artifacts",
    "before_script",
    "cache",
    "coverage",
    "dependencies",
    "environment",
    "except",
    "extends",
    "hooks",
    "id_tokens",
    "image",
    "inherit",
    "interruptible",
    "needs",
    "only",
    "pages",
    "parallel",
    "release",
    "resource_group",
    "retry",
    "rules",
    "script",
    "secrets",
    "services",
    "stage",
    "tags",
    "timeout",
    "trigger",
    "variables",
    "when",
}
GLOBAL_KEYWORDS = {"default", "include", "stages", "variables", "workflow"}


def test_the_gitlab_example_is_a_merge_request_gate() -> None:
    config = yaml.safe_load(GITLAB_CI.read_text())
    for name, value in config.items():
        assert name in GLOBAL_KEYWORDS or set(value) <= JOB_KEYWORDS, name
    job = config["quality-gate"]
    assert {"script", "stage"} <= set(job) and job["stage"] in config["stages"]
    assert isinstance(job["image"], str) and job["image"]
    merge_request, default_branch = job["rules"]
    assert merge_request["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert merge_request["variables"] == {
        "DIFF_BASE": "--orchestrate-diff-base=origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    }
    # the target branch's own report, which the merge request's widget compares with
    assert default_branch == {"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}
    assert job["variables"]["GIT_DEPTH"] == "0" and job["variables"]["DIFF_BASE"] == ""
    (script,) = job["script"]
    assert "$DIFF_BASE" in script.split()
    assert "--orchestrate-report=codeclimate:gl-code-quality.json" in script.split()
    assert "--orchestrate-report=junit:gl-junit.xml" in script.split()
    artifacts = job["artifacts"]
    assert artifacts["reports"] == {"codequality": "gl-code-quality.json", "junit": "gl-junit.xml"}
    assert artifacts["when"] == "always"
    fetch = [line for line in job["before_script"] if "git fetch" in line]
    assert fetch and "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME" in fetch[0]


@pytest.mark.parametrize("event", ["merge_request", "default_branch"])
def test_the_gitlab_example_s_command_runs(demo: pytest.Pytester, event: str) -> None:
    """The example's script, with the variables GitLab sets, runs the gate as written."""
    job = yaml.safe_load(GITLAB_CI.read_text())["quality-gate"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=demo.path, check=True, env=_git_env())
    subprocess.run(
        ["git", "update-ref", "refs/remotes/origin/main", "HEAD"], cwd=demo.path, check=True
    )
    (demo.path / "shop" / "new.py").write_text("import sys\n")
    diff_base = job["rules"][0]["variables"]["DIFF_BASE"] if event == "merge_request" else ""
    diff_base = diff_base.replace("$CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main")
    (line,) = job["script"]
    argv = line.replace("$DIFF_BASE", diff_base).split()  # the shell's word splitting
    assert argv[:3] == ["python", "-m", "pytest"]
    result = demo.runpytest_subprocess(*argv[3:], "-p", "no:randomly")
    assert result.ret == 1  # the demo's failing test
    issues = json.loads((demo.path / "gl-code-quality.json").read_text())
    check_code_quality(issues, demo.path)
    assert (demo.path / "gl-junit.xml").read_text().startswith("<?xml")
    if event == "merge_request":
        result.stdout.fnmatch_lines(["*new code*", "Quality gate FAILED: new-code score*"])
    else:
        assert "new code" not in result.stdout.str()
        result.stdout.fnmatch_lines(["Quality gate FAILED: score*"])


def _git_env() -> dict[str, str]:
    import os

    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
