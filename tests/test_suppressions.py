"""Suppressions (``# noqa``, ``# nosec``, ``# pragma: no cover``, skips ...): found in real
source, counted in every JSON report, new ones a finding of the new-code gate, and a growth
a failure of the baseline ratchet. Real sessions in a subprocess, real git, ruff, bandit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_newcode import REPORT, commit_all, conditions, load, project

from pytest_orchestrator.suppressions import added, scan, scan_tree, strip

SOURCE = '''import os  # noqa: F401
import sys  # NOQA
x = eval("1")  # nosec B307
def f():  # pragma: no cover
    return 1
y = 2  # type: ignore[attr-defined]  # noqa: E501
s = "# noqa in a string is no suppression"
"""A docstring that shows # nosec is no suppression either."""
@pytest.mark.skip(reason="later")
def test_a():
    pytest.skip("no")
@pytest.mark.xfail
def test_b():
    pass
pytestmark = [pytest.mark.skipif(True, reason="")]
z = 1  # noqa -- because
'''


def test_scan_finds_each_kind_with_its_rules_and_not_in_strings() -> None:
    found = [(s.line, s.kind, s.text, s.rules) for s in scan(SOURCE)]
    assert found == [
        (1, "noqa", "# noqa: F401", ("F401",)),
        (2, "noqa", "# NOQA", ()),
        (3, "nosec", "# nosec B307", ("B307",)),
        (4, "no-cover", "# pragma: no cover", ()),
        (6, "type-ignore", "# type: ignore[attr-defined]", ("attr-defined",)),
        (6, "noqa", "# noqa: E501", ("E501",)),
        (9, "skip", "mark.skip", ()),
        (11, "skip", "pytest.skip()", ()),
        (12, "xfail", "mark.xfail", ()),
        (15, "skip", "mark.skipif", ()),
        (16, "noqa", "# noqa", ()),
    ]


def test_a_directive_at_the_end_of_a_file_without_newline_is_found() -> None:
    assert [s.line for s in scan("a = 1\nb = 2  # noqa")] == [2]


def test_the_tree_scan_caches_by_content_and_rescans_changed_or_damaged_entries(
    tmp_path: Path,
) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.py").write_text("import os  # noqa: F401\n")
    (root / "b.py").write_text("x = 1\n")
    store = tmp_path / "suppressions.json"
    plain = scan_tree(root, ["a.py", "b.py"])
    assert scan_tree(root, ["a.py", "b.py"], store) == plain
    assert list(plain) == ["a.py"]

    # an unchanged file is answered from the cache (a planted row proves it) ...
    data = json.loads(store.read_text())
    data["files"]["b.py"]["payload"] = {"items": [[1, 7, "nosec", "# nosec", [], 14]]}
    store.write_text(json.dumps(data))
    assert [s.kind for s in scan_tree(root, ["a.py", "b.py"], store)["b.py"]] == ["nosec"]
    # ... a changed one is scanned again ...
    (root / "b.py").write_text("x = 2  # pragma: no cover\n")
    assert [s.kind for s in scan_tree(root, ["a.py", "b.py"], store)["b.py"]] == ["no-cover"]
    # ... and a damaged entry is scanned again, not trusted
    data = json.loads(store.read_text())
    data["files"]["a.py"]["payload"] = {"items": [["one", 7, "rm -rf", None, [], 0]]}
    store.write_text(json.dumps(data))
    assert scan_tree(root, ["a.py", "b.py"], store) == scan_tree(root, ["a.py", "b.py"])


def test_strip_removes_only_the_comment_directives_of_the_given_lines() -> None:
    stripped = strip(SOURCE, range(1, 17)).split("\n")
    assert stripped[0] == "import os"
    assert stripped[3] == "def f():"
    assert stripped[5] == "y = 2"
    assert stripped[6] == SOURCE.split("\n")[6]  # the string is left alone
    assert stripped[15] == "z = 1  # because"
    assert "mark.skip" in stripped[8]  # code suppressions are judged by outcomes instead
    assert strip(SOURCE, [2]).split("\n")[0] == "import os  # noqa: F401"


def test_a_ruff_disable_range_is_a_noqa() -> None:
    """ruff's range suppressions (``# ruff: disable[...]`` until ``# ruff: enable[...]``)
    silence every line between: the opening comment is the suppression."""
    text = "# ruff: disable[F401, E501]\nimport os\n# ruff: enable[F401, E501]\nx = 1\n"
    found = [(s.line, s.kind, s.text, s.rules) for s in scan(text)]
    assert found == [(1, "noqa", "# ruff: disable[F401, E501]", ("F401", "E501"))]
    assert strip(text, [1]).split("\n")[:2] == ["", "import os"]


def test_the_no_type_check_decorator_is_a_type_ignore() -> None:
    text = (
        "import typing\n\n\n@typing.no_type_check\ndef f(x: int) -> int:\n    return x\n\n\n"
        "class C:\n    @no_type_check  # later\n    def g(self) -> None:\n        pass\n"
    )
    found = [(s.line, s.kind, s.text) for s in scan(text)]
    assert found == [
        (4, "type-ignore", "@typing.no_type_check"),
        (10, "type-ignore", "@no_type_check"),
    ]
    lines = strip(text, [4, 10]).split("\n")
    assert (lines[3], lines[9]) == ("", "# later")
    compile(strip(text, [4, 10]), "t.py", "exec")  # still Python


CHECKER_SETTINGS = """# mypy: ignore-errors
# mypy: allow-untyped-defs, disable-error-code="assignment"
# mypy: disallow-untyped-defs
# pyright: basic
# pyright: strict
# pyright: reportAssignmentType=false, reportUnusedImport=true
# pyright: reportUnusedImport=error
text = "# mypy: ignore-errors in a string is no suppression"
"""


def test_file_level_settings_that_loosen_a_type_checker_are_suppressions() -> None:
    """A checker's settings written in the file that turn checks off or down count, as
    type-ignore; the ones that turn checks on or up do not."""
    found = [(s.line, s.kind, s.text) for s in scan(CHECKER_SETTINGS)]
    assert found == [
        (1, "type-ignore", "# mypy: ignore-errors"),
        (2, "type-ignore", '# mypy: allow-untyped-defs, disable-error-code="assignment"'),
        (4, "type-ignore", "# pyright: basic"),
        (6, "type-ignore", "# pyright: reportAssignmentType=false, reportUnusedImport=true"),
    ]
    stripped = strip(CHECKER_SETTINGS, range(1, 9)).split("\n")
    assert [stripped[i] for i in (0, 1, 3, 5)] == ["", "", "", ""]
    assert stripped[2] == "# mypy: disallow-untyped-defs"
    assert stripped[4] == "# pyright: strict"
    assert stripped[7] == CHECKER_SETTINGS.split("\n")[7]


def test_added_ignores_suppressions_that_were_there() -> None:
    old = "import os  # noqa: F401\nvalue = 1\n"
    new = "import os, re  # noqa: F401\nvalue = 2  # noqa: E501\n"
    assert [(s.line, s.text) for s in added(old, new)] == [(2, "# noqa: E501")]
    assert [s.line for s in added(None, new)] == [1, 2]


def test_every_json_report_counts_the_suppressions_in_the_tree(
    pytester: pytest.Pytester,
) -> None:
    project(pytester.path)
    pytester.makepyfile(
        **{
            "pkg/extra": "import json  # noqa: F401\n\n\ndef g():  # pragma: no cover\n"
            "    return 1\n",
            "tests/test_extra": "import pytest\n\n\n@pytest.mark.skip\ndef test_later():\n"
            "    pass\n",
        }
    )
    result = pytester.runpytest_subprocess("--orchestrate", REPORT)

    assert result.ret in (0, 6)
    report = load(pytester.path / "out" / "report.json")
    assert report.schema_version == "1.2"
    assert report.suppressions is not None
    assert report.suppressions.by_kind == {"noqa": 1, "no-cover": 1, "skip": 1}
    assert report.suppressions.total == 3
    assert report.suppressions.files == {"pkg/extra.py": 2, "tests/test_extra.py": 1}


def test_a_suppression_added_in_new_code_is_a_finding(pytester: pytest.Pytester) -> None:
    project(pytester.path)  # main has an unused import in pkg/calc.py, line 1
    calc = pytester.path / "pkg" / "calc.py"
    text = calc.read_text().replace("import os\n", "import os  # noqa: F401\n")
    calc.write_text(text + "\n\ndef more():  # pragma: no cover\n    return eval('1')  # nosec\n")

    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-diff-base=main", "--orchestrate-report=terminal", REPORT
    )

    report = load(pytester.path / "out" / "report.json")
    found = sorted(
        (f.dimension, f.line, f.severity.value, f.tool, f.message)
        for f in report.findings()
        if f.rule_id == "new-suppression"
    )
    assert found == [
        (
            "coverage",
            12,
            "P2",
            "coverage",
            "new suppression: # pragma: no cover hides code from coverage instead of fixing it",
        ),
        (
            "lint",
            1,
            "P2",
            "ruff",
            "new suppression: # noqa: F401 silences ruff F401 instead of fixing it",
        ),
        (
            "security",
            13,
            "P2",
            "bandit",
            "new suppression: # nosec silences bandit every rule instead of fixing it",
        ),
    ]
    assert report.new_code is not None
    assert all(
        f.fingerprint in report.new_code.findings
        for f in report.findings()
        if f.rule_id == "new-suppression"
    )
    result.stdout.fnmatch_lines(["*new-suppression*# noqa: F401*"])


def test_the_ratchet_fails_when_suppressions_grow(pytester: pytest.Pytester) -> None:
    project(pytester.path)
    (pytester.path / "base").mkdir()
    first = pytester.runpytest_subprocess(
        "--orchestrate",
        "--target-score=0",
        "--orchestrate-fail-on=none",
        "--orchestrate-report=json:base/baseline.json",
    )
    assert first.ret == pytest.ExitCode.OK
    calc = pytester.path / "pkg" / "calc.py"
    calc.write_text(calc.read_text().replace("import os\n", "import os  # noqa: F401\n"))
    commit_all(pytester.path, "silence the import")

    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--target-score=0",
        "--orchestrate-fail-on=none",
        "--orchestrate-baseline=base/baseline.json",
        REPORT,
    )

    assert result.ret == 6
    report = load(pytester.path / "out" / "report.json")
    assert conditions(report)["baseline suppressions"] == (
        False,
        "suppressions 1 > baseline 0 (noqa +1): fix the findings instead of silencing them",
    )
    # the finding it silenced is gone, so the other conditions pass: only this one fails
    assert conditions(report)["baseline findings"][0] is True
