"""SARIF 2.1.0 report (``--orchestrate-report=sarif[:PATH]``) for GitHub code scanning.

The log follows the OASIS SARIF 2.1.0 standard ("SARIF" below, section numbers of
https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html) and the subset GitHub code
scanning reads ("GitHub" below: docs.github.com, "SARIF support for code scanning").

Runs: one per analysis tool, not one for pytest-orchestrator
    GitHub keeps alerts per tool (``run.tool.driver.name``) and category, lets users filter by
    tool, and closes an alert when a later analysis of the same tool and category no longer
    reports it. Hence:

    - one run per tool whose audit ran (``ruff``, ``bandit``, ``pytest``, ``coverage``, or the
      tool a third-party auditor names), even with no finding: its empty ``results`` tells
      GitHub that the earlier alerts of that tool are fixed;
    - an audit that is ``unavailable`` or in ``error`` gets **no** run, so GitHub keeps that
      tool's earlier alerts instead of closing them for want of data; the reason is a
      ``toolExecutionNotification`` (SARIF 3.20.21) of the last run;
    - rule ids stay the tools' own (``F401``, ``B307``) with no prefix, and ``driver.version``
      is the tool's version, which GitHub uses to tell tool upgrades from code changes. One
      run for everything would need prefixed rule ids and would make a missing audit close
      all its alerts;
    - LLM audits (``agent:NAME``) are named ``pytest-orchestrator agent:NAME`` with
      pytest-orchestrator's version: the prompt is ours and the agent may change (fallback
      chain), and a change of agent must not close and reopen every alert;
    - the last run is pytest-orchestrator itself (``tool.driver.name`` "pytest-orchestrator"),
      with no results: its invocation says whether every audit ran (SARIF 3.20.14
      ``executionSuccessful``) and lists those that did not (SARIF 3.20.21). It also makes
      the log valid for GitHub when no audit ran (GitHub requires one run or more).
    - Every run's property bag (SARIF 3.8) holds ``qualityGate`` (``passed``, ``score``,
      ``target``, ``reasons``) and ``dimensions`` (name, status, score, weight of the audits
      it holds), so any single run tells the verdict.
    - Each run records in ``conversion`` (SARIF 3.14.12, 3.22) that pytest-orchestrator turned
      the tool's output into SARIF.
    - No ``automationDetails`` (SARIF 3.14.3, 3.17): github/codeql-action/upload-sarif sets
      it from its ``category`` input only on runs without one (codeql-action
      ``upload-lib.ts``, ``populateRunAutomationDetails``); setting it here would silence
      that input. Give each upload of several SARIF files per commit its own ``category``.

Rules (``tool.driver.rules``, SARIF 3.19.23, ``reportingDescriptor`` 3.49)
    One per rule id that has a result in the run, in the order of first appearance (worst
    finding first): ``id``; ``name`` (SARIF 3.49.7; GitHub filters by it) when the last
    segment of the rule's URL is a hyphenated name, as ruff's ``.../rules/unused-import``;
    ``shortDescription``/``fullDescription``/``help`` (SARIF 3.49.9,
    3.49.10, 3.49.13; GitHub requires all three, non-empty); ``helpUri`` from the finding's
    ``url`` when it is an absolute http(s) URI (SARIF 3.49.12); ``defaultConfiguration.level``
    (SARIF 3.49.14, 3.50.3) of its worst finding; ``properties.tags`` (SARIF 3.8.2; GitHub
    filters on them) with the dimension and, for security findings, ``security``; GitHub's
    ``problem.severity`` and, for security rules, ``security-severity``.

Severity -> ``level`` (SARIF 3.27.10: ``error`` "a serious problem", ``warning`` "a problem",
``note`` "a minor problem or an opportunity to improve")
    P0 critical and P1 high -> ``error``; P2 medium -> ``warning``; P3 low and P4 info ->
    ``note``. GitHub fails a pull request's code scanning check by default on ``error`` (and
    on security severity high or critical), so P0/P1 findings block a merge like
    ``--orchestrate-fail-on=P0,P1`` would, and P2-P4 are annotations. GitHub's
    ``problem.severity``: error, warning, recommendation, in the same way.

Security findings
    Findings of the ``security`` dimension (bandit), of ``agent:security`` and ruff's ``S``
    (flake8-bandit) rules are tagged ``security`` and carry ``security-severity``, a number
    as a string that GitHub maps to "over 9.0 critical, 7.0-8.9 high, 4.0-6.9 medium,
    0.1-3.9 low": P0 9.5, P1 8.0, P2 5.5, P3 3.0, P4 1.0. GitHub reads it on the rule, so the
    rule carries the value of its worst finding; each result carries its own as well.

Results (SARIF 3.27)
    ``ruleId`` and ``ruleIndex`` (SARIF 3.27.5, 3.27.6: the index of the rule in
    ``driver.rules``); ``level``; ``message.text`` (SARIF 3.11.8) = the finding's message,
    then a line ``Recommendation: ...`` when it has one; one ``location`` (GitHub uses only
    the first); ``partialFingerprints`` (SARIF 3.27.17, a "versioned hierarchical string"
    key): ``pytestOrchestrator/v1`` = the finding's fingerprint (rule + path + normalised
    source line, see :func:`pytest_orchestrator.models.fingerprint`); ``properties``:
    ``severity`` (P0-P4), ``dimension``, ``tool``.

    GitHub matches alerts across runs only on ``partialFingerprints.primaryLocationLineHash``,
    which upload-sarif computes from the source line at ``region.startLine`` when it is
    missing (codeql-action ``fingerprints.ts``). We leave it to upload-sarif for findings with
    a line of their own. Where we have to invent the line (below), upload-sarif would hash
    line 1 and merge every such finding of a rule in a file into one alert, so there we set
    ``primaryLocationLineHash`` to ``FINGERPRINT:N`` (N counts equal fingerprints, as
    GitHub's own ``hash:N`` does); upload-sarif keeps it and logs a warning that it differs
    from the hash of line 1.

Locations (SARIF 3.28, 3.29, 3.30, 3.4)
    ``physicalLocation.artifactLocation.uri`` is a percent-encoded relative reference
    (SARIF 3.10, RFC 3986) with ``uriBaseId`` ``%SRCROOT%`` (SARIF 3.4.4), and
    ``run.originalUriBaseIds["%SRCROOT%"]`` is the absolute ``file://`` URI of that root,
    ending in ``/`` (SARIF 3.14.14). GitHub ignores ``uriBaseId`` and reads relative URIs
    from the repository root (GitHub "Specifying the root for source files"; codeql-action
    issue #2215), so ``%SRCROOT%`` is the repository root: the nearest directory at or
    above pytest's rootdir that holds ``.git``, or the rootdir when there is none. When the
    rootdir is a sub-directory of the repository, uris get its path as prefix. A path outside
    that root becomes an absolute ``file://`` URI without ``uriBaseId`` (SARIF 3.4.4).

    ``region.startLine`` (SARIF 3.30.5) is the finding's line. GitHub's ingestion rules
    (Microsoft SARIF validator, GH1001 and GH1003) need a ``uri`` and a ``startLine`` on every
    result, and upload-sarif rejects the whole file for one result without a location
    ("locationFromSarifResult: expected at least one location", codeql-action issue #2459).
    So:

    - a finding with a path and no line (a whole file, e.g. coverage's ``uncovered-file``)
      gets ``startLine`` 1 and ``properties.wholeFile``;
    - a finding with no path (a whole-project finding, e.g. an agent's) is put at line 1 of
      the project's manifest (``pyproject.toml``, ``setup.cfg`` or ``setup.py`` in the
      rootdir, the first that exists), with ``properties.projectLevel`` and a location
      ``message``; when the rootdir has none of these, it is left out of the SARIF log and
      counted in the run's ``properties.findingsWithoutLocation`` (it stays in the other
      reports and in the gate).

Limits (GitHub "Validating your SARIF file")
    At most 25,000 results per run (:data:`MAX_RESULTS_PER_RUN`, else GitHub rejects the
    file): the worst are kept and ``properties.resultsLeftOut`` counts the rest. Rules per
    run follow results; one location per result; two tags per rule at most. GitHub also
    rejects more than 20 runs per file: the built-in auditors, the six LLM audits and
    pytest-orchestrator make 11 at most; only many third-party auditors with tools of their
    own could pass 20, and that is not guarded against.

Untrusted text (finding messages, recommendations, notes) is data
    It only ever becomes JSON string values through :func:`json.dumps`, and before that
    loses terminal control characters (:func:`pytest_orchestrator.redact.strip_control`),
    Unicode bidirectional controls and lone surrogates. In ``message`` strings, ``{`` and
    ``}`` are doubled (SARIF 3.11.5: they would be placeholders) and ``](`` becomes ``] (``
    so that no text can form an embedded link (SARIF 3.11.6: ``[text](destination)``).

Output
    UTF-8 JSON (SARIF 3.1), indented, ending with a newline; ``$schema``
    ``https://json.schemastore.org/sarif-2.1.0.json`` and ``version`` ``2.1.0`` (SARIF 3.13.2,
    3.13.3, GitHub). The same report gives the same bytes (no clock, no random ids, keys in
    a fixed order); the only input besides the report is the file system's answer to
    "where is ``.git``" and "which manifest exists" above and in the rootdir.
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pytest_orchestrator.models import finding_order
from pytest_orchestrator.redact import strip_control
from pytest_orchestrator.severity import rule_has_prefix

if TYPE_CHECKING:
    from pytest_orchestrator.models import AuditResult, Finding, Report

#: ``$schema`` of the log (GitHub's example value; SARIF 3.13.3).
SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
#: The URI base id of repository-relative ``uri`` values (SARIF 3.4.4, 3.14.14).
SRCROOT = "%SRCROOT%"
#: Key of our fingerprint in ``partialFingerprints`` (SARIF 3.27.17, 3.5.4.2).
FINGERPRINT_KEY = "pytestOrchestrator/v1"
#: GitHub rejects a run with more results than this.
MAX_RESULTS_PER_RUN = 25_000
#: Where a whole-project finding is shown, the first of these that exists in the rootdir.
MANIFESTS = ("pyproject.toml", "setup.cfg", "setup.py")
ORCHESTRATOR = "pytest-orchestrator"

#: Severity -> SARIF ``level`` (SARIF 3.27.10).
LEVELS = {"P0": "error", "P1": "error", "P2": "warning", "P3": "note", "P4": "note"}
#: Severity -> GitHub's ``problem.severity`` (non-security rules).
PROBLEM_SEVERITIES = {
    "P0": "error",
    "P1": "error",
    "P2": "warning",
    "P3": "recommendation",
    "P4": "recommendation",
}
#: Severity -> GitHub's ``security-severity`` (>9.0 critical, 7.0-8.9 high, 4.0-6.9
#: medium, 0.1-3.9 low).
SECURITY_SEVERITIES = {"P0": "9.5", "P1": "8.0", "P2": "5.5", "P3": "3.0", "P4": "1.0"}
#: Home pages of the tools the built-in auditors run (``toolComponent.informationUri``,
#: SARIF 3.19.17).
TOOL_URIS = {
    "ruff": "https://docs.astral.sh/ruff/",
    "bandit": "https://bandit.readthedocs.io/",
    "pytest": "https://docs.pytest.org/",
    "coverage": "https://coverage.readthedocs.io/",
}
#: What the rules of our own auditors mean (tool rules are described by their id and URL).
RULE_DESCRIPTIONS = {
    "test-failed": "A test failed",
    "test-error": "A test's setup or teardown failed",
    "collection-error": "A test module could not be collected",
    "uncovered-file": "No line of this source file ran under the tests",
    "uncovered-lines": "Lines of this source file did not run under the tests",
    "agent-finding": "A problem found by an AI agent's review",
}

#: A rule name as the last segment of its documentation URL (ruff: ``.../rules/unused-import``).
_SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _clean(text: str) -> str:
    """``text`` without control characters, bidi controls and lone surrogates."""
    text = _SURROGATE.sub("\ufffd", text)  # every surrogate in a str is a lone one
    return _BIDI.sub("", strip_control(text))


def _message(text: str, fallback: str) -> str:
    """Untrusted ``text`` as the plain text of a SARIF message (SARIF 3.11.3, 3.11.5, 3.11.6):
    clean, no embedded link, literal braces doubled, never empty."""
    text = _clean(text).strip() or fallback
    text = text.replace("](", "] (")
    return text.replace("{", "{{").replace("}", "}}")


def _http_uri(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URI (``helpUri`` is format ``uri``), else None."""
    if not url:
        return None
    url = _clean(url).strip()
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc and not re.search(r"\s", url):
        return url
    return None


def _is_security(finding: Finding) -> bool:
    """Whether GitHub should treat ``finding`` as a security alert."""
    return finding.dimension.rsplit(":", 1)[-1] == "security" or (
        finding.tool == "ruff" and rule_has_prefix(finding.rule_id, "S")
    )


def _run_name(audit: AuditResult) -> str:
    """``tool.driver.name`` of the run that holds ``audit``'s results."""
    if audit.dimension.startswith("agent:") or audit.tool == ORCHESTRATOR:
        return f"{ORCHESTRATOR} {audit.dimension}"
    return audit.tool or audit.dimension


def _exists(path: Path, *, file: bool = False) -> bool:
    """Whether ``path`` exists (is a file); False when it cannot be told."""
    try:
        return path.is_file() if file else path.exists()
    except OSError:
        return False


def _repository_root(rootdir: Path) -> Path:
    """The nearest directory at or above ``rootdir`` holding ``.git`` (a directory, or the
    file of a worktree or submodule), else ``rootdir``."""
    for folder in (rootdir, *rootdir.parents):
        if _exists(folder / ".git"):
            return folder
    return rootdir


def _dir_uri(folder: Path) -> str:
    """``folder`` as an absolute ``file`` URI ending in ``/`` (SARIF 3.14.14)."""
    uri = folder.as_uri()
    return uri if uri.endswith("/") else uri + "/"


class _Layout:
    """Where files are: the repository root (``%SRCROOT%``) and the rootdir in it."""

    def __init__(self, rootdir: str) -> None:
        self.rootdir = Path(rootdir).absolute()
        self.root = _repository_root(self.rootdir)
        prefix = self.rootdir.relative_to(self.root).as_posix()
        self.prefix = "" if prefix == "." else prefix
        self.manifest = next((m for m in MANIFESTS if _exists(self.rootdir / m, file=True)), None)

    def base_ids(self) -> dict[str, Any]:
        """``run.originalUriBaseIds`` (SARIF 3.14.14)."""
        return {
            SRCROOT: {
                "uri": _dir_uri(self.root),
                "description": {
                    "text": "The root of the repository (pytest's rootdir "
                    "when it is in no git repository)."
                },
            }
        }

    def artifact(self, path: str) -> dict[str, Any]:
        """``artifactLocation`` (SARIF 3.4) of the rootdir-relative ``path``."""
        try:
            return self._artifact(path)
        except UnicodeError:  # a lone surrogate that is no undecodable file name byte
            return self._artifact(_clean(path))

    def _artifact(self, path: str) -> dict[str, Any]:
        if Path(path).is_absolute():
            return {"uri": Path(path).as_uri()}
        joined = posixpath.normpath(posixpath.join(self.prefix, path))
        if joined == ".." or joined.startswith("../"):
            return {"uri": Path(posixpath.normpath((self.root / joined).as_posix())).as_uri()}
        return {"uri": quote(joined, safe="/", errors="surrogateescape"), "uriBaseId": SRCROOT}


def _rule(finding: Finding, findings: list[Finding]) -> dict[str, Any]:
    """The ``reportingDescriptor`` (SARIF 3.49) of ``finding``'s rule; ``findings`` are all
    the run's findings of that rule, worst first."""
    rule_id = _clean(finding.rule_id)
    tool = _clean(finding.tool)
    url = next((u for u in (_http_uri(f.url) for f in findings) if u), None)
    slug = _SLUG.match(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) if url else None
    name = slug.group(0) if slug else None
    described = RULE_DESCRIPTIONS.get(rule_id)
    if described:
        short = f"{described} ({tool} {rule_id})"
    else:
        short = f"{tool} rule {rule_id}" + (f": {name}" if name else "")
    full = f"{short}, reported by the {finding.dimension} audit of {ORCHESTRATOR}."
    help_text = f"{short}. Each result's message says what was found and what to do."
    if url:
        help_text += f" Documentation: {url}"
    tags = [_clean(finding.dimension)]
    properties: dict[str, Any] = {
        "tags": tags,
        "problem.severity": PROBLEM_SEVERITIES[finding.severity.value],
    }
    if any(_is_security(f) for f in findings):
        if "security" not in tags:
            tags.append("security")
        worst = next(f for f in findings if _is_security(f))
        properties["security-severity"] = SECURITY_SEVERITIES[worst.severity.value]
    rule: dict[str, Any] = {"id": rule_id}
    if name:
        rule["name"] = name
    rule |= {
        "shortDescription": {"text": _message(short, rule_id)},
        "fullDescription": {"text": _message(full, rule_id)},
        "help": {"text": _message(help_text, rule_id)},
    }
    if url:
        rule["helpUri"] = url
    rule["defaultConfiguration"] = {"level": LEVELS[finding.severity.value]}
    rule["properties"] = properties
    return rule


def _result(
    finding: Finding, rule_index: int, layout: _Layout, occurrences: dict[str, int]
) -> dict[str, Any]:
    """The ``result`` (SARIF 3.27) of ``finding``; needs a path or ``layout.manifest``."""
    severity = finding.severity.value
    text = finding.message
    if finding.recommendation:
        text = f"{_clean(text).strip()}\nRecommendation: {_clean(finding.recommendation).strip()}"
    properties: dict[str, Any] = {
        "severity": severity,
        "dimension": _clean(finding.dimension),
        "tool": _clean(finding.tool),
    }
    location: dict[str, Any] = {}
    if finding.path is not None:
        physical: dict[str, Any] = {"artifactLocation": layout.artifact(finding.path)}
        invented = finding.line is None
        physical["region"] = {"startLine": finding.line or 1}
        if invented:
            properties["wholeFile"] = True
    else:
        assert layout.manifest is not None
        physical = {"artifactLocation": layout.artifact(layout.manifest)}
        physical["region"] = {"startLine": 1}
        invented = True
        properties["projectLevel"] = True
        location["message"] = {
            "text": "The whole project: the finding names no file; shown at the project's manifest."
        }
    location["physicalLocation"] = physical
    fingerprints = {FINGERPRINT_KEY: finding.fingerprint}
    if invented:
        count = occurrences.get(finding.fingerprint, 0) + 1
        occurrences[finding.fingerprint] = count
        fingerprints["primaryLocationLineHash"] = f"{finding.fingerprint}:{count}"
    if _is_security(finding):
        properties["security-severity"] = SECURITY_SEVERITIES[severity]
    return {
        "ruleId": _clean(finding.rule_id),
        "ruleIndex": rule_index,
        "level": LEVELS[severity],
        "message": {"text": _message(text, _clean(finding.rule_id))},
        "locations": [location],
        "partialFingerprints": fingerprints,
        "properties": properties,
    }


def _gate(report: Report) -> dict[str, Any]:
    """The quality gate's verdict, for the runs' property bags (SARIF 3.8)."""
    return {
        "passed": report.verdict.passed,
        "score": report.verdict.score,
        "target": report.verdict.target,
        "reasons": [_clean(r) for r in report.verdict.reasons],
    }


def _dimensions(report: Report, audits: list[AuditResult]) -> list[dict[str, Any]]:
    weights = report.config.weights
    out = []
    for audit in audits:
        entry: dict[str, Any] = {
            "name": _clean(audit.dimension),
            "status": audit.status,
            "score": audit.score,
        }
        if audit.dimension in weights:
            entry["weight"] = weights[audit.dimension]
        if audit.reason:
            entry["reason"] = _clean(audit.reason)
        out.append(entry)
    return out


def _notification(text: str, level: str) -> dict[str, Any]:
    """A ``notification`` (SARIF 3.58) with an untrusted ``text``."""
    return {"level": level, "message": {"text": _message(text, "(no message)")}}


def _skipped(audit: AuditResult) -> dict[str, Any]:
    """The notification of an audit whose tool has no run."""
    what = f"{audit.dimension} ({_run_name(audit)})"
    if audit.status == "ok":
        why = "ran, but another audit of the same tool did not"
    else:
        why = f"{audit.status}: {audit.reason or 'no reason given'}"
    found = f"; {len(audit.findings)} findings not in this log" if audit.findings else ""
    return _notification(
        f"{what} {why}{found}; its earlier code scanning alerts are left as they were",
        "error",
    )


def _tool_run(
    name: str, audits: list[AuditResult], report: Report, layout: _Layout
) -> dict[str, Any]:
    """The run (SARIF 3.14) of one analysis tool and the audits it did."""
    findings = sorted((f for a in audits for f in a.findings), key=finding_order)
    unlocated = [f for f in findings if f.path is None and layout.manifest is None]
    located = [f for f in findings if f.path is not None or layout.manifest is not None]
    kept, left_out = located[:MAX_RESULTS_PER_RUN], located[MAX_RESULTS_PER_RUN:]
    by_rule: dict[str, list[Finding]] = {}
    for finding in kept:
        by_rule.setdefault(_clean(finding.rule_id), []).append(finding)
    index = {rule_id: i for i, rule_id in enumerate(by_rule)}
    rules = [_rule(group[0], group) for group in by_rule.values()]
    occurrences: dict[str, int] = {}
    results = [_result(f, index[_clean(f.rule_id)], layout, occurrences) for f in kept]

    agent = name.startswith(f"{ORCHESTRATOR} agent:")
    version = (
        report.tool.version
        if agent
        else next((a.tool_version for a in audits if a.tool_version), None)
    )
    driver: dict[str, Any] = {"name": name}
    if version:
        driver["version"] = _clean(version)
    if name in TOOL_URIS:
        driver["informationUri"] = TOOL_URIS[name]
    driver["rules"] = rules
    if agent:
        driver["properties"] = {"agents": sorted({_clean(a.tool) for a in audits if a.tool})}

    invocation: dict[str, Any] = {"executionSuccessful": True}
    notes = [f"{a.dimension}: {note}" for a in audits for note in a.notes]
    if notes:
        invocation["toolExecutionNotifications"] = [_notification(n, "note") for n in notes]
    properties: dict[str, Any] = {
        "qualityGate": _gate(report),
        "dimensions": _dimensions(report, audits),
    }
    if unlocated:
        properties["findingsWithoutLocation"] = len(unlocated)
    if left_out:
        properties["resultsLeftOut"] = len(left_out)
    return {
        "tool": {"driver": driver},
        "conversion": {"tool": {"driver": {"name": ORCHESTRATOR, "version": report.tool.version}}},
        "invocations": [invocation],
        "originalUriBaseIds": layout.base_ids(),
        "results": results,
        "properties": properties,
    }


def _orchestrator_run(
    report: Report, layout: _Layout, skipped: list[AuditResult]
) -> dict[str, Any]:
    """The last run: pytest-orchestrator itself, no results; which audits did not run."""
    invocation: dict[str, Any] = {"executionSuccessful": not skipped}
    if skipped:
        invocation["toolExecutionNotifications"] = [_skipped(a) for a in skipped]
    return {
        "tool": {
            "driver": {
                "name": ORCHESTRATOR,
                "version": report.tool.version,
                "rules": [],
            }
        },
        "invocations": [invocation],
        "originalUriBaseIds": layout.base_ids(),
        "results": [],
        "properties": {
            "qualityGate": _gate(report),
            "dimensions": _dimensions(report, report.audits),
            "project": _clean(report.project.name),
        },
    }


def sarif_log(report: Report) -> dict[str, Any]:
    """The SARIF 2.1.0 log (``sarifLog``, SARIF 3.13) of ``report`` as a JSON-ready dict."""
    layout = _Layout(report.project.rootdir)
    groups: dict[str, list[AuditResult]] = {}
    for audit in report.audits:
        groups.setdefault(_clean(_run_name(audit)), []).append(audit)
    runs = []
    skipped: list[AuditResult] = []
    for name, audits in groups.items():
        if all(a.status == "ok" for a in audits):
            runs.append(_tool_run(name, audits, report, layout))
        else:
            skipped.extend(audits)
    runs.append(_orchestrator_run(report, layout, skipped))
    return {"$schema": SCHEMA_URI, "version": SARIF_VERSION, "runs": runs}


def render(report: Report) -> bytes:
    """The SARIF 2.1.0 log of ``report`` as UTF-8 JSON bytes, ending with a newline."""
    text = json.dumps(sarif_log(report), indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")
