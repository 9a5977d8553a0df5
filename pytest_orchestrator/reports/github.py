"""The github report: annotations, step summary and step outputs inside GitHub Actions.

``--orchestrate-report=github`` publishes the report to the GitHub Actions runner, at the end
of the terminal summary:

- **annotations**: one ``::error``/``::warning``/``::notice`` workflow command per finding:
  the findings on new code (``--orchestrate-diff-base``) or new against the baseline first,
  worst first within each group. P0 and P1 findings, and findings at a
  ``--orchestrate-fail-on`` severity (they fail the gate), are errors; P2 findings warnings;
  P3 findings notices; P4 (info) findings are not annotated. GitHub shows at most 10 error,
  10 warning and 10 notice annotations per step (and 50 per job) and silently drops the rest,
  so at most that many are emitted and the step summary says how many findings were left out.
- **step summary**: the Markdown report appended to ``$GITHUB_STEP_SUMMARY``, cut at a line
  boundary (with a note) so that the step's summary stays under GitHub's 1 MiB limit.
- **step outputs**: ``score``, ``passed`` (``true``/``false``), ``report`` (the JSON report's
  path) and ``sarif`` (the SARIF report's path), appended to ``$GITHUB_OUTPUT``.

Outside GitHub Actions (``GITHUB_ACTIONS`` is not ``true``) it writes one line saying it was
skipped: the report was asked for explicitly, and silence would look like a bug. A missing or
unwritable file gives one line and never an exception: the gate's verdict and exit status are
already decided and must not be hidden by a traceback.

Untrusted text (finding messages, paths, rule ids) stays data. Workflow commands are escaped
exactly as the runner unescapes them, following actions/toolkit's
``packages/core/src/command.ts`` (``escapeData``: ``%`` -> ``%25``, CR -> ``%0D``, LF -> ``%0A``;
``escapeProperty``: the same plus ``:`` -> ``%3A`` and ``,`` -> ``%2C``): a message can hold no
line break, so it can never start a second command (``::set-output``, ``::add-mask::``,
``::stop-commands::``), and a property can hold neither the ``,`` that separates properties
nor the ``::`` that ends them (the runner's parser is ``ActionCommand.TryParseV2`` in
actions/runner's ``src/Runner.Common/ActionCommand.cs``). Step outputs use the heredoc form
``name<<DELIMITER`` with a random delimiter, as toolkit's ``prepareKeyValueMessage`` in
``packages/core/src/file-command.ts`` does. Text also goes through
:func:`pytest_orchestrator.redact.redact_text`: no secret and no control character reaches the
log, the annotations or the summary.

When the GitHub Action (``pytest_orchestrator.action``) runs pytest, it first stops workflow
command processing (``::stop-commands::TOKEN``) so that nothing the tests print can act as a
command or use up the annotation limits, and passes the token in :data:`RESUME_ENV`;
:func:`publish` resumes processing (``::TOKEN::``) for its annotations only, then stops it again.
"""

from __future__ import annotations

import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_orchestrator.redact import redact_text

if TYPE_CHECKING:
    from pytest_orchestrator.models import Finding, Report

#: GitHub's limit on the step summary, per step (UTF-8 bytes).
SUMMARY_LIMIT = 1024 * 1024
#: Annotations of each kind GitHub shows per step; the rest are dropped silently.
ANNOTATION_LIMITS = {"error": 10, "warning": 10, "notice": 10}
# GitHub shows 50 annotations per job (all steps); one step of ours emits at most 30.
#: Longest annotation message and title emitted (characters); longer text is cut.
MESSAGE_LIMIT = 4000
TITLE_LIMIT = 200
#: Environment variable through which the action hands its stop-commands token to publish().
RESUME_ENV = "PYTEST_ORCHESTRATOR_GITHUB_RESUME"
_TOKEN = re.compile(r"[0-9a-f]{16,64}")
_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PREFIX = "github report"


def escape_data(text: str) -> str:
    """``text`` escaped for the message of a workflow command (toolkit's ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """``text`` escaped for a property value of a workflow command (toolkit's
    ``escapeProperty``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, properties: Mapping[str, str | int | None], message: str) -> str:
    """The workflow command line ``::name key=value,key=value::message``, escaped.

    Properties whose value is None or empty are left out, as toolkit does.
    """
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None and str(value) != ""
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def annotation_level(finding: Finding, fail_on: Iterable[str] = ("P0",)) -> str | None:
    """``error``, ``warning``, ``notice`` or None (not annotated) for ``finding``."""
    severity = finding.severity.value
    if severity in ("P0", "P1") or severity in set(fail_on):
        return "error"
    return {"P2": "warning", "P3": "notice"}.get(severity)


def path_prefix(rootdir: str, workspace: str | None) -> str:
    """What to put before a rootdir-relative path to make it relative to the repository.

    GitHub attaches an annotation to a file by its path relative to ``$GITHUB_WORKSPACE``;
    finding paths are relative to pytest's rootdir, which may be a subdirectory (a monorepo,
    the action's ``working-directory``). Empty when the rootdir is the workspace or outside it.
    """
    if not workspace:
        return ""
    try:
        relative = Path(rootdir).resolve().relative_to(Path(workspace).resolve())
    except (ValueError, OSError):
        return ""
    return "" if str(relative) == "." else relative.as_posix() + "/"


@dataclass
class Annotations:
    """The annotation lines to emit, and the findings left out (by severity)."""

    lines: list[str] = field(default_factory=list)
    #: findings beyond GitHub's per-step limits, by severity
    dropped: Counter[str] = field(default_factory=Counter)
    #: P4 (info) findings, never annotated
    info: int = 0

    def note(self) -> str | None:
        """One sentence about the findings not annotated, or None when all were."""
        count = sum(self.dropped.values())
        if not count and not self.info:
            return None
        parts = []
        if count:
            detail = ", ".join(f"{n} {sev}" for sev, n in sorted(self.dropped.items()))
            limits = ", ".join(f"{n} {kind}s" for kind, n in ANNOTATION_LIMITS.items())
            parts.append(
                f"{count} more findings were not annotated ({detail}): GitHub shows at most "
                f"{limits} per step"
            )
        if self.info:
            parts.append(f"{self.info} P4 (info) findings are never annotated")
        return "; ".join(parts) + ". Every finding is in the reports."


def annotate(
    findings: Iterable[Finding],
    fail_on: Iterable[str] = ("P0",),
    prefix: str = "",
    limits: Mapping[str, int] = ANNOTATION_LIMITS,
) -> Annotations:
    """Workflow commands for ``findings`` (worst first), within GitHub's per-step limits.

    :param prefix: prepended to each finding's path (see :func:`path_prefix`).
    """
    fail_on = tuple(fail_on)
    result = Annotations()
    used: Counter[str] = Counter()
    for finding in findings:
        level = annotation_level(finding, fail_on)
        if level is None:
            result.info += 1
            continue
        if used[level] >= limits.get(level, 0):
            result.dropped[finding.severity.value] += 1
            continue
        used[level] += 1
        title = f"{finding.severity.value} {finding.dimension}: {finding.rule_id}"
        message = finding.message
        if finding.recommendation:
            message += f"\n{finding.recommendation}"
        result.lines.append(
            command(
                level,
                {  # stripped: the runner trims the property list's ends
                    "file": redact_text(prefix + finding.path).strip() if finding.path else None,
                    "line": finding.line if finding.path else None,
                    "title": _clip(redact_text(title), TITLE_LIMIT).strip(),
                },
                _clip(redact_text(message), MESSAGE_LIMIT),
            )
        )
    return result


def ordered_findings(report: Report) -> list[Finding]:
    """The findings to annotate, in order: those on the pull request's new code
    (``--orchestrate-diff-base``) or new against the baseline (``--orchestrate-baseline``)
    first, as they are what the change introduced; worst first within each group."""
    new: set[str] = set()
    if report.new_code is not None:
        new.update(report.new_code.findings)
    if report.baseline is not None:
        new.update(report.baseline.new_fingerprints)
    findings = report.findings()
    return sorted(findings, key=lambda f: f.fingerprint not in new) if new else findings


def fit_summary(text: str, budget: int) -> str:
    """``text``, cut at a line boundary with a note when it takes more than ``budget`` UTF-8
    bytes; the result never does (empty when even the note does not fit)."""
    data = text.encode("utf-8")
    if len(data) <= budget:
        return text
    note = (
        "\n\n> **Summary truncated**: GitHub keeps at most 1 MiB of step summary per step; "
        "the full report is in the Markdown and JSON report files and in the job log.\n"
    )
    room = budget - len(note.encode("utf-8")) - len("```\n")
    if room <= 0:
        return ""
    cut = data[:room]
    kept = cut[: cut.rfind(b"\n") + 1].decode("utf-8")  # LF is one byte: a valid boundary
    fences = sum(1 for line in kept.splitlines() if line.lstrip().startswith("```"))
    if fences % 2:
        kept += "```\n"  # close a code block cut in the middle, so the note renders
    return kept + note


def summary(
    report: Report, note: str | None, budget: int = SUMMARY_LIMIT, links: str | None = None
) -> str:
    """The step summary: the Markdown report and the note about findings not annotated,
    in at most ``budget`` UTF-8 bytes (empty when not even a truncated report fits).

    :param links: URL prefix of finding links (``markdown.link_base``); None for none.
    """
    from pytest_orchestrator.reports.markdown import render

    tail = f"\n> {note}\n" if note else ""
    body = fit_summary(redact_text(render(report, links)), budget - len(tail.encode("utf-8")))
    return body + tail if body else ""


def output_lines(outputs: Mapping[str, str], delimiter: str | None = None) -> str:
    """``outputs`` in ``$GITHUB_OUTPUT``'s heredoc format, one ``name<<DELIMITER`` block each.

    :raises ValueError: a name is not a valid output name, or a name or value contains the
        delimiter (toolkit refuses these too).
    """
    delimiter = delimiter or f"ghadelimiter_{uuid.uuid4()}"
    blocks = []
    for name, value in outputs.items():
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"invalid output name {name!r}")
        if delimiter in name or delimiter in value:
            raise ValueError(f"the value of output {name!r} contains the delimiter")
        blocks.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(blocks)


def _append(path_env: str, environ: Mapping[str, str], text: str, what: str) -> str:
    """Append ``text`` to the file named by ``environ[path_env]``; what went wrong, or ``""``."""
    target = environ.get(path_env)
    if not target:
        return f"{path_env} is not set: no {what} written"
    try:
        with open(target, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        return f"cannot write the {what} to {target!r}: {exc.strerror or exc}"
    return ""


def _summary_budget(environ: Mapping[str, str]) -> int:
    """Bytes left in this step's summary file under :data:`SUMMARY_LIMIT`."""
    target = environ.get("GITHUB_STEP_SUMMARY")
    try:
        used = os.path.getsize(target) if target else 0
    except OSError:
        used = 0
    return SUMMARY_LIMIT - used


def outputs(report: Report, report_paths: Mapping[str, Path]) -> dict[str, str]:
    """The step outputs: score, passed, and the paths of the JSON and SARIF reports written."""
    from pytest_orchestrator.scoring import fmt

    values = {
        "score": fmt(report.score.overall),
        "passed": "true" if report.verdict.passed else "false",
    }
    for name, kind in (("report", "json"), ("sarif", "sarif")):
        path = report_paths.get(kind)
        if path is not None and Path(path).is_file():
            values[name] = str(path)
    return values


def publish(
    report: Report,
    environ: Mapping[str, str],
    write_line: Callable[[str], None],
    report_paths: Mapping[str, Path],
) -> None:
    """Annotations, step summary and step outputs inside GitHub Actions; nothing elsewhere
    (the same command line then works on a laptop and in CI).

    :param environ: the process environment (``GITHUB_ACTIONS``, ``GITHUB_STEP_SUMMARY``,
        ``GITHUB_OUTPUT``, ``GITHUB_WORKSPACE``, :data:`RESUME_ENV`).
    :param write_line: writes one line to the step's log (stdout), where the runner reads
        workflow commands.
    :param report_paths: the file reports written, by type (``json``, ``sarif``, ...).
    """
    if environ.get("GITHUB_ACTIONS") != "true":
        return
    found = annotate(
        ordered_findings(report),
        [s.value for s in report.config.fail_on],
        path_prefix(report.project.rootdir, environ.get("GITHUB_WORKSPACE")),
    )
    token = environ.get(RESUME_ENV, "")
    token = token if _TOKEN.fullmatch(token) else ""
    if token:
        write_line(f"::{token}::")  # resume workflow commands for our annotations only
    for line in found.lines:
        write_line(line)
    if token:
        write_line(f"::stop-commands::{token}")
    note = found.note()
    done = [f"{len(found.lines)} annotations"]
    problems: list[str] = []
    try:
        from pytest_orchestrator.reports.markdown import link_base

        text = summary(report, note, _summary_budget(environ), link_base(report, environ))
    except Exception as exc:  # a rendering bug must not hide the gate's verdict
        problems.append(f"cannot render the step summary: {exc!r}")
    else:
        if not text:
            problems.append("the step summary is full (1 MiB): the report was not added")
        elif problem := _append("GITHUB_STEP_SUMMARY", environ, text, "step summary"):
            problems.append(problem)
        else:
            done.append("step summary")
    try:
        block = output_lines(outputs(report, report_paths))
    except ValueError as exc:
        problems.append(f"cannot write the step outputs: {exc}")
    else:
        if problem := _append("GITHUB_OUTPUT", environ, block, "step outputs"):
            problems.append(problem)
        else:
            done.append("step outputs (score, passed, report)")
    write_line(f"{_PREFIX}: wrote {', '.join(done)}")
    if note:
        write_line(f"{_PREFIX}: {note}")
    for problem in problems:
        write_line(redact_text(f"{_PREFIX}: {problem}"))
