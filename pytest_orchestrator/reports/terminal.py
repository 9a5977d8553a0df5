"""The terminal report: a rich table, the points lost, the top findings, the verdict.

Rendered into a string (``Console(file=StringIO())``) that the plugin writes through
pytest's terminal reporter, so capture, ``-q`` and colours behave as in pytest. Without
markup (output is not a terminal) the table is drawn in plain ASCII.
"""

from __future__ import annotations

import io
from collections import Counter

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pytest_orchestrator.baseline import describe as describe_baseline
from pytest_orchestrator.models import ConfigSummary, Report, Severity
from pytest_orchestrator.reports.newcode_text import describe as describe_new_code
from pytest_orchestrator.reports.newcode_text import new_code_scores, score_words
from pytest_orchestrator.scoring import fmt, plural

TOP_FINDINGS = 10
DEDUCTIONS_PER_DIMENSION = 5
_SEVERITY_STYLE = {
    Severity.P0: "bold red",
    Severity.P1: "red",
    Severity.P2: "yellow",
    Severity.P3: "cyan",
    Severity.P4: "dim",
}


def _table(report: Report, markup: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAVY if markup else box.ASCII, pad_edge=False)
    table.add_column("dimension")
    table.add_column("score", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("lost", justify="right")
    for severity in Severity:
        table.add_column(severity.value, justify="right")
    table.add_column("status")
    rows = {row.dimension: row for row in report.score.dimensions}
    for audit in report.audits:
        row = rows.get(audit.dimension)
        counts = Counter(f.severity for f in audit.findings)
        status = "ok" if audit.status == "ok" else f"[bold red]{audit.status.upper()}[/]"
        if row is not None and not row.counted and audit.status == "ok":
            status = "not counted (weight 0)"
        table.add_row(
            audit.dimension,
            fmt(audit.score) if audit.score is not None else "-",
            f"{row.weight:g}" if row else "-",
            _lost(row.points_lost) if row and row.counted else "-",
            *[str(counts.get(s, 0) or "") for s in Severity],
            status,
        )
    table.add_section()
    table.add_row(
        "[bold]overall[/]",
        f"[bold]{fmt(report.score.overall)}[/]",
        "",
        _lost(100 - report.score.overall),
        *["" for _ in Severity],
        f"target {fmt(report.verdict.target)}",
    )
    return table


def _new_code_table(report: Report, markup: bool) -> Table:
    """Overall and new-code scores side by side, per dimension and overall."""
    new = new_code_scores(report) or {}
    table = Table(box=box.SIMPLE if markup else box.ASCII, pad_edge=False)
    table.add_column("dimension")
    table.add_column("overall", justify="right")
    table.add_column("new code", justify="right")
    for audit in report.audits:
        table.add_row(
            audit.dimension,
            fmt(audit.score) if audit.score is not None else "-",
            new.get(audit.dimension, "-"),
        )
    table.add_section()
    table.add_row(
        "[bold]overall[/]",
        f"[bold]{fmt(report.score.overall)}[/]",
        f"[bold]{new.get('overall', '-')}[/]",
    )
    return table


def render(report: Report, markup: bool = False, width: int = 100, verbosity: int = 0) -> str:
    """The terminal report as text (with ANSI styles when ``markup``).

    :param verbosity: pytest's verbosity; below -1 only the verdict line is printed,
        at 1 and above every deduction is listed.
    """
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=markup,
        no_color=not markup,
        width=max(width, 60),
        highlight=False,
        emoji=False,
        soft_wrap=True,  # long lines are left to the terminal, not cut
    )
    verdict = report.verdict
    word = "[bold green]PASSED[/]" if verdict.passed else "[bold red]FAILED[/]"
    verdict_line = f"Quality gate {word}: {escape(score_words(report))}"
    if verbosity < -1:  # the verdict, and why when it failed
        console.print(verdict_line)
        for condition in verdict.conditions:
            if not condition.passed:
                console.print(f"  [red]FAIL[/] {escape(condition.message)}")
        return buffer.getvalue()
    project = report.project
    frameworks = f"; {', '.join(project.frameworks)}" if project.frameworks else ""
    console.print(
        f"{escape(project.name)}: {plural(project.files, 'Python file')}, "
        f"{project.lines_of_code} lines of code in {', '.join(project.sources) or 'no package'}"
        f"{frameworks}"
    )
    for line in report.remote.describe() if report.remote else []:
        console.print(escape(line))
    if report.agents:
        console.print(escape(report.agents.describe()))
        warned = dict.fromkeys(w for call in report.agents.calls for w in call.warnings)
        for warning in warned:
            console.print(f"[yellow]! agents:[/] {escape(warning)}")
    for line in report.loop.describe() if report.loop else []:
        console.print(escape(line))
    for finding in report.findings():
        if finding.rule_id == "unparsable-file":
            console.print(f"[bold red]! {escape(finding.message)}[/]")
    if report.suppressions is not None and verbosity > 0:
        console.print(escape(report.suppressions.describe()))
    console.print(_table(report, markup))
    for audit in report.audits:
        if audit.status != "ok":
            console.print(
                f"[bold red]! {audit.dimension} is {audit.status}:[/] {escape(audit.reason or '')}"
                f" -> {_unavailable_effect(report.config, audit.dimension)}"
            )
            if audit.status == "error":
                for note in audit.notes:
                    console.print(f"    {escape(note)}")
    if report.new_code is not None:
        console.print("[bold]New code[/] (the gate judges it; overall for information):")
        console.print(_new_code_table(report, markup))
        for line in describe_new_code(report.new_code):
            console.print(f"  {escape(line)}")
    if report.baseline is not None:
        console.print(escape(describe_baseline(report.baseline, report)))
    console.print(
        f"Points lost ({fmt(100 - report.score.overall)} of the 100 overall; in brackets, "
        "of the dimension's own 100):"
    )
    audits = {a.dimension: a for a in report.audits}
    for lost in report.score.deductions:
        dimension = lost.reason.split(":", 1)[0]
        console.print(f"  {_lost(lost.points):>7}  {escape(lost.reason)}")
        parent = audits.get(dimension)
        deductions = parent.deductions if parent is not None else []
        deductions = sorted(deductions, key=lambda d: -d.points)  # the largest first
        shown = deductions if verbosity > 0 else deductions[:DEDUCTIONS_PER_DIMENSION]
        # a dimension's points count in the overall score by its share of the weights
        own = 100 - parent.score if parent is not None and parent.score is not None else 0
        share = lost.points / own if own > 0 else 0.0
        for item in shown:
            console.print(
                f"    {_lost(item.points * share):>7}  {escape(item.reason)} "
                f"({_lost(item.points)} of 100 in {escape(dimension)})"
            )
        if len(deductions) > len(shown):
            console.print(f"        ... {len(deductions) - len(shown)} more (-v lists them all)")
    findings = report.findings()
    if findings:
        console.print(f"Top findings ({min(len(findings), TOP_FINDINGS)} of {len(findings)}):")
        for finding in findings[:TOP_FINDINGS]:
            where = finding.path or "-"
            if finding.line:
                where += f":{finding.line}"
            style = _SEVERITY_STYLE[finding.severity]
            console.print(
                f"  [{style}]{finding.severity.value}[/] {finding.dimension:<9} "
                f"{escape(where)} {escape(finding.rule_id)} {escape(finding.message)}"
            )
    console.print(verdict_line)
    for condition in verdict.conditions:
        mark = "[green]ok  [/]" if condition.passed else "[red]FAIL[/]"
        console.print(f"  {mark} {escape(condition.message)}")
    return buffer.getvalue()


def _lost(points: float) -> str:
    """Points lost as printed: '-6.00', or '0.00' when nothing was lost."""
    return f"-{fmt(points)}" if round(points, 2) else fmt(0)


def _unavailable_effect(config: ConfigSummary, dimension: str) -> str:
    if dimension in config.allow_unavailable:
        return "left out of the score (orchestrate_allow_unavailable)"
    return {
        "skip": "left out of the score (orchestrate_unavailable = skip)",
        "zero": "counted as 0 (orchestrate_unavailable = zero)",
        "fail": "the gate fails (allow it with orchestrate_allow_unavailable)",
    }[config.unavailable]
