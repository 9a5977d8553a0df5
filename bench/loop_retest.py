"""What a rejected gap-closure iteration costs on a real suite, against a full gated run.

On click 8.1.8's suite (downloaded, unpacked and installed as ``gate_vs_sequential.py``
does, under ``bench/.work/``), copied into a fresh git repository, it runs, interleaved over
``--rounds`` rounds:

====  ===================================================================================
A     ``pytest --orchestrate`` (the full gated run: tests, coverage, lint, security)
B     ``pytest --orchestrate --orchestrate-agent=command:AGENT --orchestrate-max-iterations=1``
      where AGENT breaks one function of one module (``click.utils.make_str``): the
      iteration's pre-test (the tests that ran the changed lines) fails, and the change is
      rejected without the full re-test
====  ===================================================================================

and prints the median of A's wall time, of B's iteration (``loop.iterations[0].duration``
in B's JSON report: snapshot, agent, diff, checks, pre-test, rollback) and their ratio.
The goal is **iteration / A <= 0.3x**. Standard library only; run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_vs_sequential import prepare

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
COMMON = ["-q", "-p", "no:randomly", "-W", "ignore::pytest.PytestDeprecationWarning"]
AGENT = """\
from pathlib import Path
utils = Path("src/click/utils.py")
text = utils.read_text()
utils.write_text(text.replace(
    "def make_str(value: t.Any) -> str:\\n",
    "def make_str(value: t.Any) -> str:\\n    raise RuntimeError('broken')\\n",
    1,
))
"""


def repository(click: Path) -> Path:
    """A fresh git repository holding a copy of click's project."""
    repo = WORK / "loop-click"
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(click, repo, ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"))
    (repo / ".gitignore").write_text(".pytest_cache/\n__pycache__/\n*.egg-info/\nreport.json\n")
    for argv in (
        ["git", "init", "-q", "."],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
         "commit", "-q", "-m", "click"],
    ):  # fmt: skip
        subprocess.run(argv, cwd=repo, check=True)
    return repo


def run(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Run in ``cwd``, importing click from its ``src`` (not the editable install's copy)."""
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, check=False, env=env)
    return time.perf_counter() - start, done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    args = parser.parse_args(argv)
    repo = repository(prepare(WORK, "8.1.8"))
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as scratch:
        agent = WORK / "loop-agent.py"  # not under /tmp: the sandbox gives the agent its own
        agent.write_text(AGENT)
        report = Path(scratch) / "report.json"
        pytest = [sys.executable, "-m", "pytest", *COMMON, "--orchestrate"]
        full = pytest
        loop = [
            *pytest,
            f"--orchestrate-agent=command:{sys.executable} {agent}",
            "--orchestrate-max-iterations=1",
            "--target-score=100",
            "--orchestrate-confirm=no",
            "--orchestrate-sandbox=auto",
            f"--orchestrate-report=json:{report}",
        ]
        run(full, repo)  # warm-up: the audit cache, bytecode
        gated: list[float] = []
        iterations: list[float] = []
        for number in range(args.rounds):
            gated.append(run(full, repo)[0])
            run(loop, repo)
            data = json.loads(report.read_text())
            [iteration] = data["loop"]["iterations"]
            if number == 0:
                print(f"B's iteration: {iteration['reason']}")
                tests, outcome = len(iteration["pretest"]), iteration["pretest_outcome"]
                print(f"  pre-test: {tests} tests, {outcome}; timings {iteration['timings']}")
            iterations.append(iteration["duration"])
            status = subprocess.run(
                ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
            ).stdout
            if status.strip():
                print(f"the rejected iteration left changes behind:\n{status}")
                return 1
    a, b = statistics.median(gated), statistics.median(iterations)
    verdict = "OK" if b / a <= 0.3 else "MISS"
    print(f"A full gated run: median {a:.2f} s over {args.rounds} rounds")
    print(f"B rejected iteration: median {b:.2f} s")
    print(f"B/A: {b / a:.2f}x (goal <= 0.3x) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
