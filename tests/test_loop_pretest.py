"""Gap closure's pre-test: after an agent's edit, the tests that cover the changed lines
(from the session's own coverage, one context per test) run first; a failure rejects the
change before the full re-test. Real git, real child pytest sessions, fake agents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_loop import commit_all, edit_script, gate, repo  # noqa: F401 - the fixture

from pytest_orchestrator.loop.snapshot import Snapshot

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")

#: Two modules, each with its tests; ``mul`` has a bug its test catches.
MATH = (
    "def add(a, b):\n    return a + b\n\n\n"
    "def sub(a, b):\n    return a - b\n\n\n"
    "def mul(a, b):\n    return a + b\n"
)
OTHER = "def twice(x):\n    return 2 * x\n"
TESTS = (
    "from pkg.calc import add, mul, sub\n\n\n"
    "def test_add():\n    assert add(1, 1) == 2\n\n\n"
    "def test_sub():\n    assert sub(3, 1) == 2\n\n\n"
    "def test_mul():\n    assert mul(2, 3) == 6\n"
)
OTHER_TESTS = "from pkg.other import twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n"


@pytest.fixture
def project(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    (repo / "pkg" / "calc.py").write_text(MATH)
    (repo / "pkg" / "other.py").write_text(OTHER)
    (repo / "tests" / "test_calc.py").write_text(TESTS)
    (repo / "tests" / "test_other.py").write_text(OTHER_TESTS)
    commit_all(repo, "math")
    return repo


AGENT = ["--orchestrate-agent=claude", "--orchestrate-max-iterations=1", "--target-score=100"]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_change_that_breaks_a_covering_test_is_rejected_before_the_full_retest(
    project: Path, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    # fixes mul, and breaks sub on the way
    edit_script(
        project,
        """
        from pathlib import Path
        calc = Path("pkg/calc.py")
        text = calc.read_text().replace("return a - b", "return a * b")
        calc.write_text(text.replace("    return a + b\\n", "    return a * b\\n").replace(
            "def add(a, b):\\n    return a * b", "def add(a, b):\\n    return a + b"))
        """,
        monkeypatch,
    )
    before = Snapshot.current_hash(project)
    done, report = gate(project, *AGENT, *workers)

    assert Snapshot.current_hash(project) == before
    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    # only the passing tests that ran a changed line: test_sub (test_mul failed at the
    # start; test_add and test_twice ran no changed line)
    assert iteration.pretest == ["tests/test_calc.py::test_sub"]
    assert iteration.pretest_outcome == "failed"
    assert iteration.reason == (
        "rejected: a test that covers the change, or one the agent wrote or edited (run three "
        "times), fails (first: tests/test_calc.py::test_sub); the full re-test was not run"
    )
    assert "pre-test" in iteration.timings and "re-audit" not in iteration.timings


def test_an_honest_fix_passes_the_pretest_and_the_full_retest_decides(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_script(
        project,
        """
        from pathlib import Path
        calc = Path("pkg/calc.py")
        text = calc.read_text()
        head, _, tail = text.rpartition("return a + b")
        calc.write_text(head + "return a * b" + tail)
        Path("tests/test_other.py").write_text(
            Path("tests/test_other.py").read_text() + "\\n\\ndef test_zero():\\n"
            "    assert twice(0) == 0\\n")
        """,
        monkeypatch,
    )
    done, report = gate(project, *AGENT)

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted, iteration.reason
    # mul's test failed at the start (the full re-test judges it); the changed test file
    # runs whole
    assert iteration.pretest == ["tests/test_other.py"]
    assert iteration.pretest_outcome == "passed"
    assert {"pre-test", "re-audit"} <= set(iteration.timings)
    assert "def mul(a, b):\n    return a * b\n" in (project / "pkg" / "calc.py").read_text()


@pytest.mark.parametrize(
    "measure",
    [[], ["--cov=pkg"], ["-p", "rerunfailures", "--reruns=2"]],
    ids=["test-to-line-map", "pytest-cov-no-map", "rerunfailures-reruns-nothing"],
)
def test_a_flaky_test_the_agent_writes_is_run_three_times_and_refuses_the_iteration(
    project: Path, monkeypatch: pytest.MonkeyPatch, measure: list[str]
) -> None:
    # fixes mul, and adds a test that fails on its second run only
    edit_script(
        project,
        """
        from pathlib import Path
        calc = Path("pkg/calc.py")
        text = calc.read_text()
        head, _, tail = text.rpartition("return a + b")
        calc.write_text(head + "return a * b" + tail)
        Path("tests/test_lucky.py").write_text(
            "RUNS = []\\n\\n\\ndef test_lucky():\\n    RUNS.append(1)\\n"
            "    assert len(RUNS) != 2\\n")
        """,
        monkeypatch,
    )
    if "--cov=pkg" in measure:  # pytest-cov's own data file, written by the session
        monkeypatch.setenv("COVERAGE_FILE", str(project.parent / "pytest-cov.data"))
    before = Snapshot.current_hash(project)
    done, report = gate(project, *AGENT, *measure)

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    # with pytest-cov there is no test-to-line map: the agent's test files still run first
    assert iteration.pretest == ["tests/test_lucky.py"]
    assert iteration.pretest_outcome == "failed"
    assert "(first: tests/test_lucky.py::test_lucky)" in (iteration.reason or "")
    assert Snapshot.current_hash(project) == before  # the honest half was not kept either


def test_a_change_no_test_covers_goes_straight_to_the_full_retest(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_script(
        project,
        """
        from pathlib import Path
        calc = Path("pkg/calc.py")
        calc.write_text(calc.read_text() + "\\n\\ndef unused():\\n    return 0\\n")
        """,
        monkeypatch,
    )
    done, report = gate(project, *AGENT)

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.pretest == [] and iteration.pretest_outcome is None
    assert "pre-test" not in iteration.timings and "re-audit" in iteration.timings


def test_a_hostile_change_run_by_the_pretest_reaches_nothing_outside_and_leaves_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, bwrap: None
) -> None:
    """The pre-test runs the agent's code: in the sandbox, so a covered function that writes
    outside the tree writes nowhere that outlives it (a private /tmp, the rest read-only),
    and the rejected change's writes inside the tree are rolled back with it."""
    outside = project.parent / f"{project.name}-outside.txt"
    edit_script(
        project,
        f"""
        from pathlib import Path
        calc = Path("pkg/calc.py")
        calc.write_text(calc.read_text().replace(
            "def sub(a, b):\\n    return a - b",
            "def sub(a, b):\\n"
            "    open('planted.txt', 'w').write('x')\\n"
            "    try:\\n"
            "        open({str(outside)!r}, 'w').write('escaped')\\n"
            "    except OSError:\\n"
            "        pass\\n"
            "    return a * b",
        ))
        """,
        monkeypatch,
    )
    before = Snapshot.current_hash(project)
    done, report = gate(project, *AGENT, "--orchestrate-sandbox=bwrap")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.pretest == ["tests/test_calc.py::test_sub"]
    assert iteration.pretest_outcome == "failed" and not iteration.accepted
    assert not outside.exists()
    assert Snapshot.current_hash(project) == before
