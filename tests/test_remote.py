"""Remote runs through a real exec prefix on this machine: ``env -C DIR``.

``env -C DIR PYTHON -c ...`` starts the remote program in another directory holding a
copy of the project, exactly as ``docker compose exec`` starts it in a container (argv in,
stdout and stderr back), so the whole path (bootstrap, real pytest and coverage on the
remote side, bundle, path map, replay as items, audits) runs without a container engine.
The container itself is exercised by ``test_remote_docker.py``.
"""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from junitparser import JUnitXml

from pytest_orchestrator.models import Report

OUTCOMES = Path(__file__).resolve().parent.parent / "examples" / "outcomes"
COMMAND = f"--orchestrate-exec-command={sys.executable} -m pytest"
#: Runs in this process (so this session's coverage sees the host side) audit the tests
#: only: an in-process run must not read or stop this session's coverage measurement.
HOST_ONLY = "--orchestrate-dimensions=tests"
#: The summary counts of a whole run of examples/outcomes.
EVERY_OUTCOME = {
    "failed": 1,
    "passed": 7,
    "skipped": 1,
    "xfailed": 1,
    "xpassed": 1,
    "errors": 2,
}


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester holding a copy of examples/outcomes (every kind of outcome)."""
    shutil.copytree(OUTCOMES, pytester.path, dirs_exist_ok=True)
    return pytester


@pytest.fixture
def remote_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where "the container" keeps its copy: another directory than the host's."""
    return tmp_path_factory.mktemp("container") / "srv"


def sync(project: pytest.Pytester, remote_dir: Path) -> None:
    shutil.rmtree(remote_dir, ignore_errors=True)
    shutil.copytree(project.path, remote_dir)


def remote_args(remote_dir: Path, *extra: str) -> list[str]:
    return [
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}=.",
        COMMAND,
        *extra,
    ]


def junit_outcomes(path: Path, strip: str = "") -> dict[tuple[str, str], str]:
    out = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kinds = sorted(type(r).__name__ for r in case.result)
            classname = case.classname.removeprefix(strip)
            out[(classname, case.name)] = ",".join(kinds) or "passed"
    return out


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """Counts of the summary line, without warnings: an in-process run started by the
    ``pytest`` script warns that the already imported plugin cannot be rewritten."""
    counts = result.parseoutcomes()
    counts.pop("warnings", None)
    return counts


def load(path: Path) -> Report:
    return Report.model_validate(json.loads(path.read_text()))


def test_remote_run_replays_every_outcome_like_a_local_run(
    project: pytest.Pytester, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # whole short-summary lines
    local = project.runpytest_subprocess(
        "--orchestrate", "--junitxml=local.xml", "--orchestrate-report=json:local.json"
    )
    sync(project, remote_dir)
    remote = project.runpytest_subprocess(
        *remote_args(remote_dir),
        "--junitxml=remote.xml",
        "--orchestrate-report=terminal",
        "--orchestrate-report=json:remote.json",
        "-rA",
        "-v",
    )

    assert remote.ret == local.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(remote) == outcomes(local)
    assert outcomes(local) == EVERY_OUTCOME
    # the host's own --junitxml sees the replayed results like local ones
    expected = junit_outcomes(project.path / "local.xml")
    assert junit_outcomes(project.path / "remote.xml", strip="remote:") == expected
    assert expected[("tests.test_ops", "test_divide_fails")] == "Failure"
    assert expected[("tests.test_ops.TestPower", "test_big")] == "passed"
    remote.stdout.fnmatch_lines(
        [
            f"running the tests in 'remote' through: env -C {remote_dir}",
            "remote:tests/test_ops.py::test_add_params[[]1.5::x] PASSED*",
            "remote:tests/test_ops.py::TestPower::test_square PASSED*",
            "*_ ERROR at setup of test_setup_error _*",
            "E       RuntimeError: database is down",
            "*_ test_divide_fails _*",
            ">       assert divide(1, 3) == 0.3",
            "E       assert 0.3333333333333333 == 0.3",
            "*- Captured remote stdout call -*",
            "dividing 1 by 3",
        ]
    )
    remote.stdout.fnmatch_lines(
        [
            "tests ran in 'remote' through 'env -C *' (Python *, pytest *, coverage *): "
            "12 tests, 1 round trip, * s",
        ]
    )
    remote.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1] tests/test_ops.py:15: not on this platform",
            "XFAIL remote:tests/test_ops.py::test_expected_failure - rounding is known to be off",
            "XPASS remote:tests/test_ops.py::test_unexpectedly_fixed - was broken once",
            "ERROR remote:tests/test_ops.py::test_setup_error - RuntimeError: database is down",
            "ERROR remote:tests/test_ops.py::test_teardown_error - RuntimeError: cleanup failed",
            "FAILED remote:tests/test_ops.py::test_divide_fails - assert 0.3333333333333333 == 0.3",
        ]
    )
    here, there = load(project.path / "local.json"), load(project.path / "remote.json")
    assert there.score == here.score
    assert {a.dimension: a.score for a in there.audits} == {
        a.dimension: a.score for a in here.audits
    }
    cov_here, cov_there = here.audit("coverage"), there.audit("coverage")
    assert cov_here is not None and cov_there is not None
    assert cov_there.coverage == cov_here.coverage.model_copy(update={"core": None})
    assert {f.path: f.percent for f in cov_there.coverage.files} == {
        "calc/__init__.py": 100.0,
        "calc/ops.py": 92.31,
        "calc/report.py": 0.0,
    }
    tests = there.audit("tests")
    assert tests is not None
    assert {(f.rule_id, f.path, f.line) for f in tests.findings} == {
        (f.rule_id, f.path, f.line)
        for f in here.audit("tests").findings  # type: ignore[union-attr]
    }
    assert there.remote is not None and here.remote is None
    assert there.remote.round_trips == 1
    assert there.remote.tests == 12
    assert there.remote.rootdir == str(remote_dir)
    assert there.remote.unmapped == [] and there.remote.problems == []


def test_selection_and_node_ids_pass_through(project: pytest.Pytester, remote_dir: Path) -> None:
    sync(project, remote_dir)
    result = project.runpytest(
        *remote_args(remote_dir, HOST_ONLY),
        "-v",
        "-k",
        "power or zero",
        "-m",
        "not slow",
        "tests/test_zero.py",
        "remote:tests/test_ops.py::TestPower",
    )

    result.stdout.fnmatch_lines(
        [
            "remote:tests/test_zero.py::test_divide_by_zero PASSED*",
            "remote:tests/test_ops.py::TestPower::test_square PASSED*",
            "*= 2 passed*",
        ]
    )
    assert "test_big" not in result.stdout.str()


def test_other_selection_options_pass_through(project: pytest.Pytester, remote_dir: Path) -> None:
    sync(project, remote_dir)
    ignored = project.runpytest(
        *remote_args(remote_dir, HOST_ONLY),
        "--ignore=tests/test_ops.py",
        "--deselect=remote:tests/test_zero.py::test_divide_by_zero",
        "tests",
    )
    first_failure = project.runpytest(*remote_args(remote_dir, HOST_ONLY), "-x")

    assert ignored.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert outcomes(first_failure) == {"passed": 1, "failed": 1}
    first_failure.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_default_test_paths_follow_the_path_map(project: pytest.Pytester, remote_dir: Path) -> None:
    # The container's working directory is not the project: testpaths must be mapped.
    sync(project, remote_dir)
    result = project.runpytest(
        "--orchestrate",
        HOST_ONLY,
        f"--orchestrate-exec=env -C {remote_dir.parent}",
        f"--orchestrate-path-map={remote_dir}=.",
        COMMAND,
    )

    assert result.parseoutcomes()["passed"] == 7
    assert result.parseoutcomes()["xpassed"] == 1


def test_xdist_in_the_remote_command_and_a_wrapper(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    local = project.runpytest_subprocess("--orchestrate", "--orchestrate-report=json:local.json")
    sync(project, remote_dir)
    remote = project.runpytest_subprocess(
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}=.",
        f"--orchestrate-exec-command=env PYTHONHASHSEED=0 {sys.executable} -m pytest -n 2",
        "--orchestrate-report=json:remote.json",
    )

    assert outcomes(remote) == outcomes(local)
    here, there = load(project.path / "local.json"), load(project.path / "remote.json")
    cov_here, cov_there = here.audit("coverage"), there.audit("coverage")
    assert cov_here is not None and cov_here.coverage is not None
    assert cov_there is not None and cov_there.coverage is not None
    # the xdist workers are measured too, not only the controller
    assert cov_there.coverage.percent == cov_here.coverage.percent == 66.67
    assert there.remote is not None and there.remote.tests == 12


def test_branch_coverage_and_relative_files_match_a_local_run(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    with (project.path / "pyproject.toml").open("a") as handle:
        handle.write("\n[tool.coverage.run]\nbranch = true\nrelative_files = true\n")
    local = project.runpytest_subprocess("--orchestrate", "--orchestrate-report=json:local.json")
    sync(project, remote_dir)
    remote = project.runpytest_subprocess(
        *remote_args(remote_dir), "--orchestrate-report=json:remote.json"
    )

    assert remote.ret == local.ret
    here, there = load(project.path / "local.json"), load(project.path / "remote.json")
    cov_here, cov_there = here.audit("coverage"), there.audit("coverage")
    assert cov_here is not None and cov_here.coverage is not None
    assert cov_there is not None and cov_there.coverage is not None
    assert cov_there.coverage.branches > 0
    assert cov_there.coverage.files == cov_here.coverage.files
    assert {f.path: f.percent for f in cov_there.coverage.files}["calc/report.py"] == 0.0


def test_collect_only_lists_remote_items(project: pytest.Pytester, remote_dir: Path) -> None:
    sync(project, remote_dir)
    result = project.runpytest(*remote_args(remote_dir, HOST_ONLY), "--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "remote:tests/test_ops.py::test_add",
            "remote:tests/test_zero.py::test_divide_by_zero",
            "12 tests collected in *",
        ]
    )


def test_nothing_selected_is_exit_status_5(project: pytest.Pytester, remote_dir: Path) -> None:
    sync(project, remote_dir)
    result = project.runpytest(*remote_args(remote_dir, HOST_ONLY), "-k", "no_such_test")

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_remote_collection_error_is_a_collection_error_here(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    project.path.joinpath("tests", "test_broken.py").write_text("import no_such_module\n")
    sync(project, remote_dir)
    stopped = project.runpytest(*remote_args(remote_dir, HOST_ONLY))
    go_on = project.runpytest(
        *remote_args(remote_dir, HOST_ONLY),
        "--continue-on-collection-errors",
        "--orchestrate-report=json:report.json",
    )

    assert stopped.ret == pytest.ExitCode.INTERRUPTED
    stopped.stdout.fnmatch_lines(
        [
            "*_ ERROR collecting remote:tests/test_broken.py _*",
            "*ModuleNotFoundError: No module named 'no_such_module'",
            "*Interrupted: 1 error during collection*",
        ]
    )
    assert go_on.ret == pytest.ExitCode.TESTS_FAILED
    report = load(project.path / "report.json")
    tests = report.audit("tests")
    assert tests is not None and tests.tests is not None
    assert tests.tests.collection_errors == 1 and tests.tests.passed == 6
    [finding] = [f for f in tests.findings if f.rule_id == "collection-error"]
    assert finding.path == "tests/test_broken.py"


def test_timeout_keeps_finished_results_and_errors_the_rest(
    project: pytest.Pytester, remote_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    project.path.joinpath("tests", "test_slow.py").write_text(
        "import time\n\ndef test_sleeps():\n    time.sleep(60)\n"
    )
    sync(project, remote_dir)
    started = time.monotonic()
    result = project.runpytest(
        *remote_args(remote_dir, HOST_ONLY),
        "--orchestrate-exec-timeout=3",
        "--orchestrate-report=json:report.json",
    )

    assert time.monotonic() - started < 40
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # The remote pytest is interrupted, so the tests that finished keep their results;
    # the one running and the one never reached become errors.
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["failed"], outcomes["errors"]) == (6, 1, 4)
    assert outcomes["xpassed"] == 1
    result.stdout.fnmatch_lines(
        [
            "ERROR remote:tests/test_slow.py::test_sleeps - the remote run timed out after 3 s*",
            "ERROR remote:tests/test_zero.py::test_divide_by_zero - the remote run timed out*",
        ]
    )
    report = load(project.path / "report.json")
    assert report.remote is not None and report.remote.timed_out


def test_hostile_junit_is_refused_and_reported(project: pytest.Pytester, remote_dir: Path) -> None:
    # The remote side overwrites its JUnit XML with an entity bomb after pytest wrote it.
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
        + ']><testsuites><testsuite name="x"><testcase classname="a" name="&lol9;"/>'
        "</testsuite></testsuites>"
    ).replace("&lol0;", "&lol;")
    project.makeconftest(
        f"""
        def pytest_unconfigure(config):
            path = getattr(config.option, "xmlpath", None)
            if path:
                with open(path, "w") as handle:
                    handle.write({bomb!r})
        """
    )
    sync(project, remote_dir)
    result = project.runpytest(
        *remote_args(remote_dir, HOST_ONLY), "--orchestrate-report=json:report.json"
    )

    assert result.parseoutcomes()["errors"] == 12
    result.stdout.fnmatch_lines(
        ["*the remote JUnit XML could not be read: the JUnit XML declares a DTD or entities*"]
    )
    report = load(project.path / "report.json")
    assert report.remote is not None
    assert any("declares a DTD" in p for p in report.remote.problems)


def test_coverage_missing_in_the_container_leaves_the_tests_counted(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    blocker = remote_dir.parent / "blocker" / "coverage"
    blocker.mkdir(parents=True)
    blocker.joinpath("__init__.py").write_text("raise ImportError('not installed here')\n")
    sync(project, remote_dir)
    result = project.runpytest_subprocess(
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir} PYTHONPATH={blocker.parent}",
        f"--orchestrate-path-map={remote_dir}=.",
        COMMAND,
        "--orchestrate-report=json:report.json",
    )

    assert result.parseoutcomes()["passed"] == 7
    report = load(project.path / "report.json")
    coverage, tests = report.audit("coverage"), report.audit("tests")
    assert coverage is not None and tests is not None
    assert coverage.status == "unavailable"
    assert coverage.reason is not None
    assert "coverage cannot be imported in the container" in coverage.reason
    assert "install coverage there" in coverage.reason
    assert tests.status == "ok" and tests.score == 70.0


def test_paths_no_map_covers_are_reported(project: pytest.Pytester, remote_dir: Path) -> None:
    sync(project, remote_dir)
    only_tests = [
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}/tests=tests",
        COMMAND,
    ]
    refused = project.runpytest_subprocess(*only_tests, "calc")
    result = project.runpytest_subprocess(
        *only_tests,
        "tests",
        "--orchestrate-report=terminal",
        "--orchestrate-report=json:report.json",
    )

    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        [
            "ERROR: test path 'calc' is not under any --orchestrate-path-map LOCAL directory; "
            "add --orchestrate-path-map=REMOTE=LOCAL for it"
        ]
    )
    assert result.parseoutcomes()["passed"] == 7
    report = load(project.path / "report.json")
    assert report.remote is not None
    assert f"{remote_dir}/calc/ops.py" in report.remote.unmapped
    assert any("coverage source" in p for p in report.remote.problems)
    result.stdout.fnmatch_lines(["container paths no --orchestrate-path-map covers: *"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--orchestrate-exec=no-such-exec-program run"],
            "ERROR: --orchestrate-exec: 'no-such-exec-program' not found on PATH; "
            "install it or give its full path",
        ),
        (
            ["--orchestrate-exec=docker compose exec 'odoo"],
            "ERROR: --orchestrate-exec: cannot split * into arguments: No closing quotation",
        ),
        (
            ["--orchestrate-exec=env", "--orchestrate-exec-command=pytest"],
            "ERROR: --orchestrate-exec-command: 'pytest' is not 'PYTHON -m pytest [[]OPTIONS]'*",
        ),
        (
            ["--orchestrate-exec=env", "--orchestrate-path-map=srv=."],
            "ERROR: --orchestrate-path-map: 'srv=.': the container path 'srv' must be absolute*",
        ),
        (
            ["--orchestrate-exec=env", "--orchestrate-exec-timeout=0"],
            "ERROR: --orchestrate-exec-timeout: '0' is not a valid timeout in seconds*",
        ),
        (
            ["--orchestrate-exec=env", f"{COMMAND} --no-such-option"],
            "ERROR: --orchestrate-exec: the remote pytest refused its arguments: "
            "unrecognized arguments: --no-such-option",
        ),
        (
            ["--orchestrate-exec=env", "-n", "2"],
            "ERROR: --orchestrate-exec runs the whole suite once in the container, so -n*",
        ),
        (
            ["--orchestrate-exec=env", "--orchestrate-exec-command=no-such-python -m pytest"],
            "ERROR: --orchestrate-exec: no 'no-such-python' in the exec target: set "
            "--orchestrate-exec-command to its Python*",
        ),
        (
            ["--orchestrate-exec=env", f"--orchestrate-exec-command={sys.executable} -S -m pytest"],
            "ERROR: --orchestrate-exec: pytest is not installed for * in 'remote'; install it "
            "there (python -m pip install pytest) or set --orchestrate-exec-command*",
        ),
    ],
)
def test_bad_exec_setups_are_one_line_errors(
    project: pytest.Pytester, args: list[str], message: str
) -> None:
    result = project.runpytest("--orchestrate", HOST_ONLY, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not list(project.path.glob("orchestrator-report*"))


def test_exec_without_orchestrate_is_refused(project: pytest.Pytester) -> None:
    result = project.runpytest("--orchestrate-exec=env")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --orchestrate-exec needs --orchestrate; add it"])


def test_host_conftest_is_not_loaded_in_exec_mode(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    # The code under test may only import in the container; so may its conftest.py.
    project.makeconftest("import module_only_in_the_container\n")
    sync(project, remote_dir)
    remote_dir.joinpath("conftest.py").write_text("")
    result = project.runpytest(*remote_args(remote_dir, HOST_ONLY))

    assert result.parseoutcomes()["passed"] == 7


def split_sync(project: pytest.Pytester, remote_dir: Path) -> tuple[Path, Path]:
    """The container keeps the tests and the package in different directories: ``app``
    (the rootdir: configuration and tests) and ``lib/calc`` (the package, on PYTHONPATH)."""
    shutil.rmtree(remote_dir, ignore_errors=True)
    app, lib = remote_dir / "app", remote_dir / "lib"
    shutil.copytree(project.path, app, ignore=shutil.ignore_patterns("calc"))
    shutil.copytree(project.path / "calc", lib / "calc")
    return app, lib


def assert_split_run(result: pytest.RunResult, report: Report, app: Path) -> None:
    """Both mappings were used: node ids come from the first, coverage from the second."""
    assert outcomes(result) == EVERY_OUTCOME
    result.stdout.fnmatch_lines(
        [
            f"running the tests in 'remote' through: env -C {app} PYTHONPATH=*",
            "remote:tests/test_ops.py::TestPower::test_square PASSED*",
        ]
    )
    coverage = report.audit("coverage")
    assert coverage is not None and coverage.coverage is not None, coverage
    assert {f.path: f.percent for f in coverage.coverage.files} == {
        "calc/__init__.py": 100.0,
        "calc/ops.py": 92.31,
        "calc/report.py": 0.0,
    }
    assert report.remote is not None
    assert report.remote.rootdir == str(app)
    assert report.remote.unmapped == [] and report.remote.problems == []


@pytest.mark.parametrize("ini", ["pytest.ini", "pyproject.toml"])
def test_exec_and_two_path_maps_from_the_ini_file(
    project: pytest.Pytester, remote_dir: Path, ini: str
) -> None:
    app, lib = remote_dir / "app", remote_dir / "lib"
    if ini == "pytest.ini":  # linelist-like: one mapping per line
        project.path.joinpath("pytest.ini").write_text(
            "[pytest]\n"
            "pythonpath = .\n"
            "testpaths = tests\n"
            "markers = slow: a slow test\n"
            "orchestrate = true\n"
            f"orchestrate_exec = env -C {app} PYTHONPATH={lib}\n"
            f"orchestrate_exec_command = {sys.executable} -m pytest\n"
            "orchestrate_path_map =\n"
            f"    {app}=.\n"
            f"    {lib}/calc=calc\n"
        )
    else:
        with (project.path / "pyproject.toml").open("a") as handle:
            handle.write(
                "orchestrate = true\n"
                f'orchestrate_exec = "env -C {app} PYTHONPATH={lib}"\n'
                f'orchestrate_exec_command = "{sys.executable} -m pytest"\n'
                f'orchestrate_path_map = ["{app}=.", "{lib}/calc=calc"]\n'
            )
    split_sync(project, remote_dir)
    result = project.runpytest_subprocess("-v", "--orchestrate-report=json:report.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert_split_run(result, load(project.path / "report.json"), app)


def test_path_map_given_twice_on_the_command_line(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    app, lib = split_sync(project, remote_dir)
    both = [
        "--orchestrate",
        f"--orchestrate-exec=env -C {app} PYTHONPATH={lib}",
        COMMAND,
        f"--orchestrate-path-map={app}=.",
        f"--orchestrate-path-map={lib}/calc=calc",
    ]
    result = project.runpytest_subprocess(*both, "-v", "--orchestrate-report=json:report.json")
    # without the second mapping, the package is looked for (and measured) in app/calc
    first_only = project.runpytest_subprocess(*both[:-1], "--orchestrate-report=json:first.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert_split_run(result, load(project.path / "report.json"), app)
    assert outcomes(first_only) == outcomes(result)  # the tests are found through the first
    coverage = load(project.path / "first.json").audit("coverage")
    assert coverage is not None and coverage.status == "unavailable"
    assert "no measured source file" in (coverage.reason or "")


#: Printed by the remote tests below just before they hang or die; built at run time so
#: that the host's output can only contain it if it came back from the remote side.
MARKER = "tail-marker-" + "7d1c"
PRINT_MARKER = 'print("tail-marker-" + "7d1c", flush=True)\n'


def test_timeout_errors_quote_the_tail_of_the_remote_output(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    project.path.joinpath("tests", "test_slow.py").write_text(
        f"import time\n\ndef test_sleeps():\n    {PRINT_MARKER}    time.sleep(60)\n"
    )
    sync(project, remote_dir)
    result = project.runpytest(
        *remote_args(remote_dir, HOST_ONLY),
        f"{COMMAND} -s",  # the marker goes to the remote output, not to pytest's capture
        "--orchestrate-exec-timeout=3",
        "tests/test_slow.py",
        "tests/test_zero.py",  # never reached
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # what the test printed, then the interrupted remote pytest's own last words
    tail = [
        "the remote run timed out after 3 s before this test reported; last remote output:",
        f"*tests/test_slow.py {MARKER}",
        "*!!! KeyboardInterrupt !!!*",
        f"{remote_dir}/tests/test_slow.py:5: KeyboardInterrupt",
        "*= no tests ran in *",
    ]
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_sleeps _*",
            *tail,
            "*_ ERROR at setup of test_divide_by_zero _*",
            *tail,
        ]
    )


@pytest.mark.parametrize(
    ("victim", "message"),
    [
        (
            # the remote pytest: the bootstrap still sends its output back
            "os.kill(os.getpid(), signal.SIGKILL)",
            "the remote pytest was killed by signal 9 before this test reported; "
            "last remote output:",
        ),
        (
            # the remote program itself: what it printed on the exec channel is all there is
            "fd = os.open(f'/proc/{os.getppid()}/fd/2', os.O_WRONLY | os.O_APPEND)\n"
            "    os.write(fd, ('tail-marker-' + '7d1c\\n').encode())\n"
            "    os.kill(os.getppid(), signal.SIGKILL)",
            "*no result came back from the container (exec exit status -9); last output:",
        ),
    ],
    ids=["pytest-killed", "remote-program-killed"],
)
def test_killed_run_errors_quote_the_tail_of_the_remote_output(
    project: pytest.Pytester, remote_dir: Path, victim: str, message: str
) -> None:
    project.path.joinpath("tests", "test_kill.py").write_text(
        f"import os, signal\n\ndef test_kill():\n    {PRINT_MARKER}    {victim}\n"
    )
    sync(project, remote_dir)
    result = project.runpytest(*remote_args(remote_dir, HOST_ONLY), f"{COMMAND} -s")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes()["errors"] >= 1
    assert "passed" not in result.parseoutcomes()  # no result came back for any test
    result.stdout.fnmatch_lines([message, f"*{MARKER}"])


#: The project's own pytest plugin, given with -p: in exec mode it is the project code
#: that runs on the host (conftest.py files are not loaded there).
HOST_PLUGIN = '''"""Hooks of the project, loaded on the host with -p ci.hooks."""

seen = []


def pytest_collection_modifyitems(items):
    for item in items:
        seen.append(item.nodeid)
'''


@pytest.mark.parametrize(
    ("runner", "measured_by", "hooks"),
    [
        # our own measurement is not started in exec mode: nothing runs here for it
        ([], "pytest-orchestrator", (0.0, "3, 6-8")),
        # pytest-cov starts after -p plugins are imported: only the hook's body is seen
        (["--cov=calc", "--cov=ci"], "pytest-cov", (50.0, "3, 6")),
        # coverage run measures the host process from its start
        (["coverage"], "coverage", (100.0, "")),
    ],
    ids=["own", "pytest-cov", "coverage-run"],
)
def test_host_coverage_is_combined_with_the_container_coverage(
    project: pytest.Pytester,
    remote_dir: Path,
    runner: list[str],
    measured_by: str,
    hooks: tuple[float, str],
) -> None:
    project.path.joinpath("ci").mkdir()
    project.path.joinpath("ci", "__init__.py").write_text("")
    project.path.joinpath("ci", "hooks.py").write_text(HOST_PLUGIN)
    with (project.path / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.coverage.run]\nsource = ["calc", "ci"]\n')
    sync(project, remote_dir)
    args = [*remote_args(remote_dir), "-p", "ci.hooks", "--orchestrate-report=json:report.json"]
    if runner == ["coverage"]:
        result = project.run(
            sys.executable, "-m", "coverage", "run", "-m", "pytest", *args, timeout=300
        )
    else:
        result = project.runpytest_subprocess(*runner, *args)

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    coverage = load(project.path / "report.json").audit("coverage")
    assert coverage is not None and coverage.coverage is not None, coverage
    assert coverage.coverage.measured_by == measured_by
    files = {f.path: (f.percent, f.missing_lines) for f in coverage.coverage.files}
    assert files == {
        "calc/__init__.py": (100.0, ""),  # from the container
        "calc/ops.py": (92.31, "13"),
        "calc/report.py": (0.0, "1-5"),
        "ci/__init__.py": (100.0, ""),
        "ci/hooks.py": hooks,  # from this machine
    }


class _KubeAPI(http.server.BaseHTTPRequestHandler):
    """Just enough of a Kubernetes API server for ``kubectl exec`` to look a pod up:
    discovery, ``GET /api/v1/namespaces/NS/pods/NAME`` (pods named done-* have completed;
    any other is missing) and, after a missing pod, ``GET /api/v1/namespaces/NS`` (only
    the namespace qa exists)."""

    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        path = self.path.partition("?")[0].rstrip("/")
        self.paths.append(path)
        name = path.rpartition("/")[2]
        status, body = 200, {}
        if path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        elif path == "/apis":
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        elif path == "/api/v1":
            verbs = ["get", "list", "create"]
            body = {
                "kind": "APIResourceList",
                "groupVersion": "v1",
                "resources": [
                    {"name": "pods", "namespaced": True, "kind": "Pod", "verbs": verbs},
                    {
                        "name": "pods/exec",
                        "namespaced": True,
                        "kind": "PodExecOptions",
                        "verbs": verbs,
                    },
                ],
            }
        elif path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
            if name == "qa":
                body = {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}}
            else:
                status, body = 404, _not_found("namespaces", name)
        elif "/pods/" in path and name.startswith("done-"):
            body = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "app", "image": "app"}]},
                "status": {"phase": "Succeeded"},
            }
        else:
            status, body = 404, _not_found("pods", name)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _not_found(kind: str, name: str) -> dict[str, object]:
    """The API server's answer for a missing object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": f'{kind} "{name}" not found',
        "reason": "NotFound",
        "details": {"name": name, "kind": kind},
        "code": 404,
    }


@pytest.fixture
def kube_api() -> Iterator[str]:
    """The URL of a :class:`_KubeAPI` server running in a thread."""
    _KubeAPI.paths.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KubeAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize(
    ("namespace", "pod", "message"),
    [
        (
            "qa",
            "web-0",
            "ERROR: --orchestrate-exec: kubectl target 'web-0' does not exist (Error from "
            'server (NotFound): pods "web-0" not found); check its name and namespace '
            "('kubectl get pods --server=http://127.0.0.1:* -n qa' lists them)",
        ),
        (
            "staging",
            "web-0",
            "ERROR: --orchestrate-exec: kubectl namespace 'staging' does not exist (Error from "
            'server (NotFound): namespaces "staging" not found); check the prefix\'s '
            "-n/--namespace ('kubectl get namespaces --server=http://127.0.0.1:* -n staging' "
            "lists them)",
        ),
        (
            "qa",
            "done-0",
            "ERROR: --orchestrate-exec: kubectl pod 'done-0' has completed (phase Succeeded), "
            "so nothing can run in it; exec into a running pod ('kubectl get pods "
            "--server=http://127.0.0.1:* -n qa' lists the pods and their status)",
        ),
    ],
    ids=["missing-pod", "missing-namespace", "completed-pod"],
)
def test_real_kubectl_missing_or_completed_pod_is_a_one_line_error(
    project: pytest.Pytester, kube_api: str, namespace: str, pod: str, message: str
) -> None:
    # a real kubectl asks a (minimal) API server, and prints what it prints for a cluster
    result = project.runpytest(
        "--orchestrate",
        HOST_ONLY,
        f"--orchestrate-exec=kubectl --server={kube_api} exec -i -n {namespace} {pod}",
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"/api/v1/namespaces/{namespace}/pods/{pod}" in _KubeAPI.paths
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_our_ini_settings_are_known_to_a_container_without_the_plugin(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    # The ini is shared by host and container; the container's pytest has no
    # pytest-orchestrator (-p no:orchestrator here), and filterwarnings = error would make
    # "Unknown config option: orchestrate_target_score" stop it before any test ran.
    with (project.path / "pyproject.toml").open("a") as handle:
        handle.write('filterwarnings = ["error"]\norchestrate_target_score = "90"\n')
    sync(project, remote_dir)
    result = project.runpytest_subprocess(
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}=.",
        f"--orchestrate-exec-command={sys.executable} -m pytest -p no:orchestrator",
        "--orchestrate-dimensions=tests",
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    assert outcomes(result) == EVERY_OUTCOME


def test_a_coverage_configuration_no_path_map_covers_is_reported(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    (project.path / ".coveragerc").write_text("[run]\nbranch = true\n")
    sync(project, remote_dir)
    result = project.runpytest_subprocess(
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}/tests=tests",
        f"--orchestrate-path-map={remote_dir}/calc=calc",
        COMMAND,
        "--orchestrate-report=json:report.json",
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    problems = load(project.path / "report.json").remote.problems  # type: ignore[union-attr]
    assert any(
        ".coveragerc" in p and "not under any --orchestrate-path-map" in p and "without it" in p
        for p in problems
    ), problems


def test_coverage_of_unmapped_files_says_to_map_them(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    with (project.path / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.coverage.run]\nsource = ["calc"]\n')  # a package, not a path
    sync(project, remote_dir)
    result = project.runpytest_subprocess(
        "--orchestrate",
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}/tests=tests",  # calc/ is left unmapped
        COMMAND,
        "--orchestrate-report=json:report.json",
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    report = load(project.path / "report.json")
    coverage = report.audit("coverage")
    assert coverage is not None and coverage.status == "unavailable"
    assert coverage.reason is not None
    assert "no measured source file" in coverage.reason
    assert coverage.reason.endswith("with --orchestrate-path-map")
    assert report.remote is not None
    assert f"{remote_dir}/calc/ops.py" in report.remote.unmapped


def test_last_failed_with_exitfirst_reports_no_made_up_error(
    project: pytest.Pytester, remote_dir: Path
) -> None:
    # --lf orders the replayed items on the host: a remote run stopped by -x in its own
    # order would leave the host's first items without a result (reported as errors)
    sync(project, remote_dir)
    # last failed: a test after the one the remote run, in its order, fails first
    cache = project.path / ".pytest_cache" / "v" / "cache"
    cache.mkdir(parents=True)
    (cache / "lastfailed").write_text(
        json.dumps({"remote:tests/test_ops.py::test_setup_error": True})
    )
    args = [*remote_args(remote_dir), HOST_ONLY, "-p", "cacheprovider"]
    again = project.runpytest_subprocess(*args, "--lf", "-x", "-rA")

    assert again.ret == pytest.ExitCode.TESTS_FAILED, again.stdout.str()
    assert "no result for this test" not in again.stdout.str()
    counts = outcomes(again)
    assert counts.get("failed", 0) + counts.get("errors", 0) == 1, counts
