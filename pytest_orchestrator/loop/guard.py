"""The guard: which changes an agent made need a human's confirmation before they are kept.

The seeds' orchestration contract: destructive operations are confirmed. :func:`inspect`
reads a :class:`~pytest_orchestrator.loop.snapshot.ChangeSet` and returns the checks it
triggers; a check needs confirmation when its risk is at or above
:attr:`GuardSettings.confirm_at`, or whatever that says when it is marked ``always``.

=================  ========  ======  =====================================================
name               risk      always  triggered by
=================  ========  ======  =====================================================
``git-state``      critical  yes     HEAD moved (commit, reset, checkout), the index
                                     changed (``git add``, ``git rm``), or git's config
                                     or hooks changed (``.git/hooks/pre-commit``)
``files-deleted``  high      yes     any file deleted
``schema-change``  high      yes     an added/modified file under a ``migrations/``
                                     directory or an alembic ``versions/`` directory, or
                                     added lines with ``ALTER TABLE``, ``CREATE TABLE``,
                                     ``DROP TABLE`` or ``DROP COLUMN`` (any case; a space
                                     or ``_`` between the words, so ``op.drop_column``)
``new-module``     high      yes     an added ``__manifest__.py`` (an Odoo module), or an
                                     added ``__init__.py`` in a directory that no package
                                     held before (not a sub-package of an existing one)
``core-files``     medium    no      a modified or deleted file matching ``core_globs``
``files-modified`` medium    no      more than ``max_files_modified`` files modified
``lines-removed``  medium    no      more than ``max_lines_removed`` lines removed in all
=================  ========  ======  =====================================================

With ``--orchestrate-allow-dirty`` the loop adds one more, :func:`uncommitted_work`:
``uncommitted-work`` (high, always): the agent changed, deleted or re-created a file that
held uncommitted changes when the loop started (the user's own unsaved work).

The names are stable: reports and ``--orchestrate-confirm`` answers refer to them.
A small change (one file, a few lines) triggers nothing.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from pytest_orchestrator.loop.snapshot import ChangeSet, FileChange

Risk = Literal["low", "medium", "high", "critical"]
#: The risks, lowest first.
RISKS: tuple[Risk, ...] = get_args(Risk)
#: Paths named in a check's message.
SHOWN = 5
#: Basenames of an Odoo module's manifest (``__openerp__.py`` before Odoo 10).
MANIFESTS = ("__manifest__.py", "__openerp__.py")
#: Data-definition statements in added lines.
SCHEMA_SQL = re.compile(
    r"(?<![A-Za-z0-9])(?:(?:alter|create|drop)[\s_]+table|drop[\s_]+column)(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def risk_rank(risk: Risk) -> int:
    """0 for ``low`` to 3 for ``critical``.

    :raises ValueError: not a risk.
    """
    if risk not in RISKS:
        raise ValueError(f"unknown risk {risk!r}: expected one of {', '.join(RISKS)}")
    return RISKS.index(risk)


@dataclass(frozen=True)
class GuardSettings:
    """Thresholds of the guard.

    :ivar max_lines_removed: lines removed in all (files) above which ``lines-removed``
        triggers.
    :ivar max_files_modified: modified files (added and deleted ones not counted) above
        which ``files-modified`` triggers.
    :ivar core_globs: ``fnmatch`` patterns matched against a file's basename (against its
        whole path when the pattern holds a ``/``) for ``core-files``.
    :ivar confirm_at: checks at or above this risk need confirmation.
    :raises ValueError: a negative threshold or an unknown risk.
    """

    max_lines_removed: int = 50
    max_files_modified: int = 5
    core_globs: tuple[str, ...] = (
        "__init__.py",
        "__manifest__.py",
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "requirements*.txt",
        # the settings the gate measures with: changing them games the score
        "conftest.py",
        "pytest.toml",
        ".pytest.toml",
        "pytest.ini",
        ".pytest.ini",
        "tox.ini",
        ".coveragerc",
        "ruff.toml",
        ".ruff.toml",
        "mypy.ini",
        ".mypy.ini",
        "pyrightconfig.json",
        ".bandit",
        ".flake8",
    )
    confirm_at: Risk = "medium"

    def __post_init__(self) -> None:
        for name in ("max_lines_removed", "max_files_modified"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number >= 0, not {value!r}")
        risk_rank(self.confirm_at)
        if isinstance(self.core_globs, str):
            raise ValueError("core_globs must be a tuple of patterns, not a string")


DEFAULT_SETTINGS = GuardSettings()


@dataclass(frozen=True)
class GuardCheck:
    """One triggered check.

    :ivar name: stable name (see the module's table).
    :ivar risk: its risk.
    :ivar message: one line, with counts and up to :data:`SHOWN` paths.
    :ivar always: needs confirmation whatever :attr:`GuardSettings.confirm_at` says.
    :ivar tainted: for the integrity checks (``loop.integrity``), the test node ids whose
        findings cannot count as resolved by this change.
    """

    name: str
    risk: Risk
    message: str
    always: bool = False
    tainted: tuple[str, ...] = ()

    def needs_confirmation(self, settings: GuardSettings = DEFAULT_SETTINGS) -> bool:
        """Whether a human must confirm before the change is kept."""
        return self.always or risk_rank(self.risk) >= risk_rank(settings.confirm_at)


def uncommitted_work(
    changes: ChangeSet, dirty: Iterable[str], saved_as: str | None = None
) -> GuardCheck | None:
    """The ``uncommitted-work`` check: files of ``dirty`` (paths with uncommitted changes
    when the loop started) that the agent modified, deleted or re-created (a file the user
    deleted); None when it touched none.

    :param saved_as: where that work is saved (a git ref), named in the message.
    """
    dirty = set(dirty)
    touched = [c.path for c in changes.changes if c.path in dirty]  # re-created ones too
    if not touched:
        return None
    where = f" (saved as {saved_as})" if saved_as else ""
    return GuardCheck(
        "uncommitted-work",
        "high",
        f"{_files(len(touched))} with your uncommitted changes edited{where}: {_paths(touched)}",
        always=True,
    )


def riskiest(checks: Iterable[GuardCheck]) -> Risk | None:
    """The highest risk among ``checks``; None when there are none."""
    found: Risk | None = None
    for check in checks:
        if found is None or risk_rank(check.risk) > risk_rank(found):
            found = check.risk
    return found


def to_confirm(
    checks: Iterable[GuardCheck], settings: GuardSettings = DEFAULT_SETTINGS
) -> list[GuardCheck]:
    """The checks that need confirmation under ``settings``."""
    return [c for c in checks if c.needs_confirmation(settings)]


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _paths(paths: Sequence[str]) -> str:
    """Up to :data:`SHOWN` paths, ``and N more`` beyond."""
    shown = ", ".join(_printable(p) for p in paths[:SHOWN])
    return shown + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def _ancestors(directory: str) -> list[str]:
    """Proper ancestors of a directory, nearest first, ending with ``""`` (the root)."""
    found = []
    while directory:
        directory = posixpath.dirname(directory)
        found.append(directory)
    return found


def _new_modules(changes: ChangeSet) -> list[str]:
    """Added manifests, and added ``__init__.py`` outside any package that existed before
    (only the outermost of nested new packages)."""
    manifests = [c.path for c in changes.changes if c.kind == "added" and _base(c) in MANIFESTS]
    inits = {
        posixpath.dirname(c.path): c.path
        for c in changes.changes
        if c.kind == "added" and _base(c) == "__init__.py"
    }
    packages = {
        path
        for directory, path in inits.items()
        if directory not in changes.packages_before
        and not any(a in changes.packages_before or a in inits for a in _ancestors(directory))
    }
    return sorted({*manifests, *packages})


def _base(change: FileChange) -> str:
    return posixpath.basename(change.path)


def _schema_reason(change: FileChange) -> str | None:
    """Why a change touches the database schema, or None."""
    if change.kind == "deleted":
        return None
    parts = change.path.split("/")[:-1]
    if "migrations" in parts:
        return "migration"
    if "versions" in parts:
        before = parts[: parts.index("versions")]
        if "alembic" in before or "down_revision" in change.added_text:
            return "alembic revision"
    found = SCHEMA_SQL.search(change.added_text)
    if found:
        return " ".join(found.group(0).replace("_", " ").upper().split())
    return None


def _is_core(path: str, globs: Iterable[str]) -> bool:
    base = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(path if "/" in g else base, g) for g in globs)


def inspect(changes: ChangeSet, settings: GuardSettings = DEFAULT_SETTINGS) -> list[GuardCheck]:
    """The checks ``changes`` trigger, in the order of the module's table (riskiest first).

    Pure: reads nothing but ``changes``. A ``ChangeSet`` built by hand without
    ``packages_before`` makes every added ``__init__.py`` a new module (the cautious
    reading).
    """
    checks: list[GuardCheck] = []
    if changes.head_moved or changes.index_changed or changes.git_files:
        what = [
            *(["HEAD moved (a commit, reset or checkout)"] if changes.head_moved else []),
            *(["the index changed (staged changes)"] if changes.index_changed else []),
            *(
                [f"git's own files changed: {_paths(['.git/' + n for n in changes.git_files])}"]
                if changes.git_files
                else []
            ),
        ]
        checks.append(GuardCheck("git-state", "critical", "; ".join(what), always=True))
    deleted = changes.deleted
    if deleted:
        checks.append(
            GuardCheck(
                "files-deleted", "high", f"{_files(len(deleted))} deleted: {_paths(deleted)}", True
            )
        )
    schema = [(c.path, r) for c in changes.changes if (r := _schema_reason(c)) is not None]
    if schema:
        listed = _paths([f"{path} ({reason})" for path, reason in schema])
        checks.append(
            GuardCheck(
                "schema-change",
                "high",
                f"{_files(len(schema))} may change the database schema: {listed}",
                True,
            )
        )
    modules = _new_modules(changes)
    if modules:
        count = f"{len(modules)} new module" + ("s" if len(modules) > 1 else "")
        checks.append(GuardCheck("new-module", "high", f"{count}: {_paths(modules)}", True))
    core = [
        c.path
        for c in changes.changes
        if c.kind in ("modified", "deleted") and _is_core(c.path, settings.core_globs)
    ]
    if core:
        checks.append(
            GuardCheck(
                "core-files",
                "medium",
                f"{_files(len(core))} of the project's core modified or deleted: {_paths(core)}",
            )
        )
    modified = changes.modified
    if len(modified) > settings.max_files_modified:
        checks.append(
            GuardCheck(
                "files-modified",
                "medium",
                f"{_files(len(modified))} modified (more than {settings.max_files_modified}): "
                f"{_paths(modified)}",
            )
        )
    removed = changes.lines_removed
    if removed > settings.max_lines_removed:
        biggest = sorted(
            (c for c in changes.changes if c.lines_removed),
            key=lambda c: (-c.lines_removed, c.path),
        )
        listed = _paths([f"{c.path} (-{c.lines_removed})" for c in biggest])
        checks.append(
            GuardCheck(
                "lines-removed",
                "medium",
                f"{removed} lines removed (more than {settings.max_lines_removed}) "
                f"in {_files(len(biggest))}: {listed}",
            )
        )
    return checks
