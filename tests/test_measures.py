"""Faults found by gating real projects (six, attrs, dateutil, boltons, itsdangerous), each
on a small real session: top-level modules, subprocess coverage under xdist, the lint
score's size, subtests, what the reports say first, durations and words."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

REPORT = "--orchestrate-report=json:out/report.json"


def load(pytester: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / "out" / "report.json").read_text())
    return data


def audit(report: dict[str, Any], dimension: str) -> dict[str, Any]:
    return next(a for a in report["audits"] if a["dimension"] == dimension)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(".coverage*"))


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_top_level_modules_are_measured_like_packages(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    pytester.makepyfile(
        single="def f(x):\n    if x:\n        return 1\n    return 2\n",
        helper="def unused():\n    return 3\n",  # no test imports it: not covered at all
        test_single="import single\n\n\ndef test_f():\n    assert single.f(1) == 1\n",
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    result = pytester.runpytest_subprocess("--orchestrate", REPORT, *xdist)

    assert result.ret in (0, 6), result.stdout.str()
    coverage = audit(load(pytester), "coverage")
    files = {f["path"]: (f["statements"], f["missing"]) for f in coverage["coverage"]["files"]}
    assert files == {"single.py": (4, 1), "helper.py": (2, 2)}
    assert coverage["notes"] == []  # no "was never imported", no "No data was collected"
    assert leftovers(pytester.path) == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_paths_aliases_map_an_installed_copy_to_the_tree(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdist: list[str]
) -> None:
    # pluggy's way: the tests run against the installed package, and .coveragerc's [paths]
    # maps site-packages/pluggy/ to src/pluggy/ (coverage combine and pytest-cov apply it)
    source = "def f(x):\n    if x:\n        return 1\n    return 2\n"
    pytester.makepyfile(**{"src/pkg/__init__": "", "src/pkg/mod": source})
    installed = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    (installed / "pkg").mkdir(parents=True)
    (installed / "pkg" / "__init__.py").write_text("")
    (installed / "pkg" / "mod.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", str(installed))
    pytester.makepyfile(test_mod="from pkg.mod import f\n\n\ndef test_f():\n    assert f(1) == 1\n")
    (pytester.path / ".coveragerc").write_text(
        "[run]\ninclude =\n  src/pkg/*\n  */site-packages/pkg/*\n\n"
        "[paths]\nsource =\n  src/pkg/\n  */site-packages/pkg/\n"
    )
    result = pytester.runpytest_subprocess("--orchestrate", REPORT, *xdist)

    assert result.ret in (0, 6), result.stdout.str()
    files = {
        f["path"]: (f["statements"], f["missing"])
        for f in audit(load(pytester), "coverage")["coverage"]["files"]
    }
    # the installed copy's lines count for src/pkg/mod.py, as after `coverage combine`
    assert files["src/pkg/mod.py"] == (4, 1)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_subprocess_coverage_is_combined_and_leaves_no_data_file(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    """``patch = ["subprocess"]`` (attrs' configuration): the tests' subprocesses are
    measured, xdist's workers measure themselves (coverage does not collapse), and no
    ``.coverage.*`` file is left in the project; our bandit does not start coverage."""
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/child": "def main():\n    print('child ran')\n\n\nif __name__ == '__main__':\n"
            "    main()\n",
            "tests/test_child": "import subprocess, sys\n\n\n"
            "def test_child():\n"
            "    out = subprocess.run([sys.executable, '-m', 'pkg.child'], capture_output=True,"
            " text=True, check=True)\n"
            "    assert out.stdout == 'child ran\\n'\n",
        }
    )
    pytester.makefile(
        ".toml",
        pyproject='[tool.pytest.ini_options]\npythonpath = ["."]\n\n'
        '[tool.coverage.run]\npatch = ["subprocess"]\nparallel = true\n'
        'source_pkgs = ["pkg"]\n',
    )
    result = pytester.runpytest_subprocess("--orchestrate", REPORT, *xdist)

    assert result.ret in (0, 6), result.stdout.str()
    coverage = audit(load(pytester), "coverage")
    files = {f["path"]: f["missing"] for f in coverage["coverage"]["files"]}
    assert files["pkg/child.py"] == 0, files  # measured in the subprocess
    assert leftovers(pytester.path) == []


def test_lint_counts_the_lines_of_the_files_it_checks_and_test_code_is_a_choice(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/calc": "def add(a, b):\n    return a + b\n",
            "tests/test_calc": "import os\n\nfrom pkg.calc import add\n\n\n"
            "def test_add():\n    assert add(1, 1) == 2\n",
        }
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    scores = {}
    for policy in ("count", "lower", "skip"):
        pytester.runpytest_subprocess(
            "--orchestrate", "-o", f"orchestrate_lint_tests={policy}", REPORT
        )
        lint = audit(load(pytester), "lint")
        scores[policy] = (lint["score"], [f["severity"] for f in lint["findings"]], lint["notes"])
    assert scores["count"][:2] == (97.0, ["P2"])  # F401 in the tests, counted
    assert "test code included)" in scores["count"][2][0]
    assert scores["lower"][:2] == (99.0, ["P3"])
    assert scores["skip"][:2] == (100.0, [])
    assert "test code left out" in scores["skip"][2][0]


def test_failing_subtests_count_as_pytest_counts_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sub="def test_sub(subtests):\n"
        "    for i in range(3):\n"
        "        with subtests.test(msg='check', i=i):\n"
        "            assert i != 1\n\n\n"
        "def test_plain():\n    assert True\n"
    )
    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests", REPORT
    )

    result.stdout.fnmatch_lines(["*2 failed, 1 passed*"])  # pytest's own count
    tests = audit(load(pytester), "tests")
    assert (tests["tests"]["failed"], tests["tests"]["passed"]) == (2, 1)
    assert tests["tests"]["subtests_passed"] == 2
    messages = sorted(f["message"] for f in tests["findings"])
    assert messages[0].startswith("test_sub.py::test_sub [check] (i=1): assert 1 != 1")
    assert tests["score"] == round(100 / 3, 2)


def test_points_lost_show_the_largest_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            **{f"pkg/a{i}": f"def f{i}():\n    return {i}\n" for i in range(6)},
            "pkg/z_big": "".join(f"def g{i}():\n    return {i}\n\n\n" for i in range(30)),
            "tests/test_nothing": "def test_nothing():\n    assert True\n",
        }
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests,coverage"
    )

    lines = result.stdout.lines
    start = next(
        i
        for i, line in enumerate(lines)
        if line.strip().endswith("coverage: 0.00 with weight 30 of 60")
    )
    assert "pkg/z_big.py" in lines[start + 1], lines[start : start + 3]


def test_the_verdict_line_says_why_with_only_file_reports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/calc": "import hashlib\n\n\ndef digest(data):\n"
            "    return hashlib.md5(data).hexdigest()\n",
            "tests/test_calc": "from pkg.calc import digest\n\n\ndef test_digest():\n"
            "    assert len(digest(b'x')) == 32\n",
        }
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    result = pytester.runpytest_subprocess("--orchestrate", REPORT)

    assert result.ret == 6
    result.stdout.fnmatch_lines(
        [
            "Quality gate FAILED: score * (target 90.00)",
            "  FAIL 1 P0 finding at a failing severity (P0): pkg/calc.py:5 B324",
            "json report: *report.json",
        ]
    )


@pytest.mark.serial
def test_durations_are_each_tools_own_and_words_agree_with_numbers(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/calc": "def clamp(x):\n    if x > 10:\n        x = 10\n    return x\n",
            "tests/test_calc": "import time\n\nfrom pkg.calc import clamp\n\n\n"
            "def test_slow():\n    time.sleep(2)\n    assert clamp(20) == 10\n",
        }
    )
    pytester.makefile(
        ".cfg", setup="[metadata]\nname = named-in-setup-cfg\n\n[coverage:run]\nbranch = true\n"
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    result = pytester.runpytest_subprocess("--orchestrate", REPORT, "--orchestrate-report=terminal")

    report = load(pytester)
    assert report["project"]["name"] == "named-in-setup-cfg"
    assert audit(report, "lint")["duration"] < 1.5  # ruff's own time, not the 2 s session's
    assert audit(report, "security")["duration"] < 1.5
    coverage = audit(report, "coverage")
    [finding] = coverage["findings"]
    assert finding["message"] == "1 branch of 2 not taken at 1 line 2"
    assert finding["line"] == 2
    result.stdout.fnmatch_lines(["named-in-setup-cfg: 2 Python files, * lines of code in pkg"])
    assert not re.search(r"\b1 (files|lines|tests|branches|Python files)\b", result.stdout.str())
