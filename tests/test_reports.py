"""Report formats: schema shipped and current, hostile text, atomic writes, public API."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from junitparser import JUnitXml

import pytest_orchestrator
from pytest_orchestrator.config import ReportSpec
from pytest_orchestrator.errors import ReportWriteError
from pytest_orchestrator.models import (
    AuditResult,
    ConfigSummary,
    Discovery,
    Finding,
    Report,
    Score,
    Severity,
    ToolInfo,
    Verdict,
    report_json_schema,
)
from pytest_orchestrator.reports import atomic_write, render_file, write_reports
from pytest_orchestrator.reports.markdown import render as render_markdown

SCHEMA_FILE = Path(pytest_orchestrator.__file__).parent / "report.schema.json"
HOSTILE = "evil\x00\x1b[31m | <script>alert(1)</script>\n]]> &amp;"


def make_report(message: str = "m") -> Report:
    finding = Finding(
        dimension="lint",
        severity=Severity.P1,
        rule_id="X1",
        message=message,
        path="a.py",
        line=3,
        tool="ruff",
        fingerprint="0123456789abcdef",
    )
    return Report(
        tool=ToolInfo(version="0"),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
        duration=1.0,
        project=Discovery(name="p", rootdir="/p", sources=["p"], files=1, lines_of_code=10),
        config=ConfigSummary(
            target_score=90,
            dimensions=["lint"],
            fail_on=[Severity.P0],
            weights={"lint": 20},
            min_scores={},
            unavailable="skip",
        ),
        audits=[AuditResult(dimension="lint", status="ok", score=92.0, findings=[finding])],
        score=Score(overall=92.0, dimensions=[], deductions=[]),
        verdict=Verdict(passed=True, target=90, score=92.0, conditions=[]),
    )


def test_shipped_schema_is_generated_from_the_models() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == report_json_schema(), (
        'regenerate: python -c "import json; from pytest_orchestrator.models import '
        'report_json_schema as s; print(json.dumps(s(), indent=2))" > '
        "pytest_orchestrator/report.schema.json"
    )


def test_json_round_trips() -> None:
    report = make_report()
    assert Report.model_validate_json(render_file(report, "json")) == report


def test_hostile_finding_text_stays_data() -> None:
    report = make_report(HOSTILE)
    xml = render_file(report, "junit")
    junit = JUnitXml.fromstring(xml)  # still well-formed XML
    case = next(c for s in junit for c in s if c.name.startswith("P1"))
    assert case.result[0].message.startswith("P1 does not fail the gate: evil")
    markdown = render_markdown(report)
    row = next(line for line in markdown.splitlines() if line.startswith("| P1 |"))
    assert "<script>" not in row and "\\|" in row and row.count("\n") == 0


def test_atomic_write_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ReportWriteError, match=r"cannot write report .*No space left on device"):
        atomic_write(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_write_reports_writes_each_file(tmp_path: Path) -> None:
    specs = [
        ReportSpec(type=t, path=tmp_path / "sub" / f"r.{t}") for t in ("json", "junit", "markdown")
    ]
    written, failures = write_reports(make_report(), [ReportSpec(type="terminal"), *specs])
    assert sorted(p.name for p in written) == ["r.json", "r.junit", "r.markdown"]
    assert failures == []


def test_exported_members() -> None:
    for name in pytest_orchestrator.__all__:
        assert getattr(pytest_orchestrator, name) is not None
    with pytest.raises(AttributeError):
        pytest_orchestrator.nope  # noqa: B018


def test_report_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "r.json", b"{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
