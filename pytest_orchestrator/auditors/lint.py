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


#: Where flake8 looks for its settings, in its order: the first with a ``[flake8]`` section
#: wins (flake8 5+, ``flake8.options.config``; only the project root is searched here).
FLAKE8_FILES = ("setup.cfg", "tox.ini", ".flake8")
#: A flake8 error code or prefix (flake8's own check: ``flake8.defaults.VALID_CODE_PREFIX``).
_CODE = re.compile(r"^[A-Z]{1,3}[0-9]{0,3}$")


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
        if codes is not None and _CODE.match(word):
            codes.append(word)
            for pattern in patterns:
                mapping.setdefault(pattern, []).append(word)
            continue
        if codes is not None:  # a pattern after codes starts the next entry
            patterns, codes = [], None
        patterns.append(word.removeprefix("./"))
    return mapping


def flake8_settings(rootdir: Path) -> Flake8Settings | None:
    """The ``[flake8]`` section of the first of :data:`FLAKE8_FILES` in ``rootdir`` that has
    one, as flake8 reads it (option names with ``-`` or ``_``); None when there is none or
    the file does not parse (then flake8 itself skips it as well)."""
    for name in FLAKE8_FILES:
        parser = configparser.RawConfigParser()
        try:
            parser.read_string((rootdir / name).read_text(encoding="utf-8"), name)
        except (OSError, UnicodeDecodeError, configparser.Error):
            continue
        if not parser.has_section("flake8"):
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


def ruff_codes(ruff: str, timeout: float | None = None) -> list[str]:
    """Every rule code ``ruff`` knows (``ruff rule --all --output-format=json``; about
    0.02 s), waiting at most ``timeout`` seconds.

    :raises ToolUnavailable: ruff cannot run, fails, or prints something else than its JSON
        list.
    """
    try:
        done = subprocess.run(
            [ruff, "rule", "--all", "--output-format=json"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=tool_environment(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolUnavailable(f"ruff could not run ({exc}); {INSTALL_HINT}") from None
    try:
        rules = json.loads(done.stdout)
        return [str(rule["code"]) for rule in rules if rule.get("code")]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ToolUnavailable(
            f"ruff rule --all failed (exit {done.returncode}): {last_line(done.stderr)}"
        ) from None


def flake8_arguments(settings: Flake8Settings, known: list[str]) -> tuple[list[str], list[str]]:
    """ruff ``check`` arguments that apply ``settings``, and the codes left out because no
    ruff rule has them (or starts with them): ruff rejects a whole run over one unknown
    selector (flake8's ``W503``, or a plugin's code).

    :returns: ``(arguments, unknown codes)``; per-file ignores go through ``--config`` as a
        TOML table, since a path pattern may hold a comma.
    """
    unknown: list[str] = []

    def usable(codes: list[str]) -> list[str]:
        kept = []
        for code in dict.fromkeys(codes):
            if any(rule.startswith(code) for rule in known):
                kept.append(code)
            elif code not in unknown:
                unknown.append(code)
        return kept

    arguments: list[str] = []
    ignore = usable(settings.ignore)
    if ignore:
        arguments += ["--ignore", ",".join(ignore)]
    for pattern in settings.exclude:
        arguments += ["--extend-exclude", pattern]
    table = {pattern: usable(codes) for pattern, codes in settings.per_file.items()}
    table = {pattern: codes for pattern, codes in table.items() if codes}
    if table:
        entries = ", ".join(f"{json.dumps(p)} = {json.dumps(c)}" for p, c in table.items())
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
                known = ruff_codes(ruff, context.settings.tool_timeout)
                arguments, unknown = flake8_arguments(flake8, known)
                argv += arguments
                self._flake8_note = f"flake8 settings from {flake8.source} applied" + (
                    f" (codes no ruff rule has, left out: {', '.join(unknown)})" if unknown else ""
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
