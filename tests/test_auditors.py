"""Auditors against real tools: outcomes, broken tools, severity mapping, discovery."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_orchestrator.auditors import tools
from pytest_orchestrator.discovery import count_lines, discover


def report_of(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "r.json").read_text())


def test_every_outcome_is_counted_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("setup broke")

        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("teardown broke")

        def test_pass(): pass
        def test_fail(): assert 1 == 2
        def test_error(broken): pass
        def test_teardown(bad_teardown): pass
        @pytest.mark.skip(reason="no")
        def test_skip(): pass
        @pytest.mark.xfail
        def test_xfail(): assert False
        @pytest.mark.xfail
        def test_xpass(): pass
        """
    )
    result = pytester.runpytest(
        "--orchestrate", "--orchestrate-dimensions=tests", "--orchestrate-report=json:r.json"
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    tests = report_of(pytester)["audits"][0]
    assert tests["tests"] == {
        "passed": 1,
        "failed": 1,
        "errors": 2,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
        "collection_errors": 0,
        "subtests_passed": 0,
        "flaky": 0,
    }
    assert tests["score"] == 40.0  # (1 passed + 1 xpassed) / 5 counted
    rules = sorted((f["rule_id"], f["line"], f["message"]) for f in tests["findings"])
    assert rules == [
        (
            "test-error",
            14,
            "test_every_outcome_is_counted_once.py::test_error: RuntimeError: setup broke",
        ),
        (
            "test-error",
            15,
            "test_every_outcome_is_counted_once.py::test_teardown: RuntimeError: teardown broke",
        ),
        ("test-failed", 13, "test_every_outcome_is_counted_once.py::test_fail: assert 1 == 2"),
    ]


def test_collection_error_is_a_p0_finding(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok(): pass\n", test_bad="import nope\n")
    result = pytester.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=tests",
        "--orchestrate-report=json:r.json",
        "--continue-on-collection-errors",
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    tests = report_of(pytester)["audits"][0]
    assert tests["tests"]["collection_errors"] == 1
    assert [(f["rule_id"], f["path"], f["severity"]) for f in tests["findings"]] == [
        ("collection-error", "test_bad.py", "P0")
    ]


def test_no_test_ran_makes_tests_unavailable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.skip\ndef test_s(): pass\n")
    result = pytester.runpytest("--orchestrate", "--orchestrate-dimensions=tests")

    result.stdout.fnmatch_lines(["*! tests is unavailable: no test ran*"])
    assert result.ret == 6  # no dimension counted: score 0


def test_broken_ruff_configuration_makes_lint_unavailable(demo: pytest.Pytester) -> None:
    with (demo.path / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.ruff]\nline-length = "wide"\n')
    result = demo.runpytest(
        "--orchestrate", "-k", "not discount", "--orchestrate-dimensions=tests,lint"
    )

    assert result.ret == 6  # the tests pass, but lint could not be measured
    result.stdout.fnmatch_lines(
        [
            "*! lint is unavailable: ruff failed (exit 2): *-> the gate fails*",
            "Quality gate FAILED: score 100.00 (target 90.00); over tests (lint unavailable)",
            "*FAIL lint unavailable: ruff failed (exit 2): *",
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("rule", "ret", "line"),
    [
        ("zero", 6, "counted as 0"),
        ("fail", 6, "the gate fails"),
        ("skip", 0, "left out of the score (orchestrate_unavailable = skip)"),
    ],
)
def test_unavailable_rule(demo: pytest.Pytester, rule: str, ret: int, line: str) -> None:
    with (demo.path / "pyproject.toml").open("a") as handle:
        handle.write(f'orchestrate_unavailable = "{rule}"\n[tool.ruff]\nline-length = "x"\n')
    result = demo.runpytest(
        "--orchestrate",
        "-k",
        "not discount",
        "--orchestrate-dimensions=tests,lint",
        "--target-score=70",
    )

    assert result.ret == ret
    result.stdout.fnmatch_lines([f"*! lint is unavailable*-> {line}*"])


def test_severity_map_override_fails_the_gate(demo: pytest.Pytester) -> None:
    with (demo.path / "pyproject.toml").open("a") as handle:
        handle.write('orchestrate_severity_map = ["ruff:F401=P0", "bandit:B3=P4"]\n')
    result = demo.runpytest(
        "--orchestrate",
        "-k",
        "not discount",
        "--orchestrate-dimensions=tests,lint,security",
        "--orchestrate-report=json:r.json",
        "--orchestrate-report=terminal",
        "--target-score=0",
    )

    assert result.ret == 6
    found = {f["rule_id"]: f["severity"] for a in report_of(demo)["audits"] for f in a["findings"]}
    assert found == {"F401": "P0", "B307": "P4"}
    result.stdout.fnmatch_lines(["*FAIL 1 P0 finding at a failing severity (P0): shop/*F401"])


def test_project_ruff_and_bandit_configuration_is_respected(demo: pytest.Pytester) -> None:
    with (demo.path / "pyproject.toml").open("a") as handle:
        handle.write('\n[tool.ruff.lint]\nselect = ["E501"]\n\n[tool.bandit]\nskips = ["B307"]\n')
    demo.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=tests,lint,security",
        "--orchestrate-report=json:r.json",
    )

    audits = {a["dimension"]: a for a in report_of(demo)["audits"]}
    assert [(f["rule_id"], f["path"]) for f in audits["lint"]["findings"]] == [
        ("E501", "shop/cart.py")
    ]
    assert audits["security"]["findings"] == []
    assert audits["security"]["score"] == 100.0


def test_finding_score_is_size_aware(demo: pytest.Pytester) -> None:
    big = "\n".join(f"VALUE_{i} = {i}" for i in range(4000)) + "\n"
    (demo.path / "shop" / "constants.py").write_text(big)
    demo.runpytest(
        "--orchestrate", "--orchestrate-dimensions=tests,lint", "--orchestrate-report=json:r.json"
    )

    lint = report_of(demo)["audits"][1]
    # the size is that of the files ruff checks: the sources (4,035 lines), the tests ...
    [note] = lint["notes"]
    found = re.fullmatch(
        r"scored over the (\d+) lines of code of the (\d+) files ruff checks \(test code "
        r"included\)",
        note,
    )
    assert found is not None, note
    lines = int(found.group(1))
    tests = count_lines((demo.path / "tests" / "test_cart.py").read_text())
    assert lines >= 4035 + tests
    kloc = lines / 1000
    assert lint["score"] == round(100 - 3 / kloc, 2)  # one P2 finding
    assert lint["deductions"][0]["reason"] == f"1 x F401 (P2, 3 points each per {kloc:g} KLOC)"


@pytest.mark.parametrize(
    ("files", "frameworks"),
    [
        ({"addon/__manifest__.py": "{}", "addon/__init__.py": ""}, ["Odoo"]),
        ({"manage.py": "", "site/__init__.py": ""}, ["Django"]),
        ({"requirements.txt": "Flask==3.0\n", "app/__init__.py": ""}, ["Flask"]),
        ({"api/__init__.py": "from fastapi import FastAPI\n"}, ["FastAPI"]),
        ({"lib/__init__.py": "# a comment\n\nx = 1\n"}, []),
    ],
)
def test_discovery(tmp_path: Path, files: dict[str, str], frameworks: list[str]) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("x = 1\n")

    project = discover(tmp_path)

    assert project.frameworks == frameworks
    assert "tests" not in project.sources
    assert project.name == tmp_path.name


def test_discovery_counts_code_lines(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "counted"\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("# comment\n\nA = 1\nB = 2  # trailing\n")
    (tmp_path / "tool.py").write_text("print(1)\n")
    (tmp_path / "conftest.py").write_text("x = 1\n")

    project = discover(tmp_path)

    assert (project.name, project.sources, project.files, project.lines_of_code) == (
        "counted",
        ["pkg", "tool.py"],
        2,
        3,
    )


def test_context_paths_and_source_lines(tmp_path: Path) -> None:
    from pytest_orchestrator.auditors.base import AuditContext
    from pytest_orchestrator.config import OrchestrationConfig

    real = tmp_path / "real"
    (real / "pkg").mkdir(parents=True)
    (real / "pkg" / "m.py").write_text("a = 1\r\nb = '\f'\nc = 3\n")
    link = tmp_path / "link"
    link.symlink_to(real)
    context = AuditContext(None, OrchestrationConfig(), link, discover(link))  # type: ignore[arg-type]

    assert context.relpath("pkg/m.py") == "pkg/m.py"
    assert context.relpath(link / "pkg" / "m.py") == "pkg/m.py"
    assert context.relpath(real / "pkg" / "m.py") == "pkg/m.py"  # the resolved rootdir
    assert context.relpath(link / "pkg" / ".." / "pkg" / "m.py") == "pkg/m.py"
    assert context.relpath(tmp_path / "elsewhere.py") == (tmp_path / "elsewhere.py").as_posix()
    # lines are numbered as the tools number them: \r\n is one break, a form feed is none
    assert [context.source_line("pkg/m.py", n) for n in (1, 2, 3)] == [
        "a = 1",
        "b = '\f'",
        "c = 3",
    ]
    assert context.source_line("pkg/m.py", 9) == "" == context.source_line("pkg/m.py", None)
    assert context.source_line("pkg/missing.py", 1) == ""


def test_rule_prefixes_name_a_linter_family_not_any_longer_code() -> None:
    from pytest_orchestrator.models import Severity
    from pytest_orchestrator.severity import ruff_severity, tool_severity

    assert ruff_severity("S608", {}) is Severity.P2  # flake8-bandit
    assert ruff_severity("SIM102", {}) is Severity.P3  # flake8-simplify: not security
    assert ruff_severity("SLF001", {}) is Severity.P3
    assert ruff_severity("DJ001", {}) is Severity.P3  # not pydocstyle's D
    assert ruff_severity("D100", {}) is Severity.P4
    assert ruff_severity("SIM102", {"ruff:SIM": Severity.P1}) is Severity.P1
    assert (
        tool_severity(
            "coverage", "uncovered-file", Severity.P2, {"coverage:uncovered": Severity.P4}
        )
        is Severity.P4
    )


# -- the bandit worker started with pytest (auditors/tools.py) ------------------------------

BANDIT_TARGET = (
    "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
)


def test_the_bandit_worker_reports_what_python_m_bandit_reports(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(BANDIT_TARGET)
    args = ["-f", "json", "-q", "mod.py"]
    direct = subprocess.run(
        [sys.executable, "-m", "bandit", *args], cwd=tmp_path, capture_output=True, check=False
    )
    worker = tools.BanditWorker(sys.executable, tmp_path, 60.0, "")
    worker.start()
    worker.run(args)
    code, out, _ = worker.wait()

    assert code == direct.returncode == 1  # bandit's status when it found something
    assert worker.argv == [sys.executable, "-m", "bandit", *args]
    assert json.loads(out)["results"] == json.loads(direct.stdout)["results"]
    assert [r["test_id"] for r in json.loads(out)["results"]] == ["B404", "B602"]


def test_an_unused_bandit_worker_ends_without_running(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(BANDIT_TARGET)
    worker = tools.BanditWorker(sys.executable, tmp_path, 60.0, "")
    worker.start()
    process = worker._proc
    worker.cancel()

    assert process is not None and process.returncode is not None


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[tools.BanditWorker]:
    """Every bandit worker started by the (in-process) pytest runs of the test."""
    # under pytest-xdist this process inherits PYTEST_XDIST_WORKER, and a pytest that sees it
    # takes itself for an xdist worker, which starts no bandit worker
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    started: list[tools.BanditWorker] = []
    real = tools.BanditWorker.start

    def record(self: tools.BanditWorker) -> None:
        started.append(self)
        real(self)

    monkeypatch.setattr(tools.BanditWorker, "start", record)
    return started


@pytest.mark.parametrize(
    ("options", "adopted"),
    [
        (["--orchestrate-dimensions=tests,security"], True),
        # stopped after the worker started: it is ended, not left waiting
        (["--orchestrate-dimensions=tests,security", "--target-score=abc"], False),
        (["--orchestrate-dimensions=tests,security", "--no-such-option"], False),
        (["--orchestrate-dimensions=tests,security", "--collect-only"], None),
        (["--orchestrate-dimensions=tests,lint"], None),
    ],
)
def test_a_session_hands_its_bandit_worker_the_audit_or_ends_it(
    pytester: pytest.Pytester,
    workers: list[tools.BanditWorker],
    options: list[str],
    adopted: bool | None,
) -> None:
    pytester.makepyfile(mod=BANDIT_TARGET, test_mod="def test_ok():\n    pass\n")
    pytester.makeini("[pytest]\norchestrate_security_engine = bandit\n")
    pytester.runpytest("--orchestrate", *options, "--orchestrate-report=json:r.json")

    if adopted is None:  # no security audit expected: none started
        assert workers == []
        return
    assert len(workers) == 1
    process = workers[0]._proc
    assert process is not None and process.returncode is not None  # ended, either way
    assert (workers[0].argv[1:3] == ["-m", "bandit"]) is adopted
    if adopted:
        audit = json.loads((pytester.path / "r.json").read_text())["audits"]
        security = next(a for a in audit if a["dimension"] == "security")
        assert {f["rule_id"] for f in security["findings"]} == {"B404", "B602"}


def test_with_every_file_cached_the_bandit_worker_ends_unused(
    pytester: pytest.Pytester, workers: list[tools.BanditWorker]
) -> None:
    pytester.makepyfile(mod=BANDIT_TARGET, test_mod="def test_ok():\n    pass\n")
    pytester.makeini("[pytest]\norchestrate_security_engine = bandit\n")
    args = ["--orchestrate", "--orchestrate-dimensions=tests,security", "-p", "cacheprovider"]
    pytester.runpytest(*args, "--orchestrate-report=json:first.json")
    pytester.runpytest(*args, "--orchestrate-report=json:second.json")

    assert len(workers) == 2
    assert workers[0].argv[1:3] == ["-m", "bandit"]  # the first run's audit ran in it
    assert workers[1].argv[1:3] == ["-c", tools.BANDIT_WORKER]  # never given arguments
    process = workers[1]._proc
    assert process is not None and process.returncode is not None
    first, second = (
        next(
            a["findings"]
            for a in json.loads((pytester.path / name).read_text())["audits"]
            if a["dimension"] == "security"
        )
        for name in ("first.json", "second.json")
    )
    assert second == first and len(first) == 2


def test_examples_docs_and_scripts_packages_are_not_sources_unless_alone(tmp_path: Path) -> None:
    # pyparsing 3.3.3 ships an `examples` package of 78 scripts beside `pyparsing`
    for package in ("pyparsing", "examples", "docs", "scripts"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("x = 1\n")
    (tmp_path / "pyparsing" / "examples").mkdir()  # inside the package: shipped code
    (tmp_path / "pyparsing" / "examples" / "__init__.py").write_text("y = 2\n")

    project = discover(tmp_path)
    assert (project.sources, project.files) == (["pyparsing"], 2)

    shutil.rmtree(tmp_path / "pyparsing")
    assert discover(tmp_path).sources == ["docs", "examples", "scripts"]  # nothing else
