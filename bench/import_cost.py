"""What importing ``pytest_orchestrator.plugin`` adds on top of ``import pytest``.

pytest imports every installed ``pytest11`` entry point in every run, so this is a cost that
all users of an environment with the plugin installed pay, with or without ``--orchestrate``.

Method: ``python -X importtime`` prints, for each module first imported, its own ("self")
import time. We run ``-c "import pytest"`` (the baseline) and
``-c "import pytest, pytest_orchestrator.plugin"`` alternately, N times each, and per run of
the second sum the self-times of the modules that the baseline never imports (plus any
``pytest_orchestrator*`` module). The median of those sums is the plugin's import cost.
Heavy dependencies (pydantic, rich, coverage, junitparser) must not be among those modules:
they are to be imported only when ``--orchestrate`` is on.

Usage: ``python bench/import_cost.py [--runs N]``. The exit status is always 0: this is a
report, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile

BASELINE = "import pytest"
WITH_PLUGIN = "import pytest, pytest_orchestrator.plugin"
OWN_PREFIX = "pytest_orchestrator"
HEAVY = ("pydantic", "pydantic_core", "rich", "coverage", "junitparser")
GOAL_MS = 20.0


def import_times(code: str) -> dict[str, int]:
    """Run ``python -X importtime -c code``; returns module name -> self time in microseconds.

    The lines look like ``import time:       123 |        456 |     package.module``.
    """
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),  # nothing importable from the cwd
    )
    if proc.returncode != 0:
        raise SystemExit(f"`python -c {code!r}` failed:\n{proc.stderr}")
    times: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line: "self [us] | cumulative | imported package"
        name = fields[2].strip()
        times[name] = times.get(name, 0) + int(fields[0])
    return times


def added_modules(with_plugin: dict[str, int], baseline: set[str]) -> dict[str, int]:
    """The modules (and self times) of a run with the plugin that the baseline lacks."""
    return {
        name: us
        for name, us in with_plugin.items()
        if name not in baseline or name.startswith(OWN_PREFIX)
    }


def measure(runs: int, warmup: int) -> tuple[list[float], dict[str, list[int]]]:
    """Alternate baseline and plugin runs; returns the per-run costs (ms) and module times."""
    for _ in range(warmup):  # fills __pycache__ and the OS file cache
        import_times(BASELINE)
        import_times(WITH_PLUGIN)
    baseline: set[str] = set()
    plugin_runs: list[dict[str, int]] = []
    for _ in range(runs):
        baseline |= set(import_times(BASELINE))
        plugin_runs.append(import_times(WITH_PLUGIN))
    costs: list[float] = []
    per_module: dict[str, list[int]] = {}
    for run in plugin_runs:
        added = added_modules(run, baseline)
        costs.append(sum(added.values()) / 1000)
        for name, us in added.items():
            per_module.setdefault(name, []).append(us)
    return costs, per_module


def heavy_found(modules: list[str]) -> dict[str, list[str]]:
    """Heavy top-level packages among ``modules``, each with its modules."""
    found: dict[str, list[str]] = {}
    for name in modules:
        top = name.split(".")[0]
        if top in HEAVY:
            found.setdefault(top, []).append(name)
    return found


def report(costs: list[float], per_module: dict[str, list[int]], top: int) -> None:
    """Print the modules added, the goal line and the heavy-module lines."""
    ranked = sorted(per_module.items(), key=lambda item: -statistics.median(item[1]))
    print(f"modules imported by the plugin beyond `import pytest` ({len(ranked)}), slowest first:")
    for name, values in ranked[:top]:
        print(f"  {statistics.median(values) / 1000:7.2f} ms  {name}")
    if len(ranked) > top:
        print(f"  ... {len(ranked) - top} more")
    cost = statistics.median(costs)
    print(f"runs (ms): {', '.join(f'{c:.2f}' for c in costs)}")
    verdict = "OK" if cost <= GOAL_MS else "MISS"
    print(f"plugin import adds {cost:.2f} ms (goal <= {GOAL_MS:g} ms) {verdict}")
    heavy = heavy_found([name for name, _ in ranked])
    for package, modules in sorted(heavy.items()):
        ms = sum(statistics.median(per_module[m]) for m in modules) / 1000
        print(f"heavy module imported: {package} ({len(modules)} modules, {ms:.2f} ms) MISS")
    if not heavy:
        print(f"no heavy module ({', '.join(HEAVY)}) imported OK")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="measured runs (default: 9)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    parser.add_argument("--top", type=int, default=15, help="modules listed (default: 15)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {args.runs} runs (median), {sys.executable}")
    costs, per_module = measure(args.runs, args.warmup)
    report(costs, per_module, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
