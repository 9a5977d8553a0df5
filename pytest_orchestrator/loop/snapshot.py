"""Snapshots of a git working tree: taken before an agent edits, diffed, restored byte for byte.

What a snapshot holds ("our files"): every file git lists as tracked or as untracked and not
ignored (``git ls-files --cached --others --exclude-standard``), regular files and symbolic
links, with their content, their mode and whether they are links; the non-ignored directories
and their modes (so that empty ones survive and new ones can be removed); the index file; and
git's own files an agent could change to act later or to hide something (:data:`GIT_ITEMS`:
``HEAD``, ``config``, ``packed-refs``, ``refs/``, ``hooks/`` and ``info/``, of any size).
The content is copied into a private temporary directory (mode 0700) with a manifest
(``manifest.json``), so a restore depends neither on git objects nor on memory, files of any
size are streamed, and a snapshot left on disk can be restored later by another process
(``pytest-orchestrator restore PATH``, :meth:`Snapshot.load`).

What the agent creates is seen everywhere under the working tree: besides our files, a
snapshot keeps an *inventory* (type, mode, size, modification time and inode, not the
content) of every file under ignored paths (``.venv``, build output, caches) and in nested
repositories and submodules. A file there that is new at :meth:`Snapshot.diff` is reported
(:attr:`FileChange.ignored`) and deleted by :meth:`Snapshot.restore`; a new nested
repository (a directory with its own ``.git``) and a new directory ignoring itself (its own
``.gitignore`` of ``*``) are removed whole. Files that existed there are not copied (a
virtual environment can hold 50,000 files), except the small ones that decide what is
measured or ignored (:data:`RULE_NAMES`, e.g. an ignored ``conftest.py`` or
``.venv/.gitignore``); a cache file the agent changed (:func:`is_cache`: ``__pycache__``,
``.pyc``, ``.pytest_cache``, ``.ruff_cache``, ...) is deleted, since it is rebuilt; any
other existing ignored file the agent changed or deleted cannot be put back and is named in
:attr:`Snapshot.unrestored`.

What it does not hold, on purpose:

- git objects, logs (reflogs), other worktrees' state and a merge or rebase the agent left
  in progress; the agent's commits stay reachable through the reflog;
- modification times: a restored file gets the current time, so build tools rebuild it.

Restoring replaces a changed file atomically (a temporary file in the same directory, then
``os.replace``), which gives it a new inode: a hard link to it elsewhere keeps the agent's
version. A link is never followed when writing or deleting, in the tree or in ``.git``: a
directory (or ``.git/hooks``) the agent replaced by a link to elsewhere is removed as a link
and rebuilt, and a file the agent replaced by a link (``.git/config`` pointing outside) is
replaced, never written through. git's own files are put back first, with plain file
operations, so a corrupted ``.git/config`` cannot stop the rest of the restore. Paths are
POSIX strings relative to the root of the working tree, exactly as git spells them
(``core.quotepath=false``, ``-z``; undecodable bytes are surrogate-escaped).

Our git commands never run a program the repository controls (:func:`run_git`): hooks,
``core.fsmonitor``, external diff and textconv drivers, clean/smudge filters, pagers and
automatic maintenance are turned off on every call.
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import stat
import subprocess
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pytest_orchestrator.errors import OrchestratorError

#: Bytes read or written at a time when copying or hashing a file.
_CHUNK = 1 << 20
#: Characters of added text kept in :attr:`FileChange.added_text`.
ADDED_TEXT_MAX = 64 * 1024
#: Files up to this size (bytes) are diffed line by line; a larger text file is counted as
#: wholly replaced (all its old lines removed, all its new lines added).
DIFF_MAX = 8 << 20
#: Lines (after the common start and end are set aside) above which lines are matched as a
#: multiset instead of with :class:`difflib.SequenceMatcher` (quadratic in the worst case).
_MATCH_MAX = 20_000
#: Seconds a git command may take.
_GIT_TIMEOUT = 300
#: Paths named in an error message.
_NAMED = 10
#: Mode of a symbolic link in a :class:`FileState` (its permissions cannot be restored).
LINK_MODE = stat.S_IFLNK | 0o777
#: Digest of a file that could not be read (see :meth:`Snapshot.diff`).
UNREADABLE = ""
#: Version of ``manifest.json``.
MANIFEST_VERSION = 1
#: Variables that point git at another repository, index or work tree, or name a program
#: for it to run: dropped, so that the commands we run see the repository at ``root`` and
#: run nothing of anyone's choosing, whatever the caller's environment says.
_DROPPED_GIT_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_EXTERNAL_DIFF",
    "GIT_PAGER",
    "GIT_EDITOR",
    "GIT_SEQUENCE_EDITOR",
    "GIT_ASKPASS",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
)
#: Settings given to every git command we run: no hook (``core.hooksPath`` pointing at no
#: directory), no file system monitor, no external diff, no pager, no signing program, no
#: automatic garbage collection or maintenance in the background, no credential helper.
#: See git-config(1): each of these names a program git would otherwise start.
GIT_SAFETY = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "diff.external=",
    "core.askPass=",
    "credential.helper=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gc.auto=0",
    "maintenance.auto=false",
)
#: git commands that read file content through the attribute-selected drivers (clean and
#: smudge filters, textconv, external diff drivers): each such driver defined in the
#: configuration is emptied for them (see :func:`_driver_overrides`).
_CONTENT_COMMANDS = frozenset(
    {"status", "diff", "add", "commit", "stash", "checkout", "restore", "merge"}
)
_DRIVER_KEYS = {
    "filter": ("clean", "smudge", "process"),
    "diff": ("command", "textconv"),
    "merge": ("driver",),
}


class SnapshotError(OrchestratorError):
    """A snapshot could not be taken, inspected or restored; one line saying why (and where)."""


# --------------------------------------------------------------------------- git


def git_message(text: bytes) -> str:
    """The first non-empty line of git's stderr, without its ``fatal:``/``error:`` prefix."""
    for line in os.fsdecode(text).splitlines():
        line = line.strip()
        for prefix in ("fatal: ", "error: "):
            line = line.removeprefix(prefix)
        if line:
            return _printable(line)
    return "no message"


def git_environment(index: Path | None = None) -> dict[str, str]:
    """The environment of our git commands: this process's, without the variables that
    redirect git or name programs for it (:data:`_DROPPED_GIT_ENV`), with optional locks
    off (``git status`` must not rewrite the index) and no terminal prompt."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_GIT_ENV}
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


_GIT: dict[str, str] = {}


def git_program() -> str:
    """git's absolute path, found on ``PATH`` at the first git command of this process
    (before any agent runs) and kept for that ``PATH``, or as gap closure pinned it for its
    re-audit (``programs``): a ``git`` an agent puts in a directory on ``PATH`` later is
    never run. ``git`` when none is found (the command then fails as missing)."""
    from pytest_orchestrator.programs import pinned

    chosen = pinned("git")
    if chosen is not None:
        return chosen
    path = os.environ.get("PATH", os.defpath)
    if path not in _GIT:
        _GIT[path] = shutil.which("git", path=path) or "git"
    return _GIT[path]


def safe_git_argv(*args: str) -> list[str]:
    """``git --no-pager -c SETTING ... ARGS`` with :data:`GIT_SAFETY` (no driver
    overrides: see :func:`run_git` for commands that read content)."""
    argv = [git_program(), "--no-pager", "-c", "core.quotepath=false"]
    for setting in GIT_SAFETY:
        argv += ["-c", setting]
    return [*argv, *args]


def _driver_overrides(root: Path, env: dict[str, str]) -> list[str]:
    """``-c filter.NAME.clean= ...`` for every filter, diff and merge driver the
    configuration defines: git then runs none of their programs. Only the names of the
    settings are read, never their values."""
    try:
        done = subprocess.run(
            [*safe_git_argv("config", "--name-only", "--get-regexp", r"^(filter|diff|merge)\.")],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    argv: list[str] = []
    seen: set[tuple[str, str]] = set()
    for line in os.fsdecode(done.stdout).splitlines():
        section, _, rest = line.strip().partition(".")
        name, dot, _key = rest.rpartition(".")
        if not dot or not name or (section, name) in seen or section not in _DRIVER_KEYS:
            continue
        seen.add((section, name))
        for key in _DRIVER_KEYS[section]:
            argv += ["-c", f"{section}.{name}.{key}="]
    return argv


def run_git(
    root: Path, *args: str, check: bool = True, index: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run git safely in ``root``: ``git --no-pager -c core.quotepath=false -c SAFETY ...
    ARGS``; raw stdout and stderr.

    Every call passes :data:`GIT_SAFETY` and the environment of :func:`git_environment`;
    a command that reads content (:data:`_CONTENT_COMMANDS`) also gets every configured
    filter, diff and merge driver emptied. So no hook, fsmonitor, filter, textconv,
    external diff, pager or signing program runs, whatever the repository's configuration
    says (an agent may have changed it).

    :param index: an index file to use instead of the repository's (``GIT_INDEX_FILE``).
    :raises SnapshotError: git is missing, timed out, or (with ``check``) exited non-zero.
    """
    env = git_environment(index)
    overrides = _driver_overrides(root, env) if args and args[0] in _CONTENT_COMMANDS else []
    argv = safe_git_argv(*overrides, *args)
    try:
        done = subprocess.run(
            argv,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        if not root.is_dir():
            raise SnapshotError(f"{root}: no such directory") from exc
        raise SnapshotError(
            "git not found on PATH: the loop and --orchestrate-diff-base need git; install git"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise SnapshotError(f"git {args[0]} timed out after {_GIT_TIMEOUT} s in {root}") from exc
    except OSError as exc:
        raise SnapshotError(f"cannot run git in {root}: {exc.strerror or exc}") from exc
    if check and done.returncode != 0:
        raise SnapshotError(
            f"git {' '.join(args[:2])} failed in {root} (exit {done.returncode}): "
            f"{git_message(done.stderr)}"
        )
    return done


def git_root(path: Path) -> Path:
    """The top directory of the git working tree that holds ``path`` (a file or directory).

    :raises SnapshotError: ``path`` does not exist, is not in a git working tree (or is in a
        bare repository), or git is missing.
    """
    path = Path(path)
    if not path.exists():
        raise SnapshotError(f"{path}: no such file or directory")
    start = path if path.is_dir() else path.parent
    top, reason = toplevel(start)
    if top is None:
        if "not a git repository" in reason.lower():
            raise SnapshotError(
                f"not a git repository: {start}: the loop needs git to snapshot and inspect "
                "changes; run git init"
            )
        raise SnapshotError(f"{start}: no git working tree: {reason}")
    return top


def toplevel(start: Path) -> tuple[Path | None, str]:
    """(the top directory of the git working tree holding the directory ``start``, "") or
    (None, git's one-line reason), e.g. ``(None, "not a git repository (or any ...)")``.

    :raises SnapshotError: git is missing or timed out.
    """
    done = run_git(start, "rev-parse", "--show-toplevel", check=False)
    top = os.fsdecode(done.stdout).rstrip("\n")
    if done.returncode != 0 or not top:
        return None, git_message(done.stderr)
    return Path(top), ""


def git_dirs(root: Path) -> tuple[Path, Path]:
    """``(git directory, common directory)`` of the working tree at ``root``, absolute: the
    same directory (``.git``) unless ``root`` is a linked worktree.

    :raises SnapshotError: git failed.
    """
    done = run_git(root, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir")
    lines = os.fsdecode(done.stdout).splitlines()
    if len(lines) < 2:
        raise SnapshotError(f"git rev-parse gave no git directory in {root}")
    return Path(lines[0]), Path(lines[1])


def is_dirty(root: Path) -> bool:
    """Whether the working tree has uncommitted changes.

    That is: a tracked file modified, deleted or staged, or an untracked file that is not
    ignored (``git status --porcelain`` prints anything). Ignored files do not count.

    :raises SnapshotError: not a git working tree, or git failed.
    """
    top = git_root(root)
    done = run_git(top, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
    return bool(done.stdout)


def dirty_paths(root: Path) -> list[str]:
    """Paths with uncommitted changes: tracked files modified, deleted or staged against
    ``HEAD``, and untracked files that are not ignored (every one, not their directories).

    :returns: POSIX paths relative to the top of the working tree, sorted.
    :raises SnapshotError: not a git working tree, or git failed.
    """
    top = git_root(root)
    done = run_git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
    # v1 -z entries: "XY PATH\0" (git-status(1), "Porcelain Format Version 1")
    return sorted({os.fsdecode(entry[3:]) for entry in done.stdout.split(b"\0") if len(entry) > 3})


#: An identity for the commits we make: CI runners and containers often have none.
IDENTITY = ("-c", "user.name=pytest-orchestrator", "-c", "user.email=pytest-orchestrator@localhost")


def backup(root: Path, ref: str, message: str) -> str:
    """Save the working tree (tracked and untracked files, not ignored ones) as a commit.

    The commit's parent is ``HEAD`` (none on an unborn branch); it is built in a temporary
    index, so the user's index, working tree and branches are untouched, and it is kept by
    ``ref`` (e.g. ``refs/pytest-orchestrator/ID``), out of ``git log`` and ``git stash``.
    Restore from it with ``git restore --source=REF --worktree -- :/`` (the whole tree).

    :returns: the commit's hash.
    :raises SnapshotError: not a git working tree, or git failed.
    """
    top = git_root(root)
    head, _ = _head(top)
    with tempfile.TemporaryDirectory(prefix="pytest-orchestrator-backup-") as scratch:
        index = Path(scratch) / "index"
        run_git(top, "read-tree", *([head] if head else ["--empty"]), index=index)
        run_git(top, "add", "--all", "--", ".", index=index)
        tree = run_git(top, "write-tree", index=index).stdout.decode().strip()
    parents = ["-p", head] if head else []
    done = run_git(top, *IDENTITY, "commit-tree", "--no-gpg-sign", tree, *parents, "-m", message)
    commit = done.stdout.decode().strip()
    run_git(top, "update-ref", "-m", message, ref, commit)
    return commit


def _ls(root: Path, *options: str) -> list[str]:
    done = run_git(root, "ls-files", "-z", *options)
    return [os.fsdecode(p) for p in done.stdout.split(b"\0") if p]


def _list_paths(root: Path) -> list[str]:
    """Tracked and untracked-not-ignored paths, deduplicated and sorted.

    Entries ending with ``/`` (untracked nested repositories) are left out; see
    :func:`_nested`.
    """
    return sorted(
        {p for p in _ls(root, "--cached", "--others", "--exclude-standard") if p[-1] != "/"}
    )


def _nested(root: Path) -> frozenset[str]:
    """Untracked nested repositories (directories with their own ``.git``), without ``/``."""
    entries = _ls(root, "--others", "--exclude-standard", "--directory", "--no-empty-directory")
    return frozenset(
        e.rstrip("/") for e in entries if e.endswith("/") and os.path.lexists(root / e / ".git")
    )


def _ignored(root: Path) -> tuple[frozenset[str], frozenset[str]]:
    """``(directories, files)`` git ignores: whole untracked directories (``.venv``, without
    ``/``) and single files elsewhere (``app.log``). Cheap: ignored directories are not
    entered."""
    entries = _ls(root, "--others", "--ignored", "--exclude-standard", "--directory")
    dirs = frozenset(e.rstrip("/") for e in entries if e.endswith("/"))
    return dirs, frozenset(e for e in entries if not e.endswith("/"))


def _within(rel: str, dirs: frozenset[str] | set[str]) -> bool:
    """Whether ``rel`` is one of ``dirs`` or inside one."""
    if not dirs:
        return False
    current = ""
    for part in rel.split("/"):
        current = f"{current}/{part}" if current else part
        if current in dirs:
            return True
    return False


def _head(root: Path) -> tuple[str | None, str | None]:
    """``(commit, branch)`` of HEAD: commit None without commits, branch None when detached."""
    done = run_git(root, "rev-parse", "-q", "--verify", "HEAD^{commit}", check=False)
    commit = done.stdout.decode().strip() if done.returncode == 0 else None
    done = run_git(root, "symbolic-ref", "-q", "HEAD", check=False)
    branch = os.fsdecode(done.stdout).strip() if done.returncode == 0 else None
    return commit or None, branch or None


def _index_state(root: Path) -> str:
    """sha256 of the index's entries (mode, object, stage, path): stat refreshes do not count."""
    return hashlib.sha256(run_git(root, "ls-files", "-z", "--stage").stdout).hexdigest()


# --------------------------------------------------------------------------- git's own files

#: git's own files that an agent could change to act later (a hook runs at the user's next
#: commit, ``core.fsmonitor`` at the next ``git status``), to move history (``HEAD``, refs)
#: or to hide files (``info/exclude``): snapshotted whole, of any size, guarded and restored.
#: Paths are relative to git's common directory; ``HEAD`` and ``config.worktree`` are
#: taken from a linked worktree's own git directory.
GIT_ITEMS = ("config", "packed-refs", "hooks", "info", "refs")
GIT_WORKTREE_ITEMS = ("HEAD", "config.worktree")


def _scan_internals(
    git_dir: Path, common: Path
) -> tuple[dict[str, os.stat_result], dict[str, int]]:
    """git's own files (:data:`GIT_ITEMS`) as they are: ``({path: lstat}, {directory:
    mode})``, paths relative to the common directory. Links are listed as links, never
    followed (a ``hooks`` that is a link to elsewhere is one entry, not a directory)."""
    entries: dict[str, os.stat_result] = {}
    dirs: dict[str, int] = {}
    tops = [common / name for name in GIT_ITEMS]
    tops += [git_dir / name for name in GIT_WORKTREE_ITEMS]
    for top in tops:
        rel = Path(os.path.relpath(top, common)).as_posix()
        try:
            st = os.lstat(top)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            entries[rel] = st
            continue
        dirs[rel] = stat.S_IMODE(st.st_mode)
        pending = [(top, rel)]
        while pending:
            folder, prefix = pending.pop()
            try:
                children = list(os.scandir(folder))
            except OSError:
                continue
            for child in children:
                name = f"{prefix}/{child.name}"
                try:
                    child_st = child.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(child_st.st_mode):
                    dirs[name] = stat.S_IMODE(child_st.st_mode)
                    pending.append((Path(child.path), name))
                else:
                    entries[name] = child_st
    return entries, dirs


# --------------------------------------------------------------------------- files

#: Names of the files that decide what is measured (pytest's, coverage's, ruff's, flake8's,
#: bandit's, mypy's and pyright's configuration, conftest.py) or ignored (``.gitignore``, and
#: ``.ignore``, which ruff honours as well): a snapshot copies them even where git ignores
#: them, and gap closure measures with their state at the session's start
#: (``loop.integrity``).
RULE_NAMES = frozenset(
    {
        "pyproject.toml",
        "setup.cfg",
        "tox.ini",
        "pytest.toml",
        ".pytest.toml",
        "pytest.ini",
        ".pytest.ini",
        ".coveragerc",
        "ruff.toml",
        ".ruff.toml",
        ".bandit",
        ".flake8",
        "mypy.ini",
        ".mypy.ini",
        "pyrightconfig.json",
        "conftest.py",
        ".gitignore",
        ".ignore",
    }
)
#: Ignored rule files up to this size (bytes) are copied (see :data:`RULE_NAMES`).
RULE_COPY_MAX = 1 << 20
#: Directory names whose files are caches that tools rebuild: changed ones are deleted
#: rather than restored (their content is never copied).
CACHE_DIRS = frozenset(
    {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", ".cache"}
)


def is_cache(rel: str) -> bool:
    """Whether ``rel`` is a cache file: under a :data:`CACHE_DIRS` directory, compiled
    Python (``.pyc``, ``.pyo``) or coverage data (``.coverage``, ``.coverage.*``)."""
    parts = rel.split("/")
    name = parts[-1]
    return (
        any(part in CACHE_DIRS for part in parts[:-1])
        or name.endswith((".pyc", ".pyo"))
        or name == ".coverage"
        or name.startswith(".coverage.")
    )


@dataclass(frozen=True)
class Stamp:
    """What is known of a file whose content a snapshot does not copy: ``lstat``'s type
    and permission bits (``st_mode``), size (bytes), modification time (ns) and inode."""

    mode: int
    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stamp:
        return cls(st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)


def _excluded(rel: str, exclude: frozenset[str]) -> bool:
    return bool(exclude) and _within(rel, exclude)


def _inventory(
    root: Path, areas: Iterable[str], files: Iterable[str], exclude: frozenset[str]
) -> tuple[dict[str, Stamp], set[str]]:
    """``({path: Stamp}, directories)`` of the single ``files`` and of everything under the
    directories ``areas`` (ignored directories, nested repositories), links not followed,
    paths under ``exclude`` left out."""
    stamps: dict[str, Stamp] = {}
    dirs: set[str] = set()
    for rel in files:
        if _excluded(rel, exclude):
            continue
        st = _lstat(root, rel)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            stamps[rel] = Stamp.of(st)
    for area in sorted(set(areas)):
        if _excluded(area, exclude) or area in dirs:
            continue
        top = _lstat(root, area)  # None when a parent is a link or missing
        if top is None or not stat.S_ISDIR(top.st_mode):
            continue
        dirs.add(area)
        pending = [area]
        while pending:
            rel_dir = pending.pop()
            try:
                children = list(os.scandir(root / rel_dir))
            except OSError:
                continue
            for child in children:
                rel = f"{rel_dir}/{child.name}"
                if _excluded(rel, exclude):
                    continue
                try:
                    child_st = child.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(child_st.st_mode):
                    if rel not in dirs:
                        dirs.add(rel)
                        pending.append(rel)
                else:
                    stamps[rel] = Stamp.of(child_st)
    return stamps, dirs


@dataclass(frozen=True)
class FileState:
    """One file of a tree.

    :ivar path: POSIX path relative to the root.
    :ivar mode: ``stat.S_IFREG`` plus the permission bits (``stat.S_IMODE``: 0o777 and the
        setuid/setgid/sticky bits) for a regular file; :data:`LINK_MODE` for a symbolic link.
    :ivar digest: sha256 (hex) of the content; for a symbolic link, of its target string;
        :data:`UNREADABLE` for a file the current tree has but we cannot read (never in a
        snapshot: :meth:`Snapshot.take` fails instead).
    :ivar size: bytes of the content (of the target string for a link).
    """

    path: str
    mode: int
    digest: str
    size: int

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def same(self, other: FileState | None) -> bool:
        """Same content and mode (the path is not compared)."""
        return other is not None and (self.mode, self.digest) == (other.mode, other.digest)


def _lstat(root: Path, rel: str, dirs: dict[str, bool] | None = None) -> os.stat_result | None:
    """``lstat`` of ``root/rel``, or None when it is missing or a parent is not a directory.

    A parent that is a symbolic link makes the path missing too: git never lists a path
    through a link, and we must never read or write outside the tree through one. ``dirs``
    caches which parents are real directories (only while nothing is being changed).
    """
    parts = rel.split("/")
    current = ""
    for part in parts[:-1]:
        current = f"{current}/{part}" if current else part
        known = dirs.get(current) if dirs is not None else None
        if known is None:
            try:
                known = stat.S_ISDIR(os.lstat(root / current).st_mode)
            except OSError:
                known = False
            if dirs is not None:
                dirs[current] = known
        if not known:
            return None
    try:
        return os.lstat(root / rel)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _state(
    root: Path, rel: str, st: os.stat_result, objects: Path | None
) -> tuple[FileState, str | None] | None:
    """The state of one present file, and a link's target; None for a non-file (FIFO, dir).

    With ``objects``, a regular file's content is copied into ``objects/<digest>`` as it is
    hashed (one read: the digest is that of the bytes copied).

    :raises OSError: the file cannot be read or copied.
    """
    path = root / rel
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        raw = os.fsencode(target)
        return FileState(rel, LINK_MODE, hashlib.sha256(raw).hexdigest(), len(raw)), target
    if not stat.S_ISREG(st.st_mode):
        return None
    digest = hashlib.sha256()
    size = 0
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with open(os.open(path, flags), "rb") as src:
        if objects is None:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        else:
            partial = objects / f"partial-{secrets.token_hex(8)}"
            try:
                with open(partial, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                os.replace(partial, objects / digest.hexdigest())
            finally:
                partial.unlink(missing_ok=True)
    mode = stat.S_IFREG | stat.S_IMODE(st.st_mode)
    return FileState(rel, mode, digest.hexdigest(), size), None


def _scan(
    root: Path, *, strict: bool = True, listed: Iterable[str] | None = None
) -> dict[str, FileState]:
    """The current state of every listed file (no copy): ``listed``, by default what
    :func:`_list_paths` lists.

    With ``strict`` false, a file that cannot be read gets an empty digest (it then differs
    from any snapshot) instead of failing.

    :raises SnapshotError: (``strict``) a file cannot be read; the message names them.
    """
    states: dict[str, FileState] = {}
    failed: list[str] = []
    dirs: dict[str, bool] = {}
    for rel in _list_paths(root) if listed is None else listed:
        st = _lstat(root, rel, dirs)
        if st is None:
            continue
        try:
            found = _state(root, rel, st, None)
        except OSError as exc:
            failed.append(f"{rel} ({exc.strerror or exc})")
            mode = stat.S_IFMT(st.st_mode) | stat.S_IMODE(st.st_mode)
            found = FileState(rel, mode, UNREADABLE, st.st_size), None
        if found is not None:
            states[rel] = found[0]
    if failed and strict:
        raise SnapshotError(f"cannot read {_names(failed)} in {root}")
    return states


def _walk_dirs(root: Path, ignored: frozenset[str]) -> dict[str, int]:
    """Directories (``""`` for the root) and their permission bits.

    ``.git``, the ``ignored`` directories and nested repositories' contents are not entered.
    """
    found: dict[str, int] = {"": stat.S_IMODE(os.lstat(root).st_mode)}
    pending = [""]
    while pending:
        rel = pending.pop()
        try:
            entries = list(os.scandir(root / rel if rel else root))
        except OSError:
            continue
        for entry in entries:
            if entry.name == ".git" or not entry.is_dir(follow_symlinks=False):
                continue
            child = f"{rel}/{entry.name}" if rel else entry.name
            if child in ignored:
                continue
            try:
                found[child] = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            except OSError:
                continue
            if not os.path.lexists(os.path.join(entry.path, ".git")):
                pending.append(child)
    return found


def _printable(text: str) -> str:
    """``text`` with control (and undecodable) characters escaped: one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _names(items: Sequence[str], limit: int = _NAMED) -> str:
    """``a, b, c`` and ``and N more`` past ``limit``; control characters escaped."""
    shown = [_printable(item) for item in items[:limit]]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(shown) + more


def _hash_states(states: Iterable[FileState]) -> str:
    digest = hashlib.sha256()
    for state in sorted(states, key=lambda s: s.path):
        digest.update(os.fsencode(state.path) + b"\0")
        digest.update(f"{state.mode:o}\0{state.digest}\0".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- changes


@dataclass
class FileChange:
    """One file that differs from the snapshot.

    :ivar kind: ``added`` (not in the snapshot), ``deleted`` (gone now) or ``modified``
        (content, mode, or file/link type differ).
    :ivar lines_added: lines (``\\n``-terminated, the last one possibly not) added; 0 when
        binary or ignored.
    :ivar lines_removed: lines removed; 0 when binary or ignored.
    :ivar binary: either side is not UTF-8 text or holds a NUL byte.
    :ivar added_text: the added lines joined, at most :data:`ADDED_TEXT_MAX` characters
        (for content checks such as ``ALTER TABLE``); empty when binary or ignored.
    :ivar ignored: under a path git ignores or in a nested repository (only its metadata
        was compared: no line counts).
    """

    path: str
    kind: Literal["added", "modified", "deleted"]
    lines_added: int
    lines_removed: int
    binary: bool = False
    added_text: str = ""
    ignored: bool = False


@dataclass
class ChangeSet:
    """What changed since a snapshot.

    :ivar changes: one entry per changed file, sorted by path; files under ignored paths or
        in nested repositories are marked :attr:`FileChange.ignored`.
    :ivar head_moved: HEAD points at another commit or branch (a commit, reset or checkout).
    :ivar index_changed: the index's entries changed (``git add``, ``git rm``, a commit).
    :ivar packages_before: directories (``""`` for the root) that held an ``__init__.py`` at
        snapshot time; the guard uses them to tell a new package from a new sub-package.
    :ivar git_files: git's own files (config, hooks, refs) changed, added or deleted, e.g.
        ``hooks/pre-commit``, relative to git's common directory.
    :ivar nested: nested repositories (directories with their own ``.git``) that are new.
    """

    changes: list[FileChange]
    head_moved: bool = False
    index_changed: bool = False
    packages_before: frozenset[str] = field(default_factory=frozenset)
    git_files: tuple[str, ...] = ()
    nested: tuple[str, ...] = ()

    def _paths(self, kind: str) -> list[str]:
        return [c.path for c in self.changes if c.kind == kind and not c.ignored]

    @property
    def tracked(self) -> list[FileChange]:
        """The changes of our files (not under ignored paths or in nested repositories)."""
        return [c for c in self.changes if not c.ignored]

    @property
    def hidden(self) -> list[FileChange]:
        """The changes under ignored paths and in nested repositories."""
        return [c for c in self.changes if c.ignored]

    @property
    def added(self) -> list[str]:
        return self._paths("added")

    @property
    def modified(self) -> list[str]:
        return self._paths("modified")

    @property
    def deleted(self) -> list[str]:
        return self._paths("deleted")

    @property
    def lines_added(self) -> int:
        return sum(c.lines_added for c in self.changes)

    @property
    def lines_removed(self) -> int:
        return sum(c.lines_removed for c in self.changes)

    @property
    def empty(self) -> bool:
        """Nothing changed: no file (ignored ones included), HEAD, index or git file."""
        return (
            not self.changes
            and not self.head_moved
            and not self.index_changed
            and not self.git_files
            and not self.nested
        )


_Side = tuple[Path, int] | bytes | None  # a file (path, size), a link's target, or nothing


def _split(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
        return [line + b"\n" for line in lines]
    return [line + b"\n" for line in lines[:-1]] + [lines[-1]]


def _is_text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _load(side: _Side) -> list[bytes] | None:
    """The lines of a side (``[]`` for nothing); None when binary."""
    if side is None:
        return []
    data = side if isinstance(side, bytes) else side[0].read_bytes()
    return _split(data) if _is_text(data) else None


def _stream_lines(side: _Side) -> tuple[int, str] | None:
    """``(lines, first ADDED_TEXT_MAX characters)`` of a large file read in chunks; None if
    binary."""
    if side is None:
        return 0, ""
    if isinstance(side, bytes):
        return (len(_split(side)), side.decode()) if _is_text(side) else None
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, last, head = 0, b"\n", ""
    try:
        with open(side[0], "rb") as src:
            while chunk := src.read(_CHUNK):
                if b"\0" in chunk:
                    return None
                text = decoder.decode(chunk)
                if len(head) < ADDED_TEXT_MAX:
                    head += text[: ADDED_TEXT_MAX - len(head)]
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return lines + (last != b"\n"), head


def _size(side: _Side) -> int:
    if side is None:
        return 0
    return len(side) if isinstance(side, bytes) else side[1]


def _count(old: _Side, new: _Side) -> tuple[int, int, bool, str]:
    """``(lines_added, lines_removed, binary, added_text)`` between two sides."""
    if max(_size(old), _size(new)) > DIFF_MAX:
        before, after = _stream_lines(old), _stream_lines(new)
        if before is None or after is None:
            return 0, 0, True, ""
        return after[0], before[0], False, after[1]
    a, b = _load(old), _load(new)
    if a is None or b is None:
        return 0, 0, True, ""
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start : len(a) - end], b[start : len(b) - end]
    added: list[bytes] = []
    removed = 0
    if len(a) + len(b) <= _MATCH_MAX:
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag != "equal":
                removed += i2 - i1
                added.extend(b[j1:j2])
    else:
        extra = Counter(b) - Counter(a)
        removed = sum((Counter(a) - Counter(b)).values())
        for line in b:
            if extra[line] > 0:
                extra[line] -= 1
                added.append(line)
    text = b"".join(added)[: ADDED_TEXT_MAX * 4].decode("utf-8", "ignore")[:ADDED_TEXT_MAX]
    return len(added), removed, False, text


# --------------------------------------------------------------------------- the snapshot


def _relative_to(path: str | Path, top: Path) -> str | None:
    candidate = Path(path)
    if not candidate.is_absolute():
        return candidate.as_posix()
    for base in (top, top.resolve()):
        with contextlib.suppress(ValueError):
            return Path(os.path.abspath(candidate)).relative_to(base).as_posix()
    return None


def _state_json(state: FileState) -> list[Any]:
    return [state.mode, state.digest, state.size]


def _states_from(data: dict[str, list[Any]]) -> dict[str, FileState]:
    return {rel: FileState(rel, int(m), str(d), int(s)) for rel, (m, d, s) in data.items()}


class Snapshot:
    """A working tree as it was; see the module's docstring for what it holds.

    Take one with :meth:`take`; :meth:`diff` says what changed since, :meth:`restore` puts it
    back, :meth:`discard` (or leaving a ``with`` block) removes the private copy, and
    :meth:`keep` leaves it on disk for ``pytest-orchestrator restore``.

    :ivar root: top directory of the working tree.
    :ivar head: commit HEAD pointed at; None in a repository without commits.
    :ivar branch: the branch HEAD named (``refs/heads/main``); None when detached.
    :ivar files: the files, by path (sorted).
    :ivar unrestored: after :meth:`restore`, files under ignored paths that the agent
        changed or deleted and that could not be put back (never copied).
    """

    def __init__(self, root: Path, store: Path, manifest: dict[str, Any], *, owned: bool) -> None:
        self.root = root
        self._store: Path | None = store
        self.head: str | None = manifest["head"]
        self.branch: str | None = manifest["branch"]
        self.files = _states_from(manifest["files"])
        self._links: dict[str, str] = manifest["links"]
        self._dirs: dict[str, int] = manifest["dirs"]
        self._git_dir = Path(manifest["git_dir"])
        self._common = Path(manifest["common_dir"])
        self._index_state: str = manifest["index_state"]
        self._index_saved: bool = manifest["index_saved"]
        self._internals = _states_from(manifest["internals"])
        self._internal_links: dict[str, str] = manifest["internal_links"]
        self._internal_dirs: dict[str, int] = manifest["internal_dirs"]
        self._ignored_dirs = frozenset(manifest["ignored_dirs"])
        self._ignored_files = frozenset(manifest["ignored_files"])
        self._nested = frozenset(manifest["nested"])
        self._inventory = {rel: Stamp(*values) for rel, values in manifest["inventory"].items()}
        self._inventory_dirs = frozenset(manifest["inventory_dirs"])
        self._rule_copies = _states_from(manifest["rule_copies"])
        self._exclude = frozenset(manifest["exclude"])
        self.unrestored: list[str] = []
        #: Whether :meth:`keep` left the copy on disk.
        self.kept = False
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(store), ignore_errors=True)
        if not owned:
            self._finalizer.detach()

    def __repr__(self) -> str:
        head = self.head[:12] if self.head else None
        return f"<Snapshot {self.root} head={head} files={len(self.files)}>"

    @property
    def nested(self) -> frozenset[str]:
        """Nested repositories and submodules at the snapshot (paths of their directories)."""
        return self._nested

    @property
    def store(self) -> Path | None:
        """The private directory holding the copy (None once discarded)."""
        return self._store

    # -- taking, keeping, loading, discarding ------------------------------------------------

    @classmethod
    def take(
        cls, root: Path, *, tmp_parent: Path | None = None, exclude: Iterable[str | Path] = ()
    ) -> Snapshot:
        """Snapshot the working tree that holds ``root`` (its top directory is used).

        The copy goes to a new directory (mode 0700) under ``tmp_parent``, by default the
        system's temporary directory (``TMPDIR``; mind a tmpfs: it is memory); it is
        removed by :meth:`discard`, or when the snapshot is garbage-collected, unless
        :meth:`keep` was called.

        :param exclude: paths (absolute, or relative to the top directory) whose ignored
            files are left out of the inventory: the caller's own state, which it changes
            while the snapshot is alive (gap closure's session files).
        :raises SnapshotError: not a git working tree, git failed, a file cannot be read
            (the message names them), or the copy cannot be written.
        """
        top = git_root(root)
        git_dir, common = git_dirs(top)
        head, branch = _head(top)
        index_state = _index_state(top)
        excluded = frozenset(
            rel for rel in (_relative_to(p, top) for p in exclude) if rel and rel != "."
        )
        try:
            store = Path(tempfile.mkdtemp(prefix="pytest-orchestrator-snapshot-", dir=tmp_parent))
        except OSError as exc:
            raise SnapshotError(
                f"cannot create the snapshot directory: {exc.strerror or exc}"
            ) from exc
        try:
            os.chmod(store, 0o700)
            objects = store / "objects"
            objects.mkdir()
            try:
                shutil.copyfile(git_dir / "index", store / "index")
                index_saved = True
            except FileNotFoundError:
                index_saved = False
            failed: list[str] = []
            internals: dict[str, FileState] = {}
            internal_links: dict[str, str] = {}
            entries, internal_dirs = _scan_internals(git_dir, common)
            for rel, entry in entries.items():
                try:
                    found = _state(common, rel, entry, objects)
                except OSError as exc:
                    failed.append(f".git/{rel} ({exc.strerror or exc})")
                    continue
                if found is not None:
                    internals[rel] = found[0]
                    if found[1] is not None:
                        internal_links[rel] = found[1]
            files: dict[str, FileState] = {}
            links: dict[str, str] = {}
            nested: set[str] = set()
            parents: dict[str, bool] = {}
            for rel in _list_paths(top):
                listed = _lstat(top, rel, parents)
                if listed is None:
                    continue  # deleted but tracked, or behind a link
                if stat.S_ISDIR(listed.st_mode):
                    nested.add(rel)  # a submodule's working tree
                    continue
                try:
                    found = _state(top, rel, listed, objects)
                except OSError as exc:
                    failed.append(f"{rel} ({exc.strerror or exc})")
                    continue
                if found is not None:
                    files[rel] = found[0]
                    if found[1] is not None:
                        links[rel] = found[1]
            if failed:
                raise SnapshotError(f"cannot snapshot {_names(failed)} in {top}")
            ignored_dirs, ignored_files = _ignored(top)
            nested |= _nested(top)
            inventory, inventory_dirs = _inventory(
                top, ignored_dirs | nested, ignored_files, excluded
            )
            rule_copies: dict[str, FileState] = {}
            for rel, stamp in inventory.items():
                if (
                    posixpath.basename(rel) in RULE_NAMES
                    and stat.S_ISREG(stamp.mode)
                    and stamp.size <= RULE_COPY_MAX
                ):
                    with contextlib.suppress(OSError):
                        present = _lstat(top, rel)
                        copied = _state(top, rel, present, objects) if present else None
                        if copied is not None:
                            rule_copies[rel] = copied[0]
            manifest = {
                "version": MANIFEST_VERSION,
                "root": str(top),
                "git_dir": str(git_dir),
                "common_dir": str(common),
                "head": head,
                "branch": branch,
                "index_state": index_state,
                "index_saved": index_saved,
                "files": {rel: _state_json(s) for rel, s in files.items()},
                "links": links,
                "dirs": _walk_dirs(top, ignored_dirs),
                "internals": {rel: _state_json(s) for rel, s in internals.items()},
                "internal_links": internal_links,
                "internal_dirs": internal_dirs,
                "ignored_dirs": sorted(ignored_dirs),
                "ignored_files": sorted(ignored_files),
                "nested": sorted(nested),
                "inventory": {
                    rel: [s.mode, s.size, s.mtime_ns, s.ino] for rel, s in inventory.items()
                },
                "inventory_dirs": sorted(inventory_dirs),
                "rule_copies": {rel: _state_json(s) for rel, s in rule_copies.items()},
                "exclude": sorted(excluded),
            }
            partial = store / "manifest.json.partial"
            partial.write_text(json.dumps(manifest), encoding="utf-8")
            os.replace(partial, store / "manifest.json")
            return cls(top, store, manifest, owned=True)
        except BaseException as exc:
            shutil.rmtree(store, ignore_errors=True)
            if isinstance(exc, OSError):
                raise SnapshotError(
                    f"cannot write the snapshot copy in {store}: {exc.strerror or exc}"
                ) from exc
            raise

    @classmethod
    def load(cls, store: Path) -> Snapshot:
        """A snapshot left on disk by :meth:`keep` (or by a process that died), to restore
        it; it is not removed when garbage-collected.

        :raises SnapshotError: not a snapshot directory, or its manifest is unreadable.
        """
        path = Path(store) / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SnapshotError(
                f"{store} is not a pytest-orchestrator snapshot (no manifest.json)"
            ) from None
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"cannot read {path}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
            raise SnapshotError(f"{path} is not a snapshot manifest of version {MANIFEST_VERSION}")
        try:
            return cls(Path(manifest["root"]), Path(store), manifest, owned=False)
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{path} is incomplete ({exc})") from None

    def keep(self) -> Path:
        """Leave the copy on disk (it outlives this process) and return its directory:
        ``pytest-orchestrator restore PATH`` puts the tree back from it later.

        :raises SnapshotError: the snapshot was discarded.
        """
        if self._store is None:
            raise SnapshotError(f"the snapshot of {self.root} was discarded")
        self._finalizer.detach()
        self.kept = True
        return self._store

    def discard(self) -> None:
        """Remove the private copy (idempotent); :meth:`diff` and :meth:`restore` then fail."""
        if self._finalizer.alive:
            self._finalizer()
        self._store = None

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def _objects(self) -> Path:
        if self._store is None:
            raise SnapshotError(f"the snapshot of {self.root} was discarded")
        return self._store / "objects"

    def read(self, rel: str) -> bytes | None:
        """The content ``rel`` had at the snapshot: one of our files, or an ignored rule
        file (:data:`RULE_NAMES`); None when it did not exist, was a link or was not
        copied.

        :raises SnapshotError: the snapshot was discarded.
        """
        objects = self._objects()
        state = self.files.get(rel) or self._rule_copies.get(rel)
        if state is None or state.is_symlink:
            return None
        try:
            return (objects / state.digest).read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read the snapshot's copy of {rel}: {exc}") from exc

    def rule_files(self) -> list[str]:
        """Every file at the snapshot whose name is in :data:`RULE_NAMES`, ignored ones
        included, sorted."""
        names = [*self.files, *self._inventory]
        return sorted({rel for rel in names if posixpath.basename(rel) in RULE_NAMES})

    def state_of_tree(self) -> dict[str, tuple[int, str]]:
        """``{path: (mode, sha256)}`` of our files now, of git's own files
        (``.git/PATH``) and of the index's entries (``:index``): compare two of them to
        tell whether anything but ignored files changed in between.

        :raises SnapshotError: git failed.
        """
        found = {rel: (s.mode, s.digest) for rel, s in _scan(self.root, strict=False).items()}
        found.update(
            {f".git/{rel}": (s.mode, s.digest) for rel, s in self._internals_now().items()}
        )
        found[":index"] = (0, _index_state(self.root))
        return found

    # -- hashes ----------------------------------------------------------------------------

    def tree_hash(self) -> str:
        """sha256 (hex) over the sorted ``(path, mode, digest)`` of the snapshot's files."""
        return _hash_states(self.files.values())

    @staticmethod
    def current_hash(root: Path) -> str:
        """:meth:`tree_hash` of the working tree as it is now (same listing rules).

        :raises SnapshotError: not a git working tree, or a file cannot be read.
        """
        return _hash_states(_scan(git_root(root)).values())

    # -- diff ------------------------------------------------------------------------------

    def _side(self, state: FileState | None) -> _Side:
        if state is None:
            return None
        if state.is_symlink:
            return os.fsencode(self._links[state.path])
        return self._objects() / state.digest, state.size

    def _current_side(self, state: FileState | None) -> _Side:
        if state is None:
            return None
        path = self.root / state.path
        if state.is_symlink:
            return os.fsencode(os.readlink(path))
        return path, state.size

    def _hidden_now(
        self, listed: Iterable[str] = ()
    ) -> tuple[dict[str, Stamp], set[str], set[str]]:
        """``(stamps, directories, nested repositories)`` of what is under ignored paths and in
        nested repositories now (those of the snapshot's time included)."""
        ignored_dirs, ignored_files = _ignored(self.root)
        nested = set(_nested(self.root))
        for rel in listed:
            st = _lstat(self.root, rel)
            if st is not None and stat.S_ISDIR(st.st_mode):
                nested.add(rel)
        areas = self._ignored_dirs | ignored_dirs | self._nested | nested
        singles = self._ignored_files | ignored_files
        singles |= {rel for rel in self._inventory if not _within(rel, areas)}
        stamps, dirs = _inventory(self.root, areas, singles, self._exclude)
        return stamps, dirs, nested

    def _internals_now(self) -> dict[str, FileState]:
        entries, _ = _scan_internals(self._git_dir, self._common)
        states: dict[str, FileState] = {}
        for rel, st in entries.items():
            try:
                found = _state(self._common, rel, st, None)
            except OSError:
                found = FileState(rel, st.st_mode, UNREADABLE, st.st_size), None
            if found is not None:
                states[rel] = found[0]
        return states

    def _git_changes(self) -> tuple[str, ...]:
        now = self._internals_now()
        return tuple(
            sorted(
                rel
                for rel in now.keys() | self._internals.keys()
                if not (
                    rel in now and rel in self._internals and self._internals[rel].same(now[rel])
                )
            )
        )

    def _hidden_unchanged(self, rel: str, now: Stamp | None) -> bool:
        """Whether the ignored file ``rel`` is as at the snapshot: by content for a copied
        rule file (a restore rewrites it), else by its :class:`Stamp`."""
        before = self._inventory.get(rel)
        copy = self._rule_copies.get(rel)
        if copy is None or now is None or before is None:
            return before == now
        if before == now:
            return True
        try:
            st = _lstat(self.root, rel)
            current = _state(self.root, rel, st, None) if st is not None else None
        except OSError:
            return False
        return current is not None and copy.same(current[0])

    def diff(self) -> ChangeSet:
        """What changed in the working tree, under its ignored paths, in nested repositories,
        HEAD, the index and git's own files since the snapshot.

        A file that cannot be read now (the agent made it unreadable) is reported as changed
        and binary. Files under ignored paths and in nested repositories are compared by
        their metadata only (:attr:`FileChange.ignored`).

        :raises SnapshotError: the snapshot was discarded, git failed, or a file cannot be
            read.
        """
        self._objects()
        listed = _list_paths(self.root)
        now = _scan(self.root, strict=False, listed=listed)
        changes: list[FileChange] = []
        for path in sorted(self.files.keys() | now.keys()):
            old, new = self.files.get(path), now.get(path)
            if old is not None and old.same(new):
                continue
            if old is None and path in self._inventory:
                # ignored at the snapshot, listed now (the agent changed the ignore rules)
                st = _lstat(self.root, path)
                if not self._hidden_unchanged(path, Stamp.of(st) if st is not None else None):
                    changes.append(FileChange(path, "modified", 0, 0, ignored=True))
                continue
            kind: Literal["added", "modified", "deleted"]
            kind = "added" if old is None else "deleted" if new is None else "modified"
            if new is not None and new.digest == UNREADABLE:
                changes.append(FileChange(path, kind, 0, 0, binary=True))
                continue
            try:
                added, removed, binary, text = _count(self._side(old), self._current_side(new))
            except OSError as exc:
                raise SnapshotError(f"cannot diff {path}: {exc.strerror or exc}") from exc
            changes.append(FileChange(path, kind, added, removed, binary, text))
        stamps, _, nested = self._hidden_now(listed)
        for path in sorted(stamps.keys() | self._inventory.keys()):
            if path in now or path in self.files:
                continue
            before, after = self._inventory.get(path), stamps.get(path)
            if self._hidden_unchanged(path, after):
                continue
            hidden_kind: Literal["added", "modified", "deleted"]
            hidden_kind = "added" if before is None else "deleted" if after is None else "modified"
            changes.append(FileChange(path, hidden_kind, 0, 0, ignored=True))
        changes.sort(key=lambda c: c.path)
        packages = frozenset(
            posixpath.dirname(p) for p in self.files if posixpath.basename(p) == "__init__.py"
        )
        return ChangeSet(
            changes=changes,
            head_moved=_head(self.root) != (self.head, self.branch),
            index_changed=_index_state(self.root) != self._index_state,
            packages_before=packages,
            git_files=self._git_changes(),
            nested=tuple(sorted(nested - self._nested)),
        )

    def drop_caches(self, changes: ChangeSet) -> list[str]:
        """Delete the cache files (:func:`is_cache`) under ignored paths that ``changes``
        lists as added or modified, and compiled Python (``.pyc``, ``.pyo``) added anywhere:
        compiled code the agent wrote is never run (a ``.pyc`` can carry code its source
        does not show, and Python trusts it while the source's size and time match), and
        tools rebuild their caches.

        :returns: the paths deleted.
        """
        dropped = []
        for change in changes.changes:
            if change.kind == "deleted":
                continue
            compiled = change.path.endswith((".pyc", ".pyo")) and change.kind == "added"
            if (change.ignored and is_cache(change.path)) or compiled:
                with contextlib.suppress(OSError):
                    if _lstat(self.root, change.path) is not None:
                        os.unlink(self.root / change.path)
                        dropped.append(change.path)
        return dropped

    # -- restore ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Put the working tree, git's own files and the index back as they were at
        :meth:`take`.

        In order: git's own files (:data:`GIT_ITEMS`: ``HEAD``, refs, ``config``, hooks,
        ``info/``), with plain file operations and before any git command (a corrupted
        ``.git/config`` would stop git): changed ones rewritten, added ones removed, links
        replaced and never followed, so HEAD and the branches point where they pointed (a
        soft reset: the agent's commits stay in the reflog); the index (the file saved at
        :meth:`take` is put back under git's ``index.lock``); our files (changed ones
        rewritten atomically, deleted ones recreated with their mode, links as links,
        whatever stands in the way of a parent directory removed); then the files added
        since are deleted, listed or ignored, and in nested repositories (the new ones
        removed whole); an ignored rule file (:data:`RULE_NAMES`) the agent changed is put
        back from its copy, a changed cache file is deleted, and any other ignored file
        the agent changed is named in :attr:`unrestored`; then new empty directories are
        removed, missing ones recreated and directory modes put back. Finally the result
        is compared with the snapshot. Files that already match are not touched, so
        restoring twice is harmless.

        :raises SnapshotError: the snapshot was discarded, or something could not be put
            back; the message names the paths (everything else is restored regardless).
        """
        objects = self._objects()
        problems: list[str] = []
        self.unrestored = []
        self._restore_internals(problems, objects)
        self._restore_index(problems)
        for rel, state in self.files.items():
            try:
                st = _lstat(self.root, rel)
                current = _state(self.root, rel, st, None) if st is not None else None
                if current is not None and state.same(current[0]):
                    continue
            except OSError:
                pass  # unreadable now: rewrite it
            try:
                self._put(self.root, state, objects, self._links)
            except OSError as exc:
                problems.append(f"{rel} ({exc.strerror or exc})")
        try:
            listed = _list_paths(self.root)
        except SnapshotError as exc:
            listed = []
            problems.append(f"the added files ({exc})")
        for rel in listed:
            if rel in self.files or rel in self._inventory or _excluded(rel, self._exclude):
                continue  # ours, the user's ignored file the agent made visible, or the caller's
            self._delete(rel, problems)
        try:
            self._restore_hidden(problems, objects, set(listed))
        except SnapshotError as exc:
            problems.append(f"the ignored files ({exc})")
        self._restore_dirs(problems)
        self._verify(problems)
        if problems:
            raise SnapshotError(f"could not restore {_names(problems)} in {self.root}")

    def _delete(self, rel: str, problems: list[str]) -> None:
        """Delete the file or link ``rel`` (never through a link: a parent that is not a
        real directory means there is nothing of ours to delete)."""
        st = _lstat(self.root, rel)
        if st is None or stat.S_ISDIR(st.st_mode):
            return
        try:
            self._writable((self.root / rel).parent)
            os.unlink(self.root / rel)
        except FileNotFoundError:
            pass
        except OSError as exc:
            problems.append(f"{rel} ({exc.strerror or exc})")

    def _restore_hidden(self, problems: list[str], objects: Path, listed: set[str]) -> None:
        """Under ignored paths and in nested repositories: delete what is new, put back the
        ignored rule files, delete changed caches, note the rest in :attr:`unrestored`."""
        stamps, dirs, _ = self._hidden_now(listed)
        for rel, stamp in sorted(stamps.items()):
            if rel in self.files or (rel in listed and rel not in self._inventory):
                continue
            before = self._inventory.get(rel)
            if self._hidden_unchanged(rel, stamp):
                continue
            copy = self._rule_copies.get(rel)
            if copy is not None:
                try:
                    self._put(self.root, copy, objects, {})
                except OSError as exc:
                    problems.append(f"{rel} ({exc.strerror or exc})")
            elif before is None or is_cache(rel):
                self._delete(rel, problems)
            else:
                self.unrestored.append(f"{rel} (changed)")
        for rel in sorted(self._inventory.keys() - stamps.keys() - listed):
            copy = self._rule_copies.get(rel)
            if copy is not None:
                try:
                    self._put(self.root, copy, objects, {})
                except OSError as exc:
                    problems.append(f"{rel} ({exc.strerror or exc})")
            elif not is_cache(rel):
                self.unrestored.append(f"{rel} (deleted)")
        for rel in sorted(dirs - self._inventory_dirs, key=len, reverse=True):
            if _lstat(self.root, rel) is None:
                continue
            with contextlib.suppress(OSError):  # not empty: holds something unrestored
                self._writable((self.root / rel).parent)
                os.rmdir(self.root / rel)

    def _restore_internals(self, problems: list[str], objects: Path) -> None:
        """git's own files as they were, with plain file operations (no git command): new
        ones removed, changed ones rewritten, links replaced, never followed."""
        common = self._common
        try:
            st = os.lstat(common)
        except OSError as exc:
            problems.append(f"{common} ({exc.strerror or exc}: git's directory is gone)")
            return
        if not stat.S_ISDIR(st.st_mode):
            problems.append(f"{common} (git's directory was replaced by a link or a file)")
            return
        entries, dirs = _scan_internals(self._git_dir, common)
        for rel in sorted(entries):
            state = self._internals.get(rel)
            if state is not None:
                continue
            try:
                if _lstat(common, rel) is not None:
                    self._writable((common / rel).parent)
                    os.unlink(common / rel)
            except OSError as exc:
                problems.append(f".git/{rel} ({exc.strerror or exc})")
        for rel in sorted(dirs.keys() - self._internal_dirs.keys(), key=len, reverse=True):
            with contextlib.suppress(OSError):
                if _lstat(common, rel) is not None:
                    os.rmdir(common / rel)
        now = self._internals_now()
        for rel, state in sorted(self._internals.items()):
            if state.same(now.get(rel)):
                continue
            try:
                self._put(common, state, objects, self._internal_links)
            except OSError as exc:
                problems.append(f".git/{rel} ({exc.strerror or exc})")
        for rel, mode in sorted(self._internal_dirs.items()):
            path = common / rel
            try:
                if _lstat(common, rel) is None:
                    self._make_parents(common, rel + "/x")
                    os.mkdir(path)
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
                    os.chmod(path, mode)
            except OSError as exc:
                problems.append(f".git/{rel}/ ({exc.strerror or exc})")

    def _restore_index(self, problems: list[str]) -> None:
        """Put the saved index file back under ``index.lock``, if its entries changed."""
        try:
            if _index_state(self.root) == self._index_state:
                return
        except SnapshotError as exc:
            problems.append(f"the index ({exc})")
            return
        assert self._store is not None
        index = self._git_dir / "index"
        lock = index.with_name(index.name + ".lock")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            problems.append(
                f"the index ({lock} exists: a git command is running or crashed; "
                "remove the lock and restore again)"
            )
            return
        except OSError as exc:
            problems.append(f"the index ({exc.strerror or exc})")
            return
        try:
            with open(fd, "wb") as out:
                if self._index_saved:
                    with open(self._store / "index", "rb") as src:
                        shutil.copyfileobj(src, out, _CHUNK)
            if self._index_saved:
                os.replace(lock, index)
            else:
                index.unlink(missing_ok=True)
        except OSError as exc:
            problems.append(f"the index ({exc.strerror or exc})")
        finally:
            lock.unlink(missing_ok=True)

    @staticmethod
    def _writable(directory: Path) -> None:
        """Give the owner write access to a directory the agent made read-only (the
        directory's recorded mode is put back afterwards)."""
        if not os.access(directory, os.W_OK | os.X_OK):
            mode = stat.S_IMODE(os.lstat(directory).st_mode)
            os.chmod(directory, mode | stat.S_IRWXU)

    def _make_parents(self, base: Path, rel: str) -> None:
        """Make every parent of ``base/rel`` a real directory.

        What stands in the way (a link or a file where the snapshot had a directory) was
        made after the snapshot: it is removed (a link is removed, never followed).

        :raises OSError: a parent cannot be made.
        """
        current = base
        for part in rel.split("/")[:-1]:
            current = current / part
            try:
                st: os.stat_result | None = os.lstat(current)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISDIR(st.st_mode):
                continue
            self._writable(current.parent)
            if st is not None:
                os.unlink(current)
            os.mkdir(current)

    def _put(self, base: Path, state: FileState, objects: Path, links: dict[str, str]) -> None:
        """Write one file (or link) of the snapshot in place under ``base``, atomically.

        :raises OSError: it could not be written.
        """
        self._make_parents(base, state.path)
        target = base / state.path
        st = _lstat(base, state.path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            # A directory where the snapshot had a file: made after the snapshot.
            shutil.rmtree(target)
        parent = target.parent
        self._writable(parent)
        temporary = parent / f".{target.name[:64]}.{secrets.token_hex(6)}.orchestrator-restore"
        try:
            if state.is_symlink:
                os.symlink(links[state.path], temporary)
            else:
                with open(objects / state.digest, "rb") as src, open(temporary, "xb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                os.chmod(temporary, stat.S_IMODE(state.mode))
            os.replace(temporary, target)
        except BaseException:
            if os.path.lexists(temporary):
                os.unlink(temporary)
            raise

    def _restore_dirs(self, problems: list[str]) -> None:
        """Remove new empty directories, recreate missing ones, put directory modes back."""
        try:
            current = _walk_dirs(self.root, _ignored(self.root)[0] | self._ignored_dirs)
        except SnapshotError as exc:
            problems.append(f"the directories ({exc})")
            return
        for rel in sorted(current.keys() - self._dirs.keys(), key=len, reverse=True):
            if _within(rel, self._ignored_dirs) or rel in self._nested:
                continue
            # Not empty: it holds something we could not delete; left.
            with contextlib.suppress(OSError):
                self._writable((self.root / rel).parent)
                os.rmdir(self.root / rel)
        for rel in sorted(self._dirs, key=len):
            if rel and _lstat(self.root, rel) is None:
                try:
                    self._make_parents(self.root, rel)
                    os.mkdir(self.root / rel)
                except OSError as exc:
                    problems.append(f"{rel}/ ({exc.strerror or exc})")
        for rel, mode in self._dirs.items():
            path = self.root / rel if rel else self.root
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
                    os.chmod(path, mode)
            except FileNotFoundError:
                pass  # a file stands there (ignored, so not ours): reported if it matters
            except OSError as exc:
                problems.append(f"{rel or '.'}/ ({exc.strerror or exc})")

    def _verify(self, problems: list[str]) -> None:
        """Compare the result with the snapshot; differences go to ``problems``."""
        reported = {p.split(" (", 1)[0] for p in problems}
        try:
            listed = _list_paths(self.root)
            now = _scan(self.root, listed=listed)
        except SnapshotError as exc:
            problems.append(str(exc))
            return
        for path in sorted(self.files.keys() | now.keys()):
            old = self.files.get(path)
            if old is None and path in self._inventory:
                continue  # the user's ignored file, made visible: checked below
            if (old is None or not old.same(now.get(path))) and path not in reported:
                problems.append(f"{path} (still differs)")
        for rel in self._git_changes():
            if f".git/{rel}" not in reported:
                problems.append(f".git/{rel} (still differs)")
        unrestored = {u.split(" (", 1)[0] for u in self.unrestored}
        stamps, _, nested = self._hidden_now(listed)
        for rel in sorted(stamps.keys() - self._inventory.keys() - self.files.keys()):
            if rel not in reported and rel not in unrestored and rel not in now:
                problems.append(f"{rel} (still there)")
        for rel in sorted(nested - self._nested):
            problems.append(f"{rel}/ (a new nested repository, still there)")
        head = _head(self.root)
        if head != (self.head, self.branch) and "HEAD" not in reported:
            problems.append(f"HEAD (at {head[0]} on {head[1]}, not {self.head} on {self.branch})")
        if _index_state(self.root) != self._index_state and "the index" not in reported:
            problems.append("the index (still differs)")
