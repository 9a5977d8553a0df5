"""Per-path minimums (``orchestrate_path_minimums``) and branches in new code: real sessions
in a subprocess, real coverage.py, ruff and git."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_newcode import REPORT, commit_all, conditions, git, load, project

from pytest_orchestrator.config import glob_regex

CORE = "def double(x):\n    return 2 * x\n\n\ndef half(x):\n    return x / 2\n"
CLI = "import os\nimport sys\n\n\ndef main():\n    return 0\n\n\ndef unused():\n    return 1\n"


def groups(pytester: pytest.Pytester, minimums: str) -> None:
    root = pytester.path
    for package, source in (("core", CORE), ("cli", CLI)):
        (root / "src" / package).mkdir(parents=True)
        (root / "src" / package / "__init__.py").write_text("")
        (root / "src" / package / "mod.py").write_text(source)
    (root / "tests").mkdir()
    (root / "tests" / "test_mod.py").write_text(
        "from core.mod import double, half\nfrom cli.mod import main\n\n\n"
        "def test_core():\n    assert double(2) == 4 and half(2) == 1\n\n\n"
        "def test_cli():\n    assert main() == 0\n"
    )
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["src"]\ntestpaths = ["tests"]\n'
        f"orchestrate_path_minimums = '''\n{minimums}\n'''\n"
    )


def test_glob_patterns() -> None:
    cases = {
        "src/core/**": (["src/core/a.py", "src/core/x/y.py"], ["src/cli/a.py", "src/core"]),
        "**/test_*.py": (["test_a.py", "tests/unit/test_b.py"], ["tests/a_test.py"]),
        "src/*/mod.py": (["src/cli/mod.py"], ["src/cli/x/mod.py"]),
        "src/cli": (["src/cli/mod.py", "src/cli"], ["src/client/mod.py"]),
    }
    for pattern, (yes, no) in cases.items():
        regex = glob_regex(pattern)
        assert all(regex.fullmatch(p) for p in yes), pattern
        assert not any(regex.fullmatch(p) for p in no), pattern


def test_two_path_groups_with_their_own_minimums(pytester: pytest.Pytester) -> None:
    groups(pytester, "src/core/** coverage>=95\nsrc/cli/** coverage>=95\nsrc/cli/** lint>=99")
    result = pytester.runpytest_subprocess(
        "--orchestrate", REPORT, "--orchestrate-report=terminal", "-p", "no:randomly"
    )
    assert result.ret == 6  # every test passed; the gate failed on the cli group
    report = load(pytester.path / "out" / "report.json")
    found = conditions(report)
    assert found["path minimum src/core/** coverage"] == (
        True,
        "src/core/** coverage 100.00 >= minimum 95.00 (2 files)",
    )
    passed, message = found["path minimum src/cli/** coverage"]
    assert not passed and message.startswith("src/cli/** coverage 83.33 < minimum 95.00 (2 files)")
    passed, message = found["path minimum src/cli/** lint"]
    # two F401 (P2, 3 points each per 1 KLOC) in the cli group alone
    assert not passed and message == "src/cli/** lint 94.00 < minimum 99.00 (2 files)"
    assert report.config.path_minimums == [
        "src/core/** coverage>=95",
        "src/cli/** coverage>=95",
        "src/cli/** lint>=99",
    ]
    result.stdout.fnmatch_lines(["*ok*src/core/** coverage 100.00 >= minimum 95.00 (2 files)*"])
    result.stdout.fnmatch_lines(["*FAIL*src/cli/** coverage 83.33 < minimum 95.00 (2 files)*"])


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "src/nothing/** coverage>=90",
            "'src/nothing/**' matches no Python file under the rootdir",
        ),
        ("src/core/** coverage=90", "is not PATTERN DIMENSION>=N"),
        ("src/core/** tests>=90", "a path minimum takes coverage or a finding dimension"),
        ("src/core/** types>=90", "types is not among the audited dimensions"),
        ("src/core/** coverage>=190", "not a valid minimum"),
    ],
)
def test_bad_lines_are_one_line_usage_errors(
    pytester: pytest.Pytester, line: str, error: str
) -> None:
    groups(pytester, line)
    result = pytester.runpytest_subprocess("--orchestrate", REPORT)
    assert result.ret == 4
    assert "Traceback" not in result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: orchestrate_path_minimums (ini): *{error}*"])
    assert not (pytester.path / "out" / "report.json").exists()


def test_a_path_minimum_on_a_dimension_that_did_not_run_fails(tmp_path: Path) -> None:
    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.models import AuditResult
    from pytest_orchestrator.scoring import path_conditions

    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "a.py").write_text("x = 1\n")
    lines = ["core/** security>=90"]
    down = [AuditResult(dimension="security", status="unavailable", reason="bandit: crashed")]
    strict = OrchestrationConfig.model_validate(
        {"path_minimums": lines}, context={"rootdir": tmp_path}
    )
    [condition] = path_conditions(down, strict, tmp_path)
    assert (condition.passed, condition.message) == (
        False,
        "core/** security: not measured (bandit: crashed)",
    )
    allowed = OrchestrationConfig.model_validate(
        {"path_minimums": lines, "allow_unavailable": "security"}, context={"rootdir": tmp_path}
    )
    assert path_conditions(down, allowed, tmp_path)[0].passed


def test_a_new_if_whose_else_no_test_takes_is_partly_covered(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    (pytester.path / ".coveragerc").write_text("[run]\nbranch = true\n")
    commit_all(pytester.path, "branch coverage")
    calc = pytester.path / "pkg" / "calc.py"
    calc.write_text(
        calc.read_text() + "\n\ndef clamp(x):\n    if x > 10:\n        x = 10\n    return x\n"
    )
    tests = pytester.path / "tests" / "test_calc.py"
    tests.write_text(tests.read_text() + "\n\ndef test_clamp():\n    assert clamp(20) == 10\n")
    tests.write_text(
        tests.read_text().replace("from pkg.calc import", "from pkg.calc import clamp,")
    )
    commit_all(pytester.path, "clamp")
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-diff-base=main",
        REPORT,
        "--orchestrate-report=terminal",
        "-p",
        "no:randomly",
    )
    new = load(pytester.path / "out" / "report.json").new_code
    assert new is not None
    [changed] = [f for f in new.files if f.path == "pkg/calc.py"]
    # every changed line ran; the if's fall-through (x <= 10) never did
    assert (changed.executable_lines, changed.covered_lines) == (4, 4)
    assert (changed.branches, changed.covered_branches) == (2, 1)
    assert changed.uncovered_branches == "13->15"
    assert (new.branches, new.covered_branches) == (2, 1)
    # coverage.py's formula: (4 + 1) / (4 + 2)
    assert new.diff_coverage == pytest.approx(83.33)
    result.stdout.fnmatch_lines(
        [
            "*diff coverage 83.33: 4 of 4 changed executable lines covered, 1 of 2 of their "
            "branches taken*",
            "*branches not taken: pkg/calc.py: 13->15*",
        ]
    )
    assert git(pytester.path, "status", "--porcelain", "--untracked-files=no") == ""
