"""The ``types`` dimension (opt-in): mypy, or pyright, with the project's own settings.

**Which checker.** mypy when the project configures it (``[tool.mypy]`` in
``pyproject.toml``, ``mypy.ini``, ``.mypy.ini``, or ``[mypy]`` in ``setup.cfg``), else pyright
when it is configured (``[tool.pyright]``, ``pyrightconfig.json``); with neither configured,
the first installed of mypy and pyright, on the discovered sources. A configured checker that
is not installed, or none installed, makes the dimension unavailable with the reason.

**How it runs.** ``mypy --output json --no-error-summary [SOURCES]`` (the sources only when
the configuration names no ``files``), or ``pyright --outputjson [SOURCES]`` (the sources only
when ``pyrightconfig.json`` or ``[tool.pyright]`` names no ``include``), in the rootdir, in
the background while the tests run. mypy's JSON lines (mypy 1.11+: ``file``, ``line``,
``code``, ``message``, ``severity``) and pyright's JSON (``generalDiagnostics`` with
``file``, ``range.start.line`` 0-based, ``rule``, ``severity``) become findings.

**Severities.** A mypy syntax error (``syntax``) is P0, an error P2, a pyright warning P3,
a note or pyright information P4; ``orchestrate_severity_map`` overrides them
(``mypy:arg-type=P1``). mypy notes that explain an error are added to its message instead.
mypy stopping before it checks anything (exit status 2 without a syntax error, e.g.
"Duplicate module named") makes the dimension unavailable with mypy's message.

Findings in test code inside the sources (a package's ``tests/``, ``test_*.py``) are left
out with a note, as for ``security``: the score divides by the project's lines of code,
which leave test code out.

**Cache.** A type checker's result for one file depends on the files it imports, so results
are cached for the whole project: when no Python file, no configuration file, not the
checker's version and not the installed packages (their ``.dist-info`` names on ``sys.path``,
which carry the versions, so a stub package added counts) changed since a cached run, the
cached findings are used and the checker does not run (see
:mod:`pytest_orchestrator.auditors.cache` for where and how; the key holds every Python
file's SHA-256).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pytest_orchestrator.auditors import cache
from pytest_orchestrator.auditors.base import AuditContext, make_finding, outside_tests
from pytest_orchestrator.auditors.tools import (
    CommandAuditor,
    distribution_version,
    find_executable,
    last_line,
)
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import AuditResult, Finding, Severity
from pytest_orchestrator.severity import tool_severity

MYPY_CONFIGS = ("mypy.ini", ".mypy.ini")
PYRIGHT_CONFIGS = ("pyrightconfig.json",)
#: Severity of a checker's diagnostics, by (tool, severity); syntax errors are P0.
SEVERITIES = {
    ("mypy", "error"): Severity.P2,
    ("mypy", "note"): Severity.P4,
    ("pyright", "error"): Severity.P2,
    ("pyright", "warning"): Severity.P3,
    ("pyright", "information"): Severity.P4,
}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def configured(rootdir: Path) -> str | None:
    """``mypy`` or ``pyright`` when the project configures that checker (mypy first), else
    None."""
    pyproject = _read(rootdir / "pyproject.toml")
    if (
        "[tool.mypy" in pyproject
        or any((rootdir / name).is_file() for name in MYPY_CONFIGS)
        or "[mypy" in _read(rootdir / "setup.cfg")
    ):
        return "mypy"
    if "[tool.pyright" in pyproject or (rootdir / "pyrightconfig.json").is_file():
        return "pyright"
    return None


def _names_files(rootdir: Path, checker: str) -> bool:
    """Whether the checker's own configuration section says which files to check (then we
    pass none): mypy's ``files`` in ``[tool.mypy]``, ``[mypy]`` of ``mypy.ini``,
    ``.mypy.ini`` or ``setup.cfg``; pyright's ``include`` in ``pyrightconfig.json`` or
    ``[tool.pyright]``."""
    import configparser
    import json

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    try:
        pyproject = tomllib.loads(_read(rootdir / "pyproject.toml"))
    except ValueError:  # tomllib.TOMLDecodeError
        pyproject = {}
    found = pyproject.get("tool")
    tool: dict[str, Any] = found if isinstance(found, dict) else {}
    if checker == "mypy":
        if isinstance(tool.get("mypy"), dict) and "files" in tool["mypy"]:
            return True
        for name in (*MYPY_CONFIGS, "setup.cfg"):
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read_string(_read(rootdir / name))
            except configparser.Error:
                continue
            if parser.has_option("mypy", "files"):
                return True
        return False
    if isinstance(tool.get("pyright"), dict) and "include" in tool["pyright"]:
        return True
    try:
        data = json.loads(_read(rootdir / "pyrightconfig.json") or "{}")
    except ValueError:
        return False
    return isinstance(data, dict) and "include" in data


class TypesAuditor(CommandAuditor):
    """Type-check with mypy or pyright (see the module's docstring); one finding per error."""

    dimension = "types"
    tool = "mypy"

    def __init__(self) -> None:
        super().__init__()
        self._plan: cache.CachePlan | None = None
        self.checker = "mypy"  # or pyright: chosen in begin()

    def _choose(self, context: AuditContext) -> tuple[str, str]:
        """(checker name, executable). :raises ToolUnavailable: not installed."""
        wanted = configured(context.rootdir)
        names: tuple[str, ...] = (wanted,) if wanted else ("mypy", "pyright")
        for name in names:
            found = find_executable(name)
            if found:
                return name, found
        if wanted:
            how = "pip install mypy" if wanted == "mypy" else "npm install -g pyright"
            raise ToolUnavailable(f"{wanted} is configured but not installed; {how}")
        raise ToolUnavailable(
            "neither mypy nor pyright is installed; install one (pip install mypy)"
        )

    def command(self, context: AuditContext) -> list[str]:
        name, executable = self._choose(context)
        self.checker = name
        sources = [] if _names_files(context.rootdir, name) else list(context.project.sources)
        if name == "mypy":
            return [executable, "--output", "json", "--no-error-summary", *sources]
        return [executable, "--outputjson", *sources]

    def begin(self, context: AuditContext) -> None:
        argv = self.command(context)
        self._plan = self._cache_plan(context, argv)
        if self._plan is None or not self._plan.complete:
            self.launch(argv, context)

    def _cache_plan(self, context: AuditContext, argv: list[str]) -> cache.CachePlan | None:
        """The whole-project cache plan: complete only when nothing it depends on changed."""
        if not cache.enabled():
            return None
        from pytest_orchestrator.suppressions import python_files

        rootdir = context.rootdir
        try:
            files = {rel: cache._digest(context, rootdir, rel) for rel in python_files(rootdir)}
            configs = [
                rootdir / n
                for n in (*MYPY_CONFIGS, *PYRIGHT_CONFIGS, "setup.cfg", "pyproject.toml")
            ]
            key = cache.text_digest(
                [
                    self.checker,
                    cache.executable_identity(argv[0]),
                    distribution_version(self.checker) or "",
                    cache.installed_packages(),
                    *argv[1:],
                    *cache.config_parts(configs),
                    cache.text_digest(sorted(f"{k}={v}" for k, v in files.items())),
                ]
            )
            store = cache.cache_dir(context) / f"{self.checker}.json"
        except OSError:
            return None
        plan = cache.make_plan(store, key, files)
        if plan.hits and set(plan.hits) != set(files):
            plan.hits.clear()  # any change: the checker runs over everything
        plan.run = [] if set(plan.hits) == set(files) and plan.hits else None
        return plan

    def finish(self, context: AuditContext) -> AuditResult:
        self.ready()
        plan = self._plan
        if plan is not None and plan.complete:
            items = [item for _, payload in plan.merge({}) for item in payload["items"]]
            return self._result(context, items, 0.0)
        code, out, err, seconds = self.wait()
        parsed = parse(self.checker, out)
        blocked = (
            self.checker == "mypy"
            and code == 2
            and parsed is not None
            and not any(item.get("code") == "syntax" for item in parsed)
        )
        if blocked and parsed:  # "Duplicate module named ...": mypy checked nothing
            message = str(parsed[0].get("message") or "")
            raise ToolUnavailable(f"mypy stopped before checking (exit 2): {message}")
        if parsed is None or (code not in (0, 1) and not parsed):
            raise ToolUnavailable(
                f"{self.checker} failed (exit {code}, no diagnostics in its JSON format): "
                f"{last_line(err or out)}"
            )
        items = parsed
        rootdir = cache.real_rootdir(context)
        for item in items:
            relative = cache.relative(rootdir, str(item.get("file") or ""))
            item["file"] = relative if relative is not None else str(item.get("file") or "")
        if plan is not None:
            by_file: dict[str, cache.Payload] = {rel: {"items": []} for rel in plan.files}
            for item in items:
                by_file.setdefault(item["file"], {"items": []})["items"].append(item)
            plan.merge({rel: by_file[rel] for rel in plan.files})
        return self._result(context, items, seconds)

    def _result(
        self, context: AuditContext, items: list[dict[str, Any]], seconds: float
    ) -> AuditResult:
        findings: list[Finding] = []
        for item in items:
            if (
                item.get("severity") == "note"
                and findings
                and item.get("line") == findings[-1].line
                and item.get("file") == findings[-1].path
            ):
                last = findings[-1]
                findings[-1] = last.model_copy(
                    update={"message": f"{last.message} ({item.get('message', '')})"}
                )
                continue
            findings.append(self._finding(context, item))
        notes: list[str] = []
        findings = outside_tests(findings, notes)
        result = self.scored(context, findings, duration=seconds, notes=notes)
        result.tool = self.checker
        result.tool_version = distribution_version(self.checker) if self.checker == "mypy" else None
        return result

    def _finding(self, context: AuditContext, item: dict[str, Any]) -> Finding:
        rule = str(item.get("code") or "") or "error"
        kind = str(item.get("severity") or "error")
        default = (
            Severity.P0 if rule == "syntax" else SEVERITIES.get((self.checker, kind), Severity.P2)
        )
        line = item.get("line")
        return make_finding(
            context,
            dimension=self.dimension,
            severity=tool_severity(self.checker, rule, default, context.settings.severity_map),
            rule_id=rule,
            message=str(item.get("message") or ""),
            path=str(item.get("file") or "") or None,
            line=line if type(line) is int and line >= 1 else None,
            tool=self.checker,
            recommendation=str(item["hint"]) if item.get("hint") else None,
        )


def parse(tool: str, out: str) -> list[dict[str, Any]] | None:
    """The diagnostics of ``tool``'s JSON output as mypy-shaped dicts (``file``, ``line``
    1-based, ``code``, ``message``, ``severity``, ``hint``); None when it is not that format.

    mypy prints one JSON object per line (``--output json``); pyright one object whose
    ``generalDiagnostics`` hold ``file``, ``severity``, ``message``, ``rule`` and
    ``range.start.line`` (0-based).
    """
    from pytest_orchestrator import jsonio

    if tool == "mypy":
        items = []
        for line in out.splitlines():
            if not line.strip():
                continue
            try:
                item = jsonio.loads(line)
            except (ValueError, RecursionError):
                return None
            if isinstance(item, dict):
                items.append(item)
        return items
    try:
        data = jsonio.loads(out or "null")
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("generalDiagnostics"), list):
        return None
    items = []
    for diagnostic in data["generalDiagnostics"]:
        if not isinstance(diagnostic, dict):
            continue
        start = (diagnostic.get("range") or {}).get("start") or {}
        row = start.get("line") if isinstance(start, dict) else None
        items.append(
            {
                "file": diagnostic.get("file"),
                "line": row + 1 if type(row) is int else None,
                "code": diagnostic.get("rule") or "",
                "message": diagnostic.get("message") or "",
                "severity": diagnostic.get("severity") or "error",
                "hint": None,
            }
        )
    return items
