"""Wall-clock cost of ``pytest --orchestrate --orchestrate-exec`` against running pytest in the
container directly, on a generated suite of 1,000 tests in a docker-compose service.

Generates, in a fresh directory under ``bench/.work/`` (git-ignored), a project with 1,000
small passing tests (20 modules of 50 test functions and parametrized cases, importing a tiny
package) and a ``docker-compose.yml`` whose service ``app`` runs the image
``pytest-orchestrator-test:bookworm`` (built by ``tests/docker/build-image.sh``) with the
project bind-mounted at ``/srv/project``, its working directory. It starts the service under a
unique compose project name (``up -d``) and always removes it at the end (``down -v``).

The exec prefix given to the plugin is a small wrapper script that appends one line to a
counter file, then execs ``docker-compose -f FILE -p PROJECT exec -T app "$@"``: it counts the
exec round trips of each orchestrated run independently of the plugin's own report.

Then it times, interleaved (A B C D A B C D ...) so that a noisy machine slows all of them
alike:

* A  ``pytest --orchestrate --orchestrate-dimensions=tests --orchestrate-exec=WRAPPER -q``
  on the host, in the project directory
* B  ``docker-compose ... exec -T app python -m pytest -q``: the same suite run directly in
  the container
* C  A with ``--orchestrate-dimensions=tests,coverage``
* D  ``docker-compose ... exec -T app python -m coverage run --source=benchpkg -m pytest -q``
  (``--source`` is what the plugin sends the remote coverage too: the discovered package)

and, in an empty directory:

* E  ``pytest -q`` with no test (exit status 5): the host's start-up and shutdown alone, so
  ``(B + E) / B`` is the least A/B can be unless host work overlaps the round trip

Host commands run with only pytest-orchestrator's plugin loaded
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` and ``-p pytest_orchestrator.plugin``: the container has
pytest alone), and no command gets ``PYTHONDONTWRITEBYTECODE`` (see ``environment``). Every
pytest command gets ``-p no:cacheprovider``. Orchestrated runs write a JSON report; each must
have replayed 1,000 passed tests (``remote.tests`` and pytest's ``1000 passed``), every direct
run must print ``1000 passed``. The report gives medians, the ratios A/B and C/D, the exec
round trips per orchestrated run counted by the wrapper, and where A's time goes: the exec
round trip (``remote.duration`` of the JSON report) and the rest, on the host.

Usage: ``python bench/remote_exec.py [--rounds N] [--no-coverage] [--keep]``. Needs a
running Docker engine, docker-compose v1 and the image (``tests/docker/start-engine.sh``,
``tests/docker/build-image.sh``). Exit status: 0 when every run passed (a missed goal is
reported, not an error), 1 when a run failed or replayed the wrong tests (its output is
shown), 2 when the engine, docker-compose or the image is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_WORK = HERE / ".work"
IMAGE = "pytest-orchestrator-test:bookworm"
SERVICE = "app"
MOUNT = "/srv/project"
PACKAGE = "benchpkg"
MODULES = 20
#: Per module: 40 plain test functions and 2 parametrized ones with 5 cases each.
PLAIN_TESTS = 40
PARAMETRIZED = ((2, 5),)
EXPECTED = MODULES * (PLAIN_TESTS + sum(n * cases for n, cases in PARAMETRIZED))
PYTEST_COMMON = ["-p", "no:cacheprovider"]
#: Host runs load pytest-orchestrator and no other plugin installed here (the container has
#: pytest alone): hypothesis's plugin, for one, imports hypothesis at the end of every session.
HOST_PLUGINS = ["-p", "pytest_orchestrator.plugin"]


def environment(host: bool) -> dict[str, str]:
    """The timed commands' environment: this one, without PYTHONDONTWRITEBYTECODE (with it,
    pytest's assertion rewriter recompiles every plugin module it rewrites on every run, as
    no machine of a user does), and for host runs PYTEST_DISABLE_PLUGIN_AUTOLOAD=1."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if host:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


RATIO_GOAL = 1.15
ROUND_TRIP_GOAL = 3
SETUP_HINT = (
    "start the engine with tests/docker/start-engine.sh and build the image with "
    "tests/docker/build-image.sh"
)


class Failed(Exception):
    """A benchmarked run failed; the message says which and shows its output."""


@dataclass(frozen=True)
class Command:
    """A benchmarked command: ``orchestrated`` ones are checked through their JSON report."""

    key: str
    title: str
    argv: list[str]
    cwd: Path
    orchestrated: bool = False
    #: a pytest session with no test (exit status 5): the host's start-up and shutdown alone
    empty: bool = False


@dataclass
class Timings:
    """Per command: wall-clock seconds per round; for orchestrated commands also the round
    trip seconds from the JSON report and the round trips counted by the wrapper."""

    total: list[float] = field(default_factory=list)
    round_trip: list[float] = field(default_factory=list)
    counted: list[int] = field(default_factory=list)
    reported: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Setup:
    """The generated files and the compose project."""

    root: Path
    project: Path
    compose_file: Path
    compose_name: str
    wrapper: Path
    counter: Path
    logs: Path

    def compose(self, *args: str) -> list[str]:
        """A docker-compose argv for this compose project."""
        return ["docker-compose", "-f", str(self.compose_file), "-p", self.compose_name, *args]


# -- the generated project ------------------------------------------------------------------

PACKAGE_SOURCE = '''\
"""A tiny package for the generated tests to import."""


def add(a, b):
    return a + b


def scale(values, factor):
    return [v * factor for v in values]


def classify(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    return "positive"


class Counter:
    def __init__(self):
        self.count = 0

    def bump(self, by=1):
        self.count += by
        return self.count
'''


def test_module(index: int, test_ms: float = 0.0) -> str:
    """The source of ``tests/test_mod_NN.py``: PLAIN_TESTS functions, then the parametrized.

    :param test_ms: milliseconds each test also sleeps (I/O-like work, e.g. a database call).
    """
    wait = f"time.sleep({test_ms / 1000!r})\n    " if test_ms else ""
    parts = [
        f'"""Generated module {index}."""\n\nimport time\n\nimport pytest\n\n'
        f"from {PACKAGE} import Counter, add, classify, scale\n"
    ]
    checks = (
        "assert add({i}, {m}) == {s}",
        "assert scale([{i}, {m}], 2) == [{i2}, {m2}]",
        "assert classify({i} - {m}) == {sign!r}",
        "counter = Counter()\n    counter.bump({i})\n    assert counter.bump() == {i} + 1",
    )
    for number in range(PLAIN_TESTS):
        i, m = number, index
        body = checks[number % len(checks)].format(
            i=i,
            m=m,
            s=i + m,
            i2=2 * i,
            m2=2 * m,
            sign="negative" if i < m else ("zero" if i == m else "positive"),
        )
        parts.append(f"\n\ndef test_{number:03d}():\n    {wait}{body}\n")
    for count, cases in PARAMETRIZED:
        for number in range(count):
            values = ", ".join(f"({k}, {k + index})" for k in range(cases))
            parts.append(
                f'\n\n@pytest.mark.parametrize(("value", "expected"), [{values}])\n'
                f"def test_param_{number}(value, expected):\n"
                f"    {wait}assert add(value, {index}) == expected\n"
            )
    return "".join(parts)


def compose_yaml(project: Path) -> str:
    """The compose file: one service with the project bind-mounted as its working dir."""
    return textwrap.dedent(
        f"""\
        version: "3.8"
        services:
          {SERVICE}:
            image: {IMAGE}
            command: ["sleep", "infinity"]
            user: "{os.getuid()}:{os.getgid()}"
            working_dir: {MOUNT}
            volumes:
              - type: bind
                source: {json.dumps(str(project))}
                target: {MOUNT}
        """
    )


def wrapper_script(setup: Setup) -> str:
    """The exec prefix: count one round trip, then exec the compose exec with "$@"."""
    prefix = " ".join(_sh_quote(a) for a in setup.compose("exec", "-T", SERVICE))
    return (
        "#!/bin/sh\n"
        "# Exec prefix for bench/remote_exec.py: one line per round trip, then the real exec.\n"
        f'echo "$$" >> {_sh_quote(str(setup.counter))}\n'
        f'exec {prefix} "$@"\n'
    )


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def generate(work: Path, test_ms: float = 0.0) -> Setup:
    """Write the project, the compose file and the wrapper into a new directory of ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="remote_exec-", dir=work))
    project = root / "project"
    (project / PACKAGE).mkdir(parents=True)
    (project / "tests").mkdir()
    (project / PACKAGE / "__init__.py").write_text(PACKAGE_SOURCE, encoding="utf-8")
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "benchproject"\n'
        'version = "0"\n\n'
        "[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'pythonpath = ["."]\n',
        encoding="utf-8",
    )
    for index in range(MODULES):
        (project / "tests" / f"test_mod_{index:02d}.py").write_text(
            test_module(index, test_ms), encoding="utf-8"
        )
    compose_dir = root / "compose"
    compose_dir.mkdir()
    compose_file = compose_dir / "docker-compose.yml"
    compose_file.write_text(compose_yaml(project), encoding="utf-8")
    logs = root / "logs"
    logs.mkdir()
    setup = Setup(
        root=root,
        project=project,
        compose_file=compose_file,
        compose_name=f"orchbench{uuid.uuid4().hex[:10]}",
        wrapper=root / "exec-wrapper.sh",
        counter=root / "round-trips.txt",
        logs=logs,
    )
    setup.wrapper.write_text(wrapper_script(setup), encoding="utf-8")
    setup.wrapper.chmod(0o755)
    return setup


# -- the engine -----------------------------------------------------------------------------


def check_engine() -> str | None:
    """None when the engine answers, docker-compose runs and the image exists; else why not."""
    for name in ("docker", "docker-compose"):
        if shutil.which(name) is None:
            return f"{name} is not installed"
    info = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines()
        return f"the Docker engine is not reachable ({lines[-1] if lines else 'no message'})"
    image = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, text=True, check=False
    )
    if image.returncode != 0:
        return f"the image {IMAGE} does not exist"
    return None


def versions() -> str:
    """docker and docker-compose versions, for the header."""
    out = []
    for argv in (
        ["docker", "version", "--format", "{{.Server.Version}}"],
        ["docker-compose", "version", "--short"],
    ):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        out.append(proc.stdout.strip() or "?")
    return f"Docker engine {out[0]}, docker-compose {out[1]}"


def run_checked(argv: list[str], cwd: Path | None = None) -> str:
    """Run a preparation step; raise Failed with its output when it fails."""
    proc = subprocess.run(
        argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise Failed(
            f"failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def remote_versions(setup: Setup) -> str:
    """Python, pytest and coverage versions in the service."""
    code = (
        "import sys, pytest, coverage; "
        "print('Python', sys.version.split()[0], 'pytest', pytest.__version__, "
        "'coverage', coverage.__version__)"
    )
    return run_checked(setup.compose("exec", "-T", SERVICE, "python", "-c", code)).strip()


# -- the runs -------------------------------------------------------------------------------


def commands(setup: Setup, coverage: bool) -> list[Command]:
    """The commands compared, in the order they run within a round."""
    host = [sys.executable, "-m", "pytest", *HOST_PLUGINS, *PYTEST_COMMON, "--orchestrate"]
    exec_ = ["--orchestrate-exec=" + str(setup.wrapper), "-q"]
    direct = setup.compose("exec", "-T", SERVICE, "python", "-m")
    direct_opts = [*PYTEST_COMMON, "-q"]
    compose_dir = setup.compose_file.parent
    cmds = [
        Command(
            "A",
            "host pytest --orchestrate (tests) --orchestrate-exec=WRAPPER",
            [*host, "--orchestrate-dimensions=tests", *exec_],
            setup.project,
            orchestrated=True,
        ),
        Command(
            "B",
            "docker-compose exec -T app python -m pytest",
            [*direct, "pytest", *direct_opts],
            compose_dir,
        ),
    ]
    empty = setup.root / "empty"
    empty.mkdir(exist_ok=True)
    cmds.append(
        Command(
            "E",
            "host pytest with no test (start-up and shutdown alone)",
            [sys.executable, "-m", "pytest", *HOST_PLUGINS, *PYTEST_COMMON, "-q"],
            empty,
            empty=True,
        )
    )
    if coverage:
        cmds += [
            Command(
                "C",
                "host pytest --orchestrate (tests,coverage) --orchestrate-exec=WRAPPER",
                [*host, "--orchestrate-dimensions=tests,coverage", *exec_],
                setup.project,
                orchestrated=True,
            ),
            Command(
                "D",
                f"docker-compose exec -T app python -m coverage run --source={PACKAGE} -m pytest",
                [*direct, "coverage", "run", f"--source={PACKAGE}", "-m", "pytest", *direct_opts],
                compose_dir,
            ),
        ]
    return cmds


_PASSED = re.compile(r"\b(\d+) passed\b")
_BAD = re.compile(r"\b\d+ (failed|errors?|skipped|xfailed|xpassed)\b")


def check_summary(text: str) -> str | None:
    """None when pytest's last summary line says exactly EXPECTED passed; else the problem."""
    lines = [line for line in text.splitlines() if _PASSED.search(line) or _BAD.search(line)]
    if not lines:
        return "no pytest summary line with 'passed' in the output"
    last = lines[-1]
    found = _PASSED.search(last)
    if _BAD.search(last) or found is None or int(found.group(1)) != EXPECTED:
        return f"pytest's summary is {last.strip()!r}, expected {EXPECTED} passed and nothing else"
    return None


def show(log: Path, lines: int = 60) -> str:
    """The end of a log, indented."""
    text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(f"      | {line}" for line in text[-lines:])


def run_one(command: Command, setup: Setup, number: int, timings: Timings | None) -> None:
    """Run ``command`` once, check it, and record its figures unless ``timings`` is None.

    :raises Failed: non-zero exit, wrong test count, or a missing or wrong JSON report.
    """
    log = setup.logs / f"{command.key}-{number}.log"
    argv = list(command.argv)
    report = setup.logs / f"{command.key}-{number}.json"
    if command.orchestrated:
        argv.append(f"--orchestrate-report=json:{report}")
        setup.counter.write_text("", encoding="utf-8")
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            argv,
            cwd=command.cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment(host=command.orchestrated or command.empty),
            check=False,
        )
        elapsed = time.perf_counter() - started
    shown = " ".join([Path(argv[0]).name, *argv[1:]])
    what = f"{command.key} ({command.title}) exited {proc.returncode}"
    if proc.returncode != (5 if command.empty else 0):
        raise Failed(f"{what}\n  command: {shown}\n  cwd: {command.cwd}\n{show(log)}")
    if command.empty:
        if timings is not None:
            timings.total.append(elapsed)
        if number == 0:
            print(f"  {command.key}: exit 5, no tests  ({shown})", flush=True)
        return
    problem = check_summary(log.read_text(encoding="utf-8", errors="replace"))
    if problem:
        raise Failed(f"{command.key}: {problem}\n  command: {shown}\n{show(log)}")
    counted = reported = 0
    round_trip = 0.0
    if command.orchestrated:
        counted = len(setup.counter.read_text(encoding="utf-8").splitlines())
        try:
            remote = json.loads(report.read_text(encoding="utf-8"))["remote"]
            reported, tests, round_trip = (
                int(remote["round_trips"]),
                int(remote["tests"]),
                float(remote["duration"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Failed(f"{command.key}: no usable 'remote' in {report}: {exc!r}") from None
        if tests != EXPECTED:
            raise Failed(
                f"{command.key}: the JSON report says remote.tests={tests}, not {EXPECTED}"
            )
    if timings is not None:
        timings.total.append(elapsed)
        if command.orchestrated:
            timings.round_trip.append(round_trip)
            timings.counted.append(counted)
            timings.reported.append(reported)
    if number == 0:
        extra = (
            f", {counted} round trip(s) counted, {reported} reported, remote.tests={EXPECTED}"
            if command.orchestrated
            else ""
        )
        print(f"  {command.key}: exit 0, {EXPECTED} passed{extra}  ({shown})", flush=True)


# -- the report -----------------------------------------------------------------------------


def report(cmds: list[Command], timings: dict[str, Timings]) -> bool:
    """Print medians, the breakdown of orchestrated runs and the goals; True if all met."""
    medians = {c.key: statistics.median(timings[c.key].total) for c in cmds}
    print("\nmedians, seconds (min-max):")
    for command in cmds:
        data = timings[command.key]
        print(
            f"  {command.key}  {medians[command.key]:6.2f}  ({min(data.total):.2f}-"
            f"{max(data.total):.2f})  {command.title}"
        )
        if command.orchestrated:
            trip = statistics.median(data.round_trip)
            host = statistics.median(
                t - r for t, r in zip(data.total, data.round_trip, strict=True)
            )
            print(f"           {trip:6.2f}  exec round trip (remote.duration of the JSON report)")
            print(f"           {host:6.2f}  rest, on the host (startup, plugin, replay, report)")
    pairs = [(a, b) for a, b in (("A", "B"), ("C", "D")) if a in medians and b in medians]
    rows: list[tuple[str, str, str, bool]] = []
    for num, den in pairs:
        ratio = medians[num] / medians[den]
        rows.append(
            (
                f"{num}/{den} orchestrated vs direct exec",
                f"{ratio:.2f}x",
                f"<= {RATIO_GOAL:g}x",
                ratio <= RATIO_GOAL,
            )
        )
    if "E" in medians:
        floor = (medians["B"] + medians["E"]) / medians["B"]
        print(
            f"\n  (B + E)/B = {floor:.2f}x: what A/B would be if the host added nothing but an "
            "empty pytest session to the direct run"
        )
    for command in cmds:
        if command.orchestrated:
            data = timings[command.key]
            worst = max(data.counted)
            same = data.counted == data.reported
            rows.append(
                (
                    f"{command.key} exec round trips per run (wrapper)",
                    f"{worst}" + ("" if same else f" (report says {max(data.reported)})"),
                    f"<= {ROUND_TRIP_GOAL}",
                    worst <= ROUND_TRIP_GOAL and same,
                )
            )
    width = max(len(r[0]) for r in rows)
    print(f"\n  {'':{width}}  {'measured':>9}  {'goal':>8}")
    for label, value, goal, ok in rows:
        print(f"  {label:{width}}  {value:>9}  {goal:>8}  {'OK' if ok else 'MISS'}")
    return all(r[3] for r in rows)


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first, to warm caches (default: 1)"
    )
    parser.add_argument(
        "--no-coverage", action="store_true", help="time only A and B (not C and D)"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=DEFAULT_WORK,
        help="where the project is generated (default: bench/.work)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated project and logs afterwards"
    )
    parser.add_argument(
        "--test-ms",
        type=float,
        default=0.0,
        help="milliseconds each test sleeps, as tests doing I/O would (default: 0, trivial tests)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    return args


def bench(setup: Setup, args: argparse.Namespace) -> int:
    """Start the service, run the rounds, report; returns the exit status."""
    print(f"starting compose project {setup.compose_name} ({IMAGE}) ...", flush=True)
    run_checked(setup.compose("up", "-d"), cwd=setup.compose_file.parent)
    print(f"in the container: {remote_versions(setup)}")
    cmds = commands(setup, coverage=not args.no_coverage)
    timings = {c.key: Timings() for c in cmds}
    total = args.warmup + args.rounds
    print(
        f"{args.warmup} warm-up + {args.rounds} timed rounds, interleaved "
        f"{' '.join(c.key for c in cmds)}; logs in {setup.logs}"
    )
    for number in range(total):
        warmup = number < args.warmup
        print(
            f"round {number + 1}/{total}{' (warm-up, untimed)' if warmup else ''}"
            f"{': checks' if number == 0 else ''}",
            flush=True,
        )
        for command in cmds:
            run_one(command, setup, number, None if warmup else timings[command.key])
    report(cmds, timings)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check_engine()
    if problem:
        print(f"remote_exec: {problem}; {SETUP_HINT}", file=sys.stderr)
        return 2
    setup = generate(args.work_dir.resolve(), args.test_ms)
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {versions()}; "
        f"{EXPECTED} tests ({MODULES} modules) in {setup.project}"
    )
    status = 1
    try:
        status = bench(setup, args)
    except Failed as exc:
        sys.stdout.flush()
        print(f"\nFAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        print(f"removing compose project {setup.compose_name} (down -v) ...", flush=True)
        down = subprocess.run(
            setup.compose("down", "-v", "-t", "1"),
            cwd=setup.compose_file.parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if down.returncode != 0:
            print(f"docker-compose down failed:\n{down.stdout}{down.stderr}", file=sys.stderr)
            status = status or 1
    if args.keep or status != 0:
        print(f"kept {setup.root}")
    else:
        shutil.rmtree(setup.root, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
