"""The Markdown report's GitHub parts: links to finding lines, the score-per-iteration chart."""

from __future__ import annotations

import re

from test_reports import make_report

from pytest_orchestrator.models import Iteration, LoopSummary
from pytest_orchestrator.reports.markdown import link_base, render, score_chart

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/shop",
    "GITHUB_SHA": "0123abc",
}


def test_findings_link_to_their_line_on_github(tmp_path) -> None:
    report = make_report()
    report.project.rootdir = str(tmp_path / "services" / "api")
    (tmp_path / "services" / "api").mkdir(parents=True)
    environ = {**GITHUB, "GITHUB_WORKSPACE": str(tmp_path)}

    base = link_base(report, environ)
    assert base == "https://github.com/acme/shop/blob/0123abc/services/api/"
    text = render(report, base)
    assert "[`a.py:3`](https://github.com/acme/shop/blob/0123abc/services/api/a.py#L3)" in text

    assert link_base(report, {**environ, "GITHUB_ACTIONS": ""}) is None
    assert link_base(report, {**environ, "GITHUB_WORKSPACE": str(tmp_path / "other")}) is None
    assert "](" not in render(report)  # no links outside GitHub


def test_a_hostile_path_cannot_break_out_of_the_link() -> None:
    report = make_report()
    report.audits[0].findings[0].path = "x) [click](https://evil.example/ a.py"
    text = render(report, "https://github.com/acme/shop/blob/0123abc/")
    [row] = [line for line in text.splitlines() if "evil" in line]
    target = re.search(r"\]\((\S+)\)", row)
    assert target is not None
    assert target.group(1).startswith("https://github.com/acme/shop/blob/0123abc/x%29%20%5B")
    assert "https://evil.example/ " not in target.group(1)


def _iteration(number: int, before: float, after: float | None, accepted: bool) -> Iteration:
    return Iteration(
        number=number, score_before=before, score_after=after, accepted=accepted, reason="r"
    )


def test_the_chart_shows_reached_and_kept_scores_per_iteration() -> None:
    loop = LoopSummary(
        session_id="s",
        initial_score=61.5,
        final_score=88.0,
        iterations=[
            _iteration(1, 61.5, 75.0, True),
            _iteration(2, 75.0, 70.25, False),
            _iteration(3, 75.0, None, False),  # refused by the guard: never re-audited
            _iteration(4, 75.0, 88.0, True),
        ],
    )

    chart = score_chart(loop)
    assert chart[:2] == ["```mermaid", "xychart-beta"]
    assert '    x-axis ["start", "1", "2", "3", "4"]' in chart
    assert '    y-axis "score" 50 --> 100' in chart
    assert "    bar [61.50, 75.00, 70.25, 75.00, 88.00]" in chart
    assert "    line [61.50, 75.00, 75.00, 75.00, 88.00]" in chart
    assert chart.index("```", 1) > chart.index("    line [61.50, 75.00, 75.00, 75.00, 88.00]")

    report = make_report()
    report.loop = loop
    assert "\n".join(chart) in render(report)
    report.loop = loop.model_copy(update={"iterations": []})
    assert "mermaid" not in render(report)
