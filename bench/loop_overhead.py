"""Gap-closure overhead: re-audit time after a one-file change, and loop cost per iteration.

Two measurements (issue 5, "Benchmark"), standard library only, with python, pytest and git
as subprocesses; every timing is the wall clock of a whole command, medians over rounds.

**(a) Re-audit after a one-file change vs a full audit** (goal <= 0.2x). A generated project
under ``bench/.work/reaudit/`` (git-ignored): ``--modules`` modules (default 200) of about
100 lines each (~20k lines) with seeded ruff and bandit findings, plus one trivial test. The
command runs only the static audits: ``python -m pytest --orchestrate
--orchestrate-dimensions=lint,security -q test_trivial.py``. Interleaved per round:

* full: audit cache and ruff's own cache (``.ruff_cache``) deleted first (a cold audit);
* nocache: ``PYTEST_ORCHESTRATOR_AUDIT_CACHE=0`` after a one-file change (what a re-audit
  cost before the cache: ruff's own cache warm, bandit over everything);
* reaudit: after a one-file change (a line appended to one module), cache warm;
* noaudit: ``python -m pytest --orchestrate --orchestrate-dimensions=tests -q
  test_trivial.py`` (the same session without the static audits: pytest's and the plugin's
  start-up, the trivial test, the report);
* plain: ``python -m pytest -p no:orchestrator -q test_trivial.py`` (pytest alone).

The goal's ratio is the audit time, what the static audits add to a session:
(reaudit - noaudit) / (full - noaudit), from the medians, and also per round (each round's
five commands run one after another, so a machine that slows down slows them alike; the
median of those ratios is printed too). The ratios with plain pytest subtracted instead,
and of the whole commands, are printed too. Commands run without PYTHONDONTWRITEBYTECODE
(see ``run``).

**(b) Loop overhead per iteration, excluding agent and test time** (goal < 1 s). The
example project (``examples/demo``) is copied into a fresh git repository under
``bench/.work/loop-demo/`` (with a ``.gitignore`` for ``__pycache__`` and
``.pytest_cache``, as any repository has), then per round:

* base: ``pytest --orchestrate --target-score=100`` (no agent: tests and audits once);
* noop: the same with ``--orchestrate-agent=command:true --orchestrate-max-iterations=N``:
  each iteration snapshots the tree, runs an agent that changes nothing, diffs and rolls
  back ("the agent changed nothing"); no child re-audit runs;
* touch: ``--orchestrate-agent="command:touch notes.txt"``: the agent adds a harmless file,
  so the guard passes and a child pytest re-tests and re-audits; the score does not rise,
  so the iteration is rolled back. Also run with the audit cache off (touch-nocache);
* game: an agent that games the score every way the integrity checks look at in one
  change (``# noqa`` on an import, an edited failing test, a skip marker, a new
  ``conftest.py``, a new ``.coveragerc``), answered yes, so every check, the measured view
  and the child re-audit run; the iteration is refused.

Per-iteration overhead = (noop - base) / iterations, from the wall clock; the per-iteration
``duration`` of the JSON report is printed as a cross-check. The touch figures are the same
per-iteration cost including the child's re-test + re-audit. The integrity checks' cost
(goal < 0.1 s per iteration) is the ``integrity`` phase of the iterations' ``timings`` in
the JSON report (the checks, the measured view's writes and the two hashes of the tree
that show the re-test changed nothing), median over all the game runs' iterations.

**(c) The sandbox's cost per agent call** (goal < 50 ms). The argv the loop gives bwrap for
an editing call in the demo repository (``pytest_orchestrator.agents.sandbox.Sandbox.wrap``
around ``true``), against ``true`` alone, interleaved, medians of the wall clock.

Usage: ``python bench/loop_overhead.py [--rounds N] [--iterations N] [--modules N]``. The
exit status is always 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
DEMO = ROOT / "examples" / "demo"
CACHE_SWITCH = "PYTEST_ORCHESTRATOR_AUDIT_CACHE"

MODULE = '''"""Generated module {n}."""

import os
import subprocess
import sys


def run_{n}(command):
    """Seeded bandit finding: a shell command."""
    return subprocess.call(command, shell=True)


def evaluate_{n}(text):
    """Seeded bandit finding: eval."""
    return eval(text)


class Thing{n}:
    """A class with some methods."""

    def __init__(self, value):
        self.value = value

'''

#: The game variant's agent (a script): every kind of gaming at once, in the demo project.
GAME = (
    "from pathlib import Path\n"
    "cart = Path('shop/cart.py'); text = cart.read_text(); "
    "cart.write_text(text.replace('\\n', '  # noqa\\n', 1))\n"
    "test = Path('tests/test_cart.py'); text = test.read_text(); "
    "test.write_text(text.replace('== 900', '== 810').replace("
    "'def test_fixed_rule', '@pytest.mark.skip\\ndef test_fixed_rule'))\n"
    "Path('tests/conftest.py').write_text('collect_ignore = []\\n')\n"
    "Path('.coveragerc').write_text('[run]\\nomit = shop/export.py\\n')\n"
)

METHOD = '''    def method_{m}(self, other):
        """Add {m}."""
        total = self.value + other + {m}
        if total > {m}:
            return total - {m}
        return total

'''


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall-clock seconds and exit status of ``argv`` (output discarded). The environment is
    this one plus ``env``, without PYTHONDONTWRITEBYTECODE: with it, a module edited since its
    ``.pyc`` was written is compiled again on every run, as on no user's machine."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=cwd,
        env={**base, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started, done.returncode


def generate(project: Path, modules: int) -> int:
    """Write the generated project; returns its number of lines."""
    shutil.rmtree(project, ignore_errors=True)
    package = project / "genpkg"
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "genpkg"\nversion = "0"\n\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n'
    )
    (project / "test_trivial.py").write_text("def test_trivial():\n    assert True\n")
    (package / "__init__.py").write_text("")
    lines = 0
    for n in range(modules):
        text = MODULE.format(n=n) + "".join(METHOD.format(m=m) for m in range(11))
        (package / f"mod{n:03d}.py").write_text(text)
        lines += text.count("\n")
    return lines


def measure_reaudit(rounds: int, modules: int) -> dict[str, list[float]]:
    project = WORK / "reaudit"
    lines = generate(project, modules)
    print(f"(a) generated {modules} modules, {lines} lines in {project}")
    py = sys.executable
    audit = [py, "-m", "pytest", "--orchestrate", "--orchestrate-dimensions=lint,security"]
    audit += ["-q", "test_trivial.py"]
    plain = [py, "-m", "pytest", "-p", "no:orchestrator", "-q", "test_trivial.py"]
    noaudit = [py, "-m", "pytest", "--orchestrate", "--orchestrate-dimensions=tests", "-q"]
    noaudit.append("test_trivial.py")
    target = project / "genpkg" / "mod100.py" if modules > 100 else project / "genpkg/mod000.py"

    def clear() -> None:
        shutil.rmtree(project / ".pytest_cache", ignore_errors=True)
        shutil.rmtree(project / ".ruff_cache", ignore_errors=True)

    def change(i: int) -> None:
        with target.open("a") as handle:
            handle.write(f"\nCHANGED_{i} = {i}\n")

    times: dict[str, list[float]] = {
        "full": [],
        "nocache": [],
        "reaudit": [],
        "noaudit": [],
        "plain": [],
    }
    clear()
    code = run(audit, project)[1]  # warm-up (imports, disk cache)
    print(f"    warm-up audit exit status {code}")
    for i in range(rounds):
        clear()
        times["full"].append(run(audit, project)[0])
        change(2 * i)
        times["nocache"].append(run(audit, project, {CACHE_SWITCH: "0"})[0])
        change(2 * i + 1)
        times["reaudit"].append(run(audit, project)[0])
        times["noaudit"].append(run(noaudit, project)[0])
        times["plain"].append(run(plain, project)[0])
    return times


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def measure_loop(rounds: int, iterations: int) -> tuple[dict[str, list[float]], dict[str, object]]:
    repo = WORK / "loop-demo"
    logs = WORK / "logs"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(DEMO, repo)
    # as in any Python repository: bytecode and pytest's cache are not part of the tree
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    logs.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "demo")
    print(f"(b) example project in a git repository: {repo}")
    py = sys.executable
    game = logs / "game.py"  # out of the tree: the agent's own script
    game.write_text(GAME)
    base = [py, "-m", "pytest", "--orchestrate", "--target-score=100", "-q"]
    loop = [*base, f"--orchestrate-max-iterations={iterations}"]
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        "base": (base, {}),
        "noop": ([*loop, "--orchestrate-agent=command:true"], {}),
        "touch": ([*loop, "--orchestrate-agent=command:touch notes.txt"], {}),
        "touch-nocache": (
            [*loop, "--orchestrate-agent=command:touch notes.txt"],
            {CACHE_SWITCH: "0"},
        ),
        "game": (
            [
                *loop,
                f"--orchestrate-agent=command:{py} {game}",
                "--orchestrate-confirm=yes",
            ],
            {},
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    details: dict[str, object] = {}
    for name, (argv, env) in variants.items():  # warm-up, and the reports of one run
        report = logs / f"loop-{name}.json"
        run([*argv, f"--orchestrate-report=json:{report}"], repo, env)
        details[name] = json.loads(report.read_text()).get("loop")
    phases: dict[str, list[float]] = {}
    for i in range(rounds):
        for name, (argv, env) in variants.items():
            report = logs / f"loop-{name}-{i}.json"
            times[name].append(run([*argv, f"--orchestrate-report=json:{report}"], repo, env)[0])
            if name == "game":
                for iteration in json.loads(report.read_text())["loop"]["iterations"]:
                    for phase, seconds in iteration.get("timings", {}).items():
                        phases.setdefault(phase, []).append(seconds)
    details["game-phases"] = phases
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=False
    ).stdout.strip()
    if dirty:
        print(f"    ODD: the loop left the tree dirty: {dirty!r}")
    return times, details


def measure_sandbox(rounds: int) -> tuple[list[float], list[float]] | None:
    """Wall clock of ``true`` in the sandbox and alone, ``rounds`` x 10 each, interleaved."""
    sys.path.insert(0, str(ROOT))
    from pytest_orchestrator.agents.sandbox import Sandbox, SandboxUnavailable

    try:
        sandbox = Sandbox.choose("bwrap")
    except SandboxUnavailable as exc:
        print(f"(c) no sandbox to measure: {exc}")
        return None
    repo = WORK / "loop-demo"
    wrapped = sandbox.wrap(["true"], tree=repo, cwd=repo, home_state=[".claude/"])
    inside: list[float] = []
    alone: list[float] = []
    for _ in range(rounds * 10):
        inside.append(run(wrapped, repo)[0])
        alone.append(run(["true"], repo)[0])
    return inside, alone


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--modules", type=int, default=200)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores, {args.rounds} rounds")

    audit = measure_reaudit(args.rounds, args.modules)
    m = {name: median(values) for name, values in audit.items()}
    for name, value in m.items():
        print(f"    {name:8} median {value:6.2f} s  ({', '.join(f'{v:.2f}' for v in audit[name])})")
    ratio = (m["reaudit"] - m["noaudit"]) / (m["full"] - m["noaudit"])
    before = (m["nocache"] - m["noaudit"]) / (m["full"] - m["noaudit"])
    print(
        f"    re-audit after a one-file change / full audit (audit time: noaudit "
        f"subtracted): {ratio:.2f}x (goal <= 0.2x) {verdict(ratio <= 0.2)}"
    )
    paired = [
        (r - n) / (f - n)
        for f, r, n in zip(audit["full"], audit["reaudit"], audit["noaudit"], strict=True)
    ]
    print(
        f"    the same ratio per round (each round's own commands, which drift alike): median "
        f"{median(paired):.2f}x ({', '.join(f'{p:.2f}' for p in paired)}) (goal <= 0.2x) "
        f"{verdict(median(paired) <= 0.2)}"
    )
    plain = (m["reaudit"] - m["plain"]) / (m["full"] - m["plain"])
    print(f"    same, plain pytest subtracted: {plain:.2f}x")
    print(f"    same, whole commands: {m['reaudit'] / m['full']:.2f}x")
    print(f"    without the audit cache (ruff's own cache warm), noaudit subtracted: {before:.2f}x")

    loop, details = measure_loop(args.rounds, args.iterations)
    lm = {name: median(values) for name, values in loop.items()}
    for name, value in lm.items():
        print(f"    {name:13} median {value:6.2f} s  ({', '.join(f'{v:.2f}' for v in loop[name])})")
    for name in ("noop", "touch", "touch-nocache", "game"):
        summary = details.get(name)
        its = summary.get("iterations", []) if isinstance(summary, dict) else []
        count = len(its) or args.iterations
        per = (lm[name] - lm["base"]) / count
        reported = statistics.mean(i["duration"] for i in its) if its else float("nan")
        reasons = sorted({str(i.get("reason")) for i in its})
        line = (
            f"    {name}: {count} iterations ({'; '.join(reasons)}), per iteration "
            f"{per:.2f} s wall clock, {reported:.2f} s as the report says"
        )
        if name == "noop":
            line += f" (goal < 1 s) {verdict(per < 1.0)}"
        print(line)
    measured = measure_sandbox(args.rounds)
    if measured is not None:
        inside, alone = measured
        cost = (median(inside) - median(alone)) * 1000
        print(
            f"(c) sandbox: a call of true in bwrap {median(inside) * 1000:.1f} ms, alone "
            f"{median(alone) * 1000:.1f} ms: {cost:.1f} ms per agent call (goal < 50 ms) "
            f"{verdict(cost < 50)}"
        )
    phases = details.get("game-phases")
    if isinstance(phases, dict) and phases:
        shown = ", ".join(f"{phase} {median(values):.3f} s" for phase, values in phases.items())
        print(f"    game: median seconds per phase of an iteration: {shown}")
        cost = median(phases.get("integrity", []))
        print(
            f"    integrity checks per iteration: {cost:.3f} s (goal < 0.1 s) {verdict(cost < 0.1)}"
        )


if __name__ == "__main__":
    main()
