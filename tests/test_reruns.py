"""``--orchestrate-reruns``: flaky tests, in real sessions (subprocess), serial and under
pytest-xdist, alone and beside pytest-rerunfailures, and through an exec prefix."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from junitparser import JUnitXml

FLAKY = '''
import os
from pathlib import Path

MARK = Path(os.environ["FLAKY_DIR"])


def fails_first(name, times=1):
    """Fail the first `times` calls of test `name` (counted in marker files), then pass."""
    marks = sorted(MARK.glob(name + ".*"))
    if len(marks) < times:
        (MARK / f"{name}.{len(marks)}").write_text("")
        raise AssertionError(f"{name} attempt {len(marks) + 1} fails")


def test_steady():
    assert True


def test_flaky_once():
    fails_first("once")


def test_flaky_twice():
    fails_first("twice", times=2)


def test_always_fails():
    assert 1 == 2
'''


@pytest.fixture
def flaky(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("FLAKY_DIR", str(marks))
    pytester.makepyfile(test_flaky=FLAKY)
    return marks


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:  # type: ignore[type-arg]
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests",
        "--orchestrate-report=json:r.json",
        "-p",
        "no:randomly",
        *args,
    )
    report = json.loads((pytester.path / "r.json").read_text())
    return result, next(a for a in report["audits"] if a["dimension"] == "tests")


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_test_that_fails_then_passes_is_flaky_and_counts_as_passed(
    pytester: pytest.Pytester, flaky: Path, xdist: list[str]
) -> None:
    result, tests = run(pytester, "--orchestrate-reruns=2", *xdist)
    summary = tests["tests"]
    assert (summary["passed"], summary["failed"], summary["flaky"]) == (3, 1, 2)
    once = next(f for f in tests["findings"] if "test_flaky_once" in f["message"])
    assert (once["rule_id"], once["severity"], once["path"]) == ("flaky", "P2", "test_flaky.py")
    assert "failed, then passed when run again (failed, passed)" in once["message"]
    assert "once attempt 1 fails" in once["message"]
    twice = next(f for f in tests["findings"] if "test_flaky_twice" in f["message"])
    assert "(failed, failed, passed)" in twice["message"]
    always = [f for f in tests["findings"] if "test_always_fails" in f["message"]]
    assert [f["rule_id"] for f in always] == ["test-failed"]  # rerun twice, never passed
    assert all(f["message"].startswith("test_flaky.py::test_") for f in tests["findings"])
    result.stdout.fnmatch_lines(["*1 failed, 3 passed, 5 rerun*"])
    assert result.ret == 1


def test_without_reruns_a_flaky_failure_is_a_failure(
    pytester: pytest.Pytester, flaky: Path
) -> None:
    result, tests = run(pytester)
    assert (tests["tests"]["failed"], tests["tests"]["flaky"]) == (3, 0)
    result.stdout.fnmatch_lines(["*3 failed, 1 passed in*"])
    assert not [f for f in tests["findings"] if f["rule_id"] == "flaky"]


def test_beside_pytest_rerunfailures_tests_are_never_rerun_twice(
    pytester: pytest.Pytester, flaky: Path
) -> None:
    # pytest-rerunfailures reruns once; ours would rerun three times: twice-failing stays failed
    result, tests = run(pytester, "-p", "rerunfailures", "--reruns=1", "--orchestrate-reruns=3")
    summary = tests["tests"]
    assert (summary["passed"], summary["failed"], summary["flaky"]) == (2, 2, 1)
    [flaky_finding] = [f for f in tests["findings"] if f["rule_id"] == "flaky"]
    assert "test_flaky_once" in flaky_finding["message"]
    result.stdout.fnmatch_lines(["*2 failed, 2 passed, 3 rerun*"])


def test_rerunfailures_ini_reruns_are_its_own(pytester: pytest.Pytester, flaky: Path) -> None:
    pytester.makeini("[pytest]\nreruns = 1\n")
    result, tests = run(pytester, "-p", "rerunfailures", "--orchestrate-reruns=3")
    assert (tests["tests"]["failed"], tests["tests"]["flaky"]) == (2, 1)  # twice stays failed
    result.stdout.fnmatch_lines(["*2 failed, 2 passed, 3 rerun*"])


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_wider_fixtures_live_through_the_attempts_and_end_once(
    pytester: pytest.Pytester, flaky: Path, xdist: list[str]
) -> None:
    log = flaky / "fixtures.log"
    pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="module")
        def shared():
            with open({str(log)!r}, "a") as out:
                out.write("up\\n")
            yield
            with open({str(log)!r}, "a") as out:
                out.write("down\\n")
        """
    )
    pytester.makepyfile(
        test_a="""
        from test_flaky import fails_first

        def test_last_in_module(shared):
            fails_first("scoped")
        """,
        test_b="def test_after():\n    assert True\n",
    )
    result, tests = run(pytester, "--orchestrate-reruns=2", "test_a.py", "test_b.py", *xdist)
    assert (tests["tests"]["passed"], tests["tests"]["flaky"]) == (2, 1)
    assert log.read_text() == "up\ndown\n"  # not set up again for the second attempt
    assert result.ret == 0


def test_a_failing_fixture_is_not_rerun(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fixture="""
        import pytest

        CALLS = []

        @pytest.fixture
        def broken():
            CALLS.append(1)
            raise RuntimeError("setup fails")

        def test_uses(broken):
            pass

        def test_count():
            assert CALLS == [1]
        """
    )
    result, tests = run(pytester, "--orchestrate-reruns=3")
    assert (tests["tests"]["errors"], tests["tests"]["passed"]) == (1, 1)
    result.stdout.fnmatch_lines(["*= 1 passed, 1 error in *"])  # no rerun


def test_a_bad_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest_subprocess("--orchestrate", "--orchestrate-reruns=many")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["ERROR: --orchestrate-reruns: 'many' is not a whole number from 0 to 100"]
    )


def _remote(pytester: pytest.Pytester, remote_dir: Path, command: str) -> list[str]:
    """Options that run the suite through a real exec prefix (``env -C``) in a copy of the
    project, as tests/test_remote.py does."""
    shutil.copytree(pytester.path, remote_dir)
    return [
        f"--orchestrate-exec=env -C {remote_dir}",
        f"--orchestrate-path-map={remote_dir}=.",
        f"--orchestrate-exec-command={sys.executable} -m pytest -p no:randomly {command}",
    ]


def _junit(path: Path) -> list[tuple[str, str]]:
    return [
        (case.name, ",".join(type(r).__name__ for r in case.result) or "passed")
        for suite in JUnitXml.fromfile(str(path))
        for case in suite
    ]


@pytest.mark.parametrize("remote_xdist", ["", "-n 2"], ids=["serial", "xdist"])
def test_in_a_container_reruns_give_the_local_results(
    pytester: pytest.Pytester, flaky: Path, tmp_path: Path, remote_xdist: str
) -> None:
    remote = _remote(pytester, tmp_path / "srv", remote_xdist)
    local, local_tests = run(pytester, "--orchestrate-reruns=2", "--junitxml=local.xml")
    for mark in flaky.glob("*.*"):
        mark.unlink()
    there, tests = run(pytester, "--orchestrate-reruns=2", "--junitxml=remote.xml", *remote)

    assert tests["tests"] == local_tests["tests"]
    assert (tests["tests"]["passed"], tests["tests"]["failed"], tests["tests"]["flaky"]) == (
        3,
        1,
        2,
    )
    messages = sorted(f["message"].split(":", 1)[-1] for f in tests["findings"])
    assert messages == sorted(f["message"] for f in local_tests["findings"])
    assert "twice attempt 1 fails" in " ".join(messages)  # the first failure's message
    there.stdout.fnmatch_lines(["*1 failed, 3 passed, 5 rerun*"])
    local.stdout.fnmatch_lines(["*1 failed, 3 passed, 5 rerun*"])
    assert _junit(pytester.path / "remote.xml") == _junit(pytester.path / "local.xml")
    assert there.ret == local.ret == 1


def test_in_a_container_its_pytest_rerunfailures_reruns_and_ours_does_not(
    pytester: pytest.Pytester, flaky: Path, tmp_path: Path
) -> None:
    pytester.makeini("[pytest]\nreruns = 1\n")  # the container's pytest reads it
    remote = _remote(pytester, tmp_path / "srv", "-p rerunfailures")
    result, tests = run(pytester, "--orchestrate-reruns=3", *remote)
    assert (tests["tests"]["failed"], tests["tests"]["flaky"]) == (2, 1)  # twice stays failed
    result.stdout.fnmatch_lines(["*2 failed, 2 passed, 3 rerun*"])


def test_a_setup_that_fails_once_under_pytest_rerunfailures_is_flaky(
    pytester: pytest.Pytester, flaky: Path
) -> None:
    pytester.makepyfile(
        test_setup="""
        import pytest
        from test_flaky import fails_first

        @pytest.fixture
        def service():
            fails_first("service")  # the service is not up at the first try

        def test_uses(service):
            pass
        """
    )
    result, tests = run(pytester, "-p", "rerunfailures", "--reruns=1", "test_setup.py")
    assert (tests["tests"]["passed"], tests["tests"]["errors"], tests["tests"]["flaky"]) == (
        1,
        0,
        1,
    )
    [finding] = tests["findings"]
    assert finding["rule_id"] == "flaky"
    assert "service attempt 1 fails" in finding["message"]
    result.stdout.fnmatch_lines(["*1 passed, 1 rerun in *"])
