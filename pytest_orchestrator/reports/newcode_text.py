"""The new code in words: the lines the terminal, Markdown and verdict print about a diff
base (``--orchestrate-diff-base``), from a finished :class:`~pytest_orchestrator.models.Report`.

Kept apart from :mod:`pytest_orchestrator.newcode` (git, diffs, coverage of changed lines)
so that a session without a diff base does not import that.
"""

from __future__ import annotations

from pytest_orchestrator.models import NewCode, Report
from pytest_orchestrator.scoring import plural


def size_words(summary: NewCode) -> str:
    """``'12 changed lines in 2 files'``: the new code's size, as every message states it."""
    return (
        f"{plural(summary.changed_lines, 'changed line')} in "
        f"{plural(summary.changed_files, 'file')}"
    )


def score_words(report: Report) -> str:
    """The verdict line's figures: ``'score 78.80 (target 90.00)'``, or with a diff base
    ``'new-code score 95.00 (target 90.00) on 12 changed lines in 2 files; overall 78.80'``."""
    verdict, overall = report.verdict, report.score.overall
    if verdict.scope != "new code" or report.new_code is None:
        return f"score {overall:.2f} (target {verdict.target:.2f}){over_words(report)}"
    new = report.new_code
    judged = f"{new.score.overall:.2f}" if new.score is not None else "not applicable"
    return (
        f"new-code score {judged} (target {verdict.target:.2f}) on {size_words(new)}; "
        f"overall {overall:.2f}"
    )


def over_words(report: Report) -> str:
    """``'; over tests, lint (coverage unavailable)'`` when a dimension with a weight was
    left out of the score; '' when every one counted."""
    rows = [d for d in report.score.dimensions if d.weight > 0]
    missing = [d for d in rows if not d.counted]
    if not missing:
        return ""
    counted = ", ".join(d.dimension for d in rows if d.counted) or "no dimension"
    left = ", ".join(f"{d.dimension} {d.status}" for d in missing)
    return f"; over {counted} ({left})"


def new_code_scores(report: Report) -> dict[str, str] | None:
    """Per dimension (and ``'overall'``), the new-code score as printed next to the overall
    one: 2 decimals, ``'n/a'`` for a diff coverage with no changed executable line, ``'-'``
    for a dimension not scored on new code. None without a diff base."""
    new = report.new_code
    if new is None:
        return None
    out: dict[str, str] = {}
    if new.coverage_measured and new.diff_coverage is None:
        out["coverage"] = "n/a"
    if new.score is not None:
        for row in new.score.dimensions:
            if row.score is not None and row.status == "ok":
                out[row.dimension] = f"{row.score:.2f}"
        out["overall"] = f"{new.score.overall:.2f}"
    return out


def describe(summary: NewCode) -> list[str]:
    """Lines for the human reports: what changed, diff coverage, findings on new code."""
    lines = [
        f"against {summary.base} (merge base {summary.merge_base[:12]}): "
        f"{size_words(summary)} ({summary.changed_python_lines} in Python files)"
    ]
    if not summary.coverage_measured:
        lines.append("diff coverage: not measured (the coverage dimension did not run)")
    elif summary.diff_coverage is None:
        lines.append("diff coverage: no changed executable lines: not applicable")
    else:
        taken = (
            f", {summary.covered_branches} of {summary.branches} of their branches taken"
            if summary.branches
            else ""
        )
        lines.append(
            f"diff coverage {summary.diff_coverage:.2f}: {summary.covered_lines} of "
            f"{summary.executable_lines} changed executable lines covered{taken}"
        )
        for item in summary.files:
            if item.uncovered_lines:
                lines.append(f"  not covered: {item.path}: {item.uncovered_lines}")
            if item.uncovered_branches:
                lines.append(f"  branches not taken: {item.path}: {item.uncovered_branches}")
    counts = ", ".join(f"{n} {sev}" for sev, n in summary.findings_by_severity.items())
    lines.append(f"findings on new code: {counts or 'none'}")
    if summary.score is not None:
        lines.append(f"new-code score {summary.score.overall:.2f}")
        lines += [f"  -{d.points:.2f} of {d.dimension}: {d.reason}" for d in summary.deductions]
    lines += [f"note: {n}" for n in summary.notes]
    return lines
