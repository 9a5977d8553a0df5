"""Suppressions: the comments and markers that make a tool look away instead of fixing.

A suppression silences a finding without removing its cause. Gap closure must not count
one as a fix (``loop.integrity`` measures as if the agent's were absent), the new-code gate
reports the ones a change adds (``new-suppression`` findings), and every JSON report counts
the ones in the tree so the baseline ratchet can fail when their number grows.

=============  =======  ========================================================================
kind           tool     what is recognised (case-insensitive for comments)
=============  =======  ========================================================================
``noqa``       ruff     ``# noqa``, ``# noqa: F401,E501``, ``# ruff: noqa``, ``# flake8: noqa``,
                        ``# ruff: disable[F401]`` (a range, until ``# ruff: enable[F401]``)
``nosec``      bandit   ``# nosec``, ``# nosec B602``, ``# nosec: B602, B603``
``type-ignore`` mypy    ``# type: ignore``, ``# type: ignore[attr-defined]``, ``# pyright:
                        ignore``; the file-level settings that loosen a checker:
                        ``# mypy: ignore-errors``, ``# mypy: disable-error-code=...``,
                        ``# pyright: basic``, ``# pyright: reportX=false`` (or ``none``,
                        ``information``, ``warning``); the ``@typing.no_type_check``
                        decorator (mypy and pyright then check nothing in its function)
``no-cover``   coverage ``# pragma: no cover`` (coverage.py's default exclusion)
``no-branch``  coverage ``# pragma: no branch`` (coverage.py's default partial-branch exclusion)
``skip``       pytest   ``mark.skip``/``mark.skipif`` (decorators, ``pytestmark``,
                        ``pytest.param(marks=...)``), ``pytest.skip(``,
                        ``pytest.importorskip(``, ``unittest.skip*`` decorators,
                        ``.skipTest(``, ``raise SkipTest``
``xfail``      pytest   ``mark.xfail``, ``pytest.xfail(``, ``unittest.expectedFailure``
=============  =======  ========================================================================

Text is matched with regular expressions (the full pattern only on lines holding one of its
words); a match inside a string literal (a docstring that shows ``# noqa``) is not a
suppression: files with a match are parsed with :mod:`ast` to tell (a file that does not
parse keeps every match). Lines are
1-based and counted as the tools count them (split at ``\\n`` only).
"""

from __future__ import annotations

import ast
import bisect
import hashlib
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Literal, cast

Kind = Literal["noqa", "nosec", "type-ignore", "no-cover", "no-branch", "skip", "xfail"]
#: The kinds, in report order.
KINDS: tuple[Kind, ...] = ("noqa", "nosec", "type-ignore", "no-cover", "no-branch", "skip", "xfail")
#: Kinds written as comments (and the no_type_check decorator, a type-ignore): measuring as
#: if absent means deleting the directive.
COMMENT_KINDS: frozenset[str] = frozenset({"noqa", "nosec", "type-ignore", "no-cover", "no-branch"})
#: The tool each kind silences, and the dimension its findings belong to.
TOOLS: dict[str, tuple[str, str]] = {
    "noqa": ("ruff", "lint"),
    "nosec": ("bandit", "security"),
    "type-ignore": ("mypy", "types"),
    "no-cover": ("coverage", "coverage"),
    "no-branch": ("coverage", "coverage"),
    "skip": ("pytest", "tests"),
    "xfail": ("pytest", "tests"),
}

_CODES = r"[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*"
_PATTERN = re.compile(
    r"(?P<comment>#[ \t]*(?:"
    rf"(?P<noqa>(?:(?:ruff|flake8)[ \t]*:[ \t]*)?noqa\b(?:[ \t]*:[ \t]*(?P<noqa_codes>{_CODES}))?)"
    r"|(?P<ruff_disable>ruff[ \t]*:[ \t]*disable\b(?:\[(?P<disable_codes>[^\]\n]*)\])?)"
    r"|(?P<nosec>nosec\b(?:[ \t]*:?[ \t]*(?P<nosec_codes>B[0-9]+(?:[\s,]+B[0-9]+)*))?)"
    r"|(?P<type_ignore>(?:type|pyright)[ \t]*:[ \t]*ignore\b(?:\[(?P<type_codes>[^\]\n]*)\])?)"
    # a checker's file-level settings that loosen it: the whole comment is the directive
    r"|(?P<loosened>mypy[ \t]*:(?=[^\n]*\b(?:ignore[-_]errors|disable[-_]error[-_]code)\b)[^\n]*"
    r"|pyright[ \t]*:(?=[ \t]*basic\b"
    r"|[^\n]*\breport\w+[ \t]*=[ \t]*(?:false|none|information|warning)\b)[^\n]*)"
    r"|(?P<pragma>pragma[ \t]*:?[ \t]*no[ \t]*(?P<what>cover|branch)\b)"
    r"))"
    r"|(?P<no_type_check>@[ \t]*(?:\w+[ \t]*\.[ \t]*)?no_type_check\b)"
    r"|(?P<skip>\bmark\.skip(?:if)?\b|\bpytest\.(?:skip|importorskip)[ \t]*\("
    r"|@[ \t]*unittest\.skip(?:If|Unless)?\b|\.skipTest[ \t]*\("
    r"|\braise[ \t]+(?:unittest\.)?SkipTest\b)"
    r"|(?P<xfail>\bmark\.xfail\b|\bpytest\.xfail[ \t]*\(|\bunittest\.expectedFailure\b)",
    re.IGNORECASE,
)
#: Cheap first look: a file without any of these words has no suppression.
_ANY = re.compile(
    r"noqa|nosec|ignore|pragma|skip|xfail|expectedFailure|mypy|pyright|disable|no_type_check",
    re.IGNORECASE,
)
_NEWLINE = re.compile("\n")
#: Bumped when what :func:`scan` finds changes: cached scans of an older format are dropped.
_SCAN_FORMAT = "4"


@dataclass(frozen=True)
class Suppression:
    """One suppression in a file.

    :ivar line: 1-based line.
    :ivar column: 0-based character offset of the directive in its line.
    :ivar kind: see :data:`KINDS`.
    :ivar text: the directive as written, e.g. ``# noqa: F401`` or ``mark.skip``.
    :ivar rules: the rule ids it names (``("F401",)``); empty when it silences everything.
    :ivar end: 0-based character offset just past the directive in its line.
    """

    line: int
    column: int
    kind: Kind
    text: str
    rules: tuple[str, ...] = ()
    end: int = 0

    @property
    def tool(self) -> str:
        """The tool it silences: ruff, bandit, mypy, coverage or pytest."""
        return TOOLS[self.kind][0]

    @property
    def dimension(self) -> str:
        """The dimension whose findings it hides: lint, security, types, coverage, tests."""
        return TOOLS[self.kind][1]

    def describe(self) -> str:
        """``# noqa: F401 silences ruff F401`` or ``mark.skip skips a test``."""
        if self.kind == "skip":
            return f"{self.text} skips a test"
        if self.kind == "xfail":
            return f"{self.text} expects a test to fail"
        what = ", ".join(self.rules) if self.rules else "every rule"
        if self.kind in ("no-cover", "no-branch"):
            return f"{self.text} hides code from coverage"
        return f"{self.text} silences {self.tool} {what}"


def _codes(text: str | None, separators: str = r"[\s,]+") -> tuple[str, ...]:
    return tuple(c for c in re.split(separators, text or "") if c)


def _kind(match: re.Match[str]) -> tuple[Kind, tuple[str, ...]]:
    if match.group("noqa"):
        return "noqa", _codes(match.group("noqa_codes"))
    if match.group("ruff_disable"):
        return "noqa", _codes(match.group("disable_codes"), r"\s*,\s*")
    if match.group("nosec"):
        return "nosec", _codes(match.group("nosec_codes"))
    if match.group("type_ignore"):
        return "type-ignore", _codes(match.group("type_codes"), r"\s*,\s*")
    if match.group("loosened") or match.group("no_type_check"):
        return "type-ignore", ()
    if match.group("pragma"):
        return ("no-cover" if match.group("what").lower() == "cover" else "no-branch"), ()
    if match.group("skip"):
        return "skip", ()
    return "xfail", ()


def _string_spans(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]] | None:
    """``((line, byte col), (end line, end byte col))`` of every string literal, sorted;
    None when ``text`` does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    spans = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.JoinedStr)
            or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))
        ):
            continue
        if node.end_lineno is not None and node.end_col_offset is not None:
            spans.append(((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)))
    spans.sort()
    return spans


def _in_string(
    spans: list[tuple[tuple[int, int], tuple[int, int]]], line: int, byte_col: int
) -> bool:
    position = (line, byte_col)
    index = bisect.bisect_right(spans, (position, (10**9, 10**9)))
    # a string starting before the position may end after it; strings nest (f-strings)
    for start, end in reversed(spans[:index]):
        if start <= position < end:
            return True
        if start[0] < line - 200:  # no literal spans 200 lines: stop looking back
            break
    return False


def scan(text: str) -> list[Suppression]:
    """Every suppression in Python source ``text``, in file order.

    Matches inside string literals are left out when the text parses.
    """
    matches: list[re.Match[str]] = []
    line_end = -1
    for word in _ANY.finditer(text):  # the full pattern runs only on lines with a word
        if word.start() < line_end:
            continue
        line_start = text.rfind("\n", 0, word.start()) + 1
        line_end = text.find("\n", word.end())
        if line_end < 0:
            line_end = len(text)
        matches.extend(_PATTERN.finditer(text, line_start, line_end))
    if not matches:
        return []
    starts = [0]
    starts.extend(newline.end() for newline in _NEWLINE.finditer(text))
    spans = _string_spans(text)
    found: list[Suppression] = []
    for match in matches:
        index = bisect.bisect_right(starts, match.start()) - 1
        line_start = starts[index]
        column = match.start() - line_start
        if spans:
            prefix = text[line_start : match.start()]
            byte_col = len(prefix.encode("utf-8", "surrogatepass"))
            if _in_string(spans, index + 1, byte_col):
                continue
        kind, rules = _kind(match)
        written = " ".join(match.group(0).split())
        if written.endswith("("):
            written = written[:-1].rstrip() + "()"
        found.append(
            Suppression(
                line=index + 1,
                column=column,
                kind=kind,
                text=written,
                rules=rules,
                end=match.end() - line_start,
            )
        )
    return found


def counts(items: Iterable[Suppression]) -> dict[str, int]:
    """Suppressions per kind, in :data:`KINDS` order, kinds with none left out."""
    seen = Counter(s.kind for s in items)
    return {kind: seen[kind] for kind in KINDS if seen[kind]}


#: Directories never searched for Python files when the tree is not a git repository.
_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", "build", "dist"}


def python_files(rootdir: Path) -> list[str]:
    """The project's Python files (``.py``, ``.pyi``), POSIX paths relative to ``rootdir``.

    In a git working tree: what git lists as tracked or untracked and not ignored; else
    every file under ``rootdir`` outside hidden directories, virtual environments,
    ``node_modules``, ``__pycache__``, ``site-packages``, ``build`` and ``dist``.
    """
    from pytest_orchestrator.loop.snapshot import SnapshotError, run_git

    try:
        done = run_git(
            rootdir,
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            "*.py",
            "*.pyi",
            check=False,
        )
    except SnapshotError:
        done = None
    if done is not None and done.returncode == 0:
        names = {os.fsdecode(p) for p in done.stdout.split(b"\0") if p}
        return sorted(n for n in names if (rootdir / n).is_file())
    return sorted(_walk(rootdir))


def _walk(rootdir: Path) -> Iterator[str]:
    pending = [rootdir]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                name = entry.name
                if name.startswith(".") or name in _SKIP_DIRS or name.endswith(".egg-info"):
                    continue
                if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                    continue
                pending.append(Path(entry.path))
            elif entry.name.endswith((".py", ".pyi")) and entry.is_file(follow_symlinks=False):
                yield Path(entry.path).relative_to(rootdir).as_posix()


def scan_tree(
    rootdir: Path, paths: Iterable[str] | None = None, store: Path | None = None
) -> dict[str, list[Suppression]]:
    """Suppressions per file (files with none left out) of ``paths`` (default: every file
    :func:`python_files` lists), read as UTF-8 with replacement.

    With ``store`` (a JSON file, see :mod:`pytest_orchestrator.auditors.cache`), a file whose
    SHA-256 is the one cached is not scanned again: the scan's parse of every file holding a
    suppression-like word is most of its cost (about 0.1 s on click's 46 files).
    """
    texts: dict[str, bytes] = {}
    for rel in python_files(rootdir) if paths is None else paths:
        try:
            texts[rel] = (rootdir / rel).read_bytes()
        except OSError:
            continue
    if store is None:
        found = {rel: scan(data.decode("utf-8", "replace")) for rel, data in texts.items()}
        return {rel: items for rel, items in found.items() if items}
    from pytest_orchestrator.auditors import cache

    digests = {rel: hashlib.sha256(data).hexdigest() for rel, data in texts.items()}
    plan = cache.make_plan(store, cache.text_digest([_SCAN_FORMAT, _PATTERN.pattern]), digests)
    fresh: dict[str, cache.Payload] = {}
    for rel in sorted(set(texts) - set(plan.hits)):
        items = scan(texts[rel].decode("utf-8", "replace"))
        fresh[rel] = {"items": [list(astuple(item)) for item in items]}
    found = {}
    for rel, payload in plan.merge(fresh):
        try:
            items = [_from_row(row) for row in payload.get("items", [])]
        except ValueError:  # a damaged entry: scan the file again
            items = scan(texts[rel].decode("utf-8", "replace"))
        if items:
            found[rel] = items
    return found


def _from_row(row: object) -> Suppression:
    """A :class:`Suppression` back from its cached ``[line, column, kind, text, rules, end]``;
    ValueError when the row is not one."""
    if not isinstance(row, list) or len(row) != 6:
        raise ValueError(f"not a suppression: {row!r}")
    line, column, kind, text, rules, end = row
    numbers = (line, column, end)
    if (
        not all(type(number) is int for number in numbers)
        or kind not in TOOLS
        or not isinstance(text, str)
        or not isinstance(rules, list)
    ):
        raise ValueError(f"not a suppression: {row!r}")
    rules = tuple(str(rule) for rule in rules)
    return Suppression(line, column, cast(Kind, kind), text, rules, end)


def strip(text: str, lines: Iterable[int]) -> str:
    """``text`` with the comment directives (noqa, nosec, type: ignore and the loosening
    ``# mypy:``/``# pyright:`` settings, pragma: no cover/no branch) on the 1-based
    ``lines`` removed, the rest of each line kept: measuring the text is then measuring as
    if those suppressions were never written."""
    wanted = set(lines)
    if not wanted:
        return text
    by_line: dict[int, list[Suppression]] = {}
    for item in scan(text):
        if item.line in wanted and item.kind in COMMENT_KINDS:
            by_line.setdefault(item.line, []).append(item)
    if not by_line:
        return text
    out = text.split("\n")
    for line, items in by_line.items():
        current = out[line - 1]
        for item in sorted(items, key=lambda s: s.column, reverse=True):
            head, rest = current[: item.column].rstrip(" \t"), current[item.end :].strip()
            if rest and not rest.startswith("#"):
                rest = "# " + rest.lstrip(":- \t")  # the directive's own explanation
            if rest:
                head = f"{head}  " if head.strip() else head
            current = head + rest
        out[line - 1] = current
    return "\n".join(out)


def added(old: str | None, new: str) -> list[Suppression]:
    """The suppressions of ``new`` that ``old`` (None: no file) did not have.

    Lines are matched with :class:`difflib.SequenceMatcher`: a suppression on a line kept
    as it was is not new; on an added or replaced line it is new unless the lines it
    replaced held the same directive.
    """
    import difflib

    now = scan(new)
    if not now:
        return []
    if old is None:
        return now
    old_lines, new_lines = old.split("\n"), new.split("\n")
    before = scan(old)
    by_old_line: dict[int, list[tuple[str, str]]] = {}
    for item in before:
        by_old_line.setdefault(item.line, []).append((item.kind, item.text.lower()))
    new_by_line: dict[int, list[Suppression]] = {}
    for item in now:
        new_by_line.setdefault(item.line, []).append(item)
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    fresh: list[Suppression] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        replaced = Counter(entry for i in range(i1 + 1, i2 + 1) for entry in by_old_line.get(i, []))
        for j in range(j1 + 1, j2 + 1):
            for item in new_by_line.get(j, []):
                key = (item.kind, item.text.lower())
                if replaced[key] > 0:
                    replaced[key] -= 1
                else:
                    fresh.append(item)
    return fresh
