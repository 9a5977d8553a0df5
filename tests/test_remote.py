"""Remote runs through a real exec prefix on this machine: ``env -C DIR``.

``env -C DIR PYTHON -c ...`` starts the remote program in another directory holding a
copy of the project, exactly as ``docker compose exec`` starts it in a container (argv in,
stdout and stderr back), so the whole path (bootstrap, real pytest and coverage on the
remote side, bundle, path map, replay as items, audits) runs without a container engine.
The container itself is exercised by ``test_remote_docker.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from junitparser import JUnitXml

from pytest_orchestrator.models import Report

OUTCOMES = Path(__file__).resolve().parent.parent / "examples" / "outcomes"
COMMAND = f"--orchestrate-exec-command={sys.executable} -m pytest"
#: Runs in this process (so this session's coverage sees the host side) audit the tests
#: only: an in-process run must not read or stop this session's coverage measurement.
HOST_ONLY = "--orchestrate-dimensions=tests"


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
    assert outcomes(local) == {
        "failed": 1,
        "passed": 7,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
        "errors": 2,
    }
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


@pytest.mark.parametrize(
    ("victim", "message"),
    [
        (
            "os.getpid()",
            "the remote pytest was killed by signal 9 before this test reported; "
            "last remote output:",
        ),
        (
            "os.getppid()",  # the remote program itself: nothing comes back
            "no result came back from the container (exec exit status -9)",
        ),
    ],
    ids=["pytest-killed", "remote-program-killed"],
)
def test_a_killed_remote_run_is_reported_as_errors(
    project: pytest.Pytester, remote_dir: Path, victim: str, message: str
) -> None:
    project.path.joinpath("tests", "test_kill.py").write_text(
        f"import os, signal\n\ndef test_kill():\n    os.kill({victim}, signal.SIGKILL)\n"
    )
    sync(project, remote_dir)
    result = project.runpytest(*remote_args(remote_dir, HOST_ONLY))

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes()["errors"] >= 1
    assert "passed" not in result.parseoutcomes()
    result.stdout.fnmatch_lines([f"*{message}*"])


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
