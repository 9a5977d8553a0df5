"""What an agent cannot do: gap closure judges an agent's change by rules it cannot change.

An agent pushed toward a number may game it: skip the failing test, rewrite its expected
value, delete it, add ``# noqa``, ``# nosec`` or ``# pragma: no cover``, or a conftest.py
that deselects what fails. Four rules make that impossible or useless:

1. **Frozen rules.** Each re-audit measures the agent's tree with the *session's* rules:
   every file named in :data:`~pytest_orchestrator.loop.snapshot.RULE_NAMES` (pytest's,
   coverage's, ruff's, bandit's, mypy's and pyright's configuration, every
   ``conftest.py``, every ``.gitignore``) and every other module of the tree that pytest
   loaded as a plugin is put back as it was when the loop started, for the time of the
   re-audit (:class:`MeasuredView`); ones the agent added are set aside. The agent may
   still change them (a guard check).
2. **A suppression is not a fix.** Comment suppressions the agent added (``noqa``, ``nosec``,
   ``type: ignore`` and the ``# mypy:``/``# pyright:`` settings that loosen a checker,
   ``pragma: no cover``/``no branch``) are deleted from the measured tree, so its findings
   count as if they had never been written; a test that ran at the session's start and is
   now skipped, xfailed, deselected or gone counts as failed (the ``tests`` auditor's
   oracle); skip and xfail markers or calls the agent added, and
   collection hooks (``pytest_plugins``, ``def pytest_...``), are guard checks.
3. **The tests are the oracle.** Every test that ran at the start still runs; a failing
   test the agent edited, an existing test with fewer or changed assertions (an expected
   value), changed decorators (a parametrization) or a deleted test are guard checks of
   high risk (:func:`inspect_tests`), and a finding of such a test cannot count as resolved.
4. **Progress means a finding resolved** (:func:`resolved`): at least one finding of the
   iteration's start is gone (or, for coverage, has fewer uncovered lines), by a change no
   check flagged.

=======================  ======  ==========================================================
check                    risk    fired by
=======================  ======  ==========================================================
``failing-test-edited``  high    a test that failed (or errored) at the session's start was
                                 changed, or its module around the tests (a fixture, helper,
                                 constant or name changed, removed or added), or a module of
                                 test code it imports (``tests/expected.py``)
``test-weakened``        high    an assertion of an existing test removed or changed (an
                                 expected value, a name it compares), or its decorators
                                 (parametrization) changed
``test-removed``         high    a test that existed at the session's start was deleted
``test-skipped``         high    a skip or xfail marker or call added (``mark.skip``,
                                 ``pytest.skip()``, ``pytestmark``, ``skipTest`` ...)
``collection-hook``      high    ``pytest_plugins`` or a ``def pytest_...`` hook added to a
                                 module that is not a conftest.py
``tampering``            high    code that reaches into the test run added: pytest's
                                 internals (``_pytest``), this plugin, ``atexit``, tracing
                                 (``sys.settrace``), ``sys.modules[...]``, patched
                                 ``pytest.X =`` or builtins, ``import coverage``
``assertion-free-test`` high    a test added that asserts nothing: no ``assert`` on a
                                 computed value (``assert 1 == 1`` is none), no ``assert*``,
                                 ``pytest.raises``-like call, nor a call of a function of its
                                 module that asserts (:func:`inspect_new_tests`): it raises
                                 coverage without checking what it runs
``source-imports-tests`` high    code under test (not test code) that now imports a module
                                 of test code in the tree (``from pkg.tests.shell import
                                 run``): security and types leave test code out, so moving
                                 risky code there hides it
``shadowing-module``     high    a module added where Python imports from that hides an
                                 installed one (``tests/gzip.py``), or a stub added beside a
                                 module of the tree (``pkg/mod.pyi``: mypy checks the stub
                                 instead of the code)
``hidden-files``         high    files created or changed under ignored paths, or a new
                                 nested repository (caches excepted)
``suppression-added``    medium  a noqa, nosec, type: ignore or pragma comment, or a
                                 ``# mypy:``/``# pyright:`` setting that loosens the
                                 checker, added (measured as absent)
``rules-changed``        medium  a rule file changed, added or deleted (measured with the
                                 session's version)
=======================  ======  ==========================================================

``tampering``, ``shadowing-module``, ``assertion-free-test`` and ``source-imports-tests``
refuse the iteration without a question (:data:`REFUSED`). After the re-audit
(:func:`outcome_checks`, refusing the iteration, no question asked):
``test-not-run`` (a test that ran at the start did not run), ``new-plugin`` (a module of the
tree pytest had not loaded as a plugin at the start was loaded) and ``retest-changed-tree``
(the tests of the re-audit changed files of the tree or git's own files).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import os
import posixpath
import re
import secrets
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from pytest_orchestrator import suppressions
from pytest_orchestrator.loop.guard import SHOWN, GuardCheck
from pytest_orchestrator.loop.snapshot import RULE_NAMES, is_cache
from pytest_orchestrator.sources import is_test_file

if TYPE_CHECKING:
    from pytest_orchestrator.auditors.tests import Observation
    from pytest_orchestrator.loop.snapshot import ChangeSet
    from pytest_orchestrator.models import Finding, Report

#: Outcomes of a test that ran.
RAN = frozenset({"passed", "failed", "error", "xpassed"})
#: The names of the integrity checks (the guard's own are in ``loop.guard``).
CHECKS = frozenset(
    {
        "failing-test-edited",
        "test-weakened",
        "test-removed",
        "test-skipped",
        "collection-hook",
        "hidden-files",
        "suppression-added",
        "rules-changed",
        "test-not-run",
        "new-plugin",
        "retest-changed-tree",
        "tampering",
        "shadowing-module",
        "assertion-free-test",
        "source-imports-tests",
    }
)
#: Checks that refuse the iteration without a question: no fix needs to reach into the test
#: run, to hide a module Python imports, a test that checks nothing, or code moved where
#: the audits do not look.
REFUSED = frozenset(
    {"tampering", "shadowing-module", "assertion-free-test", "source-imports-tests"}
)
#: Checks that make a finding of the tests they name unable to count as resolved.
TAINTING = frozenset({"failing-test-edited", "test-weakened", "test-removed"})
_HOOK = re.compile(r"^\s*(?:pytest_plugins\s*[:=]|(?:async\s+)?def\s+pytest_\w+\s*\()", re.M)
#: Code that reaches into the test run itself instead of the code under test: pytest's
#: internals, this plugin, exit hooks, tracing (what coverage uses), patched modules or
#: builtins, the re-audit's files.
_TAMPERING = re.compile(
    r"\b_pytest\b|\bpytest_orchestrator\b|PYTEST_ORCHESTRATOR|\batexit\b"
    r"|\bsys\.(?:settrace|setprofile|monitoring|modules\s*\[)|\b__builtins__\b"
    r"|\bbuiltins\.\w+\s*=[^=]|\bpytest\.\w+(?:\.\w+)*\s*=[^=]"
    r"|^\s*(?:import|from)\s+coverage\b|\b(?:report|observed|oracle)\.json\b",
    re.M,
)
#: Calls whose removal or change weakens a test (beside ``assert`` statements).
_ASSERTING_CALLS = frozenset({"raises", "warns", "deprecated_call", "fail", "approx"})


class Origin(Protocol):
    """The tree at the session's start (a :class:`~pytest_orchestrator.loop.snapshot.Snapshot`)."""

    def read(self, rel: str) -> bytes | None: ...

    def rule_files(self) -> list[str]: ...


def is_rule_file(rel: str, plugins: Iterable[str] = ()) -> bool:
    """Whether ``rel`` decides how the project is measured: its name is one of
    :data:`RULE_NAMES`, or it is one of ``plugins`` (modules pytest loaded as plugins)."""
    return posixpath.basename(rel) in RULE_NAMES or rel in set(plugins)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _real_parents(root: Path, rel: str, make: bool = False) -> bool:
    """Whether every parent of ``root/rel`` is a real directory, not a link (``make``:
    create the missing ones); nothing is ever read or written through a link."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if not make:
                return False
            os.mkdir(current)
            continue
        except OSError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return False
    return True


def drop_bytecode(root: Path, paths: Iterable[str]) -> None:
    """Delete the cached bytecode of the modules among ``paths`` (relative to ``root``):
    ``__pycache__/NAME.*.pyc`` beside each ``NAME.py``, pytest's rewritten ones included.

    Python trusts a cached module whose source has the size and the modification time, in
    whole seconds, it was compiled from: a module changed to the same size within that
    second (an agent's one-character fix, or the measured view putting a rule file back)
    would run as it was. Nothing is deleted through a link or outside ``root`` (an absolute
    path or one with ``..`` is skipped). Bytecode under ``PYTHONPYCACHEPREFIX`` is not
    looked at."""
    for rel in paths:
        if rel.startswith("/") or ".." in rel.split("/") or not rel.endswith(".py"):
            continue
        cache_rel = posixpath.join(posixpath.dirname(rel), "__pycache__")
        if not _real_parents(root, cache_rel + "/x"):
            continue  # "/x": __pycache__ itself must be a real directory too
        cache = root / cache_rel
        stem = posixpath.basename(rel)[:-3]
        try:
            names = os.listdir(cache)
        except OSError:
            continue
        for name in names:
            if name.startswith(stem + ".") and name.endswith(".pyc"):
                entry = cache / name
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(entry).st_mode):
                        os.unlink(entry)


def _read(root: Path, rel: str) -> bytes | None:
    """The content of ``root/rel`` now; None when missing, a link, or behind a link."""
    path = root / rel
    if not _real_parents(root, rel):
        return None
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return None
        return path.read_bytes()
    except OSError:
        return None


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


# --------------------------------------------------------------------------- the tests


def test_path(nodeid: str, locations: dict[str, list[object]]) -> tuple[str, list[str]] | None:
    """``(file, [class..., function])`` of a test node id such as
    ``tests/test_a.py::TestX::test_y[1-2]``; None for an id that names no function (a
    doctest, a remote target without a location)."""
    location = locations.get(nodeid)
    path = str(location[0]) if location and location[0] else nodeid.split("::", 1)[0]
    parts = nodeid.split("::")[1:]
    if not parts or not path.endswith(".py"):
        return None
    parts[-1] = parts[-1].split("[", 1)[0]
    if not all(part.isidentifier() for part in parts):
        return None
    return path, parts


def _find(tree: ast.Module, parts: list[str]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    body: list[ast.stmt] = tree.body
    for depth, name in enumerate(parts):
        last = depth == len(parts) - 1
        found: ast.stmt | None = None
        for node in body:
            if last and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name == name:
                    found = node
            elif not last and isinstance(node, ast.ClassDef) and node.name == name:
                found = node
        if found is None:
            return None
        if last:
            assert isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef))
            return found
        assert isinstance(found, ast.ClassDef)
        body = found.body
    return None


def _name(node: ast.expr) -> str:
    """The last name of ``node`` (``pytest.fixture``: ``fixture``); empty for other
    expressions."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _callee(node: ast.Call) -> str:
    return _name(node.func)


def _assertions(function: ast.AST) -> Counter[str]:
    """What a test asserts: its ``assert`` statements, its ``assert*``/``pytest.raises``-
    like calls, and the assignments of the names they use (an expected value kept in a
    variable), each as an ``ast.dump`` (positions left out)."""
    material: list[str] = []
    names: set[str] = set()
    for node in ast.walk(function):
        asserting = isinstance(node, ast.Assert) or (
            isinstance(node, ast.Call)
            and (_callee(node).startswith("assert") or _callee(node) in _ASSERTING_CALLS)
        )
        if asserting:
            material.append(ast.dump(node))
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    for node in ast.walk(function):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        bound = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        if bound & names:
            material.append(ast.dump(node))
    return Counter(material)


def _asserts(function: ast.AST, helpers: frozenset[str] = frozenset()) -> bool:
    """Whether ``function`` checks something: an ``assert`` on a computed value (a name, an
    attribute, a call or a subscript in it: ``assert 1 == 1`` checks nothing), a
    ``raise``, an ``assert*`` or ``pytest.raises``-like call, or a call of one of
    ``helpers``."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            computed = (ast.Name, ast.Attribute, ast.Call, ast.Subscript)
            if any(isinstance(n, computed) for n in ast.walk(node.test)):
                return True
        elif isinstance(node, ast.Raise):
            return True
        elif isinstance(node, ast.Call):
            callee = _callee(node)
            asserting = callee.startswith("assert") or callee in _ASSERTING_CALLS - {"approx"}
            if asserting or callee in helpers:
                return True
    return False


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _is_fixture(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``function`` is decorated as a fixture (``@pytest.fixture``, ``@fixture(...)``)."""
    return any(
        _name(d.func if isinstance(d, ast.Call) else d) == "fixture"
        for d in function.decorator_list
    )


def _test_class(node: ast.ClassDef) -> bool:
    """A class pytest collects tests from: named ``Test*``, or a ``unittest.TestCase``
    (a base whose name ends with ``TestCase``)."""
    return node.name.startswith("Test") or any(_name(b).endswith("TestCase") for b in node.bases)


def _test_functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """pytest's default test functions of a module by name: ``test*`` functions, and
    ``test*`` methods of test classes (``Class::method``, see :func:`_test_class`);
    fixtures left out."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in tree.body:
        if isinstance(node, _FUNCTIONS) and node.name.startswith("test"):
            if not _is_fixture(node):
                found[node.name] = node
        elif isinstance(node, ast.ClassDef) and _test_class(node):
            for item in node.body:
                if not isinstance(item, _FUNCTIONS) or not item.name.startswith("test"):
                    continue
                if not _is_fixture(item):
                    found[f"{node.name}::{item.name}"] = item
    return found


def _helpers(tree: ast.Module, tests: Iterable[ast.AST]) -> frozenset[str]:
    """The names of the module's other functions and methods that check something, also
    through each other (a helper that calls a helper that asserts)."""
    skip = {id(t) for t in tests}
    candidates = [
        node for node in ast.walk(tree) if isinstance(node, _FUNCTIONS) and id(node) not in skip
    ]
    found: frozenset[str] = frozenset()
    while True:
        more = frozenset(n.name for n in candidates if _asserts(n, found)) | found
        if more == found:
            return found
        found = more


def inspect_new_tests(root: Path, origin: Origin, paths: Iterable[str]) -> list[GuardCheck]:
    """``assertion-free-test``: the tests added to the test modules among ``paths``
    (``test_*.py``, ``*_test.py``, changed since the session's start) that check nothing
    (see :func:`_asserts`; a call of a function or method of the same module that checks
    something counts). Such a test raises coverage without testing what it runs: no fix."""
    empty: list[str] = []
    for rel in sorted(paths):
        base = posixpath.basename(rel)
        if not ((base.startswith("test_") and base.endswith(".py")) or base.endswith("_test.py")):
            continue
        new = _parse(_text(_read(root, rel)))
        if new is None:
            continue
        old = _parse(_text(origin.read(rel)))
        before = _test_functions(old) if old is not None else {}
        tests = _test_functions(new)
        helpers = _helpers(new, tests.values())
        empty += [
            f"{rel}::{name}"
            for name, function in tests.items()
            if name not in before and not _asserts(function, helpers)
        ]
    if not empty:
        return []
    many = len(empty) != 1
    return [
        GuardCheck(
            "assertion-free-test",
            "high",
            f"{len(empty)} new test{'s' if many else ''} assert{'' if many else 's'} nothing "
            f"(no assert on a computed value, assert* or pytest.raises call): {_listed(empty)}",
            always=True,
        )
    ]


def _context(tree: ast.Module, parts: list[str], tests: set[str]) -> Counter[str]:
    """The statements around a test: those of its module and of its classes other than the
    session's tests and test classes (``tests``): fixtures, helpers, constants, imports,
    the classes' bases and decorators, each as an ``ast.dump``."""
    material: Counter[str] = Counter()
    body: list[ast.stmt] = tree.body
    for depth in range(len(parts)):
        name = parts[depth] if depth < len(parts) - 1 else None
        inner: list[ast.stmt] | None = None
        for node in body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                inner = node.body
                material.update(ast.dump(d) for d in [*node.decorator_list, *node.bases])
            elif not (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name in tests
            ):
                material[ast.dump(node)] += 1
        if inner is None:
            break
        body = inner
    return material


def _context_changed(old: ast.Module, new: ast.Module, parts: list[str], tests: set[str]) -> bool:
    """Whether a statement around the test was removed, changed or added (a name that
    shadows the code under test, a fixture that stands in for a conftest.py's, a
    constant); new test functions and classes are not counted."""
    before, after = _context(old, parts, tests), _context(new, parts, tests)
    if before - after:
        return True
    return any(
        not re.match(r"(?:Async)?FunctionDef\(name='test|ClassDef\(name='Test", dump)
        for dump in after - before
    )


def _parse(text: str | None) -> ast.Module | None:
    if text is None:
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _segment(text: str, node: ast.AST) -> str:
    return _short(ast.get_source_segment(text, node) or ast.unparse(node))


def inspect_tests(
    root: Path, origin: Origin, paths: Iterable[str], start: Observation
) -> list[GuardCheck]:
    """The oracle checks on the test files among ``paths`` (those changed since the
    session's start): ``failing-test-edited``, ``test-weakened``, ``test-removed``.

    A test is one of ``start``'s node ids; only those whose file and function can be
    found at the start are judged here (the re-audit's outcomes judge the others).
    """
    by_file: dict[str, list[tuple[str, list[str]]]] = {}
    for nodeid in start.outcomes:
        found = test_path(nodeid, start.locations)
        if found is not None:
            by_file.setdefault(found[0], []).append((nodeid, found[1]))
    edited: list[tuple[str, str]] = []
    weakened: list[tuple[str, str]] = []
    removed: list[str] = []
    for rel in sorted(set(paths) & by_file.keys()):
        old_text = _text(origin.read(rel))
        old = _parse(old_text)
        if old is None or old_text is None:
            continue
        new_text = _text(_read(root, rel))
        new = _parse(new_text)
        if new_text is None:
            removed += [nodeid for nodeid, _ in by_file[rel]]
            continue
        if new is None:
            continue  # a syntax error: the re-audit's collection error says it
        tests = {part for _, parts in by_file[rel] for part in parts}
        for nodeid, parts in by_file[rel]:
            before, after = _find(old, parts), _find(new, parts)
            if before is None:
                continue
            if after is None:
                removed.append(nodeid)
                continue
            failing = start.outcomes.get(nodeid) in ("failed", "error")
            if failing and ast.dump(before) != ast.dump(after):
                edited.append((nodeid, "was edited"))
                continue
            lost = _assertions(before) - _assertions(after)
            decorators = Counter(ast.dump(d) for d in before.decorator_list) - Counter(
                ast.dump(d) for d in after.decorator_list
            )
            if lost:
                gone = next(
                    node
                    for node in ast.walk(before)
                    if isinstance(node, (ast.Assert, ast.Call, ast.Assign, ast.AnnAssign))
                    and ast.dump(node) in lost
                )
                weakened.append(
                    (nodeid, f"lost or changed what it asserts ({_segment(old_text, gone)})")
                )
            elif decorators:
                weakened.append((nodeid, "had its decorators (parametrization) changed"))
            if failing and _context_changed(old, new, parts, tests):
                edited.append(
                    (nodeid, "had its module changed around it (fixtures, helpers, constants)")
                )
    edited += _helpers_changed(origin, set(paths) - by_file.keys(), by_file, start)
    checks: list[GuardCheck] = []
    if edited:
        first = f"{edited[0][0]} failed before and {edited[0][1]}"
        more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
        checks.append(
            GuardCheck(
                "failing-test-edited",
                "high",
                first + more,
                always=True,
                tainted=tuple(n for n, _ in edited),
            )
        )
    if weakened:
        first = f"{weakened[0][0]} {weakened[0][1]}"
        more = f" (and {len(weakened) - 1} more)" if len(weakened) > 1 else ""
        checks.append(
            GuardCheck(
                "test-weakened",
                "high",
                "an existing test was weakened: " + first + more,
                always=True,
                tainted=tuple(n for n, _ in weakened),
            )
        )
    if removed:
        checks.append(
            GuardCheck(
                "test-removed",
                "high",
                f"{len(removed)} test{'s' if len(removed) != 1 else ''} of the session's start "
                f"deleted: {_listed(removed)}",
                always=True,
                tainted=tuple(removed),
            )
        )
    return checks


def _helpers_changed(
    origin: Origin,
    paths: set[str],
    by_file: dict[str, list[tuple[str, list[str]]]],
    start: Observation,
) -> list[tuple[str, str]]:
    """``(node id, why)`` for each test that failed at the start and whose module imports
    a module of test code among ``paths`` that holds none of the start's tests (a helper
    or a module of expected values beside the tests, ``tests/expected.py``): changing what
    a failing test compares with is changing the test. Direct imports only, as written at
    the start: ``import tests.expected``, ``from tests.expected import X``, ``from
    tests import expected``, ``import expected`` (the tests' directory on ``sys.path``)
    and relative imports."""
    helpers = {
        rel: _module_names(rel)
        for rel in paths
        if rel.endswith(".py") and is_test_file(rel) and posixpath.basename(rel) != "conftest.py"
    }
    if not helpers:
        return []
    found: list[tuple[str, str]] = []
    for module, tests in sorted(by_file.items()):
        failing = [n for n, _ in tests if start.outcomes.get(n) in ("failed", "error")]
        tree = _parse(_text(origin.read(module))) if failing else None
        if tree is None:
            continue
        imported = _imports(module, tree)
        for rel, names in sorted(helpers.items()):
            if rel in imported or names & imported:
                found += [(nodeid, f"imports {rel}, which changed") for nodeid in failing]
                break
    return found


def _module_names(rel: str) -> set[str]:
    """The dotted names ``rel`` may be imported as: every suffix of its dotted path
    (``tests/unit/expected.py``: ``tests.unit.expected``, ``unit.expected``,
    ``expected``; a package's ``__init__.py`` names the package)."""
    parts = rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return {".".join(parts[i:]) for i in range(len(parts))}


def _imports(module: str, tree: ast.Module) -> set[str]:
    """What ``module`` (a POSIX path) imports: dotted names (``a.b`` and, for ``from a.b
    import c``, also ``a.b.c``) and, for relative imports, the paths they resolve to."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = posixpath.dirname(module)
                for _ in range(node.level - 1):
                    base = posixpath.dirname(base)
                stem = posixpath.join(base, *node.module.split(".")) if node.module else base
                targets = [stem] + [posixpath.join(stem, a.name) for a in node.names]
                for target in targets:
                    names.update({f"{target}.py", f"{target}/__init__.py"})
            elif node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


# --------------------------------------------------------------------------- the code


def inspect_code(
    root: Path, origin: Origin, paths: Iterable[str], plugins: Iterable[str] = ()
) -> list[GuardCheck]:
    """Checks on the Python files among ``paths`` (changed since the session's start) and
    on the rule files: ``test-skipped``, ``collection-hook``, ``tampering``,
    ``source-imports-tests``, ``suppression-added`` and ``rules-changed``."""
    plugin_files = set(plugins)
    skipped: list[str] = []
    silenced: list[str] = []
    hooks: list[str] = []
    rules: list[str] = []
    tampering: list[str] = []
    test_imports: list[str] = []
    # the test code the agent wrote or changed, by every name and path it may be imported
    # as (``tests/shell.py``: ``tests.shell``, and ``shell`` with ``tests/`` on sys.path)
    test_modules = {
        name
        for rel in paths
        if rel.endswith(".py") and is_test_file(rel)
        for name in {*_module_names(rel), rel}
    }
    for rel in sorted(set(paths)):
        if is_rule_file(rel, plugin_files):
            if origin.read(rel) != _read(root, rel):
                rules.append(rel)
            continue  # measured with the session's version: what it says does not count
        if not rel.endswith((".py", ".pyi")):
            continue
        old, new = _text(origin.read(rel)), _text(_read(root, rel))
        if new is None or old == new:
            continue
        for item in suppressions.added(old, new):
            where = f"{rel}:{item.line} {item.text}"
            (skipped if item.kind in ("skip", "xfail") else silenced).append(where)
        added = _added_text(old, new)
        for match in _HOOK.finditer(added):
            hooks.append(f"{rel}: {_short(match.group(0))}")
        for match in _TAMPERING.finditer(added):
            line = (
                added[: match.start()].rsplit("\n", 1)[-1]
                + added[match.start() :].split("\n", 1)[0]
            )
            tampering.append(f"{rel}: {_short(line)}")
        if rel.endswith(".py") and not is_test_file(rel):
            found = _test_imports(rel, old, new, test_modules)
            test_imports += [f"{rel} imports {name}" for name in found]
    checks: list[GuardCheck] = []
    if skipped:
        checks.append(
            GuardCheck(
                "test-skipped",
                "high",
                f"a skip or xfail added: {_listed(skipped)} (a skipped test is not a fix)",
                always=True,
            )
        )
    if hooks:
        checks.append(
            GuardCheck(
                "collection-hook",
                "high",
                f"pytest plugin code added outside conftest.py: {_listed(hooks)}",
                always=True,
            )
        )
    if tampering:
        checks.append(
            GuardCheck(
                "tampering",
                "high",
                f"code that reaches into the test run added (pytest's internals, this "
                f"plugin, exit hooks, tracing, patched modules): {_listed(tampering)}",
                always=True,
            )
        )
    if test_imports:
        checks.append(
            GuardCheck(
                "source-imports-tests",
                "high",
                f"code under test imports test code, which the audits leave out: "
                f"{_listed(test_imports)}",
                always=True,
            )
        )
    if silenced:
        checks.append(
            GuardCheck(
                "suppression-added",
                "medium",
                f"a suppression added: {_listed(silenced)} (measured as if absent: a "
                "suppression is not a fix)",
            )
        )
    if rules:
        checks.append(
            GuardCheck(
                "rules-changed",
                "medium",
                f"files that decide how the project is measured changed: {_listed(rules)} "
                "(measured with the session's version)",
            )
        )
    return checks


def _test_imports(rel: str, old: str | None, new: str, test_modules: set[str]) -> list[str]:
    """The names in ``test_modules`` that the module ``rel`` imports now and did not import
    at the start (absolute names, bare ones included, or relative imports resolved to
    paths)."""
    new_tree = _parse(new)
    if new_tree is None:
        return []
    old_tree = _parse(old)
    before = _imports(rel, old_tree) if old_tree is not None else set()
    return sorted((_imports(rel, new_tree) - before) & test_modules)


def _added_text(old: str | None, new: str) -> str:
    if old is None:
        return new
    a, b = old.split("\n"), new.split("\n")
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return "\n".join(
        line for tag, _, _, j1, j2 in matcher.get_opcodes() if tag != "equal" for line in b[j1:j2]
    )


def inspect_shadowing(
    root: Path, paths: Iterable[str], search_path: Sequence[str] = ()
) -> list[GuardCheck]:
    """``shadowing-module``: a module or package added in a directory on Python's path
    (``search_path``, default ``sys.path``: the rootdir, the tests' directories ...) whose
    name is that of a module found elsewhere (the standard library, an installed package):
    Python would import the agent's file instead, in the re-audit and in this process."""
    import importlib.machinery
    import sys

    real_root = os.path.realpath(root)
    entries = [os.path.realpath(entry or os.getcwd()) for entry in (search_path or sys.path)]
    folders = {e for e in entries if e == real_root or e.startswith(real_root + os.sep)}
    elsewhere = [e for e in entries if e not in folders]
    found: list[str] = []
    for rel in sorted(set(paths)):
        path = Path(real_root) / rel
        if rel.endswith("/__init__.py"):
            name, folder = path.parent.name, str(path.parent.parent)
        elif rel.endswith(".py"):
            name, folder = path.stem, str(path.parent)
        else:
            continue
        if folder not in folders or not name.isidentifier():
            continue
        installed = name in sys.builtin_module_names or (
            importlib.machinery.FrozenImporter.find_spec(name) is not None
            or importlib.machinery.PathFinder.find_spec(name, elsewhere) is not None
        )
        if installed:
            found.append(f"{rel} (hides {name})")
    return _shadowing("a module that hides an installed one added where Python imports from", found)


def _shadowing(what: str, found: list[str]) -> list[GuardCheck]:
    """The ``shadowing-module`` check naming ``found`` (none: no check)."""
    if not found:
        return []
    return [GuardCheck("shadowing-module", "high", f"{what}: {_listed(found)}", always=True)]


def inspect_stubs(root: Path, changes: ChangeSet) -> list[GuardCheck]:
    """``shadowing-module``: a stub (``.pyi``) added beside a module of the tree
    (``pkg/mod.pyi`` beside ``pkg/mod.py``, ``pkg/__init__.pyi`` beside
    ``pkg/__init__.py``): mypy then reads the stub and no longer checks the module's code,
    so its type errors vanish without a fix."""
    found = [
        f"{change.path} (hides {change.path[:-1]})"
        for change in changes.changes
        if change.kind == "added"
        and not change.ignored
        and change.path.endswith(".pyi")
        and (root / change.path[:-1]).is_file()
    ]
    return _shadowing(
        "a stub added beside a module, which mypy then checks instead of its code", found
    )


def inspect_hidden(changes: ChangeSet) -> list[GuardCheck]:
    """``hidden-files``: what the agent made or changed under ignored paths and in nested
    repositories, caches (:func:`~pytest_orchestrator.loop.snapshot.is_cache`) excepted."""
    hidden = [c for c in changes.hidden if not is_cache(c.path)]
    items = [f"{repo}/ (a new git repository)" for repo in changes.nested]
    items += [
        f"{c.path} ({c.kind})"
        for c in hidden
        if not any(c.path.startswith(repo + "/") for repo in changes.nested)
    ]
    if not items:
        return []
    return [
        GuardCheck(
            "hidden-files",
            "high",
            f"files changed where git does not look (ignored paths, nested repositories): "
            f"{_listed(items)}",
            always=True,
        )
    ]


# --------------------------------------------------------------------------- measuring


@dataclass
class MeasuredView:
    """The agent's tree as the re-audit measures it: rule files and plugin modules as at the
    session's start, the agent's comment suppressions deleted. A context manager: entering
    writes the measured versions into the tree, leaving puts the agent's versions back
    byte for byte (files written atomically, links never followed).

    :ivar swaps: path -> the content measured (None: the file is set aside).
    :ivar reasons: path -> why (``the session's rules`` or ``suppressions removed``).
    """

    root: Path
    swaps: dict[str, bytes | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    _saved: dict[str, tuple[str, bytes, int] | None] = field(default_factory=dict, repr=False)

    @classmethod
    def plan(
        cls,
        root: Path,
        origin: Origin,
        now_rules: Iterable[str],
        changed: Iterable[str],
        plugins: Iterable[str] = (),
    ) -> MeasuredView:
        """What to measure: every rule file of ``origin`` or of the tree now (``now_rules``)
        and every start plugin module, as in ``origin``; every other Python file in
        ``changed`` (changed since the session's start) without the comment suppressions
        added since."""
        view = cls(root)
        plugin_files = set(plugins)
        for rel in sorted({*origin.rule_files(), *now_rules, *plugin_files}):
            if not is_rule_file(rel, plugin_files):
                continue
            before = origin.read(rel)
            if before != _read(root, rel) or os.path.islink(root / rel):
                view.swaps[rel] = before
                view.reasons[rel] = "the session's rules"
        for rel in sorted(set(changed) - view.swaps.keys()):
            if not rel.endswith((".py", ".pyi")) or is_rule_file(rel, plugin_files):
                continue
            current = _read(root, rel)
            if current is None:
                continue
            new = _text(current)
            assert new is not None
            fresh = [
                s
                for s in suppressions.added(_text(origin.read(rel)), new)
                if s.kind in suppressions.COMMENT_KINDS
            ]
            if fresh:
                stripped = suppressions.strip(new, {s.line for s in fresh})
                view.swaps[rel] = stripped.encode("utf-8", "surrogateescape")
                view.reasons[rel] = "suppressions removed"
        return view

    def _put(self, rel: str, saved: tuple[str, bytes, int] | None) -> None:
        """Make ``root/rel`` a file of this content and mode, or a link to this target, or
        nothing (None); atomically, never through a link.

        :raises OSError: a parent is a link, or the write failed.
        """
        path = self.root / rel
        if not _real_parents(self.root, rel, make=saved is not None):
            raise OSError(f"{rel}: a parent directory is a link or missing")
        if saved is None:
            if os.path.lexists(path) and not os.path.isdir(path):
                os.unlink(path)
            return
        kind, data, mode = saved
        temporary = path.with_name(f".{path.name[:64]}.{secrets.token_hex(6)}.orchestrator-view")
        try:
            if kind == "link":
                os.symlink(os.fsdecode(data), temporary)
            else:
                with open(temporary, "xb") as out:
                    out.write(data)
                os.chmod(temporary, mode)
            os.replace(temporary, path)
        finally:
            if os.path.lexists(temporary):
                os.unlink(temporary)

    def __enter__(self) -> MeasuredView:
        try:
            for rel, content in self.swaps.items():
                path = self.root / rel
                mode = 0o644
                if not _real_parents(self.root, rel):
                    raise OSError(f"{rel}: a parent directory is a link")
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    self._saved[rel] = None
                else:
                    if stat.S_ISLNK(st.st_mode):
                        self._saved[rel] = ("link", os.fsencode(os.readlink(path)), 0)
                    elif stat.S_ISREG(st.st_mode):
                        mode = stat.S_IMODE(st.st_mode)
                        self._saved[rel] = ("file", path.read_bytes(), mode)
                    else:
                        raise OSError(f"{rel} is not a file")
                self._put(rel, None if content is None else ("file", content, mode))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for rel, saved in self._saved.items():
            self._put(rel, saved)
        self._saved.clear()


# --------------------------------------------------------------------------- outcomes


def outcome_checks(start: Observation, now: Observation) -> list[GuardCheck]:
    """Checks on the re-audit's own observation (each refuses the iteration):
    ``test-not-run`` and ``new-plugin``."""
    checks: list[GuardCheck] = []
    if now.not_run:
        items = [f"{nodeid} {why}" for nodeid, why in sorted(now.not_run.items())]
        ran = [n for n in now.not_run if start.outcomes.get(n) in RAN]
        checks.append(
            GuardCheck(
                "test-not-run",
                "high",
                f"{items[0]}, though it {'ran' if ran else 'was collected'} at the session's "
                "start" + (f" (and {len(items) - 1} more)" if len(items) > 1 else ""),
                always=True,
                tainted=tuple(sorted(now.not_run)),
            )
        )
    new = sorted(set(now.plugins) - set(start.plugins))
    if new:
        checks.append(
            GuardCheck(
                "new-plugin",
                "high",
                f"pytest loaded new plugin code from the tree: {_listed(new)}",
                always=True,
            )
        )
    return checks


# --------------------------------------------------------------------------- progress


def tainted_fingerprints(checks: Iterable[GuardCheck], start: Observation) -> set[str]:
    """Fingerprints of the ``tests`` findings (failed, errored) of the tests that
    :data:`TAINTING` checks name: such a finding gone is no progress."""
    from pytest_orchestrator.models import fingerprint

    found: set[str] = set()
    for check in checks:
        if check.name not in TAINTING:
            continue
        for nodeid in check.tainted:
            path = str((start.locations.get(nodeid) or [""])[0] or "") or None
            for rule in ("test-failed", "test-error"):
                found.add(fingerprint(rule, path, nodeid))
    return found


def resolved(before: Report, after: Report, tainted: Iterable[str] = ()) -> list[Finding]:
    """The findings of ``before`` that ``after`` resolved: gone (their fingerprint counted
    as a multiset), or, for a coverage finding, still there with fewer uncovered lines and
    branches; findings whose fingerprint is ``tainted`` do not count."""
    tainted = set(tainted)
    remaining = Counter(f.fingerprint for f in after.findings())
    missing_after = _coverage_missing(after)
    missing_before = _coverage_missing(before)
    out: list[Finding] = []
    for finding in before.findings():
        if finding.fingerprint in tainted:
            continue
        if remaining[finding.fingerprint] > 0:
            remaining[finding.fingerprint] -= 1
            path = finding.path or ""
            if (
                finding.dimension == "coverage"
                and path in missing_before
                and missing_after.get(path, 0) < missing_before[path]
            ):
                out.append(finding)
            continue
        out.append(finding)
    return out


def _coverage_missing(report: Report) -> dict[str, int]:
    audit = report.audit("coverage")
    if audit is None or audit.coverage is None:
        return {}
    return {f.path: f.missing + f.missing_branches for f in audit.coverage.files}
