"""The Markdown report: the same content as the terminal report, for humans and PRs."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from urllib.parse import quote

from pytest_orchestrator.baseline import describe as describe_baseline
from pytest_orchestrator.models import Finding, LoopSummary, Report, Severity
from pytest_orchestrator.reports.newcode_text import describe as describe_new_code
from pytest_orchestrator.reports.newcode_text import new_code_scores, size_words
from pytest_orchestrator.scoring import fmt, plural

TOP_FINDINGS = 25
#: Changed files listed in the new-code section (all are in the JSON report).
CHANGED_FILES = 100


def link_base(report: Report, environ: Mapping[str, str]) -> str | None:
    """Where findings link to inside GitHub Actions, else None.

    ``{GITHUB_SERVER_URL}/{GITHUB_REPOSITORY}/blob/{GITHUB_SHA}/`` plus the rootdir's path
    inside ``GITHUB_WORKSPACE`` (the checkout), so ``base + path + "#L" + line`` opens the
    finding's line (GitHub's blob URLs; variables from "Default environment variables").
    """
    names = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA", "GITHUB_WORKSPACE")
    if environ.get("GITHUB_ACTIONS") != "true" or not all(environ.get(n) for n in names):
        return None
    workspace = os.path.realpath(environ["GITHUB_WORKSPACE"])
    rootdir = os.path.realpath(report.project.rootdir)
    inside = os.path.relpath(rootdir, workspace).replace(os.sep, "/")
    if inside == ".." or inside.startswith("../"):
        return None
    prefix = "" if inside == "." else quote(inside) + "/"
    server = environ["GITHUB_SERVER_URL"].rstrip("/")
    repository, sha = quote(environ["GITHUB_REPOSITORY"]), quote(environ["GITHUB_SHA"])
    return f"{server}/{repository}/blob/{sha}/{prefix}"


def score_chart(loop: LoopSummary) -> list[str]:
    """A Mermaid ``xychart-beta`` block of the score per iteration ([] without iterations).

    Bars: the score each iteration's re-audit reached (its start score when it never got
    that far); line: the score kept after it (accepted iterations raise it). GitHub renders
    Mermaid blocks in Markdown (mermaid.js "XY Chart" syntax, beta).
    """
    if not loop.iterations:
        return []
    kept = [loop.initial_score]
    reached = [loop.initial_score]
    for iteration in loop.iterations:
        reached.append(
            iteration.score_after if iteration.score_after is not None else iteration.score_before
        )
        kept.append(
            iteration.score_after
            if iteration.accepted and iteration.score_after is not None
            else kept[-1]
        )
    low = max(0, math.floor(min(reached + kept) / 10) * 10 - 10)
    labels = ", ".join(['"start"'] + [f'"{i.number}"' for i in loop.iterations])
    return [
        "```mermaid",
        "xychart-beta",
        '    title "Score per iteration"',
        f"    x-axis [{labels}]",
        f'    y-axis "score" {low} --> 100',
        f"    bar [{', '.join(fmt(v) for v in reached)}]",
        f"    line [{', '.join(fmt(v) for v in kept)}]",
        "```",
        "",
        "Bars: the score each iteration reached; line: the score kept.",
        "",
    ]


def _cell(text: str) -> str:
    """``text`` made safe for one Markdown table cell (untrusted finding text)."""
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def location(finding: Finding, links: str | None) -> str:
    """``finding``'s ``path:line`` as inline code, linked to its line when ``links`` (the
    prefix of :func:`link_base`) is given and the finding has a file."""
    where = f"{finding.path}:{finding.line}" if finding.line else (finding.path or "-")
    shown = f"`{_cell(where)}`"
    if links and finding.path:
        anchor = f"#L{finding.line}" if finding.line else ""
        shown = f"[{shown}]({links}{quote(finding.path)}{anchor})"
    return shown


def _score_line(report: Report) -> str:
    """The score the gate judged, bold: overall, or new code with the overall beside it."""
    verdict, new = report.verdict, report.new_code
    if verdict.scope != "new code" or new is None:
        return f"**Score {fmt(report.score.overall)}** (target {fmt(verdict.target)})"
    judged = fmt(new.score.overall) if new.score is not None else "not applicable"
    return (
        f"**New-code score {judged}** (target {fmt(verdict.target)}) on "
        f"{size_words(new)}; overall {fmt(report.score.overall)},"
    )


def _new_code_section(report: Report) -> list[str]:
    """Overall and new-code figures side by side, and the changed files."""
    new = report.new_code
    if new is None:
        return []
    scores = new_code_scores(report) or {}
    out = [
        "",
        "## New code",
        "",
        f"Against `{_cell(new.base)}` (merge base `{new.merge_base[:12]}`): "
        f"{size_words(new)} ({new.changed_python_lines} in Python files)."
        + (
            " The gate judges the new code; the overall figures are for information."
            if report.verdict.scope == "new code"
            else ""
        ),
        "",
        "| dimension | overall | new code |",
        "|---|---:|---:|",
    ]
    for audit in report.audits:
        overall = fmt(audit.score) if audit.score is not None else "-"
        out.append(f"| {_cell(audit.dimension)} | {overall} | {scores.get(audit.dimension, '-')} |")
    out += [
        f"| **overall** | **{fmt(report.score.overall)}** | **{scores.get('overall', '-')}** |",
        "",
    ]
    out += [f"- {_cell(line.strip())}" for line in describe_new_code(new)[1:]]
    if new.files:
        out += [
            "",
            "| file | status | changed lines | executable | covered | not covered |",
            "|---|---|---:|---:|---:|---|",
        ]
        for item in new.files[:CHANGED_FILES]:
            status = item.status + (" (binary)" if item.binary else "")
            if item.old_path:
                status += f" from `{_cell(item.old_path)}`"
            out.append(
                f"| `{_cell(item.path)}` | {status} | {item.changed_lines} | "
                f"{item.executable_lines if item.executable_lines is not None else '-'} | "
                f"{item.covered_lines if item.covered_lines is not None else '-'} | "
                f"{_cell(item.uncovered_lines)}"
                + (
                    f" (branches not taken: {_cell(item.uncovered_branches)})"
                    if item.uncovered_branches
                    else ""
                )
                + " |"
            )
        if len(new.files) > CHANGED_FILES:
            out += ["", f"{len(new.files) - CHANGED_FILES} more changed files in the JSON report."]
    return out


def _baseline_section(report: Report) -> list[str]:
    """The ratchet's figures: the baseline's and this run's."""
    comparison = report.baseline
    if comparison is None:
        return []
    out = ["", "## Baseline", "", f"- {_cell(describe_baseline(comparison, report))}"]
    if comparison.new_fingerprints:
        shown = ", ".join(f"`{_cell(p)}`" for p in comparison.new_fingerprints)
        out.append(f"- new fingerprints: {shown}")
    return out


def render(report: Report, links: str | None = None) -> str:
    """The report as GitHub-flavoured Markdown.

    :param links: URL prefix that turns finding locations into links (``links + path +
        "#L" + line``), e.g. from :func:`link_base`; None for plain text.
    """
    verdict = report.verdict
    word = "PASSED" if verdict.passed else "FAILED"
    icon = ":white_check_mark:" if verdict.passed else ":x:"
    project = report.project
    out = [
        f"# Quality gate {word} {icon}",
        "",
        f"{_score_line(report)} for "
        f"`{_cell(project.name)}`: {plural(project.files, 'Python file')}, "
        f"{project.lines_of_code} lines of code"
        + (f", {_cell(', '.join(project.frameworks))}" if project.frameworks else "")
        + ".",
        "",
        *[f"- {_cell(line)}" for line in (report.remote.describe() if report.remote else [])],
        *([f"- {_cell(report.agents.describe())}"] if report.agents else []),
        *([f"- {_cell(report.suppressions.describe())}"] if report.suppressions else []),
        *([""] if report.remote or report.agents or report.suppressions else []),
        *(
            [
                "## Gap closure",
                "",
                *[f"- {_cell(line.strip())}" for line in report.loop.describe()],
                "",
                *score_chart(report.loop),
            ]
            if report.loop
            else []
        ),
        "## Gate",
        "",
    ]
    for condition in verdict.conditions:
        out.append(f"- {'✅' if condition.passed else '❌'} {_cell(condition.message)}")
    out += _new_code_section(report) + _baseline_section(report)
    out += [
        "",
        "## Dimensions",
        "",
        "| dimension | score | weight | points lost | "
        + " | ".join(s.value for s in Severity)
        + " | status |",
        "|---|---:|---:|---:|" + "---:|" * len(Severity) + "---|",
    ]
    rows = {row.dimension: row for row in report.score.dimensions}
    for audit in report.audits:
        row = rows.get(audit.dimension)
        counts = Counter(f.severity for f in audit.findings)
        status = (
            "ok" if audit.status == "ok" else f"**{audit.status}**: {_cell(audit.reason or '')}"
        )
        out.append(
            f"| {_cell(audit.dimension)} | "
            f"{fmt(audit.score) if audit.score is not None else '-'} | "
            f"{f'{row.weight:g}' if row else '-'} | "
            f"{fmt(row.points_lost) if row and row.counted else '-'} | "
            + " | ".join(str(counts.get(s, 0)) for s in Severity)
            + f" | {status} |"
        )
    out.append(
        f"| **overall** | **{fmt(report.score.overall)}** | | "
        f"{fmt(100 - report.score.overall)} | " + " | " * len(Severity) + " |"
    )
    out += ["", "## Points lost", ""]
    for audit in report.audits:
        if not audit.deductions:
            continue
        name = _cell(audit.dimension)
        out += [f"### {name}", "", f"| points of 100 in {name} | reason |", "|---:|---|"]
        largest = sorted(audit.deductions, key=lambda d: -d.points)
        out += [f"| {fmt(d.points)} | {_cell(d.reason)} |" for d in largest]
        out.append("")
    findings = report.findings()
    if findings:
        shown = findings[:TOP_FINDINGS]
        out += [
            f"## Top findings ({len(shown)} of {len(findings)})",
            "",
            "| severity | dimension | location | rule | message |",
            "|---|---|---|---|---|",
        ]
        for f in shown:
            out.append(
                f"| {f.severity.value} | {_cell(f.dimension)} | {location(f, links)} | "
                f"{_cell(f.rule_id)} | {_cell(f.message)} |"
            )
        out.append("")
    coverage = next((a.coverage for a in report.audits if a.coverage), None)
    if coverage is not None:
        uncovered = [f for f in coverage.files if f.missing or f.missing_branches]
        if uncovered:
            out += [
                "## Uncovered code",
                "",
                "| file | covered | missing lines |",
                "|---|---:|---|",
            ]
            out += [
                f"| `{_cell(f.path)}` | {fmt(f.percent)} | {_cell(f.missing_lines)} |"
                for f in uncovered
            ]
            out.append("")
    notes = [(a.dimension, n) for a in report.audits for n in a.notes]
    if notes:
        out += ["## Notes", ""] + [f"- {d}: {_cell(n)}" for d, n in notes] + [""]
    return "\n".join(out).rstrip() + "\n"
