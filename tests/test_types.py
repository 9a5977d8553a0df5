"""The ``types`` dimension: real mypy and pyright runs in real sessions (subprocess), its
cache, the choice of checker, pyright's JSON contract, and its entry in the new-code gate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_newcode import commit_all, git, init_repo, load

from pytest_orchestrator.auditors.types import _names_files, configured, parse

REPORT = "--orchestrate-report=json:out/report.json"
TYPED = "def double(x: int) -> int:\n    return x * 2\n\n\nVALUE: str = double(2)\n"


def typed_project(root: Path, config: str = "[tool.mypy]\nwarn_unused_ignores = true\n") -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text(TYPED)
    (root / "tests").mkdir()
    (root / "tests" / "test_mod.py").write_text(
        "from pkg.mod import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    )
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n\n' + config
    )
    (root / ".gitignore").write_text(
        ".pytest_cache/\n.mypy_cache/\n__pycache__/\nout/\nstdout\nstderr\nrunpytest-*\n"
    )


def types_of(root: Path):  # type: ignore[no-untyped-def]
    report = load(root / "out" / "report.json")
    return next(a for a in report.audits if a.dimension == "types")


def plant_in_cache(root: Path, checker: str) -> None:
    """Rewrite the cached message of pkg/mod.py's finding: a run that reports it was
    answered from the cache."""
    store = root / ".pytest_cache" / "d" / "orchestrator-audit-cache" / f"{checker}.json"
    data = json.loads(store.read_text())
    [item] = data["files"]["pkg/mod.py"]["payload"]["items"]
    item["message"] = "from the cache"
    store.write_text(json.dumps(data))


def test_a_real_mypy_run_finds_the_error_and_its_cache_answers_the_second_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = tmp_path / "site"  # where a package gets installed, on the session's sys.path
    site.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(site))
    typed_project(pytester.path)
    args = ("--orchestrate", "--orchestrate-dimensions=tests,types", REPORT, "-p", "no:randomly")
    result = pytester.runpytest_subprocess(*args)
    types = types_of(pytester.path)
    assert (types.status, types.tool) == ("ok", "mypy")
    [finding] = types.findings
    assert (finding.path, finding.line, finding.rule_id, finding.severity.value) == (
        "pkg/mod.py",
        5,
        "assignment",
        "P2",
    )
    assert 'incompatible types in assignment (expression has type "int"' in finding.message.lower()
    assert types.score == 97.0  # one P2 finding, 3 points per 1,000 lines (the minimum size)
    assert result.ret == 0

    # the second run is answered from the cache: a planted message proves it
    plant_in_cache(pytester.path, "mypy")
    pytester.runpytest_subprocess(*args)
    assert [f.message for f in types_of(pytester.path).findings] == ["from the cache"]
    # a changed file: mypy runs again, over everything
    (pytester.path / "pkg" / "extra.py").write_text("X: int = 1\n")
    pytester.runpytest_subprocess(*args)
    assert "from the cache" not in types_of(pytester.path).findings[0].message
    # a package installed (a stub package, say): mypy runs again
    pytester.runpytest_subprocess(*args)
    plant_in_cache(pytester.path, "mypy")
    (site / "types_fake-1.0.dist-info").mkdir()
    pytester.runpytest_subprocess(*args)
    assert "from the cache" not in types_of(pytester.path).findings[0].message


#: The pinned pyright of tests/pyright/package.json (``npm ci --prefix tests/pyright``).
PYRIGHT_BIN = Path(__file__).resolve().parent / "pyright" / "node_modules" / ".bin"


def use_pyright(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the pinned pyright on ``PATH``; skip without it (fail under
    ``ORCHESTRATOR_REQUIRE_PYRIGHT=1``)."""
    if not (PYRIGHT_BIN / "pyright").exists():
        missing = "pyright is not installed: npm ci --prefix tests/pyright"
        if os.environ.get("ORCHESTRATOR_REQUIRE_PYRIGHT") == "1":
            pytest.fail(f"ORCHESTRATOR_REQUIRE_PYRIGHT=1 but {missing}")
        pytest.skip(missing)
    monkeypatch.setenv("PATH", f"{PYRIGHT_BIN}{os.pathsep}{os.environ['PATH']}")


def test_a_real_pyright_run_finds_the_error_with_its_rule(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pyright(monkeypatch)
    typed_project(pytester.path, config='[tool.pyright]\ninclude = ["pkg"]\n')
    (pytester.path / "pkg" / "warned.py").write_text(
        "import os  # unused: a warning under the project's own setting\n"
    )
    with (pytester.path / "pyproject.toml").open("a") as config:
        config.write('reportUnusedImport = "warning"\n')
    args = ("--orchestrate", "--orchestrate-dimensions=tests,types", REPORT, "-p", "no:randomly")
    result = pytester.runpytest_subprocess(*args)
    types = types_of(pytester.path)
    assert (types.status, types.tool) == ("ok", "pyright"), types.reason
    found = sorted((f.path, f.line, f.rule_id, f.severity.value) for f in types.findings)
    assert found == [
        ("pkg/mod.py", 5, "reportAssignmentType", "P2"),
        ("pkg/warned.py", 1, "reportUnusedImport", "P3"),
    ]
    assert result.ret == 0
    # the cache answers the second run, as for mypy: a planted message proves it
    plant_in_cache(pytester.path, "pyright")
    pytester.runpytest_subprocess(*args)
    messages = {f.path: f.message for f in types_of(pytester.path).findings}
    assert messages["pkg/mod.py"] == "from the cache"


def test_type_errors_in_test_code_inside_the_package_are_left_out(
    pytester: pytest.Pytester,
) -> None:
    typed_project(pytester.path)
    (pytester.path / "pkg" / "tests").mkdir()
    (pytester.path / "pkg" / "tests" / "__init__.py").write_text("")
    (pytester.path / "pkg" / "tests" / "test_inner.py").write_text(
        "def test_inner() -> None:\n    value: int = 'text'\n    assert value\n"
    )
    pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests,types", REPORT, "-p", "no:randomly"
    )
    types = types_of(pytester.path)
    assert [f.path for f in types.findings] == ["pkg/mod.py"]
    assert types.notes == [
        "1 finding in test code inside the sources left out (test code is not in the size "
        "the score divides by)"
    ]


def test_types_on_new_code(pytester: pytest.Pytester) -> None:
    typed_project(pytester.path)
    (pytester.path / "pkg" / "mod.py").write_text(TYPED.replace("VALUE: str", "VALUE: int"))
    init_repo(pytester.path)
    commit_all(pytester.path, "main")
    git(pytester.path, "checkout", "-q", "-b", "feature")
    (pytester.path / "pkg" / "mod.py").write_text(TYPED)  # the error comes with the change
    commit_all(pytester.path, "feature")
    pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,types",
        "--orchestrate-diff-base=main",
        REPORT,
        "-p",
        "no:randomly",
    )
    report = load(pytester.path / "out" / "report.json")
    [finding] = types_of(pytester.path).findings
    assert report.new_code is not None and finding.fingerprint in report.new_code.findings
    assert any(
        c.name == "new-code score" or "new-code" in c.message for c in report.verdict.conditions
    )


def test_a_syntax_error_is_p0(pytester: pytest.Pytester) -> None:
    typed_project(pytester.path)
    (pytester.path / "pkg" / "broken.py").write_text("def f(:\n")
    pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests,types", REPORT, "-p", "no:randomly"
    )
    types = types_of(pytester.path)
    assert types.status == "ok"
    assert {(f.path, f.rule_id, f.severity.value) for f in types.findings} >= {
        ("pkg/broken.py", "syntax", "P0")
    }


def test_a_configured_checker_that_is_missing_is_unavailable_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    typed_project(pytester.path, config="[tool.pyright]\ntypeCheckingMode = 'strict'\n")
    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests,types", REPORT, "-p", "no:randomly"
    )
    types = types_of(pytester.path)
    assert types.status == "unavailable"
    assert types.reason == "pyright is configured but not installed; npm install -g pyright"
    assert result.ret == 6  # a requested dimension that is unavailable fails the gate


def test_which_checker_the_configuration_names(tmp_path: Path) -> None:
    assert configured(tmp_path) is None
    (tmp_path / "pyrightconfig.json").write_text("{}")
    assert configured(tmp_path) == "pyright"
    (tmp_path / "setup.cfg").write_text("[mypy]\nstrict = True\n")
    assert configured(tmp_path) == "mypy"  # mypy first when both are configured


def test_only_the_checker_s_own_section_names_its_files(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.setuptools.packages.find]\ninclude = ['pkg*']\n\n[tool.other]\nfiles = 'x'\n"
    )
    assert not _names_files(tmp_path, "pyright") and not _names_files(tmp_path, "mypy")
    (tmp_path / "setup.cfg").write_text("[mypy]\nfiles = pkg\n")
    assert _names_files(tmp_path, "mypy")
    (tmp_path / "pyrightconfig.json").write_text('{"include": ["pkg"]}')
    assert _names_files(tmp_path, "pyright")


def test_pyright_s_json_contract() -> None:
    """pyright --outputjson (pyright's docs, "Command-line": JSON output): 0-based lines."""
    out = json.dumps(
        {
            "version": "1.1.400",
            "generalDiagnostics": [
                {
                    "file": "/work/p/pkg/mod.py",
                    "severity": "error",
                    "message": 'Type "int" is not assignable to declared type "str"',
                    "range": {"start": {"line": 4, "character": 13}, "end": {"line": 4}},
                    "rule": "reportAssignmentType",
                },
                {
                    "file": "/work/p/pkg/mod.py",
                    "severity": "warning",
                    "message": "Import cycle",
                    "range": {"start": {"line": 0, "character": 0}},
                },
            ],
            "summary": {"errorCount": 1, "warningCount": 1},
        }
    )
    assert parse("pyright", out) == [
        {
            "file": "/work/p/pkg/mod.py",
            "line": 5,
            "code": "reportAssignmentType",
            "message": 'Type "int" is not assignable to declared type "str"',
            "severity": "error",
            "hint": None,
        },
        {
            "file": "/work/p/pkg/mod.py",
            "line": 1,
            "code": "",
            "message": "Import cycle",
            "severity": "warning",
            "hint": None,
        },
    ]
    assert parse("pyright", "not json") is None
    assert parse("mypy", '{"file": "a.py", "line": 1}\n\n') == [{"file": "a.py", "line": 1}]
    assert parse("mypy", "mypy: error: bad config\n") is None
