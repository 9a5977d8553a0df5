"""Gap closure end to end: real git, real pytest child re-audits, real ruff, fake agents.

Each test builds a small git repository, runs ``pytest --orchestrate --orchestrate-agent=...``
in a subprocess and checks the loop's decisions, the working tree afterwards, the saved
session and the report.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakes import install_fakes

from pytest_orchestrator.loop.snapshot import Snapshot
from pytest_orchestrator.models import Report

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TESTS = (
    "from pkg.calc import add, sub\n\n\n"
    "def test_add():\n    assert add(1, 1) == 2\n\n\n"
    "def test_sub():\n    assert sub(3, 1) == 2\n"
)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed project: a package, its tests, a .gitignore; fake CLIs on PATH."""
    root = pytester.path
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text(CALC)
    (root / "tests").mkdir()
    (root / "tests" / "test_calc.py").write_text(TESTS)
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n'
    )
    (root / ".gitignore").write_text(".pytest_cache/\n__pycache__/\nout/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    bin_dir = install_fakes(root.parent / f"{root.name}-bin")
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    # the fakes' scripts and logs live beside them: writable in the agents' sandbox
    monkeypatch.setenv("PYTEST_ORCHESTRATOR_SANDBOX_WRITABLE", str(bin_dir))
    for name in [k for k in os.environ if k.startswith("FAKE_AGENT_")]:
        monkeypatch.delenv(name)
    return root


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def edit_script(root: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fake agent does to the tree when it may edit (FAKE_AGENT_SCRIPT)."""
    script = root.parent / f"{root.name}-bin" / "edit.py"
    script.write_text(textwrap.dedent(source))
    monkeypatch.setenv("FAKE_AGENT_SCRIPT", str(script))


def gate(
    root: Path, *args: str, timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], Report]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--orchestrate",
            "--orchestrate-report=terminal",
            "--orchestrate-report=json:out/report.json",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    path = root / "out" / "report.json"
    assert path.is_file(), done.stdout + done.stderr
    return done, Report.model_validate(json.loads(path.read_text()))


def test_ruff_fix_closes_the_lint_gap_in_one_accepted_iteration(repo: Path) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\nimport sys\nimport json\n" + CALC)
    commit_all(repo, "unused imports")
    done, report = gate(
        repo,
        "--target-score=99",
        f"--orchestrate-agent=command:{sys.executable} -m ruff check --fix",
    )

    assert report.loop is not None, done.stdout
    assert report.loop.stop_reason is not None
    assert report.loop.stop_reason.startswith("target reached"), report.loop
    [iteration] = report.loop.iterations
    assert iteration.accepted and iteration.files == ["pkg/calc.py"]
    assert iteration.lines_removed == 3 and iteration.score_after == 100.0
    assert report.loop.initial_score < 99 and report.score.overall == 100.0
    assert report.loop.severities_before.get("P2") == 3 and report.loop.severities_after == {}
    assert "import os" not in (repo / "pkg" / "calc.py").read_text()
    assert report.verdict.passed and done.returncode == 0
    assert "gap closure (" in done.stdout and "#1 command:" in done.stdout
    assert report.agents is not None and report.agents.spent_usd == 0.0


def test_a_fake_claude_that_fixes_a_failing_test_is_accepted(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pkg" / "calc.py").write_text(CALC.replace("a - b", "a + b"))  # a bug
    commit_all(repo, "bug")
    edit_script(
        repo,
        """
        from pathlib import Path
        calc = Path("pkg/calc.py")
        calc.write_text(calc.read_text().replace("return a + b\\n", "return a - b\\n", 2)
                        .replace("return a - b\\n", "return a + b\\n", 1))
        """,
        monkeypatch,
    )
    done, report = gate(repo, "--orchestrate-agent=claude", "--target-score=95")

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.accepted, iteration
    assert iteration.cost_usd == 0.0123  # claude's total_cost_usd
    assert report.loop.severities_before.get("P0") == 1
    assert report.loop.severities_after.get("P0") is None
    tests = report.audit("tests")
    assert tests is not None and tests.score == 100.0
    assert done.returncode == 0  # the final state decides: every test passes now
    assert report.agents is not None
    assert [c.purpose for c in report.agents.calls] == ["iteration 1"]


FIX = """
from pathlib import Path
calc = Path("pkg/calc.py")
calc.write_text(calc.read_text().replace("return a + b\\n", "return a - b\\n", 2)
                .replace("return a - b\\n", "return a + b\\n", 1))
"""


def _data_files(repo: Path) -> None:
    data = repo / "data"
    data.mkdir()
    for i in range(25):
        (data / f"record_{i:02d}.txt").write_text(f"record {i}\n")


DELETE_AND_FIX = """
from pathlib import Path
for i in range(20):
    Path(f"data/record_{i:02d}.txt").unlink()
calc = Path("pkg/calc.py")
calc.write_text(calc.read_text().replace("return a + b\\n", "return a - b\\n", 2)
                .replace("return a - b\\n", "return a + b\\n", 1))
"""


def test_deleting_files_is_refused_and_rolled_back_byte_for_byte(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_files(repo)
    (repo / "pkg" / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    commit_all(repo, "data and a bug")
    edit_script(repo, DELETE_AND_FIX, monkeypatch)
    before = Snapshot.current_hash(repo)
    done, report = gate(
        repo,
        "--orchestrate-agent=claude",
        "--orchestrate-confirm=no",
        "--orchestrate-max-iterations=1",
    )

    assert Snapshot.current_hash(repo) == before
    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    assert iteration.reason.startswith("refused by the guard: 20 files deleted: data/")
    deleted = next(g for g in iteration.guard if g.name == "files-deleted")
    assert deleted.confirmed is False and "20" in deleted.message
    assert done.returncode == 1  # the failing test is still there


def test_a_hook_that_approves_keeps_the_destructive_change(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _data_files(repo)
    (repo / "pkg" / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    (repo / "conftest.py").write_text(
        "def pytest_orchestrator_confirm(config, question, checks):\n"
        "    return 'files-deleted' in checks\n"
    )
    commit_all(repo, "data, a bug and an approving hook")
    edit_script(repo, DELETE_AND_FIX, monkeypatch)
    _, report = gate(repo, "--orchestrate-agent=claude", "--orchestrate-confirm=no")

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.accepted, iteration
    assert len(list((repo / "data").iterdir())) == 5
    session = next((repo / ".pytest_cache").rglob(f"{report.loop.session_id}.json"))
    saved = json.loads(session.read_text())
    assert saved["confirmations"][0]["by"] == "hook" and saved["confirmations"][0]["answer"]


def test_a_change_for_the_worse_is_rolled_back(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\n" + CALC)
    commit_all(repo, "an unused import")
    edit_script(
        repo,
        """
        from pathlib import Path
        calc = Path("pkg/calc.py")
        calc.write_text(calc.read_text().replace("return a - b", "return a * b"))
        """,
        monkeypatch,
    )
    before = Snapshot.current_hash(repo)
    _, report = gate(
        repo, "--orchestrate-agent=claude", "--orchestrate-max-iterations=1", "--target-score=100"
    )

    assert Snapshot.current_hash(repo) == before
    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    # the broken test covers the changed line: it ran first, and failed
    assert iteration.reason == (
        "rejected: a test that covers the change, or one the agent wrote or edited (run three "
        "times), fails (first: tests/test_calc.py::test_sub); the full re-test was not run"
    )
    assert report.loop.stop_reason == "max iterations (1)"


def test_the_budget_stops_the_loop_and_is_never_passed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\n" + CALC)
    commit_all(repo, "an unused import")
    edit_script(repo, "open('notes.txt', 'a').write('thinking\\n')\n", monkeypatch)
    monkeypatch.setenv("FAKE_AGENT_COST", "0.5")
    _, report = gate(
        repo, "--orchestrate-agent=claude", "--orchestrate-budget=1", "--target-score=100"
    )

    assert report.loop is not None and report.agents is not None
    assert report.loop.stop_reason is not None
    assert report.loop.stop_reason.startswith("budget exhausted")
    assert report.agents.spent_usd <= 1.0
    assert len(report.loop.iterations) == 2
    assert not (repo / "notes.txt").exists()  # no iteration improved anything


def test_an_agent_that_never_improves_stops_as_stuck(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\n" + CALC)
    commit_all(repo, "an unused import")
    edit_script(repo, "open('notes.txt', 'a').write('thinking\\n')\n", monkeypatch)
    _, report = gate(repo, "--orchestrate-agent=claude", "--target-score=100", timeout=600)

    assert report.loop is not None
    assert report.loop.stop_reason is not None and report.loop.stop_reason.startswith("stuck")
    assert len(report.loop.iterations) == 6  # 3, a change of strategy, 3 more
    assert not any(i.accepted for i in report.loop.iterations)


@pytest.mark.parametrize("confirm", ["yes", "no"])
def test_allow_dirty_saves_the_uncommitted_work_and_asks_before_an_agent_edits_it(
    repo: Path, confirm: str
) -> None:
    # the user's uncommitted work: an edited tracked file (with an unused import for the
    # agent to fix) and a new untracked file
    mine = "import os\n" + CALC.replace("(a, b):", "(a, b):  # my work in progress", 1)
    (repo / "pkg" / "calc.py").write_text(mine)
    (repo / "notes.md").write_text("my notes\n")
    done, report = gate(
        repo,
        "--orchestrate-allow-dirty",
        f"--orchestrate-confirm={confirm}",
        "--orchestrate-max-iterations=1",
        "--target-score=100",
        f"--orchestrate-agent=command:{sys.executable} -m ruff check --fix",
    )

    assert report.loop is not None
    ref = report.loop.backup_ref
    assert ref == f"refs/pytest-orchestrator/{report.loop.session_id}"
    assert f"saved as {ref}; restore them with: git restore --source={ref} --worktree -- :/" in (
        done.stdout
    )
    assert git(repo, "show", f"{ref}:pkg/calc.py") == mine
    assert git(repo, "show", f"{ref}:notes.md") == "my notes\n"
    assert git(repo, "rev-parse", f"{ref}^") == git(repo, "rev-parse", "HEAD")
    assert git(repo, "stash", "list") == "" and git(repo, "diff", "--cached") == ""
    [iteration] = report.loop.iterations
    [check] = [g for g in iteration.guard if g.name == "uncommitted-work"]
    assert check.risk == "high" and "pkg/calc.py" in check.message and ref in check.message
    assert check.confirmed is (confirm == "yes")
    assert iteration.accepted is (confirm == "yes"), iteration.reason
    calc = (repo / "pkg" / "calc.py").read_text()
    assert calc == (mine.replace("import os\n", "") if confirm == "yes" else mine)
    assert (repo / "notes.md").read_text() == "my notes\n"


@pytest.mark.parametrize("confirm", ["yes", "no"])
def test_the_80_percent_budget_question_is_asked_once_and_its_answer_decides(
    repo: Path, monkeypatch: pytest.MonkeyPatch, confirm: str
) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\n" + CALC)
    commit_all(repo, "an unused import")
    edit_script(repo, "open('notes.txt', 'a').write('thinking\\n')\n", monkeypatch)
    # exact binary fractions: 4 calls spend 1.00 of 1.25 (80 %) and leave one call's worth
    monkeypatch.setenv("FAKE_AGENT_COST", "0.25")
    _, report = gate(
        repo,
        "--orchestrate-agent=claude",
        "--orchestrate-budget=1.25",
        "--target-score=100",
        f"--orchestrate-confirm={confirm}",
    )

    assert report.loop is not None and report.agents is not None
    session = next((repo / ".pytest_cache").rglob(f"{report.loop.session_id}.json"))
    [asked] = json.loads(session.read_text())["confirmations"]
    assert asked["iteration"] == 4 and asked["answer"] is (confirm == "yes")
    assert "$1.0000 of the $1.25 budget (80 %)" in asked["question"]
    if confirm == "no":
        assert report.loop.stop_reason == "declined to continue at 80 % of the budget"
        assert len(report.loop.iterations) == 4 and report.agents.spent_usd == 1.0
    else:
        assert report.loop.stop_reason is not None
        assert report.loop.stop_reason.startswith("budget exhausted")
        assert len(report.loop.iterations) == 5 and report.agents.spent_usd == 1.25


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("reply", "kept"), [("y", True), ("n", False)])
def test_ask_prompts_on_a_terminal_and_obeys_the_reply(
    repo: Path, monkeypatch: pytest.MonkeyPatch, reply: str, kept: bool
) -> None:
    _data_files(repo)
    (repo / "pkg" / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    commit_all(repo, "data and a bug")
    edit_script(repo, DELETE_AND_FIX, monkeypatch)
    before = Snapshot.current_hash(repo)
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--orchestrate",
            "--orchestrate-agent=claude",
            "--orchestrate-max-iterations=1",
            "--orchestrate-report=json:out/report.json",
        ],
        cwd=repo,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while b"[y/N]" not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                seen += os.read(primary, 65536)
        os.write(primary, reply.encode() + b"\n")
        while process.poll() is None or select.select([primary], [], [], 0)[0]:
            try:
                seen += os.read(primary, 65536)
            except OSError:  # the terminal closed with the last writer
                break
        process.wait(timeout=120)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()

    question = seen.decode(errors="replace")
    assert "keep iteration 1? 20 files deleted" in question
    report = Report.model_validate(json.loads((repo / "out" / "report.json").read_text()))
    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.accepted is kept, question
    deleted = next(g for g in iteration.guard if g.name == "files-deleted")
    assert deleted.confirmed is kept
    if kept:
        assert len(list((repo / "data").iterdir())) == 5
    else:
        assert Snapshot.current_hash(repo) == before


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs SIGINT")
def test_interrupt_rolls_back_saves_and_resume_continues(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pkg" / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    commit_all(repo, "a bug")
    edit_script(
        repo,
        """
        import time
        from pathlib import Path
        Path("pkg/calc.py").write_text("half-written\\n")
        Path("started").write_text("yes")
        time.sleep(60)
        """,
        monkeypatch,
    )
    before = Snapshot.current_hash(repo)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--orchestrate", "--orchestrate-agent=claude"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (repo / "started").exists():
        assert time.monotonic() < deadline, "the agent never started"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)

    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert Snapshot.current_hash(repo) == before  # the half-written file is gone
    [saved] = list((repo / ".pytest_cache").rglob("orchestrator-sessions/*.json"))
    state = json.loads(saved.read_text())
    assert state["stop_reason"] == "interrupted"
    assert len(state["iterations"]) == 1

    edit_script(repo, FIX, monkeypatch)
    done, report = gate(repo, "--orchestrate-agent=claude", "--orchestrate-resume=last")

    assert report.loop is not None and report.loop.session_id == state["session_id"]
    assert [i.number for i in report.loop.iterations] == [1, 2]
    assert report.loop.iterations[-1].accepted
    assert done.returncode == 0


def test_commit_option_commits_each_accepted_iteration_and_junit_lists_them(
    repo: Path,
) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\nimport sys\n" + CALC)
    commit_all(repo, "unused imports")
    done, report = gate(
        repo,
        "--target-score=100",
        "--orchestrate-commit",
        "--orchestrate-report=junit:out/gate.xml",
        f"--orchestrate-agent=command:{sys.executable} -m ruff check --fix",
    )

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.accepted and iteration.commit is not None
    assert git(repo, "log", "-1", "--format=%H %s").startswith(iteration.commit)
    assert "pytest-orchestrator: iteration 1" in git(repo, "log", "-1", "--format=%s")
    assert git(repo, "status", "--porcelain") == ""
    junit = (repo / "out" / "gate.xml").read_text()
    assert 'testsuite name="orchestrator.gap-closure"' in junit
    assert "iteration 1: " in junit and "stopped: target reached" in junit
    assert "gap closure: iteration 1/10, agent command:" in done.stdout  # the live line


def test_an_agent_that_edits_then_times_out_is_rolled_back(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pkg" / "calc.py").write_text("import os\n" + CALC)
    commit_all(repo, "an unused import")
    edit_script(
        repo,
        """
        import time
        from pathlib import Path
        Path("pkg/calc.py").write_text("half-written\\n")
        time.sleep(60)
        """,
        monkeypatch,
    )
    before = Snapshot.current_hash(repo)
    _, report = gate(
        repo,
        "--orchestrate-agent=claude",
        "--target-score=100",
        "--orchestrate-max-iterations=1",
        "-o",
        "orchestrate_agent_timeout=2",
    )

    assert Snapshot.current_hash(repo) == before
    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    assert iteration.reason.startswith("agent failed: claude gave no answer within 2 s")


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (
            "dirty",
            ["--orchestrate-agent=claude"],
            "ERROR: --orchestrate-agent: the working tree has uncommitted changes; commit or "
            "stash them first, or give --orchestrate-allow-dirty*",
        ),
        (
            "no-git",
            ["--orchestrate-agent=claude"],
            "ERROR: --orchestrate-agent: not a git repository*",
        ),
        (
            "",
            ["--orchestrate-agent=claude", "--orchestrate-resume=nope"],
            "ERROR: --orchestrate-resume: no session 'nope'; the last ones: none",
        ),
        (
            "",
            ["--orchestrate-agent=claude", "--orchestrate-confirm=maybe"],
            "ERROR: --orchestrate-confirm: 'maybe' is not ask, yes or no",
        ),
        (
            "",
            ["--orchestrate-agent=claude", "-o", "orchestrate_guard=max_lines=3"],
            "ERROR: orchestrate_guard (ini): unknown guard setting 'max_lines'*",
        ),
    ],
    ids=["dirty", "no-git", "no-session", "bad-confirm", "bad-guard"],
)
def test_loop_setup_mistakes_are_one_line_errors(
    repo: Path, setup: str, args: list[str], message: str
) -> None:
    if setup == "dirty":
        (repo / "pkg" / "new.py").write_text("x = 1\n")
    if setup == "no-git":
        subprocess.run(["rm", "-rf", str(repo / ".git")], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--orchestrate", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    pytest.LineMatcher(done.stderr.splitlines()).fnmatch_lines([message])
    assert "Traceback" not in done.stderr
    assert (repo / "pkg" / "calc.py").read_text() == CALC


@pytest.mark.parametrize(
    ("args", "accepted", "stop"),
    [
        ([], None, "nothing left to close"),
        (["--orchestrate-develop", "--orchestrate-confirm=no"], None, "nothing left to close"),
        (["--orchestrate-develop", "--orchestrate-confirm=yes"], True, "target reached"),
    ],
    ids=["not-asked", "declined", "confirmed"],
)
def test_writing_missing_tests_only_when_asked_and_confirmed(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    accepted: bool | None,
    stop: str,
) -> None:
    (repo / "pkg" / "extra.py").write_text("def double(x):\n    return 2 * x\n")
    commit_all(repo, "untested code")
    edit_script(
        repo,
        """
        from pathlib import Path
        Path("tests/test_extra.py").write_text(
            "from pkg.extra import double\\n\\n\\ndef test_double():\\n    assert double(2) == 4\\n"
        )
        """,
        monkeypatch,
    )
    _, report = gate(repo, "--orchestrate-agent=claude", "--target-score=100", *args)

    assert report.loop is not None
    assert report.loop.stop_reason is not None and report.loop.stop_reason.startswith(stop)
    if accepted is None:
        assert report.loop.iterations == []
        assert not (repo / "tests" / "test_extra.py").exists()
    else:
        [iteration] = report.loop.iterations
        assert iteration.accepted and iteration.files == ["tests/test_extra.py"]
        coverage = report.audit("coverage")
        assert coverage is not None and coverage.score == 100.0


def test_a_failing_test_keeps_the_loop_going_even_above_the_target_score(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "pkg" / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    commit_all(repo, "a bug")
    edit_script(repo, FIX, monkeypatch)
    _, report = gate(repo, "--orchestrate-agent=claude", "--target-score=50")

    assert report.loop is not None
    assert report.loop.initial_score >= 50  # the score alone would have stopped it
    [iteration] = report.loop.iterations
    assert iteration.accepted and report.verdict.passed


def test_session_files_mask_secrets_and_stay_readable(tmp_path: Path) -> None:
    from pytest_orchestrator.loop.engine import LoopState, load, save

    state = LoopState(
        session_id="s1",
        created=0.0,
        rootdir=str(tmp_path),
        args=["-o", 'junit_suite_name=API_KEY="abc123456"', "--token", "sk-ant-api03-ABCDEFGHIJK"],
        target_score=90,
        initial_score=50,
        current_score=50,
    )
    path = save(state, tmp_path)
    text = path.read_text()

    assert "abc123456" not in text and "sk-ant-api03-ABCDEFGHIJK" not in text
    loaded = load(tmp_path, "last")
    assert loaded.session_id == "s1" and loaded.args[1] == 'junit_suite_name=API_KEY="***"'


@pytest.mark.parametrize(("args", "turns"), [(["--orchestrate-max-turns=3"], "3"), ([], None)])
def test_max_turns_reaches_the_loops_agent(
    repo: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], turns: str | None
) -> None:
    (repo / "tests" / "test_fails.py").write_text("def test_it():\n    assert 1 == 2\n")
    commit_all(repo, "a failing test")
    log = repo.parent / f"{repo.name}-bin" / "calls.jsonl"  # the fakes record their argv
    monkeypatch.setenv("FAKE_AGENT_LOG", str(log))
    done, report = gate(
        repo,
        "--orchestrate-dimensions=tests",
        "--orchestrate-agent=claude",
        "--orchestrate-max-iterations=1",
        *args,
    )

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.reason == "the agent changed nothing"
    [argv] = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"  # the loop's call
    if turns is None:
        assert "--max-turns" not in argv
    else:
        assert argv[argv.index("--max-turns") + 1] == turns
