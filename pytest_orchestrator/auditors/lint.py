"""The ``lint`` dimension: ruff, run once over the rootdir with the project's own config.

Results are cached per file content (see :mod:`pytest_orchestrator.auditors.cache`): a
session runs ruff only on the files changed since a cached run.

When the project has no ruff configuration (``ruff.toml``, ``.ruff.toml`` or
``[tool.ruff]`` in ``pyproject.toml``), rules are pinned to ``orchestrate_ruff_select``
(default ``E4,E7,E9,F``) so scores do not jump when ruff widens its defaults. A flake8
configuration is then the project's lint policy: its ``ignore``/``extend-ignore``,
``exclude``/``extend-exclude`` and ``per-file-ignores`` are passed to ruff (see
:func:`flake8_settings`), but for codes ruff does not know, which the result's notes list.

The score is the finding formula over the files ruff checks (``ruff check --show-files``):
their findings, divided by their lines of code, so findings and size come from one set of
files. Test code (``tests/``, ``test_*.py``, ``*_test.py``, ``conftest.py``) is part of it,
or, with ``orchestrate_lint_tests``: ``lower`` (its findings one severity lower) or ``skip``
(left out: neither its findings nor its lines count).
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_orchestrator.auditors import cache
from pytest_orchestrator.auditors.base import AuditContext, make_finding
from pytest_orchestrator.auditors.tools import (
    CommandAuditor,
    distribution_version,
    find_executable,
    last_line,
    tool_environment,
)
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import AuditResult, Finding, Severity
from pytest_orchestrator.scoring import plural
from pytest_orchestrator.severity import ruff_severity
from pytest_orchestrator.sources import is_test_file

INSTALL_HINT = "install it with: pip install ruff"


def _lines_of_code(rootdir: Path, files: list[str]) -> int:
    """Non-blank, non-comment lines of ``files`` (as the project's size is counted)."""
    from pytest_orchestrator.discovery import count_lines

    total = 0
    for rel in files:
        try:
            total += count_lines((rootdir / rel).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return total


def has_ruff_config(rootdir: Path) -> bool:
    """True when ``rootdir`` has ruff.toml, .ruff.toml or a [tool.ruff] table."""
    if (rootdir / "ruff.toml").is_file() or (rootdir / ".ruff.toml").is_file():
        return True
    pyproject = rootdir / "pyproject.toml"
    try:
        return "[tool.ruff" in pyproject.read_text(encoding="utf-8")
    except OSError:
        return False


#: Where flake8 looks for its settings, in its order: the first with a ``[flake8]`` or
#: ``[flake8:local-plugins]`` section wins (flake8 5+, ``flake8.options.config``; only the
#: project root is searched here).
FLAKE8_FILES = ("setup.cfg", "tox.ini", ".flake8")
#: A flake8 error code or prefix (flake8's own check: ``flake8.defaults.VALID_CODE_PREFIX``).
_CODE = re.compile(r"^[A-Z]{1,3}[0-9]{0,3}$")
#: A code in ``per-file-ignores`` (flake8's tokenizer there: ``[A-Z]+[0-9]*``).
_FILE_CODE = re.compile(r"^[A-Z]+[0-9]*$")


@dataclass
class Flake8Settings:
    """The parts of a project's flake8 configuration that decide which findings count.

    :ivar source: where they came from, e.g. ``setup.cfg [flake8]``.
    :ivar ignore: codes and code prefixes of ``ignore`` and ``extend-ignore``.
    :ivar exclude: path patterns of ``exclude`` and ``extend-exclude`` (without ``./``).
    :ivar per_file: ``per-file-ignores``: path pattern -> codes.
    """

    source: str
    ignore: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    per_file: dict[str, list[str]] = field(default_factory=dict)


def _codes(value: str) -> list[str]:
    """flake8's comma- or whitespace-separated code list; words that are not codes (an
    inline comment) are left out."""
    return [token for token in re.split(r"[,\s]+", value) if _CODE.match(token)]


def _per_file_ignores(value: str) -> dict[str, list[str]]:
    """flake8's ``per-file-ignores``: ``PATTERN [PATTERN ...]: CODE[,CODE ...]`` entries,
    separated by whitespace or commas (flake8's ``parse_files_to_codes_mapping``)."""
    mapping: dict[str, list[str]] = {}
    patterns: list[str] = []
    codes: list[str] | None = None
    for word in re.findall(r"[^\s,:]+|:", value):
        if word == ":":
            codes = []
            continue
        if codes is not None and _FILE_CODE.match(word):
            codes.append(word)
            for pattern in patterns:
                mapping.setdefault(pattern, []).append(word)
            continue
        if codes is not None:  # a pattern after codes starts the next entry
            patterns, codes = [], None
        patterns.append(word.removeprefix("./"))
    return mapping


def flake8_settings(rootdir: Path) -> Flake8Settings | None:
    """The ``[flake8]`` section of the file of :data:`FLAKE8_FILES` in ``rootdir`` that
    flake8 reads, with option names spelt with ``-`` or ``_``; None when there is none or
    the file does not parse (flake8 skips it as well). Words in a code list that are not
    codes (an inline comment, which flake8 itself rejects) are left out."""
    for name in FLAKE8_FILES:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string((rootdir / name).read_text(encoding="utf-8"), name)
        except (OSError, UnicodeDecodeError, configparser.Error):
            continue
        if not parser.has_section("flake8"):
            if parser.has_section("flake8:local-plugins"):
                return None  # flake8 reads this file, which sets nothing we apply
            continue
        options = {key.replace("_", "-"): value for key, value in parser.items("flake8")}
        return Flake8Settings(
            source=f"{name} [flake8]",
            ignore=_codes(options.get("ignore", "")) + _codes(options.get("extend-ignore", "")),
            exclude=[
                pattern.removeprefix("./")
                for key in ("exclude", "extend-exclude")
                for pattern in re.split(r"[,\s]+", options.get(key, ""))
                if pattern
            ],
            per_file=_per_file_ignores(options.get("per-file-ignores", "")),
        )
    return None


def _ruff_json(ruff: str, args: list[str], timeout: float | None) -> list[dict[str, Any]]:
    """The JSON list that ``ruff ARGS --output-format=json`` prints.

    :raises ToolUnavailable: ruff cannot run, fails, or prints something else.
    """
    try:
        done = subprocess.run(
            [ruff, *args, "--output-format=json"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=tool_environment(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolUnavailable(f"ruff could not run ({exc}); {INSTALL_HINT}") from None
    try:
        items = json.loads(done.stdout)
        if not isinstance(items, list):
            raise TypeError("not a list")
    except (ValueError, TypeError):
        raise ToolUnavailable(
            f"ruff {' '.join(args)} failed (exit {done.returncode}): {last_line(done.stderr)}"
        ) from None
    return [item for item in items if isinstance(item, dict)]


def ruff_selectors(ruff: str, timeout: float | None = None) -> set[str]:
    """Every rule selector ``ruff`` accepts but ``ALL``: a linter's prefix (``PL``), then
    its category's (``PLC``, or ``E`` of pycodestyle, whose own prefix is empty), then each
    longer prefix of a rule's code (``E7``, ``E73``, ``E731``). From ``ruff linter`` and
    ``ruff rule --all`` (about 0.04 s together), each waited for at most ``timeout``
    seconds.

    :raises ToolUnavailable: ruff cannot run, fails, or prints something else than its JSON.
    """
    heads: dict[str, list[str]] = {}  # linter name -> the prefixes its codes start with
    selectors: set[str] = set()
    for linter in _ruff_json(ruff, ["linter"], timeout):
        prefix = str(linter.get("prefix") or "")
        categories = linter.get("categories") or []
        heads[str(linter.get("name"))] = [
            prefix + str(c.get("prefix") or "") for c in categories if isinstance(c, dict)
        ] or [prefix]
        selectors.update(h for h in [prefix, *heads[str(linter.get("name"))]] if h)
    for rule in _ruff_json(ruff, ["rule", "--all"], timeout):
        code = str(rule.get("code") or "")
        linter_heads = heads.get(str(rule.get("linter")), [])
        head = next((h for h in linter_heads if h and code.startswith(h)), None)
        if head is not None:
            selectors.update(code[:end] for end in range(len(head), len(code) + 1))
    return selectors


def ruff_glob(pattern: str) -> str:
    """flake8's ``fnmatch`` pattern as a ruff glob that matches the same paths: ``\\``,
    ``{``, ``}`` and a leading ``!`` are literal for ``fnmatch`` but syntax for ruff, and so
    is a ``[`` that no ``]`` closes; they are escaped."""
    out = []
    for i, char in enumerate(pattern):
        if char in "\\{}" or (char == "!" and i == 0):
            out.append("\\" + char)
        elif char == "[" and "]" not in pattern[i + 1 :]:
            out.append("\\[")
        else:
            out.append(char)
    return "".join(out)


def flake8_arguments(settings: Flake8Settings, selectors: set[str]) -> tuple[list[str], list[str]]:
    """ruff ``check`` arguments that apply ``settings``, and the codes left out because ruff
    has no such selector (see :func:`ruff_selectors`): ruff rejects a whole run over one
    unknown selector (flake8's ``W503``, a plugin's code).

    :returns: ``(arguments, unknown codes)``. Patterns are :func:`ruff_glob` globs, given as
        ``--extend-exclude=PATTERN`` (a pattern may start with ``-``); per-file ignores go
        through ``--config`` as a TOML table, which keeps each pattern whole.
    """
    unknown: list[str] = []

    def usable(codes: list[str]) -> list[str]:
        kept = []
        for code in dict.fromkeys(codes):
            if code in selectors:
                kept.append(code)
            elif code not in unknown:
                unknown.append(code)
        return kept

    arguments: list[str] = []
    ignore = usable(settings.ignore)
    if ignore:
        arguments.append(f"--ignore={','.join(ignore)}")
    arguments += [f"--extend-exclude={ruff_glob(pattern)}" for pattern in settings.exclude]
    table = {ruff_glob(p): usable(codes) for p, codes in settings.per_file.items()}
    entries = ", ".join(
        f"{json.dumps(p, ensure_ascii=False)} = {json.dumps(c)}" for p, c in table.items() if c
    )
    if entries:
        arguments += ["--config", f"lint.extend-per-file-ignores = {{{entries}}}"]
    return arguments, unknown


class RuffAuditor(CommandAuditor):
    """Lint with ``ruff check --output-format=json``; one finding per violation."""

    dimension = "lint"
    tool = "ruff"

    install_hint = INSTALL_HINT
    begin_in_thread = True  # ruff --show-files runs before ruff itself

    def __init__(self) -> None:
        super().__init__()
        self._plan: cache.CachePlan | None = None
        self._files: list[str] | None = None
        self._flake8_note: str | None = None

    def begin(self, context: AuditContext) -> None:
        """List the files ruff checks, then run it on the ones changed since the cached run
        (none: do not run it)."""
        argv = self.command(context)
        self._files = cache.ruff_files(context, argv[0], argv[2:-1])
        self._plan = cache.ruff_plan(context, argv[0], argv[2:-1], self._files)
        if self._plan is None or self._plan.run is None:
            self.launch(argv, context)
        elif self._plan.run:
            self.launch([*argv[:-1], "--force-exclude", *self._plan.run], context)

    def command(self, context: AuditContext) -> list[str]:
        ruff = find_executable("ruff") or "ruff"
        argv = [ruff, "check", "--output-format=json", "--exit-zero", "--no-fix"]
        if not has_ruff_config(context.rootdir):
            argv += ["--select", context.settings.ruff_select]
            flake8 = flake8_settings(context.rootdir)
            if flake8 is not None:
                codes = flake8.ignore or flake8.per_file  # else no selector to check
                timeout = context.settings.tool_timeout
                selectors = ruff_selectors(ruff, timeout) if codes else set()
                arguments, unknown = flake8_arguments(flake8, selectors)
                argv += arguments
                self._flake8_note = f"flake8 settings from {flake8.source} applied" + (
                    f" (codes ruff does not know, left out: {', '.join(unknown)})"
                    if unknown
                    else ""
                )
        return [*argv, "."]

    def finish(self, context: AuditContext) -> AuditResult:
        self.ready()
        plan = self._plan
        if plan is not None and plan.complete:
            items = [item for _, payload in plan.merge({}) for item in payload["items"]]
            return self._result(context, items, 0.0)
        code, out, err, seconds = self.wait()
        if code != 0:
            raise ToolUnavailable(f"ruff failed (exit {code}): {last_line(err or out)}")
        try:
            items = json.loads(out or "[]")
            if not isinstance(items, list):
                raise TypeError("not a list")
        except (ValueError, TypeError) as exc:
            raise ToolUnavailable(
                f"ruff printed output that is not its JSON format ({exc})"
            ) from None
        rootdir = cache.real_rootdir(context)
        items = cache.ordered(rootdir, [i for i in items if isinstance(i, dict)], "filename")
        if plan is not None:
            checked = list(plan.files) if plan.run is None else plan.run
            fresh = cache.split(rootdir, checked, items, "filename", "items")
            if fresh is not None:
                items = [item for _, payload in plan.merge(fresh) for item in payload["items"]]
            elif plan.run is not None:
                cached = [item for payload in plan.hits.values() for item in payload["items"]]
                items = cache.ordered(rootdir, cached + items, "filename")
        return self._result(context, items, seconds)

    def _result(
        self, context: AuditContext, items: list[dict[str, object]], seconds: float
    ) -> AuditResult:
        policy = context.settings.lint_tests
        findings = []
        for item in items:
            finding = self._finding(context, item)
            if finding.path is not None and is_test_file(finding.path):
                if policy == "skip":
                    continue
                if policy == "lower" and finding.severity.rank < len(Severity) - 1:
                    lower = list(Severity)[finding.severity.rank + 1]
                    finding = finding.model_copy(update={"severity": lower})
            findings.append(finding)
        notes: list[str] = []
        lines = None
        if self._files is not None:
            counted = [f for f in self._files if policy != "skip" or not is_test_file(f)]
            lines = _lines_of_code(context.rootdir, counted)
            tests = {
                "count": "test code included",
                "lower": "test code included, its findings one severity lower",
                "skip": "test code left out",
            }[policy]
            notes.append(
                f"scored over the {plural(lines, 'line')} of code of the "
                f"{plural(len(counted), 'file')} ruff checks ({tests})"
            )
        if self._flake8_note:
            notes.append(self._flake8_note)
        result = self.scored(context, findings, duration=seconds, notes=notes, lines=lines)
        result.tool_version = distribution_version("ruff")
        return result

    def _finding(self, context: AuditContext, item: dict[str, object]) -> Finding:
        code = item.get("code")
        message = str(item.get("message") or "")
        rule = str(code) if code else "syntax-error"
        location = item.get("location")
        line = location.get("row") if isinstance(location, dict) else None
        fix = item.get("fix")
        recommendation = None
        if isinstance(fix, dict) and fix.get("message"):
            recommendation = f"{fix['message']} (ruff check --fix)"
        return make_finding(
            context,
            dimension=self.dimension,
            severity=ruff_severity(rule, context.settings.severity_map),
            rule_id=rule,
            message=message,
            path=str(item.get("filename") or "") or None,
            line=line if isinstance(line, int) else None,
            tool=self.tool,
            url=str(item["url"]) if item.get("url") else None,
            recommendation=recommendation,
        )
