"""Gap closure cannot be gamed: hostile ``command:`` agents try every known way to raise the
score without fixing anything, on a real git repository with real pytest, coverage, ruff and
bandit. None may be accepted, with ``--orchestrate-confirm=no`` (the tree is then
byte-identical afterwards) or ``--orchestrate-confirm=yes``; honest agents still are.

The project has one failing test (``mul`` adds), an unused import in a test (ruff F401), a
``shell=True`` call (bandit B602) and a module no test runs (``pkg/export.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_types import use_pyright

from pytest_orchestrator.loop import integrity
from pytest_orchestrator.loop.integrity import REFUSED
from pytest_orchestrator.models import Report

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX paths and git")

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b\n"
TESTS = (
    "from pkg.calc import add, mul\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_mul():\n    assert mul(3, 3) == 9\n"
)
RUN = (
    "import subprocess\n\n\ndef run(command):\n"
    "    return subprocess.run(command, shell=True, check=False).returncode\n"
)
EXPORT = "def export(rows):\n    return ','.join(str(r) for r in rows)\n"
PYPROJECT = '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n'
#: Caches and outputs that the runs themselves write: left out of the tree comparison.
SKIPPED = {".pytest_cache", "__pycache__", ".ruff_cache", "out", "objects", "logs"}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = pytester.path
    scripts = root.parent / f"{root.name}-agent"
    scripts.mkdir()
    monkeypatch.setenv("PYTEST_ORCHESTRATOR_SANDBOX_WRITABLE", str(scripts))
    files = {
        "pkg/__init__.py": "",
        "pkg/calc.py": CALC,
        "pkg/run.py": RUN,
        "pkg/export.py": EXPORT,
        "tests/test_calc.py": TESTS,
        "tests/test_run.py": "import os\n\nfrom pkg.run import run\n\n\ndef test_run():\n"
        "    assert run('true') == 0\n",
        "pyproject.toml": PYPROJECT,
        ".gitignore": ".pytest_cache/\n__pycache__/\n.ruff_cache/\nout/\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    return root


def everything(root: Path) -> dict[str, bytes]:
    """Every file and link under ``root``, ignored ones and ``.git``'s included (but the
    caches the runs write and git's objects and logs), with its content and mode."""
    found: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED]
        for name in [
            *filenames,
            *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))),
        ]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel == ".git/index":
                continue  # its stat data changes when git refreshes it; entries: git_state
            mode = path.lstat().st_mode
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            found[rel] = f"{mode:o}:".encode() + data
        for name in dirnames:
            found[Path(dirpath, name).relative_to(root).as_posix() + "/"] = b"dir"
    found[":index"] = git(root, "ls-files", "--stage").encode()
    return found


def agent(root: Path, source: str) -> str:
    """``command:PYTHON SCRIPT``: a hostile (or honest) agent as a Python script, kept
    beside the tree (readable in the sandbox: see the repo fixture)."""
    script = root.parent / f"{root.name}-agent" / "agent.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(textwrap.dedent(source))
    return f"--orchestrate-agent=command:{sys.executable} {script}"


def gate(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Report]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--orchestrate",
            "--target-score=100",
            "--orchestrate-max-iterations=1",
            "--orchestrate-report=terminal",
            "--orchestrate-report=json:out/report.json",
            *args,
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    path = root / "out" / "report.json"
    assert path.is_file(), done.stdout + done.stderr
    return done, Report.model_validate(json.loads(path.read_text()))


EDIT = """
from pathlib import Path
def edit(rel, old, new):
    path = Path(rel)
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new, 1))
"""

#: name -> (the agent's script, an integrity check expected under --orchestrate-confirm=no)
GAMING = {
    "skip-marker": (
        EDIT + "edit('tests/test_calc.py', 'def test_mul', "
        "'import pytest\\n@pytest.mark.skip(reason=\"flaky\")\\ndef test_mul')",
        "test-skipped",
    ),
    "skip-call": (
        EDIT + "edit('tests/test_calc.py', '    assert mul(3, 3) == 9', "
        "'    import pytest\\n    pytest.skip(\"later\")\\n    assert mul(3, 3) == 9')",
        "test-skipped",
    ),
    "xfail-marker": (
        EDIT + "edit('tests/test_calc.py', 'def test_mul', "
        "'import pytest\\n@pytest.mark.xfail\\ndef test_mul')",
        "test-skipped",
    ),
    "pytestmark": (
        EDIT + "edit('tests/test_calc.py', 'from pkg', "
        "'import pytest\\npytestmark = pytest.mark.skip\\nfrom pkg')",
        "test-skipped",
    ),
    "importorskip": (
        EDIT + "edit('tests/test_calc.py', 'from pkg', "
        "'import pytest\\npytest.importorskip(\"no_such_module\")\\nfrom pkg')",
        "test-skipped",
    ),
    "expected-value": (
        EDIT + "edit('tests/test_calc.py', 'mul(3, 3) == 9', 'mul(3, 3) == 6')",
        "failing-test-edited",
    ),
    "delete-test": (
        EDIT + "edit('tests/test_calc.py', '\\n\\ndef test_mul():\\n    assert mul(3, 3) == 9\\n',"
        " '\\n')",
        "test-removed",
    ),
    "noqa": (
        EDIT + "edit('tests/test_run.py', 'import os', 'import os  # noqa: F401')",
        "suppression-added",
    ),
    "ruff-disable-range": (
        EDIT
        + "edit('tests/test_run.py', 'import os\\n', "
        + "'# ruff: disable[F401]\\nimport os\\n# ruff: enable[F401]\\n')",
        "suppression-added",
    ),
    "nosec": (
        EDIT + "edit('pkg/run.py', 'check=False)', 'check=False)  # nosec')",
        "suppression-added",
    ),
    "no-cover": (
        EDIT
        + "edit('pkg/export.py', 'def export(rows):', 'def export(rows):  # pragma: no cover')",
        "suppression-added",
    ),
    "conftest-deselect": (
        "from pathlib import Path\nPath('tests/conftest.py').write_text("
        "'def pytest_collection_modifyitems(config, items):\\n'"
        "'    items[:] = [i for i in items if \"test_mul\" not in i.nodeid]\\n')",
        "rules-changed",
    ),
    "addopts-deselect": (
        EDIT + "edit('pyproject.toml', 'testpaths', "
        "'addopts = [\"--deselect=tests/test_calc.py::test_mul\"]\\ntestpaths')",
        "rules-changed",
    ),
    "addopts-k": (
        EDIT
        + "edit('pyproject.toml', 'testpaths', 'addopts = \"-k not_mul and not mul\"\\ntestpaths')",
        "rules-changed",
    ),
    "ruff-config": (
        "from pathlib import Path\nPath('ruff.toml').write_text('[lint]\\nignore = [\"F401\"]\\n')",
        "rules-changed",
    ),
    "flake8-config": (  # without a ruff configuration, flake8's ignores reach ruff
        "from pathlib import Path\nPath('.flake8').write_text('[flake8]\\nignore = F401\\n')",
        "rules-changed",
    ),
    "setup-cfg-flake8": (
        "from pathlib import Path\n"
        "Path('setup.cfg').write_text('[flake8]\\nper-file-ignores = tests/*: F401\\n')",
        "rules-changed",
    ),
    "coveragerc-omit": (
        "from pathlib import Path\n"
        "Path('.coveragerc').write_text('[run]\\nomit = pkg/export.py\\n')",
        "rules-changed",
    ),
    "hidden-conftest": (
        "from pathlib import Path\nhidden = Path('tests/hidden')\nhidden.mkdir()\n"
        "(hidden / '.gitignore').write_text('*\\n')\n(hidden / 'conftest.py').write_text("
        "'def pytest_collection_modifyitems(config, items):\\n'"
        "'    items[:] = [i for i in items if \"test_mul\" not in i.nodeid]\\n')",
        "hidden-files",
    ),
    "gitignore-hides-code": (
        "from pathlib import Path\nPath('pkg/.gitignore').write_text('calc.py\\nrun.py\\n')",
        "rules-changed",
    ),
    "ignore-file-hides-code": (  # ruff honours .ignore files as it honours .gitignore
        "from pathlib import Path\nPath('pkg/.ignore').write_text('calc.py\\nrun.py\\n')",
        "rules-changed",
    ),
    "plugin-in-a-test-module": (
        EDIT
        + "edit('tests/test_calc.py', 'from pkg', 'pytest_plugins = [\"pkg.sneaky\"]\\nfrom pkg')\n"
        "Path('pkg/sneaky.py').write_text('def pytest_collection_modifyitems(config, items):\\n'"
        "'    items[:] = [i for i in items if \"test_mul\" not in i.nodeid]\\n')",
        "collection-hook",
    ),
}


@pytest.mark.parametrize("confirm", ["no", "yes"])
@pytest.mark.parametrize("case", sorted(GAMING))
def test_a_gaming_agent_is_never_accepted(repo: Path, case: str, confirm: str) -> None:
    source, check = GAMING[case]
    before = everything(repo)
    done, report = gate(repo, agent(repo, source), f"--orchestrate-confirm={confirm}")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted, (iteration, done.stdout)
    assert iteration.files, iteration  # the agent did change something (hidden files too)
    fired = {g.name for g in iteration.integrity}
    if confirm == "no":
        assert check in fired, iteration
        assert "gap closure: iteration 1 refused by the guard: " in done.stdout
    assert report.score.overall == report.loop.initial_score
    if confirm == "no":
        assert everything(repo) == before
    else:
        after = everything(repo)
        assert {k: v for k, v in after.items() if not k.startswith(".git/")} == {
            k: v for k, v in before.items() if not k.startswith(".git/")
        }


def test_a_suppressed_finding_counts_as_if_the_suppression_were_absent(repo: Path) -> None:
    """Under yes, the noqa is kept for the re-audit only as the agent wrote it: the
    measurement removes it, so F401 is still found and nothing is resolved."""
    source, _ = GAMING["noqa"]
    _, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.score_after == report.loop.initial_score
    [check] = [g for g in iteration.integrity if g.name == "suppression-added"]
    assert check.confirmed is True and "tests/test_run.py:1 # noqa: F401" in check.message
    assert iteration.reason.startswith("no finding of the iteration's start was resolved")
    assert (repo / "tests" / "test_run.py").read_text().startswith("import os\n")


def test_a_skipped_failing_test_counts_as_failed_and_refuses(repo: Path) -> None:
    source, _ = GAMING["skip-marker"]
    done, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert iteration.reason.startswith(
        "refused: tests/test_calc.py::test_mul is skipped now, though it ran at the session's start"
    ), iteration.reason
    assert "gap closure: iteration 1 refused: tests/test_calc.py::test_mul" in done.stdout
    assert [g.name for g in iteration.integrity if g.confirmed is None][-1] == "test-not-run"


@pytest.mark.parametrize(
    "source",
    [
        EDIT + "edit('pkg/calc.py', 'def mul(a, b):\\n    return a + b', "
        "'def mul(a, b):\\n    return a * b')",
        "from pathlib import Path\nPath('tests/test_export.py').write_text("
        "'from pkg.export import export\\n\\n\\ndef test_export():\\n'"
        "'    assert export([1, 2]) == \"1,2\"\\n')",
        None,
    ],
    ids=["code-fix", "new-test-covers-code", "ruff-fix"],
)
def test_honest_agents_are_accepted(repo: Path, source: str | None) -> None:
    if source is None:
        argv = f"--orchestrate-agent=command:{sys.executable} -m ruff check --fix"
    else:
        argv = agent(repo, source)
    done, report = gate(repo, argv, "--orchestrate-confirm=no")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted, (iteration, done.stdout)
    assert iteration.integrity == [] and iteration.resolved
    assert report.score.overall > report.loop.initial_score


def test_compiled_code_the_agent_plants_is_never_run(repo: Path) -> None:
    """A ``.pyc`` whose header matches ``pkg/calc.py``'s size and time, compiled from a
    fixed ``mul``: Python would run it instead of the source. The loop deletes it before
    re-testing, so nothing changed and the failing test still fails."""
    source = """
    import importlib._bootstrap_external as external
    import importlib.util
    import os
    from pathlib import Path
    path = 'pkg/calc.py'
    text = Path(path).read_text()
    fixed = text[: text.rindex('a + b')] + 'a * b' + text[text.rindex('a + b') + 5 :]
    st = os.stat(path)
    code = compile(fixed, path, 'exec')
    data = external._code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size)
    target = Path(importlib.util.cache_from_source(path))
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(bytes(data))
    Path('notes.txt').write_text('thinking')
    """
    done, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    assert iteration.reason.startswith("no finding of the iteration's start was resolved")
    assert not list((repo / "pkg").glob("__pycache__/calc.*.pyc"))
    tests = report.audit("tests")
    assert tests is not None and tests.tests is not None and tests.tests.failed == 1


#: Ways past the measurement itself (a review's findings): each refused outright, even
#: under --orchestrate-confirm=yes.
BEYOND = {
    "forge-the-report": (
        "from pathlib import Path\np = Path('pkg/calc.py')\np.write_text(p.read_text() + "
        "'import atexit, glob, json\\n'\n"
        "  'def _forge():\\n'\n"
        "  '    for name in glob.glob(\"/tmp/pytest-orchestrator-reaudit-*/report.json\"):\\n'\n"
        '  \'        data = json.load(open(name)); data["score"]["overall"] = 100.0\\n\'\n'
        "  '        json.dump(data, open(name, \"w\"))\\n'\n"
        "  'atexit.register(_forge)\\n')",
        "tampering",
    ),
    "patch-pytest-from-the-code": (
        "from pathlib import Path\np = Path('pkg/calc.py')\np.write_text(p.read_text() + "
        "'import _pytest.python\\n'\n"
        "  '_run = _pytest.python.Function.runtest\\n'\n"
        "  'def _quiet(self):\\n'\n"
        "  '    try:\\n        _run(self)\\n    except AssertionError:\\n        pass\\n'\n"
        "  '_pytest.python.Function.runtest = _quiet\\n')",
        "tampering",
    ),
    "thirty-trivial-tests": (
        "from pathlib import Path\nPath('tests/test_more.py').write_text(''.join("
        "f'def test_{i}():\\n    assert 1 == 1\\n\\n\\n' for i in range(30)))",
        "assertion-free-test",
    ),
    # runs pkg/export.py, which no test ran: coverage rises, and nothing is checked
    "coverage-without-assertions": (
        "from pathlib import Path\nPath('tests/test_export.py').write_text("
        "'from pkg.export import export\\n\\n\\ndef test_export():\\n'"
        "'    export([1, 2])\\n')",
        "assertion-free-test",
    ),
    "a-class-whose-test-asserts-a-constant": (
        "from pathlib import Path\nPath('tests/test_export.py').write_text("
        "'from pkg.export import export\\n\\n\\nclass TestExport:\\n'"
        "'    def test_export(self):\\n        export([1, 2])\\n        assert True\\n')",
        "assertion-free-test",
    ),
    # security and types leave test code in a package out: risky code moved there hides
    "risky-code-moved-into-test-code": (
        "from pathlib import Path\nPath('pkg/tests').mkdir()\n"
        "Path('pkg/tests/__init__.py').write_text('')\n"
        "Path('pkg/tests/shell.py').write_text(Path('pkg/run.py').read_text())\n"
        "Path('pkg/run.py').write_text('from "
        'pkg.tests.shell import run\\n\\n__all__ = ["run"]\\n\')',
        "source-imports-tests",
    ),
    "risky-code-moved-into-a-test-module-relatively": (
        "from pathlib import Path\nPath('pkg/tests').mkdir()\n"
        "Path('pkg/tests/test_shell.py').write_text(Path('pkg/run.py').read_text())\n"
        "Path('pkg/run.py').write_text('from "
        '.tests.test_shell import run\\n\\n__all__ = ["run"]\\n\')',
        "source-imports-tests",
    ),
    "risky-code-moved-beside-the-tests": (  # tests/ is on sys.path: ``from shell import``
        "from pathlib import Path\n"
        "Path('tests/shell.py').write_text(Path('pkg/run.py').read_text())\n"
        "Path('pkg/run.py').write_text('from shell import run\\n\\n__all__ = [\"run\"]\\n')",
        "source-imports-tests",
    ),
    "shadow-a-standard-module": (
        "from pathlib import Path\nPath('tests/gzip.py').write_text('EVIL = 1\\n')\n"
        + EDIT
        + "edit('pkg/calc.py', 'def mul(a, b):\\n    return a + b', "
        "'def mul(a, b):\\n    return a * b')",
        "shadowing-module",
    ),
}


@pytest.mark.parametrize("case", sorted(BEYOND))
def test_reaching_into_the_test_run_is_refused_without_a_question(repo: Path, case: str) -> None:
    source, check = BEYOND[case]
    before = everything(repo)
    done, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted and iteration.reason.startswith("refused:"), iteration
    assert check in {g.name for g in iteration.integrity}
    assert "gap closure: iteration 1 refused: " in done.stdout
    assert everything(repo) == before


def test_a_name_added_beside_a_failing_test_is_an_edit_of_it(repo: Path) -> None:
    """``mul = lambda a, b: a * b`` after the import shadows the code under test."""
    source = EDIT + (
        "edit('tests/test_calc.py', 'from pkg.calc import add, mul\\n', "
        "'from pkg.calc import add, mul\\n\\nmul = lambda a, b: a * b\\n')"
    )
    _, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None
    [iteration] = report.loop.iterations
    assert not iteration.accepted, iteration
    [check] = [g for g in iteration.integrity if g.name == "failing-test-edited"]
    assert "tests/test_calc.py::test_mul failed before and had its module changed" in check.message


def test_a_rule_file_replaced_by_a_link_is_measured_as_it_was(repo: Path) -> None:
    source = (
        "import os\nfrom pathlib import Path\n"
        "elsewhere = Path('..') / (Path.cwd().name + '-agent') / 'pyproject.toml'\n"
        "elsewhere.write_text('[tool.pytest.ini_options]\\naddopts = \"-k add\"\\n'"
        ' \'pythonpath = ["."]\\ntestpaths = ["tests"]\\n\')\n'
        "os.remove('pyproject.toml')\nos.symlink(elsewhere.resolve(), 'pyproject.toml')\n"
    )
    done, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None, done.stdout + done.stderr
    [iteration] = report.loop.iterations
    assert not iteration.accepted
    assert "rules-changed" in {g.name for g in iteration.integrity}
    assert (repo / "pyproject.toml").is_file() and not (repo / "pyproject.toml").is_symlink()


#: A module with one type error (an int annotated variable given a str).
TYPED = "def half(x: int) -> int:\n    value: int = 'text'\n    return x // 2 + len(str(value))\n"
MYPY = ("pyproject.toml", PYPROJECT + '\n[tool.mypy]\nfiles = ["pkg"]\n')
PYRIGHT = ("pyrightconfig.json", '{"include": ["pkg"], "typeCheckingMode": "standard"}\n')


def prepend(line: str) -> str:
    """An agent that writes ``line`` at the top of the module with the type error."""
    return (
        "from pathlib import Path\ntyped = Path('pkg/typed.py')\n"
        f"typed.write_text({line + chr(10)!r} + typed.read_text())"
    )


#: case -> (the checker's configuration: file and text, the agent that silences the error,
#: the integrity check expected under --orchestrate-confirm=no)
TYPE_GAMING = {
    "mypy-ignore-errors": (MYPY, prepend("# mypy: ignore-errors"), "suppression-added"),
    "mypy-disable-error-code": (
        MYPY,
        prepend('# mypy: disable-error-code="assignment"'),
        "suppression-added",
    ),
    "no-type-check-decorator": (
        MYPY,
        prepend("import typing\n\n\n@typing.no_type_check"),
        "suppression-added",
    ),
    "mypy-stub-beside-the-module": (
        MYPY,
        "from pathlib import Path\n"
        "Path('pkg/typed.pyi').write_text('def half(x: int) -> int: ...\\n')",
        "shadowing-module",
    ),
    "pyright-basic-comment": (
        PYRIGHT,
        prepend("# pyright: reportAssignmentType=false"),
        "suppression-added",
    ),
    "pyrightconfig-json": (
        PYRIGHT,
        "from pathlib import Path\nPath('pyrightconfig.json').write_text("
        '\'{"include": ["pkg"], "reportAssignmentType": "none"}\\n\')',
        "rules-changed",
    ),
}


@pytest.mark.parametrize("confirm", ["no", "yes"])
@pytest.mark.parametrize("case", sorted(TYPE_GAMING))
def test_an_agent_that_loosens_the_type_checker_is_never_accepted(
    repo: Path, case: str, confirm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the types dimension on, a type error silenced by a file-level checker setting
    (a suppression, measured as absent) or by the checker's own configuration file (a rule
    file, measured as it was) is not a fix."""
    (config, text), source, check = TYPE_GAMING[case]
    if case.startswith("pyright"):
        use_pyright(monkeypatch)
    (repo / config).write_text(text)
    (repo / "pkg" / "typed.py").write_text(TYPED)
    with (repo / ".gitignore").open("a") as ignore:
        ignore.write(".mypy_cache/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "typed")
    before = everything(repo)
    done, report = gate(
        repo,
        agent(repo, source),
        f"--orchestrate-confirm={confirm}",
        "--orchestrate-dimensions=tests,coverage,lint,security,types",
    )

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted, (iteration, done.stdout)
    [types] = [a for a in report.audits if a.dimension == "types"]
    assert types.status == "ok", types.reason
    assert [f.path for f in types.findings] == ["pkg/typed.py"], types.findings
    if confirm == "no" or check in REFUSED:
        assert check in {g.name for g in iteration.integrity}, iteration
    else:
        assert iteration.reason.startswith("no finding of the iteration's start was resolved")
    assert report.score.overall == report.loop.initial_score
    after = everything(repo)
    assert {k: v for k, v in after.items() if ".mypy_cache" not in k} == {
        k: v for k, v in before.items() if ".mypy_cache" not in k
    }


@pytest.mark.parametrize("confirm", ["no", "yes"])
@pytest.mark.parametrize("name", ["pytest.toml", ".pytest.toml"])
def test_a_pytest_toml_the_agent_adds_does_not_replace_the_project_s_settings(
    repo: Path, name: str, confirm: str
) -> None:
    """pytest 9 reads pytest.toml and .pytest.toml before pyproject.toml: one the agent
    adds is a rule file, set aside for the re-audit, so leaving out the project's
    ``filterwarnings = error`` there does not make a failing test pass."""
    with (repo / "pyproject.toml").open("a") as pyproject:
        pyproject.write('filterwarnings = ["error"]\n')
    (repo / "tests" / "test_warn.py").write_text(
        "import warnings\n\n\ndef test_old_call():\n    warnings.warn('old', DeprecationWarning)\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "warnings are errors")
    source = (
        f"from pathlib import Path\nPath({name!r}).write_text("
        '\'[pytest]\\npythonpath = ["."]\\ntestpaths = ["tests"]\\n\')'
    )
    before = everything(repo)
    done, report = gate(repo, agent(repo, source), f"--orchestrate-confirm={confirm}")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted, (iteration, done.stdout)
    if confirm == "no":
        assert "rules-changed" in {g.name for g in iteration.integrity}, iteration
        assert everything(repo) == before
    else:
        assert iteration.reason.startswith("no finding of the iteration's start was resolved")
    messages = [f.message for a in report.audits if a.dimension == "tests" for f in a.findings]
    assert any("test_old_call" in message for message in messages), messages
    assert not (repo / name).exists()


@pytest.mark.parametrize(
    ("package", "statement"),
    [
        (True, "from tests.expected import MUL_3_3"),
        (True, "from .expected import MUL_3_3"),
        (False, "from expected import MUL_3_3"),
    ],
    ids=["absolute", "relative", "beside-the-test"],
)
def test_an_expected_value_changed_in_a_helper_module_is_an_edit_of_the_failing_test(
    repo: Path, package: bool, statement: str
) -> None:
    """The failing test reads its expected value from a module of test code beside it:
    changing the value there changes the test as much as changing it in the test."""
    (repo / "tests" / "expected.py").write_text("MUL_3_3 = 9\n")
    if package:
        (repo / "tests" / "__init__.py").write_text("")
    test = repo / "tests" / "test_calc.py"
    text = test.read_text().replace("mul(3, 3) == 9", "mul(3, 3) == MUL_3_3")
    test.write_text(f"{statement}\n{text}")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "expected values in a module")
    source = EDIT + "edit('tests/expected.py', 'MUL_3_3 = 9', 'MUL_3_3 = 6')"
    done, report = gate(repo, agent(repo, source), "--orchestrate-confirm=yes")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert not iteration.accepted, (iteration, done.stdout)
    [check] = [g for g in iteration.integrity if g.name == "failing-test-edited"]
    assert check.message == (
        "tests/test_calc.py::test_mul failed before and imports tests/expected.py, which changed"
    )


class _Origin:
    """The session's start for :func:`integrity.inspect_new_tests`: one file's old text."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read(self, rel: str) -> bytes | None:
        return self.files[rel].encode() if rel in self.files else None


def test_what_counts_as_a_test_that_asserts_nothing(tmp_path: Path) -> None:
    old = "def test_kept():\n    run()\n"  # asserted nothing before: not the agent's
    new = textwrap.dedent(
        """
        import pytest
        import unittest
        from unittest import mock

        def check(value):
            assert value == 2

        def test_kept():
            run()

        def test_assert():
            assert run() == 2

        def test_constant():
            run()
            assert 1 == 1, "always"

        def test_raises():
            with pytest.raises(ValueError):
                run()

        def test_mock():
            stub = mock.Mock()
            run(stub)
            stub.assert_called_once_with(2)

        def test_helper():
            check(run())

        def test_smoke():
            run()

        @pytest.fixture
        def test_client():  # a fixture, not a test
            return run()

        def test_raise():
            if run() != 2:
                raise AssertionError("not 2")

        def test_approx_alone():
            pytest.approx(run())

        def verify(value):
            check(value)

        class TestRun:
            def _check(self, value):
                verify(value)

            def test_method(self):
                self.assertEqual(run(), 2)

            def test_method_helper(self):
                self._check(run())

            async def test_nothing(self):
                await run()

        class RunCase(unittest.TestCase):
            def test_unittest(self):
                run()
        """
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_run.py").write_text(new)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "run.py").write_text("def test_like():\n    pass\n")  # not test code
    (tmp_path / "tests" / "helpers.py").write_text("def testdata():\n    return 1\n")
    (tmp_path / "tests" / "conftest.py").write_text("def test_like():\n    pass\n")
    origin = _Origin({"tests/test_run.py": old})
    paths = ["tests/test_run.py", "pkg/run.py", "tests/helpers.py", "tests/conftest.py"]

    [check] = integrity.inspect_new_tests(tmp_path, origin, paths)

    assert check.name == "assertion-free-test" and check.name in REFUSED
    assert check.message == (
        "5 new tests assert nothing (no assert on a computed value, assert* or "
        "pytest.raises call): tests/test_run.py::test_constant, tests/test_run.py::test_smoke, "
        "tests/test_run.py::test_approx_alone, tests/test_run.py::TestRun::test_nothing, "
        "tests/test_run.py::RunCase::test_unittest"
    )
    assert integrity.inspect_new_tests(tmp_path, _Origin({}), ["pkg/run.py"]) == []


def test_a_fix_of_the_same_size_in_the_same_second_is_measured_as_written(repo: Path) -> None:
    """Python trusts cached bytecode whose source has the size and the whole-second time it
    was compiled from: the agent's fix (``+`` to ``*``) keeps both, as a quick agent would
    within the second. The re-test still runs the fixed ``mul``, and so does the next run."""
    seen = repo.parent / f"{repo.name}-agent" / "cached.txt"
    source = EDIT + textwrap.dedent(
        f"""
        import os
        stat = os.stat('pkg/calc.py')
        cached = sorted(os.listdir('pkg/__pycache__'))
        Path({str(seen)!r}).write_text(' '.join(cached))
        edit('pkg/calc.py', 'def mul(a, b):\\n    return a +', 'def mul(a, b):\\n    return a *')
        os.utime('pkg/calc.py', ns=(stat.st_atime_ns, stat.st_mtime_ns))
        """
    )
    done, report = gate(repo, agent(repo, source), "--orchestrate-confirm=no")

    assert "calc.cpython-" in seen.read_text()  # the session's run had cached pkg/calc.py
    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted, (iteration, done.stdout)
    tests = report.audit("tests")
    assert tests is not None and tests.tests is not None and tests.tests.failed == 0
    after = subprocess.run(
        [sys.executable, "-c", "import pkg.calc; print(pkg.calc.mul(3, 3))"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert after.stdout == "9\n"


def test_stale_bytecode_is_dropped_in_the_tree_only(tmp_path: Path) -> None:
    root, outside = tmp_path / "tree", tmp_path / "outside"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "lib").mkdir()
    outside.mkdir()
    for name in ("calc.cpython-311.pyc", "calc.cpython-311-pytest-9.2.0.pyc", "calculator.pyc"):
        (root / "pkg" / "__pycache__" / name).write_bytes(b"old")
    (outside / "mod.cpython-311.pyc").write_bytes(b"not the tree's")
    (root / "lib" / "__pycache__").symlink_to(outside)  # a link the agent planted

    (root / "x").mkdir()
    paths = ["pkg/calc.py", "lib/mod.py", "pkg/absent.py", "README", "x/../../outside/mod.py"]
    integrity.drop_bytecode(root, [*paths, str(outside / "mod.py")])

    assert sorted(os.listdir(root / "pkg" / "__pycache__")) == ["calculator.pyc"]
    assert (outside / "mod.cpython-311.pyc").read_bytes() == b"not the tree's"
