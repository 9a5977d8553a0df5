"""Remote runs in a real container: a docker-compose (v1) project on a real Docker engine.

The image ``pytest-orchestrator-test:bookworm`` (Debian's python3, python3-pytest,
python3-coverage) is built locally by ``tests/docker/build-image.sh``; the engine is
installed and started by ``tests/docker/start-engine.sh``. ``.ci/run`` runs both and sets
``ORCHESTRATOR_REQUIRE_DOCKER=1``, which turns a missing engine or image into a failure:
CI cannot pass these tests by skipping them. Elsewhere they skip with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from junitparser import JUnitXml

from pytest_orchestrator.models import Report

pytestmark = pytest.mark.docker

IMAGE = "pytest-orchestrator-test:bookworm"
OUTCOMES = Path(__file__).resolve().parent.parent / "examples" / "outcomes"
REQUIRED = os.environ.get("ORCHESTRATOR_REQUIRE_DOCKER") == "1"


def _missing() -> str | None:
    """Why the container tests cannot run here, or None."""
    if shutil.which("docker-compose") is None or shutil.which("docker") is None:
        return "docker and docker-compose are not installed (tests/docker/start-engine.sh)"
    info = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    if info.returncode != 0:
        return "no Docker engine is running (tests/docker/start-engine.sh starts one)"
    image = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False, timeout=60
    )
    if image.returncode != 0:
        return f"the test image {IMAGE} is missing (tests/docker/build-image.sh builds it)"
    return None


@dataclass
class Compose:
    """A running compose project whose services bind-mount a copy of examples/outcomes."""

    root: Path
    file: Path
    name: str
    project: Path

    def prefix(self, service: str = "app") -> str:
        return f"docker-compose -f {self.file} -p {self.name} exec -T {service}"

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-f", str(self.file), "-p", self.name, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    reason = _missing()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"ORCHESTRATOR_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("compose")
    project = root / "project"
    shutil.copytree(OUTCOMES, project)
    slow = project / "slow"
    slow.mkdir()
    slow.joinpath("test_sleep.py").write_text(
        "import time\n\n"
        "def test_sleeps():\n"
        "    print('about to hang: ' + 'marker-5e2b', flush=True)\n"
        "    time.sleep(120)\n"
    )
    blocker = root / "blocker" / "coverage"
    blocker.mkdir(parents=True)
    blocker.joinpath("__init__.py").write_text("raise ImportError('not installed here')\n")
    file = root / "docker-compose.yml"
    file.write_text(
        textwrap.dedent(
            f"""\
            version: "3"
            services:
              app:
                image: {IMAGE}
                working_dir: /srv/project
                environment: {{PYTHONDONTWRITEBYTECODE: "1"}}
                volumes: ["{project}:/srv/project", "{root / "blocker"}:/srv/blocker:ro"]
              elsewhere:
                image: {IMAGE}
                working_dir: /
                environment: {{PYTHONDONTWRITEBYTECODE: "1"}}
                volumes: ["{project}:/opt/app"]
              stopped:
                image: {IMAGE}
            """
        )
    )
    running = Compose(root, file, f"orchestrator-test-{os.getpid()}", project)
    up = running.compose("up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        stop = running.compose("stop", "-t", "0", "stopped")
        assert stop.returncode == 0, stop.stderr
        yield running
    finally:
        running.compose("down", "-v", "-t", "0")


def pytest_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def load(path: Path) -> Report:
    return Report.model_validate(json.loads(path.read_text()))


def junit_outcomes(path: Path, strip: str = "") -> dict[tuple[str, str], str]:
    """(classname, name) -> the result kinds of each JUnit testcase ("passed" for none)."""
    out = {}
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            kinds = sorted(type(r).__name__ for r in case.result)
            out[(case.classname.removeprefix(strip), case.name)] = ",".join(kinds) or "passed"
    return out


def short_summary(stdout: str, strip: str = "") -> list[str]:
    """The lines of pytest's short test summary (-rA), node ids without ``strip``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "short test summary info" in line)
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("="):
            break
        out.append(line.replace(f" {strip}", " ", 1) if strip else line)
    return out


def test_container_run_matches_the_same_suite_run_locally(compose: Compose) -> None:
    local_copy = compose.root / "local"
    shutil.copytree(OUTCOMES, local_copy)
    local = pytest_run(
        local_copy,
        "--orchestrate",
        "-rA",
        "--orchestrate-report=json:r.json",
        f"--junitxml={local_copy / 'local.xml'}",
    )
    remote = pytest_run(
        compose.project,
        "--orchestrate",
        f"--orchestrate-exec={compose.prefix()}",
        "-rA",
        "-v",
        "--orchestrate-report=terminal",
        f"--orchestrate-report=json:{compose.root / 'remote.json'}",
        f"--junitxml={compose.root / 'remote.xml'}",
    )

    assert remote.returncode == local.returncode == 1, remote.stdout + remote.stderr
    matcher = pytest.LineMatcher(remote.stdout.splitlines())
    matcher.fnmatch_lines(
        [
            f"running the tests in 'app' through: {compose.prefix()}",
            "app:tests/test_ops.py::test_add PASSED*",
            "app:tests/test_ops.py::test_add_params[[]1.5::x] PASSED*",
            "app:tests/test_zero.py::test_divide_by_zero PASSED*",
            "E       assert 0.3333333333333333 == 0.3",
            "tests ran in 'app' through 'docker-compose *' (Python 3.11.*, pytest 7.*, "
            "coverage 6.*): 12 tests, 1 round trip, * s",
        ]
    )
    for run in (local, remote):
        summary = [
            line for line in run.stdout.splitlines() if line.startswith("=") and " in " in line
        ]
        assert "1 failed, 7 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors" in summary[-1]
    # test by test: the same items with the same outcomes, in the host's JUnit XML and in
    # the short summary (which tells xfail and xpass apart, as JUnit does not)
    expected = junit_outcomes(local_copy / "local.xml")
    assert junit_outcomes(compose.root / "remote.xml", strip="app:") == expected
    assert len(expected) == 12
    assert expected[("tests.test_ops", "test_divide_fails")] == "Failure"
    assert expected[("tests.test_ops", "test_setup_error")] == "Error"
    assert expected[("tests.test_ops", "test_skipped")] == "Skipped"
    local_summary = short_summary(local.stdout)
    assert short_summary(remote.stdout, strip="app:") == local_summary
    words = {"PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS"}
    entries = [line for line in local_summary if line.split(" ", 1)[0] in words]
    # 12 tests, test_teardown_error both PASSED and ERROR (under CI=true pytest does not cut
    # a multi-line message to one line, so the summary has more lines than entries)
    assert len(entries) == 13
    assert "XPASS tests/test_ops.py::test_unexpectedly_fixed - was broken once" in local_summary
    here, there = load(local_copy / "r.json"), load(compose.root / "remote.json")
    assert {a.dimension: a.score for a in there.audits} == {
        a.dimension: a.score for a in here.audits
    }
    cov_here, cov_there = here.audit("coverage"), there.audit("coverage")
    assert cov_here is not None and cov_here.coverage is not None
    assert cov_there is not None and cov_there.coverage is not None
    assert [(f.path, f.percent, f.missing_lines) for f in cov_there.coverage.files] == [
        (f.path, f.percent, f.missing_lines) for f in cov_here.coverage.files
    ]
    assert {f.path for f in cov_there.coverage.files} == {
        "calc/__init__.py",
        "calc/ops.py",
        "calc/report.py",
    }
    findings_here = {(f.rule_id, f.path, f.line) for f in here.findings()}
    assert {(f.rule_id, f.path, f.line) for f in there.findings()} == findings_here
    assert not any("/srv/project" in (f.path or "") + f.message for f in there.findings())
    assert there.remote is not None
    assert (there.remote.kind, there.remote.target) == ("compose-v1", "app")
    assert (there.remote.cwd, there.remote.rootdir) == ("/srv/project", "/srv/project")
    assert there.remote.round_trips == 1 and there.remote.tests == 12
    assert there.remote.unmapped == []
    junit = (compose.root / "remote.xml").read_text()
    assert 'classname="app:tests.test_ops.TestPower" name="test_big"' in junit


def test_explicit_path_map_and_selected_paths(compose: Compose) -> None:
    result = pytest_run(
        compose.project,
        "--orchestrate",
        f"--orchestrate-exec={compose.prefix('elsewhere')}",
        "--orchestrate-path-map=/opt/app=.",
        "--orchestrate-exec-command=python3 -m pytest",
        f"--orchestrate-report=json:{compose.root / 'elsewhere.json'}",
        "-v",
        "tests/test_zero.py",
    )

    matcher = pytest.LineMatcher(result.stdout.splitlines())
    matcher.fnmatch_lines(["elsewhere:tests/test_zero.py::test_divide_by_zero PASSED*"])
    report = load(compose.root / "elsewhere.json")
    assert report.remote is not None and report.remote.cwd == "/"
    coverage = report.audit("coverage")
    assert coverage is not None and coverage.coverage is not None
    percents = {f.path: f.percent for f in coverage.coverage.files}
    assert percents["calc/ops.py"] == 38.46  # as locally: 5 of 13 lines, divide(1, 0) only
    assert report.remote.unmapped == []
    # no path given: the testpaths are mapped, not the container's working directory (/)
    everything = pytest_run(
        compose.project,
        "--orchestrate",
        f"--orchestrate-exec={compose.prefix('elsewhere')}",
        "--orchestrate-path-map=/opt/app=.",
    )
    pytest.LineMatcher(everything.stdout.splitlines()).fnmatch_lines(
        ["*= 1 failed, 7 passed, 1 skipped, 1 xfailed, 1 xpassed, 2 errors in *"]
    )


def test_timeout_stops_the_remote_pytest_too(compose: Compose) -> None:
    result = pytest_run(
        compose.project,
        "--orchestrate",
        f"--orchestrate-exec={compose.prefix()}",
        "--orchestrate-exec-command=python -m pytest -s",  # the test's print is not captured
        "--orchestrate-exec-timeout=3",
        "slow",
    )

    assert result.returncode == 1, result.stdout + result.stderr
    # the error quotes the tail of the remote output: what the test printed before it hung,
    # then the interrupted remote pytest's own report
    pytest.LineMatcher(result.stdout.splitlines()).fnmatch_lines(
        [
            "*_ ERROR at setup of test_sleeps _*",
            "the remote run timed out after 3 s before this test reported; last remote output:",
            "slow/test_sleep.py about to hang: marker-5e2b",
            "*!!! KeyboardInterrupt !!!*",
            "/srv/project/slow/test_sleep.py:5: KeyboardInterrupt",
            "*= no tests ran in *",
        ]
    )
    # Killing a docker exec client does not stop the process in the container; the
    # remote side enforces the deadline itself, so no pytest is left running there.
    survivors = compose.compose(
        "exec",
        "-T",
        "app",
        "python3",
        "-c",
        "import os\n"
        "for p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n"
        "        try: print(open(f'/proc/{p}/cmdline').read().replace(chr(0), ' '))\n"
        "        except OSError: pass\n",
    )
    assert survivors.returncode == 0, survivors.stderr
    assert "test_sleep" not in survivors.stdout and "-m pytest" not in survivors.stdout


def test_coverage_missing_in_the_container(compose: Compose) -> None:
    result = pytest_run(
        compose.project,
        "--orchestrate",
        "--orchestrate-exec="
        f"docker-compose -f {compose.file} -p {compose.name} exec -T "
        "-e PYTHONPATH=/srv/blocker app",
        f"--orchestrate-report=json:{compose.root / 'nocov.json'}",
    )

    report = load(compose.root / "nocov.json")
    coverage, tests = report.audit("coverage"), report.audit("tests")
    assert coverage is not None and tests is not None
    assert coverage.status == "unavailable", result.stdout
    assert "coverage cannot be imported in the container" in (coverage.reason or "")
    assert tests.status == "ok" and tests.tests is not None and tests.tests.passed == 6


@pytest.mark.parametrize(
    ("service", "command", "env", "message"),
    [
        (
            "stopped",
            None,
            {},
            "ERROR: --orchestrate-exec: compose service 'stopped' is not running; start it "
            "with 'docker-compose -f * -p orchestrator-test-* up -d stopped'",
        ),
        (
            "nosuch",
            None,
            {},
            "ERROR: --orchestrate-exec: compose has no service 'nosuch'; check the service "
            "name in the compose file",
        ),
        (
            "app",
            "python2 -m pytest",
            {},
            "ERROR: --orchestrate-exec: no 'python2' in compose-v1 target 'app': set "
            "--orchestrate-exec-command to its Python*",
        ),
        (
            "app",
            "python3 -S -m pytest",
            {},
            "ERROR: --orchestrate-exec: pytest is not installed for /usr/bin/python3 in 'app'*",
        ),
        (
            "app",
            None,
            {"DOCKER_HOST": "unix:///tmp/no-such-docker.sock"},
            "ERROR: --orchestrate-exec: the Docker engine is not running or not reachable *",
        ),
    ],
    ids=["service-stopped", "no-such-service", "no-python", "no-pytest", "engine-down"],
)
def test_container_faults_are_one_line_errors(
    compose: Compose, service: str, command: str | None, env: dict[str, str], message: str
) -> None:
    args = ["--orchestrate", f"--orchestrate-exec={compose.prefix(service)}"]
    if command:
        args.append(f"--orchestrate-exec-command={command}")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=compose.project,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **env},
    )

    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    pytest.LineMatcher(result.stderr.splitlines()).fnmatch_lines([message])
    assert "Traceback" not in result.stdout + result.stderr


def test_reruns_run_in_the_container_with_its_older_pytest(compose: Compose) -> None:
    # Debian bookworm's pytest 7.2 runs the host's reruns module (sent with the bootstrap)
    flaky = compose.project / "flaky"
    flaky.mkdir()
    try:
        flaky.joinpath("test_flaky.py").write_text(
            "from pathlib import Path\n\n"
            "MARK = Path(__file__).with_name('attempted')\n\n\n"
            "def test_fails_once():\n"
            "    if not MARK.exists():\n"
            "        MARK.write_text('')\n"
            "        raise AssertionError('first attempt fails')\n"
        )
        result = pytest_run(
            compose.project,
            "--orchestrate",
            "--orchestrate-dimensions=tests",
            "--orchestrate-reruns=1",
            f"--orchestrate-exec={compose.prefix()}",
            "--orchestrate-exec-command=python3 -m pytest",
            f"--orchestrate-report=json:{compose.root / 'reruns.json'}",
            "flaky/test_flaky.py",
        )
        pytest.LineMatcher(result.stdout.splitlines()).fnmatch_lines(["*= 1 passed, 1 rerun in *"])
        report = load(compose.root / "reruns.json")
        assert report.remote is not None and report.remote.pytest.startswith("7.")
        tests = report.audit("tests")
        assert tests is not None and tests.tests is not None and tests.tests.flaky == 1
        [finding] = tests.findings
        assert finding.rule_id == "flaky"
        assert "first attempt fails" in finding.message
        assert result.returncode == 0, result.stdout
    finally:
        shutil.rmtree(flaky)
