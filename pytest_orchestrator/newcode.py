"""New code: the lines changed against a base ref (``--orchestrate-diff-base=REF``).

**Which lines are new.** The merge base of REF and HEAD is found (``git merge-base REF
HEAD``, as a pull request's ``git diff REF...HEAD`` does), and the working tree is compared
with it: ``git diff --unified=0 MERGE-BASE``. That is the branch's commits plus the staged
and unstaged changes, with line numbers of the files as they are on disk now (the numbers
ruff, bandit and coverage report). Untracked files that ``.gitignore`` does not exclude
(``git ls-files --others --exclude-standard``) are new in every line. The patch is read in
git's documented unified format ("Generating patch text with -p" in ``git help diff``):

- a file starts with ``diff --git a/OLD b/NEW``, followed by extended headers (``new file
  mode``, ``deleted file mode``, ``rename from``/``rename to``, ``old mode``/``new mode``,
  ``index``), then ``--- a/OLD`` and ``+++ b/NEW`` (``/dev/null`` for a missing side), or
  ``Binary files ... differ`` instead;
- each hunk header is ``@@ -a,b +c,d @@`` (a count of 1 may be left out); with
  ``--unified=0`` there are no context lines, so the new-side lines ``c .. c+d-1`` are
  exactly the added or modified lines (``d = 0``: lines were only removed);
- paths with unusual characters are C-quoted (``"a/tab\\there"``, octal ``\\303\\274``
  bytes); ``core.quotePath=false`` keeps UTF-8 names readable; git appends a tab to a
  ``---``/``+++`` name that contains a space.

Renames are followed (``--find-renames``): a renamed file's unchanged lines are not new.
Deleted files have no new line; binary files are listed with no line; submodules are
ignored. Paths are POSIX paths relative to pytest's rootdir; when the rootdir is a
subdirectory of the repository, changes outside it are left out. The commands are argv
lists (no shell) with ``--no-ext-diff --no-textconv --no-color`` and explicit prefixes, so
the user's git configuration cannot run a program or change the format. The files the
session writes or reads as data (the ``--orchestrate-report`` files, the baseline) are
never new code.

**What is judged on new code** (see :func:`assess`; docs/new-code.md says
the same):

- *diff coverage*: of the changed lines in files coverage.py measured, those that belong
  to an executable statement (coverage.py's own parser, with the measurement's exclusion
  regexes; a changed continuation line of a multi-line statement counts as that
  statement) and, of these, the ones the tests ran: ``100 * covered / executable``.
  Branches are not part of it. With no changed executable line it is not applicable (None);
- *findings on new code*: a finding with a path and a line counts when that line changed;
  a finding with a path but no line counts when its file has a changed line; a coverage
  finding counts when its file has an uncovered changed statement; the ``tests``
  dimension's findings (failing tests, errors) always count, since a test's outcome is not
  tied to lines; a finding with no path never counts;
- *the new-code score*: the overall formula (weighted mean of the dimension scores, same
  weights, same ``orchestrate_unavailable`` rule, same ``pytest_orchestrator_score`` hook)
  over new-code dimension scores: ``tests`` is the session's pass rate, ``coverage`` the diff
  coverage (left out when not applicable), every other dimension the finding formula
  ``100 - sum(points[severity]) / KLOC`` over its findings on new code, with KLOC = changed
  lines in Python files / 1000, at least 1.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import re
import subprocess
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from pytest_orchestrator.errors import OrchestratorError
from pytest_orchestrator.loop.snapshot import SnapshotError, git_message, run_git, toplevel
from pytest_orchestrator.scoring import plural

if TYPE_CHECKING:
    import pytest

    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.models import AuditResult, Finding, NewCode
    from pytest_orchestrator.suppressions import Suppression

#: Bytes of an untracked file searched for a NUL to call it binary (git's own heuristic).
BINARY_PROBE = 8000
#: ``git diff`` options: the patch format this module reads, whatever the git configuration.
DIFF_OPTIONS = (
    "diff",
    "--unified=0",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--find-renames",
    "--ignore-submodules",
    "--src-prefix=a/",
    "--dst-prefix=b/",
)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
#: The rule of a suppression the new code added (a finding in the dimension it silences).
NEW_SUPPRESSION = "new-suppression"
#: Suffixes of the files whose changed lines make the new code's KLOC.
PYTHON_SUFFIXES = (".py", ".pyi")

Interval = tuple[int, int]
Status = Literal["added", "modified", "renamed", "deleted", "untracked"]


class DiffBaseError(OrchestratorError):
    """The diff base cannot be used; one line saying why and what to do."""


# --------------------------------------------------------------------------- lines


def merge_intervals(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Sorted, non-overlapping inclusive ``(first, last)`` line intervals; touching ones join."""
    out: list[list[int]] = []
    for first, last in sorted(intervals):
        if out and first <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], last)
        else:
            out.append([first, last])
    return tuple((a, b) for a, b in out)


def intervals_text(intervals: Iterable[Interval]) -> str:
    """Line intervals as ranges: ``[(3, 5), (9, 9)]`` -> ``'3-5, 9'`` ('' for none)."""
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in merge_intervals(intervals))


def ranges_text(lines: Iterable[int]) -> str:
    """Line numbers as ranges: ``[3, 4, 5, 9]`` -> ``'3-5, 9'`` ('' for none)."""
    return intervals_text((n, n) for n in lines)


def arcs_text(arcs: Iterable[tuple[int, int]]) -> str:
    """Branch arcs as coverage.py writes them: ``12->14, 20->exit`` (a negative
    destination leaves the code object)."""
    return ", ".join(f"{a}->{b if b > 0 else 'exit'}" for a, b in arcs)


def parse_ranges(text: str) -> set[int]:
    """The inverse of :func:`ranges_text`: ``'3-5, 9'`` -> ``{3, 4, 5, 9}``."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if part:
            low, _, high = part.partition("-")
            out.update(range(int(low), int(high or low) + 1))
    return out


@dataclass(frozen=True)
class FileChange:
    """One file changed against the merge base.

    :ivar path: POSIX path (relative to the repository top in :func:`parse_diff`'s output,
        to the rootdir in a :class:`ChangeSet`).
    :ivar old_path: the path before a rename.
    :ivar intervals: the new or modified lines, 1-based inclusive intervals, merged.
    :ivar binary: git saw a binary file (no line is listed).
    """

    path: str
    status: Status
    old_path: str | None = None
    intervals: tuple[Interval, ...] = ()
    binary: bool = False

    @property
    def count(self) -> int:
        """How many lines are new."""
        return sum(b - a + 1 for a, b in self.intervals)

    def lines(self) -> Iterable[int]:
        """The new line numbers, ascending."""
        for first, last in self.intervals:
            yield from range(first, last + 1)

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, int):
            return False
        i = bisect.bisect_right(self.intervals, (line, float("inf"))) - 1
        return i >= 0 and self.intervals[i][0] <= line <= self.intervals[i][1]


@dataclass
class ChangeSet:
    """The new code of the working tree against a base ref.

    :ivar base: the ref as the user gave it.
    :ivar merge_base: full commit id of the merge base of ``base`` and HEAD.
    :ivar head: full commit id of HEAD.
    :ivar files: rootdir-relative POSIX path -> its change.
    """

    base: str
    merge_base: str
    head: str
    files: dict[str, FileChange] = field(default_factory=dict)

    def changed(self, path: str | None, line: int | None) -> bool:
        """Whether ``line`` of ``path`` (rootdir-relative) is new."""
        change = self.files.get(path or "")
        return change is not None and line in change

    @property
    def lines(self) -> int:
        """New lines in all files."""
        return sum(c.count for c in self.files.values())

    @property
    def python_lines(self) -> int:
        """New lines in Python files (``.py``, ``.pyi``): the new code's size."""
        return sum(c.count for p, c in self.files.items() if p.endswith(PYTHON_SUFFIXES))


# --------------------------------------------------------------------------- git


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``git -c core.quotePath=false ARGS`` in ``root`` (see ``loop.snapshot.run_git``: the
    repository-pointing variables dropped); raw output, never raises on exit.

    :raises DiffBaseError: git is missing, cannot run or timed out.
    """
    try:
        return run_git(root, *args, check=False)
    except SnapshotError as exc:
        raise DiffBaseError(str(exc)) from None


def _text(raw: bytes) -> str:
    """git's output as text; bytes that are not UTF-8 become surrogates (as in os.fsdecode)."""
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Base:
    """A resolved diff base: the repository top, the merge base and HEAD (full commit ids)."""

    top: Path
    merge_base: str
    head: str


def resolve(rootdir: Path, ref: str) -> Base:
    """Check that ``ref`` can be a diff base for the repository holding ``rootdir``.

    :raises DiffBaseError: not a git repository, no commit yet, an unknown ref, or no merge
        base (a shallow clone without enough history says how to fetch it).
    """
    if not ref or ref.startswith("-") or any(c.isspace() or not c.isprintable() for c in ref):
        raise DiffBaseError(f"{ref!r} is not a git ref or commit; give one like origin/main")
    try:
        top, reason = toplevel(rootdir)
    except SnapshotError as exc:
        raise DiffBaseError(str(exc)) from None
    if top is None:
        if "not a git repository" in reason.lower():
            raise DiffBaseError(
                f"{rootdir} is not in a git repository, so there is no new code to find; "
                "run pytest in a git checkout or drop the diff base"
            )
        raise DiffBaseError(f"no git working tree at {rootdir}: {reason}")
    head = _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head.returncode != 0:
        raise DiffBaseError("the repository has no commit yet (HEAD); commit first")
    base = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    shallow = _text(_git(top, "rev-parse", "--is-shallow-repository").stdout).strip() == "true"
    if base.returncode != 0:
        if "@{" in ref:  # @{upstream}, @{push}, @{-1}: git says what is missing
            why = git_message(_git(top, "rev-parse", "--verify", f"{ref}^{{commit}}").stderr)
            raise DiffBaseError(
                f"unknown diff base {ref!r}: {why}; set the upstream (git branch "
                "--set-upstream-to=origin/main) or give the base ref, e.g. origin/main"
            )
        raise DiffBaseError(_unknown_ref(top, ref, shallow))
    merge = _git(top, "merge-base", ref, "HEAD")
    merge_base = _text(merge.stdout).strip()
    if merge.returncode != 0 or not merge_base:
        if merge.returncode == 1 and shallow:
            raise DiffBaseError(
                f"no merge base of {ref!r} and HEAD in this shallow clone; fetch more history: "
                "actions/checkout with fetch-depth: 0 (or git fetch --unshallow)"
            )
        if merge.returncode == 1:
            raise DiffBaseError(
                f"{ref!r} and HEAD share no history (no merge base); give the branch HEAD "
                "was made from"
            )
        raise DiffBaseError(f"git merge-base {ref} HEAD failed: {git_message(merge.stderr)}")
    return Base(top, merge_base, _text(head.stdout).strip())


#: ``REF~N`` or ``REF^`` (possibly repeated): an ancestor of REF.
_ANCESTOR = re.compile(r"(.+?)(?:~\d*|\^1?)+\Z")


def _unknown_ref(top: Path, ref: str, shallow: bool) -> str:
    """The one-line message for a ref git does not know, with how to fetch it; for an
    ancestor (``HEAD~5``, ``main^^``) past the start of a history, how long it is."""
    ancestor = _ANCESTOR.match(ref)
    if ancestor:
        start = ancestor.group(1)
        found = _git(top, "rev-list", "--count", "--first-parent", f"{start}^{{commit}}")
        if found.returncode == 0:
            count = int(_text(found.stdout).strip() or 0)
            message = (
                f"diff base {ref!r} is before the first commit: the history of {start!r} "
                f"has {plural(count, 'commit')}"
            )
            if shallow:
                return message + " in this shallow clone; fetch more (actions/checkout with "
                "fetch-depth: 0, or git fetch --unshallow)"
            oldest = f"{start}~{count - 1}" if count > 1 else start
            return message + f"; give a nearer one (at most {oldest})"
    remotes = _text(_git(top, "remote").stdout).split()
    remote, _, branch = ref.partition("/")
    if branch and remote in remotes:
        fetch = f"git fetch {remote} {branch}"
    elif remotes:
        fetch = f"git fetch {remotes[0]} {ref}"
    else:
        fetch = "git fetch"
    message = f"unknown diff base {ref!r}: no such commit; fetch it ({fetch}) or check the name"
    names = _text(
        _git(top, "for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/remotes").stdout
    ).split("\n")
    close = _closest(ref, [n for n in names if n and n != "HEAD" and not n.endswith("/HEAD")])
    if close:
        message += f" (did you mean {close!r}?)"
    if shallow:
        message += "; this is a shallow clone: actions/checkout with fetch-depth: 0"
    return message


def _closest(ref: str, names: list[str]) -> str | None:
    """The branch name most like ``ref`` (whole name, or its last part), if any is close."""

    def likeness(name: str) -> float:
        whole = difflib.SequenceMatcher(None, ref, name).ratio()
        tail = difflib.SequenceMatcher(None, ref.rsplit("/", 1)[-1], name.rsplit("/", 1)[-1])
        return max(whole, tail.ratio())

    scored = sorted(((likeness(n), n) for n in names), key=lambda x: (-x[0], x[1]))
    return scored[0][1] if scored and scored[0][0] >= 0.75 else None


def unquote(name: str) -> str:
    """A path as git prints it in a patch header: C-quoted (``"a/x\\ty"``) or plain.

    A plain ``---``/``+++`` name with a space has a trailing tab, removed here (a name that
    really ends in a tab is always quoted).
    """
    if not name.startswith('"'):
        return name.removesuffix("\t")
    body, out, i = name[1:], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == '"':
            break
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if body[i + 1 : i + 4].isdigit():
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
        out += char.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _split_quoted(text: str) -> tuple[str, str]:
    """The first C-quoted string of ``text`` and what follows it (without the space)."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return text[: i + 1], text[i + 1 :].lstrip(" ")
        i += 1
    return text, ""


def _header_path(header: str) -> str:
    """The new path of ``diff --git a/P b/P`` when no other header names it (binary files,
    mode changes, empty files). Both names are the same then, so a plain header splits in
    the middle; quoted ones are C-unquoted."""
    if header.startswith('"'):
        first, rest = _split_quoted(header)
        second = unquote(rest) if rest.startswith('"') else rest
        return second.removeprefix("b/") if second else unquote(first).removeprefix("a/")
    half = (len(header) - 5) // 2
    if header.startswith("a/") and header[2 + half : 5 + half] == " b/":
        return header[5 + half :]
    return header.split(" b/", 1)[-1]


def parse_diff(text: str) -> list[FileChange]:
    """The files and new lines of a ``git diff --unified=0`` patch (paths as in the patch).

    A path that appears twice (a type change is printed as a deletion and an addition) is
    merged into one ``modified`` entry.
    """
    out: dict[str, FileChange] = {}
    for section in re.split(r"^diff --git ", text, flags=re.MULTILINE)[1:]:
        lines = section.split("\n")
        header = lines[0]
        status: Status = "modified"
        old: str | None = None
        new: str | None = None
        gone: str | None = None
        binary = False
        intervals: list[Interval] = []
        in_hunks = False
        for line in lines[1:]:
            if line.startswith("@@"):
                in_hunks = True
                match = _HUNK.match(line)
                if match:
                    start, count = int(match[1]), int(match[2] if match[2] is not None else 1)
                    if count:
                        intervals.append((start, start + count - 1))
                continue
            if in_hunks:
                continue  # a removed line "--- x" or an added "+++ y" is content, not a header
            if line.startswith("new file mode"):
                status = "added"
            elif line.startswith("deleted file mode"):
                status = "deleted"
            elif line.startswith("rename from "):
                old, status = unquote(line[len("rename from ") :]), "renamed"
            elif line.startswith("rename to "):
                new = unquote(line[len("rename to ") :])
            elif line.startswith("--- ") and line[4:] != "/dev/null":
                gone = unquote(line[4:]).removeprefix("a/")
            elif line.startswith("+++ "):
                if line[4:] == "/dev/null":
                    status = "deleted"
                else:
                    new = unquote(line[4:]).removeprefix("b/")
            elif line.startswith("Binary files ") or line == "GIT binary patch":
                binary = True
        path = new or (gone if status == "deleted" else None) or _header_path(header)
        change = FileChange(
            path=path,
            status=status,
            old_path=old if status == "renamed" else None,
            intervals=merge_intervals(intervals),
            binary=binary,
        )
        earlier = out.get(path)
        if earlier is not None and {earlier.status, change.status} == {"deleted", "added"}:
            change = FileChange(path, "modified", None, change.intervals or earlier.intervals)
        out[path] = change
    return list(out.values())


def _untracked(path: Path) -> FileChange | None:
    """An untracked file: every line is new (none for a binary file or a symlink)."""
    try:
        if path.is_symlink() or not path.is_file():
            return None
        lines, last, binary = 0, b"\n", False
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                if not lines and b"\0" in chunk[:BINARY_PROBE]:
                    binary = True
                    break
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        if not binary and last != b"\n":
            lines += 1  # a last line without a newline
    except OSError:
        return None
    intervals = ((1, lines),) if lines and not binary else ()
    return FileChange(path="", status="untracked", intervals=intervals, binary=binary)


def changed_lines(rootdir: Path, ref: str) -> ChangeSet:
    """The new code of the working tree under ``rootdir`` against ``ref``'s merge base.

    :raises DiffBaseError: see :func:`resolve`, or a git command failed.
    """
    base = resolve(rootdir, ref)
    try:
        prefix = rootdir.resolve().relative_to(base.top.resolve()).as_posix()
    except ValueError:
        prefix = "."
    spec = [] if prefix == "." else ["--", f":(literal){prefix}"]
    done = _git(base.top, *DIFF_OPTIONS, base.merge_base, *spec)
    if done.returncode != 0:
        raise DiffBaseError(f"git diff {base.merge_base[:12]} failed: {git_message(done.stderr)}")
    changes = parse_diff(_text(done.stdout))
    listed = _git(base.top, "ls-files", "-z", "--others", "--exclude-standard", *spec)
    if listed.returncode != 0:
        raise DiffBaseError(f"git ls-files failed: {git_message(listed.stderr)}")
    for name in _text(listed.stdout).split("\0"):
        if name and not name.endswith("/"):
            found = _untracked(base.top / name)
            if found is not None:
                changes.append(FileChange(name, "untracked", None, found.intervals, found.binary))
    out = ChangeSet(ref, base.merge_base, base.head)
    for change in changes:
        path = change.path
        if prefix != ".":
            inside = PurePosixPath(path).is_relative_to(prefix)
            if not inside:
                continue
            path = PurePosixPath(path).relative_to(prefix).as_posix()
        old = change.old_path
        if old is not None and prefix != ".":
            old = (
                PurePosixPath(old).relative_to(prefix).as_posix()
                if PurePosixPath(old).is_relative_to(prefix)
                else old
            )
        out.files[path] = FileChange(path, change.status, old, change.intervals, change.binary)
    return out


def new_suppressions(
    rootdir: Path, changes: ChangeSet, found: dict[str, list[Suppression]]
) -> list[tuple[str, Suppression]]:
    """The suppressions of ``found`` (per rootdir-relative file, see
    :func:`pytest_orchestrator.suppressions.scan_tree`) that the new code added: on a changed
    line, and not in the file at the merge base (a line edited around an existing ``# noqa``
    keeps it; a renamed file is compared with its old path).

    :raises DiffBaseError: git failed.
    """
    from pytest_orchestrator.suppressions import added

    out: list[tuple[str, Suppression]] = []
    for path, items in sorted(found.items()):
        change = changes.files.get(path)
        if change is None or not any(s.line in change for s in items):
            continue
        old: str | None = None
        if change.status in ("modified", "renamed"):
            done = _git(
                rootdir, "cat-file", "blob", f"{changes.merge_base}:./{change.old_path or path}"
            )
            old = _text(done.stdout) if done.returncode == 0 else None
        try:
            new = (rootdir / path).read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        out += [(path, s) for s in added(old, new) if s.line in change]
    return out


# --------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class Statements:
    """Executable statements of one file, by coverage.py's parser.

    :ivar lines: the statements' first lines (what coverage.py reports and counts).
    :ivar first_line: maps any line of a multi-line statement to its first line.
    :ivar exits: the branch lines (more than one possible exit) and their number of exits,
        as coverage.py counts branches.
    """

    lines: frozenset[int]
    first_line: dict[int, int]
    exits: dict[int, int] = field(default_factory=dict)

    def of(self, changed: Iterable[int]) -> set[int]:
        """The statements that ``changed`` lines belong to (their first lines)."""
        return {s for s in (self.first_line.get(n, n) for n in changed) if s in self.lines}


def exclusion_regex(config: pytest.Config) -> str:
    """The line-exclusion regex of this session's coverage measurement (``exclude_lines``
    and ``exclude_also``, e.g. ``# pragma: no cover``), as coverage.py joins it."""
    from coverage.misc import join_regex

    from pytest_orchestrator.auditors.measure import MEASUREMENT_KEY, _configured, cwd

    measurement = config.stash.get(MEASUREMENT_KEY, None)
    cov = None
    if measurement is not None and measurement.measured_by == "pytest-cov":
        plugin = config.pluginmanager.getplugin("_cov")
        cov = getattr(getattr(plugin, "cov_controller", None), "cov", None)
    elif measurement is not None:
        cov = measurement.cov
    with warnings.catch_warnings(), cwd(config.rootpath):
        warnings.simplefilter("ignore")
        if cov is None:
            cov = _configured(config.rootpath)[0]
        return join_regex(cov.get_exclude_list())


def statements(path: Path, exclude: str) -> Statements:
    """Parse ``path`` with coverage.py's Python parser (as its reporter does).

    :raises ValueError: the file cannot be read or is not Python.
    """
    from coverage.exceptions import CoverageException
    from coverage.parser import PythonParser

    try:
        parser = PythonParser(filename=str(path), exclude=exclude or None)
        parser.parse_source()
    except (CoverageException, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    text_lines = parser.text.count("\n") + 1
    first = {n: parser.first_line(n) for n in range(1, text_lines + 1)}
    exits = {line: count for line, count in parser.exit_counts().items() if count > 1}
    return Statements(
        frozenset(parser.statements), {k: v for k, v in first.items() if k != v}, exits
    )


# --------------------------------------------------------------------------- assessment


def on_new_code(finding: Finding, changes: ChangeSet, uncovered: set[str]) -> bool:
    """Whether ``finding`` is on new code (the rule in this module's docstring).

    :param uncovered: rootdir-relative paths of the files with an uncovered changed statement.
    """
    if finding.rule_id == NEW_SUPPRESSION:
        return changes.changed(finding.path, finding.line)
    if finding.dimension == "tests":
        return True
    if finding.path is None:
        return False
    change = changes.files.get(finding.path)
    if change is None or not change.count:
        return False
    if finding.dimension == "coverage":
        return finding.path in uncovered
    return finding.line is None or finding.line in change


@dataclass
class Assessment:
    """What :func:`assess` found: the report's ``new_code`` and the new-code audit results
    to score and gate (``results``; coverage is left out when not applicable)."""

    summary: NewCode
    results: list[AuditResult]


def assess(
    config: pytest.Config,
    settings: OrchestrationConfig,
    results: Sequence[AuditResult],
    ref: str,
    changes: ChangeSet | None = None,
) -> Assessment:
    """Restrict ``results`` to the new code against ``ref`` (see the module docstring).

    :param changes: :func:`changed_lines` of ``ref``, when the caller has them.
    :raises DiffBaseError: git failed (the base was checked at configure time).
    """
    from pytest_orchestrator.models import AuditResult, ChangedFile, NewCode
    from pytest_orchestrator.scoring import deductions_for, finding_score

    rootdir = config.rootpath
    changes = changed_lines(rootdir, ref) if changes is None else changes
    notes: list[str] = []
    # our own outputs (the reports, the baseline) are not code, even when untracked
    outputs = [spec.path for spec in settings.reports if spec.path is not None]
    for output in [*outputs, settings.baseline]:
        if output is not None:
            with contextlib.suppress(ValueError):
                rel = output.resolve().relative_to(rootdir.resolve()).as_posix()
                changes.files.pop(rel, None)
    files = {
        path: ChangedFile(
            path=path,
            status=change.status,
            old_path=change.old_path,
            binary=change.binary,
            lines=intervals_text(change.intervals),
            changed_lines=change.count,
        )
        for path, change in sorted(changes.files.items())
    }
    coverage = next((r for r in results if r.dimension == "coverage"), None)
    measured = (
        {f.path: f for f in coverage.coverage.files}
        if coverage is not None and coverage.status == "ok" and coverage.coverage is not None
        else None
    )
    uncovered_files: set[str] = set()
    executable = covered = branches = covered_branches = 0
    lost: list[tuple[str, float, int]] = []
    if measured is not None:
        exclude = exclusion_regex(config)
        for path, change in sorted(changes.files.items()):
            counted = measured.get(path)
            if counted is None or not change.count:
                continue
            try:
                parsed = statements(rootdir / path, exclude)
            except ValueError as exc:
                notes.append(f"{path}: not parsed for diff coverage ({exc})")
                continue
            if len(parsed.lines) != counted.statements:
                notes.append(
                    f"{path}: coverage.py counted {counted.statements} statements, the re-parse "
                    f"{len(parsed.lines)} (changed since the run?); its diff coverage may be off"
                )
            mine = parsed.of(change.lines())
            missing = mine & parse_ranges(counted.missing_lines)
            executable += len(mine)
            covered += len(mine) - len(missing)
            files[path].executable_lines = len(mine)
            files[path].covered_lines = len(mine) - len(missing)
            files[path].uncovered_lines = ranges_text(sorted(missing))
            arcs: list[tuple[int, int]] = []
            if counted.missing_branch_arcs is not None:
                mine_exits = sum(parsed.exits.get(line, 0) for line in mine)
                arcs = [a for a in counted.missing_branch_arcs if a[0] in mine]
                branches += mine_exits
                covered_branches += mine_exits - len(arcs)
                files[path].branches = mine_exits
                files[path].covered_branches = mine_exits - len(arcs)
                files[path].uncovered_branches = arcs_text(arcs)
            # a line that did not run already counts its branches as lines: name the
            # partial ones (ran, but a branch was not taken)
            partial = [a for a in arcs if a[0] not in missing]
            if missing or partial:
                uncovered_files.add(path)
                parts = []
                if missing:
                    parts.append(
                        f"{len(missing)} of {plural(len(mine), 'changed line')} not covered "
                        f"({ranges_text(sorted(missing))})"
                    )
                if arcs:
                    parts.append(
                        f"{plural(len(arcs), 'branch', 'branches')} not taken ({arcs_text(arcs)})"
                    )
                lost.append(
                    (
                        f"{path}: {'; '.join(parts)}",
                        float(len(missing) + len(arcs)),
                        len(missing) + len(arcs),
                    )
                )
    units = executable + branches
    diff_coverage = round(100.0 * (covered + covered_branches) / units, 2) if executable else None
    kloc_lines = changes.python_lines
    new_results: list[AuditResult] = []
    found = []
    for result in results:
        mine_findings = [f for f in result.findings if on_new_code(f, changes, uncovered_files)]
        found.extend(mine_findings)
        if result.status != "ok" or result.dimension == "tests":
            new_results.append(result.model_copy(update={"findings": mine_findings}))
        else:
            if result.dimension != "coverage":
                score, deductions = finding_score(
                    result.dimension, mine_findings, kloc_lines, settings.severity_points
                )
            elif diff_coverage is None:
                continue  # not applicable: said by the gate's diff coverage condition
            else:
                points = [(r, p * 100.0 / units, c) for r, p, c in lost]
                score = diff_coverage
                deductions = deductions_for("coverage", points, diff_coverage)
            new_results.append(
                AuditResult(
                    dimension=result.dimension,
                    status="ok",
                    score=score,
                    findings=mine_findings,
                    deductions=deductions,
                    tool=result.tool,
                    tool_version=result.tool_version,
                )
            )
    by_severity = Counter(f.severity.value for f in found)
    summary = NewCode(
        base=ref,
        merge_base=changes.merge_base,
        head=changes.head,
        files=list(files.values()),
        changed_files=len(files),
        changed_lines=changes.lines,
        changed_python_lines=kloc_lines,
        executable_lines=executable,
        covered_lines=covered,
        branches=branches,
        covered_branches=covered_branches,
        diff_coverage=diff_coverage,
        coverage_measured=measured is not None,
        findings=[f.fingerprint for f in found],
        findings_by_severity=dict(sorted(by_severity.items())),
        deductions=[d for r in new_results for d in r.deductions],
        notes=notes,
    )
    return Assessment(summary, new_results)
