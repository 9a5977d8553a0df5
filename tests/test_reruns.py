"""``--orchestrate-reruns``: flaky tests, in real sessions (subprocess), serial and under
pytest-xdist, alone and beside pytest-rerunfailures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
