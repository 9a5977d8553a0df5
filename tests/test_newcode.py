"""New code (``--orchestrate-diff-base``): changed lines from real git, diff coverage, the gate.

The changed-line tests build real repositories and read real ``git diff`` output; the gate
tests run real pytest sessions (subprocesses, so coverage measures the child) with real
ruff, bandit and coverage on a project whose main branch carries old debt.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pytest_orchestrator.models import Report
from pytest_orchestrator.newcode import (
    ChangeSet,
    DiffBaseError,
    changed_lines,
    parse_diff,
    resolve,
    statements,
    unquote,
)

#: main's code: old debt (an unused import, an untested function).
CALC = "import os\n\n\ndef add(a, b):\n    return a + b\n\n\ndef old_unused(x):\n    return x * 3\n"
TESTS = (
    "import os\n\nfrom pkg.calc import add\n\n\n"
    "def test_add():\n    assert add(1, 1) == 2\n\n\n"
    "def test_environment():\n    assert os.environ.get('BREAK_THE_TEST') is None\n"
)
REPORT = "--orchestrate-report=json:out/report.json"


def git(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.email=dev@example.com", "-c", "user.name=Dev", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout


def init_repo(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "core.autocrlf", "false")


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def project(root: Path) -> None:
    """The gate tests' project, committed on main, with the branch 'feature' checked out."""
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text(CALC)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n'
    )
    # pytester writes the child's stdout, stderr and runpytest-N/ into the project
    (root / ".gitignore").write_text(
        ".pytest_cache/\n__pycache__/\nout/\nstdout\nstderr\nrunpytest-*\n"
    )
    init_repo(root)
    commit_all(root, "main")
    git(root, "checkout", "-q", "-b", "feature")


def load(path: Path) -> Report:
    return Report.model_validate_json(path.read_text())


def conditions(report: Report) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.message) for c in report.verdict.conditions}


# --------------------------------------------------------------------------- changed lines


def expected(changes: ChangeSet) -> dict[str, tuple[str, str | None, list[int], bool]]:
    return {
        path: (c.status, c.old_path, list(c.lines()), c.binary) for path, c in changes.files.items()
    }


def test_changed_lines_from_real_git_diff(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    init_repo(root)
    (root / "mod.py").write_text("a = 1\nb = 2\nc = 3\nd = 4\n")
    (root / "old name.py").write_text("".join(f"x{i} = {i}\n" for i in range(1, 21)))
    (root / "gone.py").write_text("q = 1\n")
    (root / "blob.bin").write_bytes(b"\x00\x01binary")
    (root / "spaced dir").mkdir()
    (root / "spaced dir" / "ünï cödé.py").write_text("u = 1\n")
    (root / "back\\slash.py").write_text("h = 1\n")
    (root / "markers.txt").write_text("keep\n-- removed later\nend\n")
    commit_all(root, "base")
    git(root, "checkout", "-q", "-b", "topic")

    (root / "mod.py").write_text("a = 1\nB = 2\nc = 3\nd = 4\ne = 5\n")  # line 2 modified, 5 added
    git(root, "mv", "old name.py", "new name.py")  # a rename with one line modified
    text = (root / "new name.py").read_text().replace("x7 = 7", "x7 = 70")
    (root / "new name.py").write_text(text)
    git(root, "rm", "-q", "gone.py")
    (root / "blob.bin").write_bytes(b"\x00\x02binary")
    (root / "spaced dir" / "ünï cödé.py").write_text("u = 2\n")
    (root / "back\\slash.py").write_text("h = 2\n")
    # a removed "-- x" line prints as "--- x", an added "++ y" as "+++ y": content, not headers
    (root / "markers.txt").write_text("keep\nend\n++ b/added\n")
    commit_all(root, "topic work")
    (root / "mod.py").write_text("a = 1\nB = 2\nc = 3\nD = 4\ne = 5\n")  # unstaged: line 4
    (root / "staged.py").write_text("s = 1\ns = 2\n")
    git(root, "add", "staged.py")  # staged only
    (root / "untracked file.py").write_text("n = 1\nn = 2\nn = 3")  # no final newline
    (root / "new.bin").write_bytes(b"PK\x00\x00\x03")
    (root / ".gitignore").write_text("ignored.py\n")
    (root / "ignored.py").write_text("i = 1\n")

    changes = changed_lines(root, "main")

    assert changes.merge_base == git(root, "rev-parse", "main").strip()
    assert expected(changes) == {
        "mod.py": ("modified", None, [2, 4, 5], False),
        "new name.py": ("renamed", "old name.py", [7], False),
        "gone.py": ("deleted", None, [], False),
        "blob.bin": ("modified", None, [], True),
        "spaced dir/ünï cödé.py": ("modified", None, [1], False),
        "back\\slash.py": ("modified", None, [1], False),
        "markers.txt": ("modified", None, [3], False),
        "staged.py": ("added", None, [1, 2], False),
        "untracked file.py": ("untracked", None, [1, 2, 3], False),
        "new.bin": ("untracked", None, [], True),
        ".gitignore": ("untracked", None, [1], False),
    }
    assert changes.changed("mod.py", 4) and not changes.changed("mod.py", 3)
    assert changes.lines == 3 + 1 + 1 + 1 + 1 + 2 + 3 + 1
    assert changes.python_lines == 3 + 1 + 1 + 1 + 2 + 3


def test_merge_base_semantics_and_reverted_lines(tmp_path: Path) -> None:
    """Like a pull request: main's later commits are not new code; a branch change undone
    in the working tree is not new either; the rootdir may be a subdirectory."""
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    init_repo(root)
    (root / "sub" / "a.py").write_text("one = 1\ntwo = 2\nthree = 3\n")
    (root / "top.py").write_text("t = 1\n")
    commit_all(root, "base")
    git(root, "checkout", "-q", "-b", "topic")
    (root / "sub" / "a.py").write_text("one = 10\ntwo = 20\nthree = 3\n")
    (root / "top.py").write_text("t = 2\n")  # outside the rootdir below
    commit_all(root, "topic")
    git(root, "checkout", "-q", "main")
    (root / "sub" / "main_only.py").write_text("m = 1\n")
    commit_all(root, "main moves on")
    git(root, "checkout", "-q", "topic")
    (root / "sub" / "a.py").write_text("one = 1\ntwo = 20\nthree = 3\n")  # line 1 undone

    changes = changed_lines(root / "sub", "main")

    assert expected(changes) == {"a.py": ("modified", None, [2], False)}


def test_unquote_follows_git_c_quoting() -> None:
    assert unquote('"b/tab\\there"') == "b/tab\there"
    assert unquote('"b/\\303\\274nic\\"ode\\\\"') == 'b/ünic"ode\\'
    assert unquote("b/with space.py\t") == "b/with space.py"
    assert unquote("b/plain.py") == "b/plain.py"


def test_parse_diff_type_change_and_mode_only() -> None:
    patch = (
        "diff --git a/x y.py b/x y.py\nold mode 100644\nnew mode 100755\n"
        "diff --git a/t.py b/t.py\ndeleted file mode 100644\nindex 1..0\n--- a/t.py\n"
        "+++ /dev/null\n@@ -1 +0,0 @@\n-l\n"
        "diff --git a/t.py b/t.py\nnew file mode 120000\nindex 0..2\n--- /dev/null\n"
        "+++ b/t.py\n@@ -0,0 +1 @@\n+target\n\\ No newline at end of file\n"
        'diff --git "a/e\\tmpty" "b/e\\tmpty"\nnew file mode 100644\nindex 0..e69\n'
    )
    found = {c.path: (c.status, list(c.lines())) for c in parse_diff(patch)}
    assert found == {
        "x y.py": ("modified", []),
        "t.py": ("modified", [1]),
        "e\tmpty": ("added", []),
    }


def test_multi_line_statement_counts_once(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "def f(a):\n"
        "    return g(\n"
        "        a,\n"
        "        2,\n"
        "    )  # pragma: no cover\n"
        "\n"
        "# a comment\n"
        "x = 1  # pragma: no cover\n"
        "y = [\n"
        "    1,\n"
        "]\n"
    )
    parsed = statements(source, "#\\s*(pragma|PRAGMA)[:\\s]?\\s*(no|NO)\\s*(cover|COVER)")
    assert parsed.of([3]) == set()  # the whole return statement is excluded
    assert parsed.of([10]) == {9}  # a continuation line is its statement's first line
    assert parsed.of([6, 7, 8]) == set()  # blank, comment, excluded
    assert parsed.of([1, 10, 11]) == {1, 9}


def test_resolve_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(DiffBaseError, match=r"is not in a git repository"):
        resolve(plain, "main")
    root = tmp_path / "repo"
    root.mkdir()
    init_repo(root)
    with pytest.raises(DiffBaseError, match=r"no commit yet"):
        resolve(root, "main")
    (root / "a.py").write_text("a = 1\n")
    commit_all(root, "base")
    git(root, "remote", "add", "origin", "https://example.invalid/repo.git")
    with pytest.raises(DiffBaseError) as unknown:
        resolve(root, "origin/mian")
    assert str(unknown.value) == (
        "unknown diff base 'origin/mian': no such commit; fetch it (git fetch origin mian) "
        "or check the name (did you mean 'main'?)"
    )
    with pytest.raises(DiffBaseError, match=r"'--output=x' is not a git ref"):
        resolve(root, "--output=x")
    with pytest.raises(DiffBaseError, match=r"'@\{upstream\}': no upstream configured for"):
        resolve(root, "@{upstream}")
    git(root, "checkout", "-q", "-b", "topic")
    git(root, "branch", "-q", "--set-upstream-to=main")
    assert resolve(root, "@{upstream}").merge_base == git(root, "rev-parse", "main").strip()
    git(root, "checkout", "-q", "--orphan", "lonely")
    commit_all(root, "unrelated")
    with pytest.raises(DiffBaseError, match=r"'main' and HEAD share no history"):
        resolve(root, "main")


def test_shallow_clone_without_the_merge_base_says_how_to_fetch(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    init_repo(origin)
    for i in range(3):
        (origin / "a.py").write_text(f"a = {i}\n")
        commit_all(origin, f"main {i}")
    git(origin, "checkout", "-q", "-b", "feature", "HEAD~1")
    (origin / "b.py").write_text("b = 1\n")
    commit_all(origin, "feature")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth=1", "--no-single-branch", origin.as_uri(), str(clone))
    git(clone, "checkout", "-q", "feature")

    with pytest.raises(DiffBaseError) as shallow:
        resolve(clone, "origin/main")
    assert str(shallow.value) == (
        "no merge base of 'origin/main' and HEAD in this shallow clone; fetch more history: "
        "actions/checkout with fetch-depth: 0 (or git fetch --unshallow)"
    )


# --------------------------------------------------------------------------- the gate


@pytest.mark.parametrize(
    "extra", [pytest.param([], id="plain"), pytest.param(["-n", "2"], id="xdist")]
)
def test_new_uncovered_function_and_ruff_finding_fail_the_new_code_gate(
    pytester: pytest.Pytester, extra: list[str]
) -> None:
    project(pytester.path)
    with (pytester.path / "pkg" / "calc.py").open("a") as handle:
        handle.write("\n\ndef new_feature(y):\n    import sys\n    return y + 1\n")

    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-diff-base=main",
        "--orchestrate-fail-on=P2",
        "--orchestrate-report=terminal",
        REPORT,
        *extra,
    )

    assert result.ret == 6  # the tests passed, the gate failed
    result.stdout.fnmatch_lines(
        [
            "*not covered: pkg/calc.py: 13-14",
            "Quality gate FAILED: new-code score * (target 90.00) on 5 changed lines in 1 file; "
            "overall *",
            "*FAIL 1 P2 finding at a failing severity (P2) on new code: pkg/calc.py:13 F401",
            "*FAIL diff coverage 33.33 < minimum 70.00 on 3 changed executable lines "
            "(5 changed lines in 1 file)",
        ]
    )
    report = load(pytester.path / "out" / "report.json")
    assert report.verdict.scope == "new code"
    new = report.new_code
    assert new is not None and new.score is not None
    assert [
        (f.path, f.status, f.lines, f.executable_lines, f.covered_lines) for f in new.files
    ] == [("pkg/calc.py", "modified", "10-14", 3, 1)]
    assert (new.diff_coverage, new.findings_by_severity) == (33.33, {"P2": 1, "P3": 1})
    lint = {(f.line, f.fingerprint) for f in report.findings() if f.rule_id == "F401"}
    assert {line for line, _ in lint} == {1, 13}  # the old debt is still reported ...
    old = next(fp for line, fp in lint if line == 1)
    new_one = next(fp for line, fp in lint if line == 13)
    assert new_one in new.findings and old not in new.findings  # ... but not judged
    scores = {d.dimension: d.score for d in new.score.dimensions}
    assert scores == {"tests": 100.0, "coverage": 33.33, "lint": 97.0, "security": 100.0}
    assert new.score.overall == round((30 * 100 + 30 * 33.33 + 20 * 97 + 20 * 100) / 100, 2)
    assert report.verdict.score == new.score.overall


def test_branch_touching_only_covered_lines_passes_below_the_overall_target(
    pytester: pytest.Pytester,
) -> None:
    project(pytester.path)
    calc = pytester.path / "pkg" / "calc.py"
    calc.write_text(calc.read_text().replace("return a + b", "return b + a"))
    commit_all(pytester.path, "commutative")

    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-diff-base=main", "--target-score=95", REPORT
    )

    assert result.ret == pytest.ExitCode.OK
    report = load(pytester.path / "out" / "report.json")
    assert report.score.overall == 93.4  # below the target: old debt, not judged
    assert report.verdict.passed and report.verdict.score == 100.0
    assert conditions(report) == {
        "new-code target score": (
            True,
            "new-code score 100.00 >= target 95.00 on 1 changed line in 1 file "
            "(overall 93.40, for information)",
        ),
        "new-code fail-on": (True, "no finding at a failing severity (P0) on new code"),
        "tests minimum": (True, "tests 100.00 >= minimum 80.00 (all tests, whatever changed)"),
        "diff coverage minimum": (
            True,
            "diff coverage 100.00 >= minimum 70.00 on 1 changed executable line "
            "(1 changed line in 1 file)",
        ),
    }
    # without the diff base the same tree fails on the overall score
    overall = pytester.runpytest_subprocess("--orchestrate", "--target-score=95", REPORT)
    assert overall.ret == 6


@pytest.mark.parametrize(
    ("change", "size"),
    [
        pytest.param(None, "0 changed lines in 0 files", id="nothing-changed"),
        pytest.param("# only a comment\n", "1 changed line in 1 file", id="comment-only"),
    ],
)
def test_no_changed_executable_line_is_stated_not_silent(
    pytester: pytest.Pytester, change: str | None, size: str
) -> None:
    project(pytester.path)
    if change is not None:
        with (pytester.path / "pkg" / "calc.py").open("a") as handle:
            handle.write(change)

    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-diff-base=main", "--orchestrate-report=terminal", REPORT
    )

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*diff coverage: no changed executable lines: not applicable",
            f"Quality gate PASSED: new-code score 100.00 (target 90.00) on {size}; overall *",
            f"*ok   no changed executable lines: diff coverage condition not applicable ({size})",
        ]
    )
    report = load(pytester.path / "out" / "report.json")
    assert report.new_code is not None and report.new_code.diff_coverage is None
    assert "diff coverage minimum" in conditions(report)


def test_failing_tests_fail_the_gate_whatever_lines_changed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester.path)
    monkeypatch.setenv("BREAK_THE_TEST", "1")

    result = pytester.runpytest_subprocess("--orchestrate", "--orchestrate-diff-base=main", REPORT)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = load(pytester.path / "out" / "report.json")
    assert report.new_code is not None and report.new_code.changed_lines == 0
    assert conditions(report)["new-code fail-on"] == (
        False,
        "1 P0 finding at a failing severity (P0) on new code: tests/test_calc.py::test_environment",
    )
    assert conditions(report)["tests minimum"][0] is False
    assert not report.verdict.passed


def test_unknown_diff_base_is_a_one_line_usage_error_and_writes_nothing(
    pytester: pytest.Pytester,
) -> None:
    project(pytester.path)
    git(pytester.path, "remote", "add", "origin", "https://example.invalid/repo.git")

    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-diff-base=origin/mian", REPORT
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        "ERROR: --orchestrate-diff-base: unknown diff base 'origin/mian': no such commit; "
        "fetch it (git fetch origin mian) or check the name (did you mean 'main'?)"
    ]
    assert not (pytester.path / "out").exists()


def test_ini_twin_and_markdown_show_both_figures(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    (pytester.path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n'
        'orchestrate_diff_base = "main"\n'
    )
    commit_all(pytester.path, "config")

    result = pytester.runpytest_subprocess(
        "--orchestrate", REPORT, "--orchestrate-report=markdown:out/report.md"
    )

    assert result.ret == pytest.ExitCode.OK
    markdown = (pytester.path / "out" / "report.md").read_text()
    assert "**New-code score 100.00** (target 90.00) on 1 changed line in 1 file" in markdown
    assert "| **overall** | **93.40** | **100.00** |" in markdown
    data = json.loads((pytester.path / "out" / "report.json").read_text())
    assert data["new_code"]["base"] == "main" and data["verdict"]["scope"] == "new code"
