"""What gap closure hands its agent: the settings of ``--orchestrate-max-turns`` reach the
CLI of the loop's agent (a fake claude recording its argv) end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import install_fakes

from pytest_orchestrator.models import Report

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=True)


@pytest.fixture
def failing(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed project whose one test fails; the fake CLIs first on PATH, logging to a
    file outside the repository."""
    root = pytester.path
    (root / "test_it.py").write_text("def test_it():\n    assert 1 == 2\n")
    (root / ".gitignore").write_text(".pytest_cache/\n__pycache__/\nout/\n")
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    bin_dir = install_fakes(root.parent / f"{root.name}-bin", ("claude",))
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    for name in [k for k in os.environ if k.startswith("FAKE_AGENT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FAKE_AGENT_LOG", str(root.parent / f"{root.name}-calls.jsonl"))
    return root


def run_loop(root: Path, *args: str) -> tuple[Report, list[list[str]]]:
    """One gap-closure iteration of the fake claude (it edits nothing: rolled back)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--orchestrate",
            "--orchestrate-dimensions=tests",
            "--orchestrate-agent=claude",
            "--orchestrate-max-iterations=1",
            "--orchestrate-report=json:out/report.json",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    path = root / "out" / "report.json"
    assert path.is_file(), done.stdout + done.stderr
    log = Path(os.environ["FAKE_AGENT_LOG"])
    argvs = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    return Report.model_validate(json.loads(path.read_text())), argvs


@pytest.mark.parametrize(("args", "turns"), [(["--orchestrate-max-turns=3"], "3"), ([], None)])
def test_max_turns_reaches_the_loops_agent(
    failing: Path, args: list[str], turns: str | None
) -> None:
    report, [argv] = run_loop(failing, *args)

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.reason == "the agent changed nothing"
    assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"  # the loop's call
    if turns is None:
        assert "--max-turns" not in argv
    else:
        assert argv[argv.index("--max-turns") + 1] == turns
