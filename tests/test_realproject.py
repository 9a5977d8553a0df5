"""End to end on a real project: gate click 8.1.8's sdist with ``pytest --orchestrate``.

The sdist is downloaded from PyPI with pip (``--no-binary :all:``), unpacked into a temporary
directory and gated in a child interpreter, with ``PYTHONPATH=<sdist>/src`` so that click is
imported from the sdist and the development environment is left as it is (nothing is
installed). The checks:

- the exit status is 0, 1 or 6 and agrees with the report (tests failed -> 1, tests passed
  and gate failed -> 6, both fine -> 0);
- the JSON report validates against the shipped JSON Schema and loads as ``Report``;
- the score and the verdict agree with the report's own figures, recomputed here
  independently (weighted mean, deductions adding up, gate conditions);
- tests, coverage, lint and security all ran on click's code and tests;
- the JUnit and Markdown reports are readable.

No network: the module is skipped, unless ``ORCHESTRATOR_REQUIRE_NETWORK=1`` (CI), where a
failed download fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import pytest_orchestrator
from pytest_orchestrator.config import OrchestrationConfig
from pytest_orchestrator.models import SCORE_DIGITS, AuditResult, Report
from pytest_orchestrator.scoring import evaluate_gate

pytestmark = pytest.mark.realproject

PROJECT = "click"
VERSION = "8.1.8"
SDIST = f"{PROJECT}-{VERSION}.tar.gz"
DIMENSIONS = ("tests", "coverage", "lint", "security")
EXIT_GATE_FAILED = 6
DOWNLOAD_TIMEOUT = 300
RUN_TIMEOUT = 600
#: Half a unit of the last printed decimal: a figure "rounded to 2 decimals" is this close.
HALF_UNIT = 0.5 * 10**-SCORE_DIGITS + 1e-9
SCHEMA_PATH = Path(pytest_orchestrator.__file__).parent / "report.schema.json"

#: pip's messages when PyPI cannot be reached (DNS, refused/reset connection, proxy, TLS,
#: time-outs); any other failed download is a real failure.
NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name"
    r"|Name or service not known|nodename nor servname|getaddrinfo failed"
    r"|Network is unreachable|No route to host|Connection refused|Connection reset"
    r"|ConnectionError|ConnectTimeout|ReadTimeout|timed out|Max retries exceeded"
    r"|ProxyError|SSLError|CERTIFICATE_VERIFY_FAILED"
    r"|No matching distribution found for",  # what pip ends with when every retry failed
    re.IGNORECASE,
)

#: click 8.1.8's own ``filterwarnings = ["error"]`` turns one pytest deprecation *in click's
#: tests* (tests/test_basic.py parametrizes with an ``itertools.chain``; pytest >= 9 warns
#: "Passing a non-Collection iterable to parametrize is deprecated") into a collection
#: error, with or without this plugin. Only that message, of pytest's deprecation category,
#: is let through; every other warning, the plugin's included, is still an error.
CLICK_TEST_SUITE_FILTER = (
    "default:Passing a non-Collection iterable to parametrize:pytest.PytestDeprecationWarning"
)


def tail(text: str, lines: int = 60) -> str:
    """The last ``lines`` lines of ``text`` (for failure messages)."""
    return "\n".join(text.strip().splitlines()[-lines:])


def timed_out_output(exc: subprocess.TimeoutExpired) -> str:
    """What a timed-out child printed so far (bytes or str, depending on the platform)."""
    parts = (exc.stdout, exc.stderr)
    return "\n".join(p.decode(errors="replace") if isinstance(p, bytes) else p for p in parts if p)


def require_network() -> bool:
    return os.environ.get("ORCHESTRATOR_REQUIRE_NETWORK") == "1"


def no_network(reason: str, output: str) -> None:
    """Skip (no network is not this plugin's problem) or, in CI, fail with pip's output."""
    if require_network():
        pytest.fail(
            f"{reason}, and ORCHESTRATOR_REQUIRE_NETWORK=1 forbids skipping. "
            f"pip's output (tail):\n{tail(output)}",
            pytrace=False,
        )
    pytest.skip(f"{reason} (no network?): {tail(output, 3)}")


def download_sdist(dest: Path, project: str = PROJECT, version: str = VERSION) -> Path:
    """``pip download`` a project's sdist into ``dest``; skip or fail when PyPI is
    unreachable."""
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "2",
        "--timeout",
        "30",
        f"{project}=={version}",
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        output = timed_out_output(exc)
        no_network(f"pip download {project}=={version} hung for {DOWNLOAD_TIMEOUT} s", output)
        raise  # unreachable: no_network skips or fails
    output = f"{proc.stdout}\n{proc.stderr}"
    if proc.returncode != 0:
        reason = f"pip download {project}=={version} failed with exit status {proc.returncode}"
        if NETWORK_ERRORS.search(output):
            no_network(reason, output)
        pytest.fail(f"{reason}:\n{tail(output)}", pytrace=False)
    found = sorted(dest.glob("*.tar.gz"))
    assert len(found) == 1, f"pip did not save one sdist in {dest}:\n{tail(output)}"
    return found[0]


def unpack(sdist: Path, dest: Path) -> Path:
    """Unpack ``sdist`` into ``dest`` (safely) and return the project directory (the
    archive's one top directory)."""
    with tarfile.open(sdist, "r:gz") as archive:
        if hasattr(tarfile, "data_filter"):  # 3.10.12+, 3.11.4+, 3.12+
            archive.extractall(dest, filter="data")
        else:  # pragma: no cover - old patch releases: refuse escaping members by hand
            root = dest.resolve()
            for member in archive.getmembers():
                target = (dest / member.name).resolve()
                if not target.is_relative_to(root) or member.issym() or member.islnk():
                    raise AssertionError(f"unsafe member in {sdist.name}: {member.name!r}")
            archive.extractall(dest)  # members checked above
    [project] = list(dest.iterdir())
    return project


@pytest.fixture(scope="session")
def click_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """click's sdist, downloaded once per session and unpacked: the project directory."""
    sdist = download_sdist(tmp_path_factory.mktemp("click-sdist"))
    assert sdist.name == SDIST
    project = unpack(sdist, tmp_path_factory.mktemp("click-src"))
    assert (project / "src" / PROJECT / "__init__.py").is_file(), project
    assert (project / "tests").is_dir(), sorted(p.name for p in project.iterdir())
    return project


@dataclass
class Run:
    """One ``pytest --orchestrate`` run of click's suite, and its reports."""

    returncode: int
    output: str
    json_path: Path
    junit_path: Path
    markdown_path: Path

    def context(self) -> str:
        return f"exit status {self.returncode}; output (tail):\n{tail(self.output)}"


def child_env(project: Path) -> dict[str, str]:
    """The environment of the gated run: the project from the sdist (``src/``, else its
    top directory), no settings of this run."""
    env = {
        key: value
        for key, value in os.environ.items()
        # the outer session's PYTEST_ADDOPTS (e.g. -p no:orchestrator), PYTEST_CURRENT_TEST,
        # xdist's worker variables and subprocess coverage must not leak into the child
        if not key.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_"))
    }
    src = str(project / "src") if (project / "src").is_dir() else str(project)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture(scope="module")
def run(click_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Gate click with every report type (``--orchestrate``, in a child interpreter)."""
    out = tmp_path_factory.mktemp("click-reports")
    paths = {"json": out / "report.json", "junit": out / "junit.xml", "md": out / "report.md"}
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "--orchestrate",
        f"--orchestrate-report=json:{paths['json']}",
        f"--orchestrate-report=junit:{paths['junit']}",
        f"--orchestrate-report=markdown:{paths['md']}",
        "-p",
        "no:cacheprovider",
        "-q",
        "-W",
        CLICK_TEST_SUITE_FILTER,
    ]
    try:
        proc = subprocess.run(
            argv,
            cwd=click_project,
            env=child_env(click_project),
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = timed_out_output(exc)
        pytest.fail(
            f"pytest --orchestrate on {PROJECT} did not finish in {RUN_TIMEOUT} s:\n{tail(output)}",
            pytrace=False,
        )
    result = Run(
        returncode=proc.returncode,
        output=f"{proc.stdout}\n{proc.stderr}",
        json_path=paths["json"],
        junit_path=paths["junit"],
        markdown_path=paths["md"],
    )
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        pytest.fail(
            f"pytest --orchestrate on {PROJECT} wrote no {', '.join(missing)}; {result.context()}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="module")
def report(run: Run) -> Report:
    return Report.model_validate_json(run.json_path.read_text(encoding="utf-8"))


def audit_of(report: Report, dimension: str) -> AuditResult:
    audit = report.audit(dimension)
    assert audit is not None, f"no {dimension} audit: {[a.dimension for a in report.audits]}"
    return audit


def any_test_failed(report: Report) -> bool:
    tests = audit_of(report, "tests").tests
    assert tests is not None, "the tests audit has no test summary"
    return bool(tests.failed or tests.errors or tests.collection_errors)


def close_to_2_decimals(reported: float, exact: float) -> bool:
    """``reported`` is ``exact`` rounded to SCORE_DIGITS decimals (tie-proof)."""
    is_rounded = math.isclose(reported, round(reported, SCORE_DIGITS), abs_tol=1e-9)
    return is_rounded and abs(reported - exact) <= HALF_UNIT


def sums_to(points: list[float], total: float) -> bool:
    """Deductions add up to ``total`` at SCORE_DIGITS decimals."""
    return math.isclose(round(sum(points), SCORE_DIGITS), round(total, SCORE_DIGITS), abs_tol=1e-9)


# -- exit status ---------------------------------------------------------------------------


def test_exit_status_agrees_with_the_report(run: Run, report: Report) -> None:
    assert run.returncode in (0, 1, EXIT_GATE_FAILED), run.context()
    failed = any_test_failed(report)
    if failed:
        expected = 1
    elif report.verdict.passed:
        expected = 0
    else:
        expected = EXIT_GATE_FAILED
    assert run.returncode == expected, (
        f"tests failed: {failed}, gate passed: {report.verdict.passed} "
        f"({report.verdict.reasons}); {run.context()}"
    )
    assert "quality gate not evaluated" not in run.output, run.context()
    assert "INTERNALERROR" not in run.output, run.context()


def test_pytest_summary_matches_the_tests_dimension(run: Run, report: Report) -> None:
    """The tests audit counts what pytest itself printed in its final line."""
    lines = [line for line in run.output.splitlines() if re.search(r"\bin [\d.]+s\b", line)]
    assert lines, f"no pytest summary line; {run.context()}"
    printed = {
        word: int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|error)", lines[-1])
    }
    tests = audit_of(report, "tests").tests
    assert tests is not None
    ours = {
        "passed": tests.passed,
        "failed": tests.failed,
        "skipped": tests.skipped,
        "xfailed": tests.xfailed,
        "xpassed": tests.xpassed,
        "error": tests.errors + tests.collection_errors,
    }
    assert {k: v for k, v in ours.items() if v} == printed, lines[-1]


# -- JSON report ---------------------------------------------------------------------------


def test_json_report_validates_against_the_shipped_schema(run: Run) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(run.json_path.read_text(encoding="utf-8"))
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:20])
    # and the model reads it back unchanged
    again = Report.model_validate_json(run.json_path.read_text(encoding="utf-8"))
    assert json.loads(again.model_dump_json()) == data


def test_every_dimension_ran_on_click(report: Report) -> None:
    assert report.project.name == PROJECT
    assert any(Path(s).name == PROJECT for s in report.project.sources), report.project.sources
    assert [a.dimension for a in report.audits] == list(report.config.dimensions)
    for dimension in DIMENSIONS:
        audit = audit_of(report, dimension)
        assert audit.status == "ok", f"{dimension} is {audit.status}: {audit.reason}"
        assert audit.score is not None and 0 <= audit.score <= 100, (dimension, audit.score)


def test_tests_and_coverage_figures_are_click_sized(report: Report) -> None:
    tests = audit_of(report, "tests").tests
    assert tests is not None
    assert tests.counted > 500, tests
    assert tests.collection_errors == 0, tests

    coverage = audit_of(report, "coverage").coverage
    assert coverage is not None
    assert 50 <= coverage.percent <= 100, coverage.percent
    assert any(f.path.endswith(f"{PROJECT}/core.py") for f in coverage.files), [
        f.path for f in coverage.files
    ]
    assert coverage.statements == sum(f.statements for f in coverage.files)
    assert coverage.missing == sum(f.missing for f in coverage.files)


# -- score arithmetic, recomputed here -----------------------------------------------------


def test_dimension_scores_follow_from_their_figures(report: Report) -> None:
    tests_audit = audit_of(report, "tests")
    tests = tests_audit.tests
    assert tests is not None and tests_audit.score is not None
    if tests.counted:
        rate = 100.0 * (tests.passed + tests.xpassed) / tests.counted
        assert close_to_2_decimals(tests_audit.score, rate), (tests_audit.score, rate, tests)

    coverage_audit = audit_of(report, "coverage")
    coverage = coverage_audit.coverage
    assert coverage is not None and coverage_audit.score is not None
    covered = (coverage.statements - coverage.missing) + (
        coverage.branches - coverage.missing_branches
    )
    percent = 100.0 * covered / (coverage.statements + coverage.branches)
    assert close_to_2_decimals(coverage.percent, percent), (coverage.percent, percent)
    assert close_to_2_decimals(coverage_audit.score, percent), (coverage_audit.score, percent)

    for dimension in ("lint", "security"):  # finding-based: one deduction per severity+rule
        audit = audit_of(report, dimension)
        groups = Counter((f.severity, f.rule_id) for f in audit.findings)
        assert sum(d.count for d in audit.deductions) == len(audit.findings), dimension
        assert len(audit.deductions) == len(groups), (dimension, audit.deductions, groups)
        if not audit.findings:
            assert audit.score == 100.0, (dimension, audit.score)


def test_deductions_add_up(report: Report) -> None:
    for audit in report.audits:
        if audit.status != "ok" or audit.score is None:
            continue
        points = [d.points for d in audit.deductions]
        assert all(d.dimension == audit.dimension for d in audit.deductions), audit.dimension
        assert sums_to(points, 100.0 - audit.score), (
            f"{audit.dimension}: deductions {sum(points):.4f} != 100 - {audit.score}"
        )
    overall = report.score.overall
    assert sums_to([d.points for d in report.score.deductions], 100.0 - overall), (
        report.score.deductions,
        overall,
    )
    assert sums_to([row.points_lost for row in report.score.dimensions], 100.0 - overall)


def test_overall_score_is_the_weighted_mean_of_counted_dimensions(report: Report) -> None:
    config = report.config
    rows = {row.dimension: row for row in report.score.dimensions}
    assert list(rows) == [a.dimension for a in report.audits]
    counted: list[tuple[float, float]] = []
    for audit in report.audits:
        row = rows[audit.dimension]
        assert row.status == audit.status and row.score == audit.score, (row, audit.dimension)
        assert row.weight == config.weights[audit.dimension], (row, config.weights)
        if audit.status == "ok" and audit.score is not None:
            value: float | None = audit.score
        elif config.unavailable == "zero":
            value = 0.0
        else:
            value = None
        should_count = value is not None and row.weight > 0
        assert row.counted == should_count, row
        if should_count:
            assert value is not None
            counted.append((value, row.weight))
    total = sum(w for _, w in counted)
    exact = sum(v * w for v, w in counted) / total if total else 0.0
    assert close_to_2_decimals(report.score.overall, exact), (report.score.overall, exact)


# -- the verdict, recomputed here ----------------------------------------------------------


def recompute_gate(report: Report) -> dict[str, bool]:
    """Gate conditions (name -> passed) from the report's own data and config."""
    config = report.config
    target = round(config.target_score, SCORE_DIGITS)
    conditions = {"target score": report.score.overall >= target}
    if config.fail_on:
        blocking = [f for f in report.findings() if f.severity in config.fail_on]
        conditions["fail-on"] = not blocking
    for audit in report.audits:
        if audit.status != "ok":
            conditions[f"{audit.dimension} available"] = config.unavailable != "fail"
            continue
        minimum = config.min_scores.get(audit.dimension)
        if minimum is not None and audit.score is not None:
            conditions[f"{audit.dimension} minimum"] = audit.score >= round(minimum, SCORE_DIGITS)
    return conditions


def test_verdict_follows_from_the_figures(report: Report) -> None:
    verdict = report.verdict
    expected = recompute_gate(report)
    reported = {c.name: c.passed for c in verdict.conditions}
    assert reported == expected, verdict.conditions
    assert verdict.passed == all(expected.values()), verdict.conditions
    assert verdict.score == report.score.overall
    assert verdict.target == round(report.config.target_score, SCORE_DIGITS)
    assert set(verdict.reasons) == {c.message for c in verdict.conditions if not c.passed}


def test_evaluate_gate_agrees_on_the_report(report: Report) -> None:
    """The product's gate, fed the report's settings, decides the same (cross-check)."""
    config = report.config
    settings = OrchestrationConfig(
        target_score=config.target_score,
        dimensions=config.dimensions,
        fail_on=[s.value for s in config.fail_on],
        weights=config.weights,
        min_scores=config.min_scores,
        unavailable=config.unavailable,
    )
    again = evaluate_gate(report.score, report.audits, settings)
    assert again == report.verdict


# -- JUnit and Markdown --------------------------------------------------------------------


def test_junit_report_has_the_quality_gate_suite(run: Run, report: Report) -> None:
    from junitparser import Failure, JUnitXml

    xml = JUnitXml.fromfile(str(run.junit_path))
    suites: dict[str, Any] = {suite.name: suite for suite in xml}
    assert "quality-gate" in suites, list(suites)
    gate = suites["quality-gate"]
    cases = {case.name: case for case in gate}
    assert list(cases) == [c.name for c in report.verdict.conditions]
    for condition in report.verdict.conditions:
        failed = any(isinstance(r, Failure) for r in cases[condition.name].result)
        assert failed == (not condition.passed), condition
    for dimension in DIMENSIONS:
        assert f"orchestrator.{dimension}" in suites, list(suites)


def test_markdown_report_starts_with_the_gate(run: Run, report: Report) -> None:
    text = run.markdown_path.read_text(encoding="utf-8")
    assert text.startswith("# Quality gate"), text[:200]
    assert ("PASSED" if report.verdict.passed else "FAILED") in text.splitlines()[0]


# --------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class Sdist:
    """A real project whose coverage the gate must measure as pytest-cov does.

    :ivar cov: pytest-cov's ``--cov`` arguments for the same sources.
    :ivar coveragerc: a ``.coveragerc`` written into the project first (both tools read it).
    :ivar name: the project name the gate must find.
    :ivar paths: the test files run (both tools run the same ones; empty: the whole suite).
        A part of a large suite keeps the fault it guards against (coverage measured like
        pytest-cov's, plain and under xdist) at a fifth of the time.
    """

    project: str
    version: str
    cov: tuple[str, ...]
    name: str
    coveragerc: str | None = None
    extra: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


SDISTS = {
    # one module, six.py: a top-level module measured like a package
    "six": Sdist("six", "1.17.0", ("--cov=six",), "six"),
    # [tool.coverage.run] patch = ["subprocess"], parallel, source_pkgs: under xdist too
    "attrs": Sdist(
        "attrs",
        "25.4.0",
        ("--cov",),
        "attrs",
        paths=tuple(
            f"tests/test_{name}.py"
            for name in ("validators", "converters", "filters", "cmp", "setattr")
        ),
    ),
    # the name only in setup.cfg; filterwarnings = error meets a pytest 9 deprecation
    "dateutil": Sdist(
        "python-dateutil",
        "2.9.0.post0",
        ("--cov", "--cov-config=.coveragerc"),
        "python-dateutil",
        coveragerc="[run]\nsource = src/dateutil\n",
        extra=("-W", "default::pytest.PytestRemovedIn10Warning"),
        paths=tuple(
            f"tests/test_{name}.py" for name in ("relativedelta", "easter", "imports", "internals")
        ),
    ),
}


@pytest.fixture(scope="module", params=sorted(SDISTS))
def sdist(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = SDISTS[request.param]
    archive = download_sdist(
        tmp_path_factory.mktemp(f"{request.param}-sdist"), spec.project, spec.version
    )
    project = unpack(archive, tmp_path_factory.mktemp(f"{request.param}-src"))
    if spec.coveragerc is not None:
        (project / ".coveragerc").write_text(spec.coveragerc)
    return project


def percent(project: Path, argv: list[str], report: Path, read: str) -> tuple[float, str]:
    """Run ``argv`` in ``project``; the coverage percent its report says, and its output."""
    done = subprocess.run(
        argv,
        cwd=project,
        env=child_env(project),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = f"{done.stdout}\n{done.stderr}"
    assert report.is_file(), f"no report from {argv}:\n{tail(output)}"
    data = json.loads(report.read_text())
    if read == "orchestrator":
        [coverage] = [a for a in data["audits"] if a["dimension"] == "coverage"]
        assert coverage["status"] == "ok", coverage
        return float(coverage["score"]), output
    return float(data["totals"]["percent_covered"]), output


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_coverage_equals_pytest_covs_and_leaves_no_data_file(sdist: Path, xdist: list[str]) -> None:
    spec = next(s for s in SDISTS.values() if sdist.name.startswith(s.project))
    common = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "--continue-on-collection-errors",
        *spec.extra,
        *xdist,
        *spec.paths,
    ]
    ours = sdist / "orchestrator.json"
    ours.unlink(missing_ok=True)
    gate, output = percent(
        sdist,
        [
            *common,
            "--orchestrate",
            "--orchestrate-dimensions=tests,coverage",
            f"--orchestrate-report=json:{ours}",
        ],
        ours,
        "orchestrator",
    )
    assert sorted(p.name for p in sdist.rglob(".coverage*") if p.name != ".coveragerc") == []
    name = json.loads(ours.read_text())["project"]["name"]
    assert name == spec.name
    theirs = sdist / "pytest-cov.json"
    theirs.unlink(missing_ok=True)
    reference, reference_output = percent(
        sdist, [*common, *spec.cov, f"--cov-report=json:{theirs}"], theirs, "pytest-cov"
    )
    for leftover in sdist.glob(".coverage*"):
        if leftover.name != ".coveragerc":
            leftover.unlink()  # pytest-cov's own data file
    assert abs(gate - reference) <= 0.1, (
        f"{spec.project} {xdist}: the gate measured {gate}, pytest-cov {reference}\n"
        f"{tail(output, 20)}\n---\n{tail(reference_output, 20)}"
    )
