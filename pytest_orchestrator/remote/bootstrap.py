"""The program that runs inside the container: one pytest run, its artifacts on stdout.

The host sends this file's source as ``PYTHON -c SOURCE OPTIONS_JSON`` through the exec
prefix, so the container needs nothing of ours: only a Python (3.7 or newer) with pytest,
and coverage for the coverage dimension. It must stay standard-library only and
compatible with Python 3.7.

It runs ``PYTHON [-m coverage run ...] -m pytest ... ARGS`` in a child process with a
deadline, then prints one bundle on stdout between :data:`BEGIN` and :data:`END` lines:
base64 of zlib-compressed JSON with the JUnit XML, the collection manifest written by a
small probe plugin (rootdir, collected node ids with locations, collection errors, failed
attempts that ran again), the covered lines or arcs per file, the exit status, versions
and the tail of the output. With ``--orchestrate-reruns``, the host also sends the source
of ``pytest_orchestrator/reruns.py`` (standard library and pytest 7+ only), which the
probe registers. Nothing is left behind in the container: the work directory is removed.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from typing import Any

PROTOCOL = 1
BEGIN = "@@pytest-orchestrator-bundle-begin@@"
END = "@@pytest-orchestrator-bundle-end@@"
PROBE = "_pytest_orchestrator_probe"
#: The module name of the host's ``pytest_orchestrator/reruns.py`` in the container.
RERUNS = "_pytest_orchestrator_reruns"
TAIL_BYTES = 8192
KILL_GRACE = 10.0  # seconds between SIGINT, SIGTERM and SIGKILL after the deadline

PROBE_SOURCE = """
import json, os

import pytest

_state = {
    "pytest": pytest.__version__, "rootdir": None, "items": None,
    "collect_errors": [], "collect_skips": [], "xpassed": [], "reruns": [],
    "reruns_unsupported": None,
}
_coverage = []


def _dump():
    path = os.environ["PYTEST_ORCHESTRATOR_MANIFEST"]
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as handle:
        json.dump(_state, handle)
    os.replace(temporary, path)


def pytest_addoption(parser):
    # The project's ini may hold pytest-orchestrator's settings, meant for the host: known
    # here, they are no "Unknown config option" (an error under filterwarnings = error).
    for name in json.loads(os.environ.get("PYTEST_ORCHESTRATOR_INI") or "[]"):
        parser.addini(name, "pytest-orchestrator's, read on the host")


def _register_reruns(config):
    # --orchestrate-reruns: the host's reruns.py, written next to this file
    count = int(os.environ.get("PYTEST_ORCHESTRATOR_RERUNS") or 0)
    if not count:
        return
    if int(pytest.__version__.split(".")[0]) < 7:
        _state["reruns_unsupported"] = pytest.__version__
        return
    import _pytest_orchestrator_reruns as reruns

    if not reruns.rerunfailures_active(config):
        config.pluginmanager.register(reruns.Reruns(count), "pytest-orchestrator-reruns")


def pytest_configure(config):
    _register_reruns(config)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: measure it, report nothing
        options = os.environ.get("PYTEST_ORCHESTRATOR_COVERAGE")
        if options:
            import coverage
            options = json.loads(options)
            cov = coverage.Coverage(
                data_suffix=True, source=options["source"] or None,
                branch=options["branch"], config_file=options.get("rcfile") or True,
            )
            cov.start()
            _coverage.append(cov)
        return
    config.pluginmanager.register(_Controller(), "pytest-orchestrator-probe-controller")
    _state["rootdir"] = str(getattr(config, "rootpath", None) or config.rootdir)
    _dump()


def pytest_unconfigure(config):
    for cov in _coverage:
        cov.stop()
        cov.save()


class _Controller:
    def pytest_collectreport(self, report):
        if report.failed:
            text = getattr(report, "longreprtext", None) or str(report.longrepr)
            _state["collect_errors"].append([report.nodeid, text])
        elif report.skipped and report.longrepr:
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            _state["collect_skips"].append([report.nodeid, reason])

    def pytest_collection_finish(self, session):
        _state["items"] = [
            [i.nodeid, i.location[0], i.location[1], str(getattr(i, "path", None) or i.fspath)]
            for i in session.items
        ]
        _dump()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        if not _state["items"]:
            _state["items"] = [[nodeid, None, None, None] for nodeid in ids]
            _dump()

    def pytest_runtest_logreport(self, report):
        if str(report.outcome) == "rerun":  # a failed attempt that ran again
            crash = getattr(report.longrepr, "reprcrash", None)
            text = getattr(report, "longreprtext", None) or str(report.longrepr or "")
            message = getattr(crash, "message", None) or ""
            _state["reruns"].append([report.nodeid, report.when, message, text])
            return
        if report.when == "call" and report.passed and hasattr(report, "wasxfail"):
            _state["xpassed"].append([report.nodeid, report.wasxfail])

    def pytest_sessionfinish(self, session):
        _dump()
"""


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _read_coverage(workdir: str) -> dict[str, Any]:
    """Lines (or arcs) per measured file from every data file the run wrote."""
    from coverage import CoverageData

    files: dict[str, set[Any]] = {}
    branch = False
    for path in sorted(glob.glob(os.path.join(workdir, ".coverage*"))):
        data = CoverageData(basename=path)
        data.read()
        branch = branch or data.has_arcs()
        for name in data.measured_files():
            found = data.arcs(name) if data.has_arcs() else data.lines(name)
            files.setdefault(name, set()).update(found or ())
    return {"branch": branch, "files": {k: sorted(v) for k, v in files.items()}}


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt the child's process group (pytest then writes its JUnit XML and coverage
    its data, for the tests that finished), then terminate it, then kill it."""
    steps = ((signal.SIGINT, KILL_GRACE), (signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None))
    for sig, wait in steps:
        try:
            os.killpg(process.pid, sig)
        except OSError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(options: dict[str, Any], result: dict[str, Any], workdir: str) -> None:
    """Run the suite once and fill ``result`` (see the module docstring)."""
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        result["error"] = "no-pytest"
        return
    command = [sys.executable, *options.get("python_options", [])]
    coverage = options.get("coverage")
    if coverage is not None:
        try:
            import coverage as coverage_module

            result["coverage"] = coverage_module.__version__
        except ImportError as exc:
            result["coverage_error"] = f"coverage cannot be imported in the container ({exc})"
            coverage = None
    if coverage is not None:
        command += ["-m", "coverage", "run"]
        if coverage.get("branch"):
            command.append("--branch")
        if coverage.get("source"):
            command.append("--source=" + ",".join(coverage["source"]))
        if coverage.get("rcfile"):
            command.append("--rcfile=" + coverage["rcfile"])
    manifest = os.path.join(workdir, "manifest.json")
    junit = os.path.join(workdir, "junit.xml")
    output = os.path.join(workdir, "output.txt")
    command += ["-m", "pytest", *options.get("pytest_options", [])]
    command += ["-p", PROBE, "-o", "cache_dir=" + os.path.join(workdir, "cache")]
    command += ["--junitxml=" + junit, "--junitprefix=", "-o", "junit_logging=all"]
    command += ["-o", "junit_log_passing_tests=false"]
    if coverage is not None and importlib.util.find_spec("pytest_cov") is not None:
        command.append("--no-cov")  # pytest-cov's tracer would replace coverage run's
    if options.get("collect_only"):
        command.append("--collect-only")
    command += options.get("args", [])
    with open(os.path.join(workdir, PROBE + ".py"), "w") as handle:
        handle.write(PROBE_SOURCE)
    if options.get("reruns"):
        with open(os.path.join(workdir, RERUNS + ".py"), "w") as handle:
            handle.write(options["reruns_source"])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (workdir, env.get("PYTHONPATH")) if p)
    env["PYTEST_ORCHESTRATOR_MANIFEST"] = manifest
    env["PYTEST_ORCHESTRATOR_REMOTE"] = "1"  # an installed pytest-orchestrator stays off
    env["COVERAGE_FILE"] = os.path.join(workdir, ".coverage")
    env["PYTEST_ORCHESTRATOR_INI"] = json.dumps(options.get("ini_names", []))
    env["PYTEST_ORCHESTRATOR_RERUNS"] = str(options.get("reruns") or 0)
    if coverage is not None:
        env["PYTEST_ORCHESTRATOR_COVERAGE"] = json.dumps(coverage)  # for xdist workers
    started = time.time()
    with open(output, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            process.wait(options.get("timeout"))
        except subprocess.TimeoutExpired:
            result["timed_out"] = True
            _stop(process)
    result["duration"] = round(time.time() - started, 3)
    result["returncode"] = process.returncode
    result["output_tail"] = _tail(output)
    if os.path.exists(junit):
        with open(junit, "rb") as handle:
            result["junit"] = handle.read().decode("utf-8", "replace")
    if os.path.exists(manifest):
        with open(manifest) as handle:
            result["manifest"] = json.load(handle)
    if coverage is not None:
        try:
            result["coverage_data"] = _read_coverage(workdir)
        except Exception as exc:  # a broken data file must not lose the test results
            result["coverage_error"] = f"coverage data unreadable: {type(exc).__name__}: {exc}"


def main(argv: list[str]) -> int:
    """Entry point: ``argv[0]`` is the options JSON; prints the bundle; returns 0."""
    result: dict[str, Any] = {
        "protocol": PROTOCOL,
        "python": platform.python_version(),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "error": None,
        "timed_out": False,
    }
    workdir = tempfile.mkdtemp(prefix="pytest-orchestrator-")
    try:
        run(json.loads(argv[0]), result, workdir)
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    blob = base64.b64encode(zlib.compress(json.dumps(result).encode("utf-8"), 6)).decode("ascii")
    sys.stdout.write("\n" + BEGIN + "\n")
    for start in range(0, len(blob), 76):
        sys.stdout.write(blob[start : start + 76] + "\n")
    sys.stdout.write(END + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
