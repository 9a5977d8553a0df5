"""Wall-clock cost of ``pytest --orchestrate`` against what a user runs today, on click's suite.

Prepares click's test suite (sdist from PyPI, unpacked under ``bench/.work/`` and installed
editable into the running interpreter's environment), then times these commands in click's
directory, interleaved (A B C D E A B C D E ...) so that a noisy machine slows all of them
alike, and compares their medians with the goals:

* A  ``pytest --orchestrate --orchestrate-report=terminal -q`` (tests, coverage, lint, security)
* B  ``pytest --cov=click -q -p no:orchestrator``, then ``ruff check --no-fix .``, then
  ``bandit -r src -q`` (sum of the three: the sequential equivalent of A)
* C  ``pytest --cov=click -q -p no:orchestrator``
* D  ``pytest -q -p no:orchestrator`` (no coverage)
* E  ``pytest -q`` with the plugin installed but not enabled

Every pytest command gets ``-p no:cacheprovider`` so that the plugin is the only difference,
and ``-W ignore::pytest.PytestDeprecationWarning``: click 8.1.8 sets ``filterwarnings = error``
and passes an iterator to ``parametrize``, which pytest 9 deprecates, so without the filter
its collection fails before any test runs, with or without the plugin (``--strict-warnings``
drops the filter, to see that).
``ruff`` gets ``--no-fix`` because click's ruff configuration sets ``fix = true``, which would
rewrite the sources between rounds (the plugin's lint audit runs ruff with ``--no-fix`` too).

With ``--line-coverage`` the commands run in a copy of click whose coverage configuration
measures lines, not branches, and a command F is added: ``pytest --cov=click`` on coverage's
``sysmon`` core, the floor of A/D (on Python 3.12 and 3.13, sysmon takes lines only).
Every command runs without ``PYTHONDONTWRITEBYTECODE`` (see bench/README.md).

Usage: ``python bench/gate_vs_sequential.py [--rounds N] [--line-coverage]``. The exit status
is always 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = HERE / ".work"
CLICK_VERSION = "8.1.8"
#: Given to every pytest command (see the module docstring).
PYTEST_COMMON = ["-p", "no:cacheprovider"]
DEPRECATION_FILTER = ["-W", "ignore::pytest.PytestDeprecationWarning"]


@dataclass(frozen=True)
class Command:
    """A benchmarked command: one or more steps (argv lists) whose times are summed."""

    key: str
    title: str
    steps: tuple[tuple[str, list[str]], ...]
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class Timings:
    """Wall-clock seconds per round, for the whole command and for each of its steps."""

    total: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Goal:
    """A ratio of two commands' medians and the most it may be."""

    numerator: str
    denominator: str
    limit: float
    label: str
    note: str = ""


def tool(name: str) -> list[str]:
    """The argv prefix of a console script: next to ``sys.executable``, on PATH, or ``-m``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", name]


def run_quiet(argv: list[str], cwd: Path | None = None) -> None:
    """Run a preparation step; stop with its output when it fails."""
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout + proc.stderr)
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(argv)}")


def download_sdist(version: str, dist_dir: Path) -> Path:
    """Download click's sdist (source only, no dependencies) into ``dist_dir``."""
    sdist = dist_dir / f"click-{version}.tar.gz"
    if not sdist.is_file():
        dist_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading click {version} sdist from PyPI ...", flush=True)
        run_quiet(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"click=={version}",
                "-d",
                str(dist_dir),
            ]
        )
    return sdist


def unpack(sdist: Path, dest: Path) -> Path:
    """Unpack the sdist into ``dest``; returns the project directory."""
    project = dest / sdist.name.removesuffix(".tar.gz")
    if not (project / "pyproject.toml").is_file():
        print(f"unpacking {sdist.name} ...", flush=True)
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(dest, filter="data")
            else:  # Python without extraction filters (before 3.11.4)
                archive.extractall(dest)  # an sdist just downloaded from PyPI
    return project


def install(project: Path) -> None:
    """Install click editable into the running environment, unless it already points here."""
    probe = subprocess.run(
        [sys.executable, "-c", "import click; print(click.__file__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    src = (project / "src" / "click").resolve()
    if probe.returncode == 0 and Path(probe.stdout.strip()).resolve().parent == src:
        return
    print(f"installing {project.name} (pip install --no-deps -e) ...", flush=True)
    run_quiet([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(project)])


def prepare(work: Path, version: str) -> Path:
    """Download, unpack and install click; returns its project directory."""
    project = unpack(download_sdist(version, work / "dist"), work)
    install(project)
    return project


def line_coverage_copy(project: Path) -> Path:
    """A copy of click's project whose coverage configuration measures lines, not branches
    (``branch = true`` removed from ``[tool.coverage.run]``): coverage's sysmon core takes
    branches only from Python 3.14, so this is the setting where 3.12 and 3.13 can use it."""
    copy = project.with_name(project.name + "-line")
    if not (copy / "pyproject.toml").is_file():
        shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".pytest_cache", ".coverage*"))
        config = copy / "pyproject.toml"
        text = config.read_text(encoding="utf-8")
        if "branch = true\n" not in text:
            raise SystemExit(f"{config}: no 'branch = true' to remove")
        config.write_text(text.replace("branch = true\n", ""), encoding="utf-8")
    return copy


def commands(common: list[str], floor: bool = False) -> list[Command]:
    """The commands compared, in the order they run within a round.

    :param common: arguments given to every pytest command.
    :param floor: add F, ``pytest --cov`` on coverage's sysmon core (``COVERAGE_CORE``).
    """
    pytest, ruff, bandit = tool("pytest"), tool("ruff"), tool("bandit")
    gate = [*pytest, "--orchestrate", *common, "-q", "--orchestrate-report=terminal"]
    cov = [*pytest, "--cov=click", "-q", "-p", "no:orchestrator", *common]
    return [
        Command("A", "pytest --orchestrate (tests,coverage,lint,security)", (("gate", gate),)),
        Command(
            "B",
            "pytest --cov, then ruff, then bandit",
            (
                ("pytest --cov", cov),
                ("ruff", [*ruff, "check", "--no-fix", "."]),
                ("bandit", [*bandit, "-r", "src", "-q"]),
            ),
        ),
        Command("C", "pytest --cov=click", (("pytest --cov", cov),)),
        Command(
            "D",
            "pytest -p no:orchestrator (no coverage)",
            (("pytest", [*pytest, "-q", "-p", "no:orchestrator", *common]),),
        ),
        Command(
            "E",
            "pytest, plugin installed, not enabled",
            (("pytest", [*pytest, "-q", *common]),),
        ),
    ] + (
        [Command("F", "pytest --cov=click, sysmon core", (("pytest --cov", cov),), _SYSMON)]
        if floor
        else []
    )


_SYSMON = (("COVERAGE_CORE", "sysmon"),)


def time_step(
    argv: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """Run one step with its output in ``log``; returns (seconds, exit status)."""
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
        elapsed = time.perf_counter() - started
    return elapsed, proc.returncode


def tail(log: Path, lines: int) -> list[str]:
    """The last ``lines`` non-blank lines of a log."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if line.strip()][-lines:]


def show_first_round(command: Command, label: str, argv: list[str], code: int, log: Path) -> None:
    """Print a step's exit status and the end of its output, once, so a reader sees them."""
    shown_argv = " ".join([Path(argv[0]).name, *argv[1:]])
    print(f"  {command.key} {label}: exit {code}  ({shown_argv})")
    shown = tail(log, 1)
    if command.key == "A":  # the gate's verdict and conditions, or how the run ended
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
        start = next((i for i, line in enumerate(text) if line.startswith("Quality gate")), None)
        shown = text[start:] if start is not None else tail(log, 15)
    for line in shown[:30]:
        print(f"      | {line}")


def run_round(
    cmds: list[Command],
    cwd: Path,
    logs: Path,
    timings: dict[str, Timings],
    record: bool,
    show: bool,
    base_env: dict[str, str] | None = None,
) -> None:
    """Run every command once, in order; record the times unless this is a warm-up."""
    for command in cmds:
        total = 0.0
        env = {**(base_env or os.environ), **dict(command.env)}
        for label, argv in command.steps:
            log = logs / f"{command.key}-{label.replace(' ', '_')}.log"
            seconds, code = time_step(argv, cwd, log, env)
            total += seconds
            if show:
                show_first_round(command, label, argv, code, log)
            if record:
                timings[command.key].steps.setdefault(label, []).append(seconds)
        if record:
            timings[command.key].total.append(total)


def goals(floor: bool = False) -> list[Goal]:
    """The issue's goals for the ratios of medians (with ``floor``: F/D, the sysmon floor
    of A/D, is printed as well)."""
    sysmon = sys.version_info >= (3, 12)
    note = (
        ""
        if sysmon
        else (
            "  [goal applies to Python 3.12+, where coverage's sysmon core is available; "
            f"this is {platform.python_version()}, informational only]"
        )
    )
    return [
        Goal("A", "B", 0.9, "A/B gate vs sequential pytest --cov + ruff + bandit"),
        Goal("A", "C", 1.05, "A/C gate vs pytest --cov alone"),
        Goal("A", "D", 1.3, "A/D gate vs pytest without coverage", note),
        Goal("E", "D", 1.02, "E/D plugin installed but off vs -p no:orchestrator"),
    ] + (
        [Goal("F", "D", 1.3, "F/D pytest --cov on sysmon vs pytest (the floor of A/D)")]
        if floor
        else []
    )


def report(cmds: list[Command], timings: dict[str, Timings], floor: bool = False) -> None:
    """Print medians (with min-max spread) and the goal lines."""
    print("\nmedians, seconds (min-max):")
    medians = {}
    for command in cmds:
        data = timings[command.key]
        medians[command.key] = statistics.median(data.total)
        print(
            f"  {command.key}  {medians[command.key]:7.2f}  ({min(data.total):.2f}-"
            f"{max(data.total):.2f})  {command.title}"
        )
        if len(command.steps) > 1:
            for label, values in data.steps.items():
                print(f"       {statistics.median(values):7.2f}  {label}")
    print()
    for goal in goals(floor):
        ratio = medians[goal.numerator] / medians[goal.denominator]
        verdict = "OK" if ratio <= goal.limit else "MISS"
        print(f"{goal.label}: {ratio:.2f}x (goal <= {goal.limit:g}x) {verdict}{goal.note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first, to warm caches (default: 1)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK,
        help="where click is downloaded and unpacked (default: bench/.work)",
    )
    parser.add_argument(
        "--click-version",
        default=CLICK_VERSION,
        help=f"click release whose suite is run (default: {CLICK_VERSION})",
    )
    parser.add_argument(
        "--line-coverage",
        action="store_true",
        help="run in a copy of click whose coverage measures lines, not branches, and add F, "
        "pytest --cov on the sysmon core (the floor of A/D on Python 3.12 and 3.13)",
    )
    parser.add_argument(
        "--strict-warnings",
        action="store_true",
        help="do not add -W ignore::pytest.PytestDeprecationWarning to the pytest commands",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work_dir.resolve()
    project = prepare(work, args.click_version)
    base_env = dict(os.environ)
    base_env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on users' machines (bench/README.md)
    if args.line_coverage:
        project = line_coverage_copy(project)
        # the copy's click, not the editable install's, is the one the tests import
        base_env["PYTHONPATH"] = str(project / "src")
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    common = PYTEST_COMMON + ([] if args.strict_warnings else DEPRECATION_FILTER)
    cmds = commands(common, floor=args.line_coverage)
    timings = {command.key: Timings() for command in cmds}
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, click "
        f"{args.click_version} in {project}"
    )
    print(
        f"{args.warmup} warm-up + {args.rounds} timed rounds, interleaved "
        f"{' '.join(c.key for c in cmds)}; logs in {logs}"
    )
    total_rounds = args.warmup + args.rounds
    for number in range(total_rounds):
        warmup = number < args.warmup
        print(
            f"round {number + 1}/{total_rounds}{' (warm-up, untimed)' if warmup else ''}"
            f"{': exit statuses' if number == 0 else ''}",
            flush=True,
        )
        run_round(cmds, project, logs, timings, not warmup, number == 0, base_env)
    report(cmds, timings, floor=args.line_coverage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
