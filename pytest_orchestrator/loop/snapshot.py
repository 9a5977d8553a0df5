"""Snapshots of a git working tree: taken before an agent edits, diffed, restored byte for byte.

What a snapshot holds ("our files"): every file git lists as tracked or as untracked and not
ignored (``git ls-files --cached --others --exclude-standard``), regular files and symbolic
links, with their content, their mode and whether they are links; the non-ignored directories
and their modes (so that empty ones survive and new ones can be removed); the commit and
branch of ``HEAD``; the index file; ``.git/info/exclude``. The content is copied into a
private temporary directory (mode 0700), so a restore depends neither on git objects nor on
memory: files of any size are streamed.

What it does not hold, on purpose:

- ignored files (``.venv``, build outputs, caches): they are never read, never written and
  never deleted, even when the agent changed or deleted them: they are not ours to restore.
  A file ignored at the snapshot stays untouched even if the agent un-ignored it (say, by
  emptying ``.venv/.gitignore``, itself ignored): the restore then fails naming the paths
  that still differ, and the user decides;
- the contents of submodules and nested repositories (another repository's files);
- files other than regular files and symbolic links (sockets, FIFOs): skipped;
- branches other than the one ``HEAD`` named, tags, stashes, git configuration (such as
  ``core.excludesFile``) and a merge or rebase the agent left in progress; the agent's
  commits stay reachable through the reflog;
- modification times: a restored file gets the current time, so build tools rebuild it.

Restoring replaces a changed file atomically (a temporary file in the same directory, then
``os.replace``), which gives it a new inode: a hard link to it elsewhere keeps the agent's
version. A link is never followed when writing: a directory the agent replaced by a link to
elsewhere is removed as a link and rebuilt. Paths are POSIX strings relative to the root of
the working tree, exactly as git spells them (``core.quotepath=false``, ``-z``; undecodable
bytes are surrogate-escaped).
"""

from __future__ import annotations

import codecs
import contextlib
import difflib
import hashlib
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
from typing import Literal

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
#: Variables that point git at another repository, index or work tree: dropped, so that the
#: commands we run see the repository at ``root`` whatever the caller's environment says.
_REPO_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
)
_REFLOG_MESSAGE = "pytest-orchestrator: restore snapshot"


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


def run_git(
    root: Path, *args: str, check: bool = True, index: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git -c core.quotepath=false ARGS`` in ``root``; raw stdout and stderr.

    :param index: an index file to use instead of the repository's (``GIT_INDEX_FILE``).
    :raises SnapshotError: git is missing, timed out, or (with ``check``) exited non-zero.
    """
    env = {k: v for k, v in os.environ.items() if k not in _REPO_ENV}
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    env["GIT_OPTIONAL_LOCKS"] = "0"  # git status must not rewrite the index
    env["GIT_TERMINAL_PROMPT"] = "0"
    argv = ["git", "-c", "core.quotepath=false", *args]
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
    # an identity of its own: CI runners and containers often have no user.name/user.email
    identity = [
        "-c",
        "user.name=pytest-orchestrator",
        "-c",
        "user.email=pytest-orchestrator@localhost",
    ]
    done = run_git(top, *identity, "commit-tree", tree, *parents, "-m", message)
    commit = done.stdout.decode().strip()
    run_git(top, "update-ref", "-m", message, ref, commit)
    return commit


def _list_paths(root: Path) -> list[str]:
    """Tracked and untracked-not-ignored paths, deduplicated and sorted.

    Entries ending with ``/`` (nested repositories, sparse directories) are left out.
    """
    done = run_git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    paths = {os.fsdecode(p) for p in done.stdout.split(b"\0") if p and not p.endswith(b"/")}
    return sorted(paths)


def _ignored(root: Path) -> tuple[frozenset[str], frozenset[str]]:
    """``(directories, files)`` git ignores: whole untracked directories (``.venv``, without
    ``/``) and single files elsewhere (``app.log``). Cheap: ignored directories are not
    entered."""
    done = run_git(
        root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"
    )
    entries = [os.fsdecode(p) for p in done.stdout.split(b"\0") if p]
    dirs = frozenset(e.rstrip("/") for e in entries if e.endswith("/"))
    return dirs, frozenset(e for e in entries if not e.endswith("/"))


def _within(rel: str, dirs: frozenset[str]) -> bool:
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


def _ref_commit(root: Path, ref: str) -> str | None:
    done = run_git(root, "rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
    if done.returncode != 0:
        return None
    return done.stdout.decode().strip() or None


def _index_state(root: Path) -> str:
    """sha256 of the index's entries (mode, object, stage, path): stat refreshes do not count."""
    return hashlib.sha256(run_git(root, "ls-files", "-z", "--stage").stdout).hexdigest()


#: git's own files an agent could change to act later (hooks run on the user's next commit):
#: snapshotted (up to GIT_FILE_MAX bytes each), guarded and restored.
GIT_INTERNALS = ("config", "hooks", "info/attributes", "info/sparse-checkout")
GIT_FILE_MAX = 1024 * 1024


def _git_internals(root: Path) -> dict[str, bytes]:
    """Contents of :data:`GIT_INTERNALS` files, by their path under the git directory."""
    out: dict[str, bytes] = {}
    base = _git_path(root, ".")
    for name in GIT_INTERNALS:
        path = base / name
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for item in paths:
            try:
                if item.is_file() and item.stat().st_size <= GIT_FILE_MAX:
                    out[item.relative_to(base).as_posix()] = item.read_bytes()
            except OSError:
                continue
    return out


def _git_path(root: Path, name: str) -> Path:
    """A file of the repository (``index``, ``info/exclude``), linked worktrees included."""
    done = run_git(root, "rev-parse", "--git-path", name)
    return root / os.fsdecode(done.stdout).rstrip("\n")


# --------------------------------------------------------------------------- files


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


def _scan(root: Path, *, strict: bool = True) -> dict[str, FileState]:
    """The current state of every listed file (no copy).

    With ``strict`` false, a file that cannot be read gets an empty digest (it then differs
    from any snapshot) instead of failing.

    :raises SnapshotError: (``strict``) a file cannot be read; the message names them.
    """
    states: dict[str, FileState] = {}
    failed: list[str] = []
    dirs: dict[str, bool] = {}
    for rel in _list_paths(root):
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
        binary.
    :ivar lines_removed: lines removed; 0 when binary.
    :ivar binary: either side is not UTF-8 text or holds a NUL byte.
    :ivar added_text: the added lines joined, at most :data:`ADDED_TEXT_MAX` characters
        (for content checks such as ``ALTER TABLE``); empty when binary.
    """

    path: str
    kind: Literal["added", "modified", "deleted"]
    lines_added: int
    lines_removed: int
    binary: bool = False
    added_text: str = ""


@dataclass
class ChangeSet:
    """What changed since a snapshot.

    :ivar changes: one entry per changed file, sorted by path.
    :ivar head_moved: HEAD points at another commit or branch (a commit, reset or checkout).
    :ivar index_changed: the index's entries changed (``git add``, ``git rm``, a commit).
    :ivar packages_before: directories (``""`` for the root) that held an ``__init__.py`` at
        snapshot time; the guard uses them to tell a new package from a new sub-package.
    """

    changes: list[FileChange]
    head_moved: bool = False
    index_changed: bool = False
    packages_before: frozenset[str] = field(default_factory=frozenset)
    #: git's own files (config, hooks) changed, added or deleted, e.g. ``hooks/pre-commit``.
    git_files: tuple[str, ...] = ()

    def _paths(self, kind: str) -> list[str]:
        return [c.path for c in self.changes if c.kind == kind]

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
        """No file changed and neither HEAD nor the index moved."""
        return (
            not self.changes
            and not self.head_moved
            and not self.index_changed
            and not self.git_files
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


class Snapshot:
    """A working tree as it was; see the module's docstring for what it holds.

    Take one with :meth:`take`; :meth:`diff` says what changed since, :meth:`restore` puts it
    back, :meth:`discard` (or leaving a ``with`` block) removes the private copy.

    :ivar root: top directory of the working tree.
    :ivar head: commit HEAD pointed at; None in a repository without commits.
    :ivar branch: the branch HEAD named (``refs/heads/main``); None when detached.
    :ivar files: the files, by path (sorted).
    """

    def __init__(
        self,
        root: Path,
        head: str | None,
        files: dict[str, FileState],
        *,
        branch: str | None,
        store: Path,
        links: dict[str, str],
        dirs: dict[str, int],
        ignored: tuple[frozenset[str], frozenset[str]],
        index: tuple[str, Path, bool],
        exclude: tuple[Path, bytes | None],
    ) -> None:
        self.root = root
        self.head = head
        self.branch = branch
        self.files = files
        self._store: Path | None = store
        self._links = links
        self._dirs = dirs
        self._ignored_dirs, self._ignored_files = ignored
        self._index_state, self._index_path, self._index_saved = index
        self._exclude_path, self._exclude = exclude
        self._internals: dict[str, bytes] = {}
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(store), ignore_errors=True)

    def __repr__(self) -> str:
        head = self.head[:12] if self.head else None
        return f"<Snapshot {self.root} head={head} files={len(self.files)}>"

    # -- taking, discarding ----------------------------------------------------------------

    @classmethod
    def take(cls, root: Path, *, tmp_parent: Path | None = None) -> Snapshot:
        """Snapshot the working tree that holds ``root`` (its top directory is used).

        The copy goes to a new directory (mode 0700) under ``tmp_parent``, by default the
        system's temporary directory (``TMPDIR``; mind a tmpfs: it is memory); it is
        removed by :meth:`discard`, or when the snapshot is garbage-collected.

        :raises SnapshotError: not a git working tree, git failed, a file cannot be read
            (the message names them), or the copy cannot be written.
        """
        top = git_root(root)
        head, branch = _head(top)
        index_state = _index_state(top)
        internals = _git_internals(top)
        index_path = _git_path(top, "index")
        exclude_path = _git_path(top, "info/exclude")
        try:
            exclude: bytes | None = exclude_path.read_bytes()
        except FileNotFoundError:
            exclude = None
        except OSError as exc:
            raise SnapshotError(f"cannot read {exclude_path}: {exc.strerror or exc}") from exc
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
                shutil.copyfile(index_path, store / "index")
                index_saved = True
            except FileNotFoundError:
                index_saved = False
            files: dict[str, FileState] = {}
            links: dict[str, str] = {}
            failed: list[str] = []
            parents: dict[str, bool] = {}
            for rel in _list_paths(top):
                st = _lstat(top, rel, parents)
                if st is None:
                    continue  # deleted but tracked, or behind a link
                try:
                    found = _state(top, rel, st, objects)
                except OSError as exc:
                    failed.append(f"{rel} ({exc.strerror or exc})")
                    continue
                if found is not None:
                    files[rel] = found[0]
                    if found[1] is not None:
                        links[rel] = found[1]
            if failed:
                raise SnapshotError(f"cannot snapshot {_names(failed)} in {top}")
            ignored = _ignored(top)
            snapshot = cls(
                top,
                head,
                files,
                branch=branch,
                store=store,
                links=links,
                dirs=_walk_dirs(top, ignored[0]),
                ignored=ignored,
                index=(index_state, index_path, index_saved),
                exclude=(exclude_path, exclude),
            )
            snapshot._internals = internals
            return snapshot
        except BaseException as exc:
            shutil.rmtree(store, ignore_errors=True)
            if isinstance(exc, OSError):
                raise SnapshotError(
                    f"cannot write the snapshot copy in {store}: {exc.strerror or exc}"
                ) from exc
            raise

    def discard(self) -> None:
        """Remove the private copy (idempotent); :meth:`diff` and :meth:`restore` then fail."""
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

    def diff(self) -> ChangeSet:
        """What changed in the working tree, HEAD and the index since the snapshot.

        Ignored files do not appear (an ignored file the agent wrote is not listed). A file
        that cannot be read now (the agent made it unreadable) is reported as changed and
        binary.

        :raises SnapshotError: the snapshot was discarded, git failed, or a file cannot be
            read.
        """
        self._objects()
        now = _scan(self.root, strict=False)
        changes: list[FileChange] = []
        for path in sorted(self.files.keys() | now.keys()):
            old, new = self.files.get(path), now.get(path)
            if old is not None and old.same(new):
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
        packages = frozenset(
            posixpath.dirname(p) for p in self.files if posixpath.basename(p) == "__init__.py"
        )
        internals = _git_internals(self.root)
        git_files = tuple(
            sorted(
                name
                for name in internals.keys() | self._internals.keys()
                if internals.get(name) != self._internals.get(name)
            )
        )
        return ChangeSet(
            changes=changes,
            head_moved=_head(self.root) != (self.head, self.branch),
            index_changed=_index_state(self.root) != self._index_state,
            packages_before=packages,
            git_files=git_files,
        )

    # -- restore ---------------------------------------------------------------------------

    def _restore_internals(self, problems: list[str]) -> None:
        """git's config and hooks as they were: changed ones rewritten, added ones removed."""
        base = _git_path(self.root, ".")
        now = _git_internals(self.root)
        for name in now.keys() | self._internals.keys():
            old = self._internals.get(name)
            if now.get(name) == old:
                continue
            path = base / name
            try:
                if old is None:
                    path.unlink()
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    mode = path.stat().st_mode if path.exists() else None
                    path.write_bytes(old)
                    if mode is not None:
                        os.chmod(path, mode & 0o7777)
            except OSError as exc:
                problems.append(f".git/{name} ({exc.strerror or exc})")

    def restore(self) -> None:
        """Put the working tree, HEAD and the index back as they were at :meth:`take`.

        In order: HEAD (if it moved, its branch, and HEAD itself after a checkout, point
        back at the recorded commit through ``git symbolic-ref``/``git update-ref``: a soft
        reset, the agent's commits stay in the reflog); the index (the file saved at
        :meth:`take` is put back under git's ``index.lock``); ``.git/info/exclude``; the
        files (changed ones rewritten atomically, deleted ones recreated with their mode,
        links as links, whatever stands in the way of a parent directory removed); then the
        files added since are deleted: only paths git lists as tracked or untracked and not
        ignored under the restored ignore rules, and that were not ignored at :meth:`take`
        either (ignored files are never read, written or deleted); then new empty
        directories are removed, missing ones recreated and directory modes put back.
        Finally the result is compared with the snapshot. Files that already match are not
        touched, so restoring twice is harmless.

        :raises SnapshotError: the snapshot was discarded, or something could not be put
            back; the message names the paths (everything else is restored regardless).
        """
        objects = self._objects()
        problems: list[str] = []
        self._restore_head(problems)
        self._restore_index(problems)
        self._restore_exclude(problems)
        self._restore_internals(problems)
        for rel, state in self.files.items():
            try:
                st = _lstat(self.root, rel)
                current = _state(self.root, rel, st, None) if st is not None else None
                if current is not None and state.same(current[0]):
                    continue
            except OSError:
                pass  # unreadable now: rewrite it
            try:
                self._put(state, objects)
            except OSError as exc:
                problems.append(f"{rel} ({exc.strerror or exc})")
        try:
            listed = _list_paths(self.root)
        except SnapshotError as exc:
            listed = []
            problems.append(f"the added files ({exc})")
        for rel in listed:
            if rel in self.files or self._was_ignored(rel):
                continue
            st = _lstat(self.root, rel)
            if st is None or stat.S_ISDIR(st.st_mode):
                continue
            try:
                self._writable((self.root / rel).parent)
                os.unlink(self.root / rel)
            except OSError as exc:
                problems.append(f"{rel} ({exc.strerror or exc})")
        self._restore_dirs(problems)
        self._verify(problems)
        if problems:
            raise SnapshotError(f"could not restore {_names(problems)} in {self.root}")

    def _was_ignored(self, rel: str) -> bool:
        return rel in self._ignored_files or _within(rel, self._ignored_dirs)

    def _restore_head(self, problems: list[str]) -> None:
        """Point HEAD (and its branch) back; no work tree or index change."""
        try:
            now, branch = _head(self.root)
            if (now, branch) == (self.head, self.branch):
                return
            if self.branch is None:
                if self.head is not None:
                    run_git(
                        self.root,
                        *("update-ref", "--no-deref", "-m", _REFLOG_MESSAGE, "HEAD", self.head),
                    )
                return
            if branch != self.branch:
                run_git(self.root, "symbolic-ref", "-m", _REFLOG_MESSAGE, "HEAD", self.branch)
            moved = _ref_commit(self.root, self.branch)
            if self.head is None and moved is not None:
                run_git(self.root, "update-ref", "-m", _REFLOG_MESSAGE, "-d", self.branch)
            elif self.head is not None and moved != self.head:
                run_git(self.root, "update-ref", "-m", _REFLOG_MESSAGE, self.branch, self.head)
        except SnapshotError as exc:
            problems.append(f"HEAD ({exc})")

    def _restore_index(self, problems: list[str]) -> None:
        """Put the saved index file back under ``index.lock``, if its entries changed."""
        try:
            if _index_state(self.root) == self._index_state:
                return
        except SnapshotError as exc:
            problems.append(f"the index ({exc})")
            return
        assert self._store is not None
        index = self._index_path
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

    def _restore_exclude(self, problems: list[str]) -> None:
        """Put ``.git/info/exclude`` back (it decides which files are ignored)."""
        path = self._exclude_path
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        except OSError as exc:
            problems.append(f"{path} ({exc.strerror or exc})")
            return
        if current == self._exclude:
            return
        try:
            if self._exclude is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
                temporary.write_bytes(self._exclude)
                os.replace(temporary, path)
        except OSError as exc:
            problems.append(f"{path} ({exc.strerror or exc})")

    @staticmethod
    def _writable(directory: Path) -> None:
        """Give the owner write access to a directory the agent made read-only (the
        directory's recorded mode is put back afterwards)."""
        if not os.access(directory, os.W_OK | os.X_OK):
            mode = stat.S_IMODE(os.lstat(directory).st_mode)
            os.chmod(directory, mode | stat.S_IRWXU)

    def _make_parents(self, rel: str) -> None:
        """Make every parent of ``rel`` a real directory.

        What stands in the way (a link or a file where the snapshot had a directory) was
        made after the snapshot: it is removed (a link is removed, never followed).

        :raises OSError: a parent cannot be made.
        """
        current = self.root
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

    def _put(self, state: FileState, objects: Path) -> None:
        """Write one file (or link) of the snapshot in place, atomically.

        :raises OSError: it could not be written.
        """
        self._make_parents(state.path)
        target = self.root / state.path
        st = _lstat(self.root, state.path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            # A directory where the snapshot had a file: made after the snapshot.
            shutil.rmtree(target)
        parent = target.parent
        self._writable(parent)
        temporary = parent / f".{target.name[:64]}.{secrets.token_hex(6)}.orchestrator-restore"
        try:
            if state.is_symlink:
                os.symlink(self._links[state.path], temporary)
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
            if self._was_ignored(rel):
                continue
            # Not empty: it holds ignored files (or files we could not delete); left.
            with contextlib.suppress(OSError):
                self._writable((self.root / rel).parent)
                os.rmdir(self.root / rel)
        for rel in sorted(self._dirs, key=len):
            if rel and _lstat(self.root, rel) is None:
                try:
                    self._make_parents(rel)
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
            now = _scan(self.root)
        except SnapshotError as exc:
            problems.append(str(exc))
            return
        for path in sorted(self.files.keys() | now.keys()):
            old = self.files.get(path)
            if (old is None or not old.same(now.get(path))) and path not in reported:
                problems.append(f"{path} (still differs)")
        head = _head(self.root)
        if head != (self.head, self.branch) and "HEAD" not in reported:
            problems.append(f"HEAD (at {head[0]} on {head[1]}, not {self.head} on {self.branch})")
        if _index_state(self.root) != self._index_state and "the index" not in reported:
            problems.append("the index (still differs)")
