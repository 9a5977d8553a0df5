"""How long ``.ci/run``'s test step takes, and whether the machine's CPUs were the limit.

Runs the README's test command, ``pytest -n auto --orchestrate --target-score=90``, from the
repository root in the running environment (set it up as ``.ci/run`` does first: the Docker
engine and image, bubblewrap, the npm packages and the agent CLIs; the ``ORCHESTRATOR_REQUIRE_*``
variables of ``.ci/run`` are set here too, so a missing part fails instead of skipping), once
per ``--rounds`` (default 1: one run takes minutes), and prints per run:

- the wall time, against the goal of **240 s** (4 minutes);
- the CPU time the operating system counted for the whole machine over the run
  (``/proc/stat``; processes in the agents' sandboxes, which no parent reaps, are counted
  there and not in a ``getrusage`` of the children) and its share of what the CPUs could do
  in that time: near 100 % means the step is CPU-bound, and only less work makes it
  faster; well below means it waits (timeouts, retries, the network).

Standard library only. Linux (``/proc/stat``). Run on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 240.0
REQUIRE = (
    "DOCS", "BWRAP", "NETWORK", "DOCKER", "ACTIONLINT", "AGENT_CLIS", "PYRIGHT",
)  # fmt: skip


def busy_seconds() -> float:
    """CPU seconds all CPUs spent working since boot (``/proc/stat``'s ``cpu`` line: user,
    nice, system, irq and softirq; not idle, I/O wait, or steal, the time a hypervisor gave
    to others; in USER_HZ ticks)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="runs (default 1)")
    args = parser.parse_args(argv)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env.update({f"ORCHESTRATOR_REQUIRE_{name}": "1" for name in REQUIRE})
    command = [sys.executable, "-m", "pytest", "-n", "auto", "--orchestrate", "--target-score=90"]
    cpus = os.cpu_count() or 1
    walls = []
    for round_ in range(1, args.rounds + 1):
        busy, start = busy_seconds(), time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall, busy = time.perf_counter() - start, busy_seconds() - busy
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        print(f"run {round_}: exit {done.returncode}, {summary}")
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            return 1
        print(
            f"  wall {wall:.0f} s; CPU {busy:.0f} s on {cpus} CPUs, "
            f"{100 * busy / (wall * cpus):.0f} % of what they could do"
        )
        walls.append(wall)
    wall = statistics.median(walls)
    verdict = "OK" if wall <= GOAL else "MISS"
    print(f"test step: {wall:.0f} s, {wall / GOAL:.2f}x of the goal ({GOAL:.0f} s) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
