"""A project linted by flake8 (no ruff configuration) keeps its policy: its flake8 settings'
ignores, excludes and per-file ignores reach ruff, codes ruff does not know are left out
and noted. Found on more-itertools 10.5.0, whose lint scored 92.67 against its own policy's
99.12."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_orchestrator.auditors.lint import (
    Flake8Settings,
    flake8_arguments,
    flake8_settings,
    ruff_glob,
    ruff_selectors,
)
from pytest_orchestrator.auditors.tools import find_executable
from pytest_orchestrator.errors import ToolUnavailable

REPORT = "--orchestrate-report=json:out/report.json"


def test_flake8_reads_the_first_file_with_a_flake8_section(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = x\n")
    (tmp_path / "tox.ini").write_text(
        "[flake8]\n"
        "extend_ignore =\n"
        "    # lambdas assigned on purpose\n"
        "    E731,\n"
        "    W503  # line breaks\n"
        "exclude = ./docs/conf.py, build\n"
        "per-file-ignores =\n"
        "    tests/*: F401,F811, ABCD1\n"
        "    src/a.py src/b.py:E741\n"
    )
    (tmp_path / ".flake8").write_text("[flake8]\nignore = F401\n")  # tox.ini comes first

    settings = flake8_settings(tmp_path)

    assert settings == Flake8Settings(
        source="tox.ini [flake8]",
        ignore=["E731", "W503"],
        exclude=["docs/conf.py", "build"],
        per_file={
            "tests/*": ["F401", "F811", "ABCD1"],
            "src/a.py": ["E741"],
            "src/b.py": ["E741"],
        },
    )
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py\n")
    assert flake8_settings(tmp_path) == Flake8Settings(source=".flake8 [flake8]", ignore=["F401"])
    (tmp_path / ".flake8").write_text("not an ini file")
    assert flake8_settings(tmp_path) is None
    # flake8 reads the first file with either section: here setup.cfg, which ignores nothing
    (tmp_path / ".flake8").write_text("[flake8]\nignore = F401\n")
    (tmp_path / "setup.cfg").write_text("[flake8:local-plugins]\nextension =\n")
    assert flake8_settings(tmp_path) is None


def test_codes_ruff_does_not_know_are_left_out_and_reported() -> None:
    ruff = find_executable("ruff")
    assert ruff is not None
    selectors = ruff_selectors(ruff)
    settings = Flake8Settings(
        source="setup.cfg [flake8]",
        # P and Y start ruff codes (PIE, YTT) but are no ruff selectors
        ignore=["E203", "E731", "F999", "W503", "P", "Y", "PLC", "E731"],
        exclude=["docs/conf.py", "-old"],
        per_file={"tests/*": ["F401", "W504"], "x.py": ["W504"], "📦/*.py": ["E731"]},
    )

    arguments, unknown = flake8_arguments(settings, selectors)

    assert unknown == ["F999", "W503", "P", "Y", "W504"]
    assert arguments == [
        "--ignore=E203,E731,PLC",
        "--extend-exclude=docs/conf.py",
        "--extend-exclude=-old",
        "--config",
        'lint.extend-per-file-ignores = {"tests/*" = ["F401"], "📦/*.py" = ["E731"]}',
    ]


@pytest.mark.parametrize(
    ("pattern", "glob"),
    [
        ("docs/_build\\", "docs/_build\\\\"),
        ("tmp[1", "tmp\\[1"),
        ("tmp[12]", "tmp[12]"),
        ("{a", "\\{a"),
        ("b}/*.py", "b\\}/*.py"),
        ("!old", "\\!old"),
        ("a!b", "a!b"),
    ],
)
def test_flake8_patterns_keep_their_meaning_as_ruff_globs(pattern: str, glob: str) -> None:
    assert ruff_glob(pattern) == glob


def test_a_ruff_that_cannot_list_its_rules_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ToolUnavailable, match=r"ruff could not run .*pip install ruff"):
        ruff_selectors(str(tmp_path / "no-ruff"))
    printer = tmp_path / "ruff"
    printer.write_text("#!/bin/sh\necho 'not json'\necho 'ruff: broken' >&2\nexit 2\n")
    printer.chmod(0o755)
    with pytest.raises(ToolUnavailable, match=r"^ruff linter failed \(exit 2\): ruff: broken$"):
        ruff_selectors(str(printer))


def _project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/mod": "double = lambda x: 2 * x\n",  # E731
            "docs/conf": "import os\n",  # F401, excluded
            "tests/test_mod": "import sys\n\nfrom pkg.mod import double\n\n\n"
            "def test_double():\n    assert double(2) == 4\n",  # F401, ignored per file
        }
    )
    pytester.makeini("[pytest]\npythonpath = .\ntestpaths = tests\n")


def _lint(pytester: pytest.Pytester) -> dict[str, Any]:
    result = pytester.runpytest_subprocess("--orchestrate", REPORT)
    assert result.ret in (0, 6), result.stdout.str()
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    lint: dict[str, Any] = next(a for a in report["audits"] if a["dimension"] == "lint")
    return lint


def test_the_gate_lints_with_the_projects_flake8_policy(pytester: pytest.Pytester) -> None:
    _project(pytester)
    before = _lint(pytester)
    assert sorted((f["path"], f["rule_id"]) for f in before["findings"]) == [
        ("docs/conf.py", "F401"),
        ("pkg/mod.py", "E731"),
        ("tests/test_mod.py", "F401"),
    ]

    (pytester.path / "setup.cfg").write_text(
        "[flake8]\nignore = E731, W503, F999, Y\nexclude = ./docs/conf.py, -old, tmp[1, b}\n"
        "per-file-ignores = tests/*: F401, P\n"
    )
    after = _lint(pytester)

    assert after["findings"] == []
    assert after["score"] == 100
    assert (
        "flake8 settings from setup.cfg [flake8] applied "
        "(codes ruff does not know, left out: W503, F999, Y, P)" in after["notes"]
    )
    assert "of the 3 files ruff checks" in " ".join(after["notes"])  # docs/conf.py is out


def test_a_ruff_configuration_is_the_policy_and_flake8_s_is_not_read(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester)
    (pytester.path / "setup.cfg").write_text("[flake8]\nignore = E731, F401\n")
    (pytester.path / "ruff.toml").write_text('[lint]\nselect = ["E7"]\n')

    lint = _lint(pytester)

    assert [(f["path"], f["rule_id"]) for f in lint["findings"]] == [("pkg/mod.py", "E731")]
    assert not any("flake8" in note for note in lint["notes"])
