"""The ``security`` dimension: ruff's flake8-bandit port or bandit over the project's
sources, through their JSON output.

Targets are the discovered sources (packages and top-level modules, not tests); findings in
test code inside them (a package's ``tests/`` directory, ``test_*.py``: see
:func:`pytest_orchestrator.sources.is_test_file`) are left out with a note, as that code is
not in the size the score divides by (an ``assert`` in a test is no weakness). The engine
(ini ``orchestrate_security_engine``, :func:`engine`) is bandit when the project configures
it (a ``[tool.bandit]`` table in ``pyproject.toml``, a ``.bandit`` file) and ruff's ``S``
rules otherwise: on the rules both implement they find the same things (measured by
``bench/security_engines.py``) in a few hundredths of bandit's time.

* bandit (:class:`BanditAuditor`): ``[tool.bandit]`` is passed with ``-c`` and ``.bandit``
  with ``--ini``, so their ``skips``, ``tests`` and ``exclude_dirs`` apply.
* ruff (:class:`RuffSecurityAuditor`): ``ruff check --isolated --preview --select S`` (the
  project's lint configuration does not narrow it), each finding named by bandit's test id
  (``S602`` is ``B602``) and given the severity bandit gives that test
  (:func:`pytest_orchestrator.severity.bandit_levels`).

``# nosec`` comments work as in bandit with either engine (and ``# noqa: S602`` with ruff).
Results are cached per file content (see :mod:`pytest_orchestrator.auditors.cache`): a
session runs the tool only on the files changed since a cached run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Literal

import pytest

from pytest_orchestrator import suppressions
from pytest_orchestrator.auditors import cache
from pytest_orchestrator.auditors.base import AuditContext, make_finding, outside_tests
from pytest_orchestrator.auditors.lint import RuffAuditor
from pytest_orchestrator.auditors.tools import (
    BackgroundCommand,
    CommandAuditor,
    distribution_version,
    drop_bandit_worker,
    find_executable,
    last_line,
    run_in_bandit_worker,
)
from pytest_orchestrator.errors import ToolUnavailable
from pytest_orchestrator.models import AuditResult, Finding
from pytest_orchestrator.severity import bandit_levels, bandit_severity

INSTALL_HINT = "install it with: pip install bandit"
#: The ini setting choosing the engine: auto (default), ruff or bandit.
ENGINE_INI = "orchestrate_security_engine"


def bandit_configured(rootdir: Path) -> bool:
    """The project configures bandit: a ``.bandit`` file or a ``[tool.bandit]`` table in
    ``pyproject.toml`` in ``rootdir``."""
    return (rootdir / ".bandit").is_file() or _has_table(rootdir / "pyproject.toml", "[tool.bandit")


def engine(config: pytest.Config) -> Literal["ruff", "bandit"]:
    """The security engine of this session: ``orchestrate_security_engine`` when it says
    ruff or bandit, else (``auto``, the default) bandit when the project configures it
    (:func:`bandit_configured`) and ruff otherwise. An invalid setting counts as ``auto``
    here; the settings' own validation reports it."""
    asked = str(config.getini(ENGINE_INI) or "auto").strip().lower()
    if asked in ("ruff", "bandit"):
        return "ruff" if asked == "ruff" else "bandit"
    return "bandit" if bandit_configured(config.rootpath) else "ruff"


def security_auditor(config: pytest.Config) -> CommandAuditor:
    """The ``security`` auditor of the session's :func:`engine`."""
    return BanditAuditor() if engine(config) == "bandit" else RuffSecurityAuditor()


def _nosec(lines: list[str], line: int | None, test_id: str) -> bool:
    """A ``# nosec`` comment on ``line`` (1-based) of a file's ``lines`` that silences
    ``test_id`` (bandit's rule: a bare ``# nosec`` silences every test, ``# nosec B602,
    B607`` those named)."""
    if line is None or not 0 < line <= len(lines) or "nosec" not in lines[line - 1].lower():
        return False
    return any(
        s.kind == "nosec" and (not s.rules or test_id in s.rules)
        for s in suppressions.scan(lines[line - 1])
    )


class RuffSecurityAuditor(RuffAuditor):
    """Audit security with ruff's flake8-bandit port (``--select S``) over the sources; one
    finding per violation, named and graded as bandit names and grades the same test."""

    dimension = "security"
    tool = "ruff"

    def begin(self, context: AuditContext) -> None:
        """List the files ruff checks, then run it on the ones changed since the cached run
        (none: do not run it)."""
        argv = self.command(context)
        targets = list(context.project.sources)
        options = argv[2 : -len(targets)]
        self._files = cache.ruff_files(context, argv[0], options, targets)
        self._plan = cache.ruff_plan(
            context, argv[0], [*options, *targets], self._files, "ruff-security.json"
        )
        if self._plan is None or self._plan.run is None:
            self.launch(argv, context)
        elif self._plan.run:
            self.launch([*argv[: -len(targets)], "--force-exclude", *self._plan.run], context)

    def command(self, context: AuditContext) -> list[str]:
        targets = context.project.sources
        if not targets:
            raise ToolUnavailable("no Python package or module found under the rootdir to audit")
        ruff = find_executable("ruff") or "ruff"
        return [
            ruff, "check", "--output-format=json", "--exit-zero", "--no-fix", "--isolated",
            "--preview", "--select", "S", *targets,
        ]  # fmt: skip

    def _result(
        self, context: AuditContext, items: list[dict[str, object]], seconds: float
    ) -> AuditResult:
        findings: list[Finding] = []
        notes: list[str] = []
        texts: dict[str, list[str]] = {}  # each file read once, for its # nosec comments
        for item in items:
            if not item.get("code"):  # a syntax error: the lint dimension reports it
                path = context.relpath(str(item.get("filename") or "?"))
                notes.append(f"ruff could not scan {path}: {item.get('message')}")
                continue
            finding = self._finding(context, item)
            if finding.path is not None and finding.path not in texts:
                try:
                    text = (context.rootdir / finding.path).read_text("utf-8", errors="replace")
                except OSError:
                    text = ""
                texts[finding.path] = text.splitlines()
            lines = texts.get(finding.path or "", [])
            if not _nosec(lines, finding.line, finding.rule_id):
                findings.append(finding)
        notes = list(dict.fromkeys(notes))
        findings = outside_tests(findings, notes)
        result = self.scored(context, findings, duration=seconds, notes=notes)
        result.tool_version = distribution_version("ruff")
        return result

    def _finding(self, context: AuditContext, item: dict[str, object]) -> Finding:
        code = str(item.get("code"))
        message = str(item.get("message") or "")
        test_id = "B" + code.removeprefix("S")
        location = item.get("location")
        line = location.get("row") if isinstance(location, dict) else None
        return make_finding(
            context,
            dimension=self.dimension,
            severity=bandit_severity(
                test_id, *bandit_levels(code, message), context.settings.severity_map
            ),
            rule_id=test_id,
            message=f"{message} (ruff {code})",
            path=str(item.get("filename") or "") or None,
            line=line if isinstance(line, int) else None,
            tool=self.tool,
            url=str(item["url"]) if item.get("url") else None,
        )


class BanditAuditor(CommandAuditor):
    """Audit security with ``bandit -r SOURCES -f json``; one finding per result."""

    dimension = "security"
    tool = "bandit"

    install_hint = INSTALL_HINT

    def __init__(self) -> None:
        super().__init__()
        self._plan: cache.CachePlan | None = None

    def begin(self, context: AuditContext) -> None:
        """Run bandit on the files changed since the cached run (none: do not run it)."""
        try:
            self._begin_plan(context)
        finally:
            if self._command is None:  # nothing to run, or bandit cannot run
                drop_bandit_worker(context.config)

    def _begin_plan(self, context: AuditContext) -> None:
        argv = self.command(context)
        targets = list(context.project.sources)
        options = argv[4 + len(targets) :]
        found = cache.bandit_plan(context, argv[0], targets, options)
        self._plan = found[0] if found else None
        if found is None or found[0].run is None:
            self.launch(argv, context)
        elif found[0].run:
            names = [found[1][rel] for rel in found[0].run]
            self.launch([*argv[:4], *names, *options], context)

    def run_command(self, argv: list[str], context: AuditContext) -> BackgroundCommand:
        """Hand ``argv`` to the bandit worker started with pytest, if there is one (see
        ``tools.prelaunch_bandit``), else start it."""
        worker = run_in_bandit_worker(
            context.config,
            argv,
            context.rootdir,
            context.settings.tool_timeout,
            self.install_hint,
        )
        return worker if worker is not None else super().run_command(argv, context)

    def command(self, context: AuditContext) -> list[str]:
        if importlib.util.find_spec("bandit") is None:
            raise ToolUnavailable(f"bandit is not installed in {sys.executable}; {INSTALL_HINT}")
        targets = context.project.sources
        if not targets:
            raise ToolUnavailable("no Python package or module found under the rootdir to audit")
        argv = [sys.executable, "-m", "bandit", "-r", *targets, "-f", "json", "-q"]
        pyproject = context.rootdir / "pyproject.toml"
        if _has_table(pyproject, "[tool.bandit"):
            argv += ["-c", str(pyproject)]
        if (context.rootdir / ".bandit").is_file():
            argv += ["--ini", str(context.rootdir / ".bandit")]
        return argv

    def finish(self, context: AuditContext) -> AuditResult:
        self.ready()
        plan = self._plan
        if plan is not None and plan.complete:
            return self._result(context, *_joined(plan.merge({})), 0.0)
        # The unchanged files' findings are built while bandit checks the changed ones
        # (keyed by their cached result's identity: the same objects are merged below).
        built: dict[int, Finding] = {}
        if plan is not None and plan.run:
            for payload in plan.hits.values():
                for item in payload.get("results", []):
                    built[id(item)] = self._finding(context, item)
        code, out, err, seconds = self.wait()
        try:
            data = json.loads(out)
            results = data["results"]
            errors = data.get("errors", [])
            if not isinstance(results, list) or not isinstance(errors, list):
                raise TypeError("not a list")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ToolUnavailable(f"bandit failed (exit {code}): {last_line(err or out)}") from None
        rootdir = cache.real_rootdir(context)
        results = cache.ordered(rootdir, [r for r in results if isinstance(r, dict)], "filename")
        errors = cache.ordered(rootdir, [e for e in errors if isinstance(e, dict)], "filename")
        if plan is not None:
            checked = list(plan.files) if plan.run is None else plan.run
            fresh = cache.split(rootdir, checked, results, "filename", "results")
            fresh_errors = cache.split(rootdir, checked, errors, "filename", "errors")
            if fresh is not None and fresh_errors is not None:
                for rel, payload in fresh.items():
                    payload.update(fresh_errors[rel])
                results, errors = _joined(plan.merge(fresh))
            elif plan.run is not None:
                cached_results, cached_errors = _joined(sorted(plan.hits.items()))
                results = cache.ordered(rootdir, cached_results + results, "filename")
                errors = cache.ordered(rootdir, cached_errors + errors, "filename")
        return self._result(context, results, errors, seconds, built)

    def _result(
        self,
        context: AuditContext,
        results: list[dict[str, object]],
        errors: list[dict[str, object]],
        seconds: float,
        built: dict[int, Finding] | None = None,
    ) -> AuditResult:
        built = built or {}
        findings = [
            built[id(item)] if id(item) in built else self._finding(context, item)
            for item in results
        ]
        notes = [
            f"bandit could not scan {context.relpath(str(e.get('filename', '?')))}: "
            f"{e.get('reason')}"
            for e in errors
        ]
        findings = outside_tests(findings, notes)
        result = self.scored(context, findings, duration=seconds, notes=notes)
        result.tool_version = distribution_version("bandit")
        return result

    def _finding(self, context: AuditContext, item: dict[str, object]) -> Finding:
        test_id = str(item.get("test_id") or "bandit")
        line = item.get("line_number")
        return make_finding(
            context,
            dimension=self.dimension,
            severity=bandit_severity(
                test_id,
                str(item.get("issue_severity") or "LOW"),
                str(item.get("issue_confidence") or "LOW"),
                context.settings.severity_map,
            ),
            rule_id=test_id,
            message=f"{item.get('issue_text', '')} ({item.get('test_name', test_id)})",
            path=str(item.get("filename") or "") or None,
            line=line if isinstance(line, int) else None,
            tool=self.tool,
            url=str(item["more_info"]) if item.get("more_info") else None,
        )


def _joined(
    payloads: list[tuple[str, cache.Payload]],
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(results, errors) of ``payloads``, in their order."""
    results = [item for _, payload in payloads for item in payload.get("results", [])]
    errors = [item for _, payload in payloads for item in payload.get("errors", [])]
    return results, errors


def _has_table(path: Path, header: str) -> bool:
    try:
        return header in path.read_text(encoding="utf-8")
    except OSError:
        return False
