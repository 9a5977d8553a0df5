"""The guard: each check triggered and not triggered at its threshold, confirmation rules.

Most change sets are built by hand; the last tests take them from a real repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_orchestrator.loop.guard import (
    DEFAULT_SETTINGS,
    RISKS,
    GuardCheck,
    GuardSettings,
    inspect,
    risk_rank,
    riskiest,
    to_confirm,
)
from pytest_orchestrator.loop.snapshot import ChangeSet, FileChange, Snapshot


def change(
    path: str,
    kind: str = "modified",
    added: int = 1,
    removed: int = 1,
    text: str = "",
) -> FileChange:
    return FileChange(path, kind, added, removed, added_text=text)  # type: ignore[arg-type]


def names(changes: ChangeSet, settings: GuardSettings = DEFAULT_SETTINGS) -> list[str]:
    return [c.name for c in inspect(changes, settings)]


def by_name(
    changes: ChangeSet, name: str, settings: GuardSettings = DEFAULT_SETTINGS
) -> GuardCheck:
    (found,) = [c for c in inspect(changes, settings) if c.name == name]
    return found


def test_a_small_change_triggers_nothing() -> None:
    assert inspect(ChangeSet([change("pkg/mod.py", added=3, removed=2)])) == []
    assert inspect(ChangeSet([])) == []
    assert riskiest(inspect(ChangeSet([]))) is None


# --------------------------------------------------------------------------- files-deleted


def test_files_deleted_always_needs_confirmation() -> None:
    changes = ChangeSet([change("a.py", "deleted", 0, 3), change("b.py")])
    check = by_name(changes, "files-deleted")
    assert (check.risk, check.always) == ("high", True)
    assert check.message == "1 file deleted: a.py"
    assert check.needs_confirmation(GuardSettings(confirm_at="critical"))
    assert names(ChangeSet([change("b.py"), change("c.py", "added", 5, 0)])) == []


def test_messages_name_at_most_five_paths_on_one_line() -> None:
    deleted = [change(f"d{i}.py", "deleted", 0, 1) for i in range(7)]
    deleted.append(change("odd\nname.py", "deleted", 0, 1))
    message = by_name(ChangeSet(deleted), "files-deleted").message
    assert message == "8 files deleted: d0.py, d1.py, d2.py, d3.py, d4.py and 3 more"
    odd = by_name(ChangeSet([change("odd\nname.py", "deleted", 0, 1)]), "files-deleted")
    assert odd.message == "1 file deleted: odd\\nname.py"


# --------------------------------------------------------------------------- files-modified


def test_files_modified_above_the_threshold() -> None:
    five = [change(f"m{i}.py") for i in range(5)]
    assert "files-modified" not in names(ChangeSet(five))
    # Added files do not count as modified.
    assert "files-modified" not in names(ChangeSet([*five, change("new.py", "added", 1, 0)]))
    six = ChangeSet([*five, change("m5.py")])
    check = by_name(six, "files-modified")
    assert (check.risk, check.always) == ("medium", False)
    assert check.message == (
        "6 files modified (more than 5): m0.py, m1.py, m2.py, m3.py, m4.py and 1 more"
    )
    assert check.needs_confirmation(DEFAULT_SETTINGS)
    assert not check.needs_confirmation(GuardSettings(confirm_at="high"))
    assert "files-modified" not in names(six, GuardSettings(max_files_modified=6))
    assert "files-modified" in names(ChangeSet(five), GuardSettings(max_files_modified=4))


# --------------------------------------------------------------------------- lines-removed


def test_lines_removed_in_all_above_the_threshold() -> None:
    fifty = ChangeSet([change("a.py", removed=30), change("b.py", "deleted", 0, 20)])
    assert "lines-removed" not in names(fifty)
    fifty_one = ChangeSet([change("a.py", removed=30), change("b.py", "deleted", 0, 21)])
    check = by_name(fifty_one, "lines-removed")
    assert check.risk == "medium" and not check.always
    assert check.message == "51 lines removed (more than 50) in 2 files: a.py (-30), b.py (-21)"
    assert "lines-removed" in names(fifty, GuardSettings(max_lines_removed=49))
    assert "lines-removed" not in names(fifty_one, GuardSettings(max_lines_removed=51))


# --------------------------------------------------------------------------- new-module


def test_an_added_manifest_is_a_new_module() -> None:
    changes = ChangeSet(
        [change("addons/sale_x/__manifest__.py", "added", 10, 0)],
        packages_before=frozenset({"addons"}),
    )
    check = by_name(changes, "new-module")
    assert (check.risk, check.always) == ("high", True)
    assert check.message == "1 new module: addons/sale_x/__manifest__.py"
    assert check.needs_confirmation(GuardSettings(confirm_at="critical"))
    modified = ChangeSet([change("addons/sale_x/__manifest__.py")])
    assert "new-module" not in names(modified)


def test_an_added_package_outside_existing_packages_is_a_new_module() -> None:
    before = frozenset({"src/pkg", "src/pkg/sub"})
    new_top = ChangeSet(
        [
            change("src/newpkg/__init__.py", "added", 0, 0),
            change("src/newpkg/inner/__init__.py", "added", 0, 0),  # inside the new one
        ],
        packages_before=before,
    )
    assert by_name(new_top, "new-module").message == "1 new module: src/newpkg/__init__.py"
    sub_package = ChangeSet(
        [
            change("src/pkg/extra/__init__.py", "added", 0, 0),
            change("src/pkg/sub/deeper/more/__init__.py", "added", 0, 0),
        ],
        packages_before=before,
    )
    assert "new-module" not in names(sub_package)
    # Without packages_before (a change set built by hand): every package counts.
    unknown = ChangeSet([change("src/pkg/extra/__init__.py", "added", 0, 0)])
    assert "new-module" in names(unknown)


# --------------------------------------------------------------------------- schema-change


@pytest.mark.parametrize(
    ("path", "kind", "text", "reason"),
    [
        ("app/migrations/0002_auto.py", "added", "", "migration"),
        ("app/migrations/0001_initial.py", "modified", "", "migration"),
        ("alembic/versions/1a2b_add_user.py", "added", "", "alembic revision"),
        ("db/versions/1a2b.py", "added", "down_revision = '0f'\n", "alembic revision"),
        ("schema.sql", "modified", "alter table users add column age int;\n", "ALTER TABLE"),
        ("repo.py", "added", "cur.execute('CREATE  TABLE x (id int)')\n", "CREATE TABLE"),
        ("clean.sql", "added", "Drop Table old;\n", "DROP TABLE"),
        ("m.py", "modified", "    op.drop_column('user', 'age')\n", "DROP COLUMN"),
        ("env.py", "added", "op.create_table('user')\n", "CREATE TABLE"),
    ],
)
def test_schema_changes(path: str, kind: str, text: str, reason: str) -> None:
    check = by_name(ChangeSet([change(path, kind, text=text)]), "schema-change")
    assert (check.risk, check.always) == ("high", True)
    assert check.message == f"1 file may change the database schema: {path} ({reason})"


@pytest.mark.parametrize(
    ("path", "kind", "text"),
    [
        ("docs/versions/v1.md", "added", "release notes\n"),
        ("app/migrations/0001_initial.py", "deleted", ""),  # files-deleted covers it
        ("notes.md", "modified", "we dropped tables of contents; created tables\n"),
        ("util.py", "modified", "def create_tables_list(): ...\n"),
        ("ui.py", "modified", "# recreate table layout\n"),
        ("app/models.py", "modified", "alter = 'table'\n"),
    ],
)
def test_not_schema_changes(path: str, kind: str, text: str) -> None:
    assert "schema-change" not in names(ChangeSet([change(path, kind, text=text)]))


# --------------------------------------------------------------------------- core-files


def test_core_files_modified_or_deleted() -> None:
    changes = ChangeSet(
        [
            change("pyproject.toml"),
            change("requirements-dev.txt"),
            change("pkg/__init__.py"),
            change("setup.cfg", "deleted", 0, 4),
            change("setup.py", "added", 10, 0),  # added: not a core change
            change("pkg/mod.py"),
        ]
    )
    check = by_name(changes, "core-files")
    assert (check.risk, check.always) == ("medium", False)
    assert check.message == (
        "4 files of the project's core modified or deleted: "
        "pyproject.toml, requirements-dev.txt, pkg/__init__.py, setup.cfg"
    )
    assert not check.needs_confirmation(GuardSettings(confirm_at="high"))
    assert "core-files" not in names(ChangeSet([change("pkg/mod.py")]))
    custom = GuardSettings(core_globs=("settings.py", "config/*.yaml"))
    assert "core-files" not in names(changes, custom)
    assert "core-files" in names(ChangeSet([change("config/prod.yaml")]), custom)
    assert "core-files" not in names(ChangeSet([change("other/config/prod.yaml")]), custom)


# --------------------------------------------------------------------------- git-state


def test_git_state() -> None:
    moved = by_name(ChangeSet([], head_moved=True), "git-state")
    assert (moved.risk, moved.always) == ("critical", True)
    assert moved.message == "HEAD moved (a commit, reset or checkout)"
    staged = by_name(ChangeSet([], index_changed=True), "git-state")
    assert staged.message == "the index changed (staged changes)"
    both = by_name(ChangeSet([], head_moved=True, index_changed=True), "git-state")
    assert (
        both.message
        == "HEAD moved (a commit, reset or checkout); the index changed (staged changes)"
    )
    assert "git-state" not in names(ChangeSet([change("a.py")]))


# --------------------------------------------------------------------------- confirmation, risk


def test_needs_confirmation_at_and_above_confirm_at() -> None:
    for risk in RISKS:
        check = GuardCheck("x", risk, "m")
        expected = {r for r in RISKS if risk_rank(r) <= risk_rank(risk)}
        assert {r for r in RISKS if check.needs_confirmation(GuardSettings(confirm_at=r))} == (
            expected
        )
    assert GuardCheck("x", "low", "m", always=True).needs_confirmation(
        GuardSettings(confirm_at="critical")
    )
    assert not GuardCheck("x", "low", "m").needs_confirmation()


def test_riskiest_and_order() -> None:
    changes = ChangeSet(
        [*(change(f"m{i}.py") for i in range(6)), change("gone.py", "deleted", 0, 1)],
        head_moved=True,
    )
    checks = inspect(changes)
    assert [c.name for c in checks] == ["git-state", "files-deleted", "files-modified"]
    assert riskiest(checks) == "critical"
    assert riskiest(checks[1:]) == "high"
    assert riskiest(checks[2:]) == "medium"
    assert riskiest([GuardCheck("x", "low", "m")]) == "low"
    assert riskiest(
        GuardCheck(str(i), r, "m") for i, r in enumerate(("low", "high", "medium"))
    ) == ("high")
    assert [c.name for c in to_confirm(checks, GuardSettings(confirm_at="critical"))] == [
        "git-state",
        "files-deleted",
    ]
    assert to_confirm(checks) == checks


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_lines_removed": -1},
        {"max_files_modified": -1},
        {"max_files_modified": 2.5},
        {"confirm_at": "severe"},
        {"core_globs": "setup.py"},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must be|unknown risk"):
        GuardSettings(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- a real repository


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_inspect_a_real_change_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/mod.py").write_text("x = 1\n")
    (root / "old.py").write_text("".join(f"line {i}\n" for i in range(60)))

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "Dev")
    git("add", "-A")
    git("commit", "-q", "-m", "initial")
    with Snapshot.take(root) as snap:
        (root / "pkg/mod.py").write_text("x = 2\n")
        assert inspect(snap.diff()) == []  # one line changed
        (root / "pkg/sub").mkdir()
        (root / "pkg/sub/__init__.py").write_text("")  # a sub-package: not a new module
        (root / "newpkg").mkdir()
        (root / "newpkg/__init__.py").write_text("")
        (root / "migrations").mkdir()
        (root / "migrations/0001.sql").write_text("CREATE TABLE t (id int);\n")
        os.unlink(root / "old.py")
        git("add", "-A")
        git("commit", "-q", "-m", "agent")
        checks = {c.name: c for c in inspect(snap.diff())}
        assert set(checks) == {
            "git-state",
            "files-deleted",
            "lines-removed",
            "new-module",
            "schema-change",
        }
        assert checks["new-module"].message == "1 new module: newpkg/__init__.py"
        assert checks["lines-removed"].message.startswith("61 lines removed (more than 50)")
        assert checks["schema-change"].message.endswith("migrations/0001.sql (migration)")
        snap.restore()
        assert inspect(snap.diff()) == []
