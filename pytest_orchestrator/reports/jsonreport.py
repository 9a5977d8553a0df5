"""The JSON report: the :class:`~pytest_orchestrator.models.Report` model, schema 1.0.

Its JSON Schema is ``pytest_orchestrator/report.schema.json``, generated from the models
by :func:`pytest_orchestrator.models.report_json_schema`.
"""

from __future__ import annotations

from pytest_orchestrator.models import Report


def render(report: Report) -> bytes:
    """The report as indented UTF-8 JSON."""
    return (report.model_dump_json(indent=2) + "\n").encode("utf-8")
