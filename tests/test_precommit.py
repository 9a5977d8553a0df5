"""The pre-push hook of .pre-commit-hooks.yaml, run by the real pre-commit on a real clone.

A bare "remote" and a clone with its upstream set; a branch commit adds code. The hook
(``pre-commit try-repo`` on this repository, stage pre-push) must fail when the new code
has an untested function and a lint finding, and pass once they are fixed, whatever the old
code's debt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or os.name == "nt", reason="needs git and a POSIX shell"
)

OLD = "import os\n\n\ndef legacy(x):\n    if x:\n        return 1\n    return 2\n"
TESTS = "from app.core import legacy\n\n\ndef test_legacy():\n    assert legacy(1) == 1\n"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def hook(work: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    env["PRE_COMMIT_HOME"] = str(work.parent / "pre-commit-home")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pre_commit",
            "try-repo",
            str(ROOT),
            "pytest-orchestrator",
            "--hook-stage",
            "pre-push",
            "--all-files",
            "--verbose",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    pytest.importorskip("pre_commit")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "config", "user.email", "dev@example.com")
    git(work, "config", "user.name", "Dev")
    (work / "app").mkdir()
    (work / "app" / "__init__.py").write_text("")
    (work / "app" / "core.py").write_text(OLD)  # old debt: an unused import, a branch untested
    (work / "tests").mkdir()
    (work / "tests" / "test_core.py").write_text(TESTS)
    (work / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n'
    )
    (work / ".gitignore").write_text(".pytest_cache/\n__pycache__/\n.coverage\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "old code")
    git(work, "push", "-q", "-u", "origin", "main")
    git(work, "remote", "set-head", "origin", "main")
    git(work, "switch", "-q", "-c", "feature")
    git(work, "push", "-q", "-u", "origin", "feature")
    return work


def test_the_pre_push_hook_gates_new_code_against_the_upstream(work: Path) -> None:
    (work / "app" / "extra.py").write_text("import sys\n\n\ndef double(x):\n    return 2 * x\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "new code, untested, with an unused import")

    failed = hook(work)
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert "app/extra.py" in failed.stdout, failed.stdout

    (work / "app" / "extra.py").write_text("def double(x):\n    return 2 * x\n")
    (work / "tests" / "test_extra.py").write_text(
        "from app.extra import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "tested, clean")

    passed = hook(work)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout


def test_a_branch_pushed_the_first_time_is_gated_against_origin_head(work: Path) -> None:
    git(work, "switch", "-q", "-c", "fresh")  # no upstream yet: the first git push -u
    (work / "app" / "extra.py").write_text("import sys\n\n\ndef double(x):\n    return 2 * x\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "new code, untested, with an unused import")

    failed = hook(work)
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert "app/extra.py" in failed.stdout and "@{upstream}" not in failed.stdout
