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
    found = {f["message"].split(":")[1]: f for f in tests["findings"]}
    once = next(f for f in tests["findings"] if "test_flaky_once" in f["message"])
    assert (once["rule_id"], once["severity"], once["path"]) == ("flaky", "P2", "test_flaky.py")
    assert "failed, then passed when run again (failed, passed)" in once["message"]
    assert "once attempt 1 fails" in once["message"]
    twice = next(f for f in tests["findings"] if "test_flaky_twice" in f["message"])
    assert "(failed, failed, passed)" in twice["message"]
    always = [f for f in tests["findings"] if "test_always_fails" in f["message"]]
    assert [f["rule_id"] for f in always] == ["test-failed"]  # rerun twice, never passed
    assert found  # every finding names its node id
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
