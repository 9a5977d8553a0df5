"""Options, ini twins, precedence, bad values, and the plugin switched off."""

from __future__ import annotations

import subprocess
import sys

import pytest

PASSING = "def test_ok():\n    assert True\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--target-score=120"],
            "ERROR: --target-score: '120' is not a valid target score; give a number from 0 to 100",
        ),
        (["--target-score=abc"], "ERROR: --target-score: 'abc' is not a valid target score*"),
        (
            ["--orchestrate-dimensions=tests,speed"],
            "ERROR: --orchestrate-dimensions: unknown"
            " dimension 'speed'; known: coverage, lint, security, tests, types; LLM audits:"
            " agent:NAME with NAME one of architecture, backend, compliance, frontend,"
            " security, tests",
        ),
        (
            ["--orchestrate-report=pdf"],
            "ERROR: --orchestrate-report: unknown report type 'pdf';"
            " use terminal, json, junit, markdown, sarif, codeclimate, github, pr-comment"
            " (TYPE or TYPE:PATH)",
        ),
        (
            ["--orchestrate-report=terminal:x.txt"],
            "ERROR: --orchestrate-report: the terminal report takes no PATH*",
        ),
        (
            ["--orchestrate-report=github:x.txt"],
            "ERROR: --orchestrate-report: the github report takes no PATH; write 'github'",
        ),
        (
            ["--orchestrate-fail-on=P0,P9"],
            "ERROR: --orchestrate-fail-on: unknown severity 'P9'; use P0, P1, P2, P3 or P4*",
        ),
        *(
            (
                [f"--orchestrate-max-turns={bad}"],
                f"ERROR: --orchestrate-max-turns: '{bad}' is not a number of turns; give a "
                "whole number of at least 1",
            )
            for bad in ("0", "-2", "2.5", "many", "inf")
        ),
    ],
)
def test_bad_values_are_one_line_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(PASSING)
    result = pytester.runpytest("--orchestrate", *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_unwritable_report_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PASSING)
    (pytester.path / "afile").write_text("")
    result = pytester.runpytest("--orchestrate", "--orchestrate-report=json:afile/r.json")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --orchestrate-report: cannot write *afile* is not a dir*"])


def test_report_path_that_is_a_directory_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PASSING)
    pytester.mkdir("out")
    result = pytester.runpytest("--orchestrate", "--orchestrate-report=markdown:out")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'*out' is a directory; give a file path"])


def test_bad_ini_value_names_the_ini_setting(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\norchestrate_weights = tests:30\n")
    pytester.makepyfile(PASSING)
    result = pytester.runpytest("--orchestrate")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: orchestrate_weights (ini): 'tests:30' is not KEY=VALUE; write it like*"]
    )


def test_bad_max_turns_in_the_ini_names_the_ini_setting(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\norchestrate_max_turns = 0\n")
    pytester.makepyfile(PASSING)
    result = pytester.runpytest("--orchestrate")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: orchestrate_max_turns (ini): '0' is not a number of turns; give a whole "
            "number of at least 1"
        ]
    )


def test_ini_twins_and_command_line_precedence(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\n"
        "orchestrate = true\n"
        "orchestrate_target_score = 55.5\n"
        "orchestrate_dimensions = tests\n"
        "orchestrate_report = terminal json:from-ini.json\n"
    )
    pytester.makepyfile(PASSING)

    from_ini = pytester.runpytest()
    from_ini.stdout.fnmatch_lines(["*Quality gate PASSED: score 100.00 (target 55.50)"])
    assert (pytester.path / "from-ini.json").is_file()

    from_cli = pytester.runpytest("--target-score=99", "--orchestrate-report=json:cli.json")
    # the command line's report list replaced the ini's: no terminal table, the verdict only
    from_cli.stdout.no_fnmatch_line("*= quality gate =*")
    from_cli.stdout.fnmatch_lines(["Quality gate PASSED: score 100.00 (target 99.00)*"])
    assert (pytester.path / "cli.json").is_file()
    assert '"target_score": 99.0' in (pytester.path / "cli.json").read_text()


def test_off_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(PASSING)
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*quality gate*")


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest_orchestrator.plugin\n"
        "heavy = ('pydantic', 'rich', 'junitparser', 'coverage')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_run_without_orchestrate_loads_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish():\n"
        "    heavy = ('pydantic', 'rich', 'junitparser', 'pytest_orchestrator.config')\n"
        "    print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    pytester.makepyfile(PASSING)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cov", "-p", "no:xdist")

    result.stdout.fnmatch_lines(["*HEAVY []"])


def test_help_lists_the_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    result.stdout.fnmatch_lines(
        [
            "quality gate and gap closure:",
            "*--orchestrate *Audit the project around this test session*",
            "*--target-score=N*",
            "*--orchestrate-max-turns=N*",
            "*orchestrate_severity_map*",
        ]
    )
