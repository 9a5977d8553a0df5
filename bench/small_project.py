"""The gate's fixed cost on a small project: what a pre-push hook or a small pull request pays.

Generates, under ``bench/.work/small/`` (git-ignored), a git repository holding a package of
four small modules and ten passing tests, then times, interleaved over ``--rounds`` rounds
(after one untimed warm-up round, which also fills the audit cache as a second push would):

====  ===================================================================================
A     ``pytest --orchestrate -q`` (tests, coverage, lint, security: the default dimensions)
B     ``pytest --cov=smallpkg -q -p no:orchestrator``
C     ``pytest -q -p no:orchestrator`` (no coverage)
D     ``pytest --orchestrate -q --orchestrate-dimensions=tests`` (the plugin alone)
====  ===================================================================================

Every command also gets ``-p no:randomly`` and runs without ``PYTHONDONTWRITEBYTECODE``
(bytecode reused, as on users' machines); the cache provider stays on (the audit cache
lives in ``.pytest_cache``). Plugins installed in the environment load in every command
alike: run it in an environment with only pytest-orchestrator and pytest-cov for the figures
users see. Prints the median wall time of each and the ratios; the goal is
**A/B <= 1.3x**. Standard library only; run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "small"

MODULE = '''"""Module {n}."""


def add_{n}(a, b):
    return a + b


def scale_{n}(values, factor):
    return [v * factor for v in values]


def clamp_{n}(x, low, high):
    if x < low:
        return low
    if x > high:
        return high
    return x
'''


def make_project() -> Path:
    """The project, made anew: ``smallpkg`` (4 modules) and ``tests/`` (10 tests)."""
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "smallpkg").mkdir(parents=True)
    (WORK / "tests").mkdir()
    (WORK / "smallpkg" / "__init__.py").write_text('"""A small package."""\n')
    for n in range(4):
        (WORK / "smallpkg" / f"mod{n}.py").write_text(MODULE.format(n=n))
    tests = [f"import smallpkg.mod{n} as m{n}" for n in range(4)] + [""]
    for i in range(10):
        mod = f"m{i % 4}"
        fn = ("add", "scale", "clamp")[i % 3]
        call = {
            "add": (f"{mod}.add_{i % 4}({i}, 1)", i + 1),
            "scale": (f"{mod}.scale_{i % 4}([{i}], 2)", [2 * i]),
            "clamp": (f"{mod}.clamp_{i % 4}({i}, 2, 5)", min(max(i, 2), 5)),
        }[fn]
        tests += ["", f"def test_{i}():", f"    assert {call[0]} == {call[1]!r}", ""]
    (WORK / "tests" / "test_small.py").write_text("\n".join(tests))
    (WORK / "pyproject.toml").write_text(
        '[project]\nname = "smallpkg"\nversion = "0.1"\n\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n'
    )
    for argv in (
        ["git", "init", "-q", "."],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
         "commit", "-q", "-m", "small project"],
    ):  # fmt: skip
        subprocess.run(argv, cwd=WORK, check=True)
    return WORK


def commands() -> dict[str, list[str]]:
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
    return {
        "A": [*pytest, "--orchestrate"],
        "B": [*pytest, "--cov=smallpkg", "-p", "no:orchestrator"],
        "C": [*pytest, "-p", "no:orchestrator"],
        "D": [*pytest, "--orchestrate", "--orchestrate-dimensions=tests"],
    }


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    # bytecode is written and reused, as on users' machines (some CI images set
    # PYTHONDONTWRITEBYTECODE, and every import then compiles from source)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, check=False, env=env)
    return time.perf_counter() - start, done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9)")
    args = parser.parse_args(argv)
    project = make_project()
    cmds = commands()
    for name, cmd in cmds.items():  # warm-up; every command must pass
        seconds, code = timed(cmd, project)
        print(f"{name}: exit {code} ({seconds:.2f} s, warm-up): {' '.join(cmd[1:])}", flush=True)
        if code != 0:
            return 1
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.rounds):
        for name, cmd in cmds.items():
            times[name].append(timed(cmd, project)[0])
    median = {name: statistics.median(values) for name, values in times.items()}
    for name in cmds:
        print(f"{name}: median {median[name]:.3f} s over {args.rounds} rounds")
    ratio = median["A"] / median["B"]
    verdict = "OK" if ratio <= 1.3 else "MISS"
    print(f"A/B gate vs pytest --cov: {ratio:.2f}x (goal <= 1.3x) {verdict}")
    print(f"B/C pytest --cov vs plain: {median['B'] / median['C']:.2f}x (for scale)")
    print(f"D/C the plugin alone vs plain: {median['D'] / median['C']:.2f}x (for scale)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
