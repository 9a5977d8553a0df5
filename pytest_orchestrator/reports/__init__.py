"""Report writers: terminal, json, junit, markdown, sarif, codeclimate, github, pr-comment.
Files are written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_orchestrator.errors import ReportWriteError

if TYPE_CHECKING:
    from pytest_orchestrator.config import ReportSpec
    from pytest_orchestrator.models import Report


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    A reader never sees a partial file, and an interrupted write leaves the old file (or
    none) in place.

    :raises ReportWriteError: the directory or file cannot be written.
    """
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        raise ReportWriteError(
            f"cannot write report {str(path)!r}: {exc.strerror or exc}"
        ) from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def clean_report(report: Report) -> Report:
    """``report`` with every string made safe for every writer, in one pass: secrets masked,
    terminal control sequences removed, line breaks made spaces, a leading ``::`` broken up
    (see :func:`pytest_orchestrator.redact.clean_line`). The session applies it before any
    report is written or printed; ``show`` and ``merge`` to every report they read, which is
    untrusted data."""
    from pytest_orchestrator.models import Report as ReportModel
    from pytest_orchestrator.redact import clean_data

    return ReportModel.model_validate(clean_data(report.model_dump(mode="json")))


def render_file(report: Report, kind: str) -> bytes:
    """The bytes of a file report of type ``kind`` (json, junit, markdown, sarif or
    codeclimate)."""
    if kind == "json":
        from pytest_orchestrator.reports.jsonreport import render as render_json

        return render_json(report)
    if kind == "junit":
        from pytest_orchestrator.reports.junitreport import render as render_junit

        return render_junit(report)
    if kind == "markdown":
        from pytest_orchestrator.reports.markdown import link_base
        from pytest_orchestrator.reports.markdown import render as render_markdown

        return render_markdown(report, link_base(report, os.environ)).encode("utf-8")
    if kind == "sarif":
        from pytest_orchestrator.reports.sarif import render as render_sarif

        return render_sarif(report)
    if kind == "codeclimate":
        from pytest_orchestrator.reports.codeclimate import render as render_codeclimate

        return render_codeclimate(report)
    raise ValueError(f"no file report of type {kind!r}")


def write_reports(
    report: Report, specs: Iterable[ReportSpec]
) -> tuple[list[Path], list[ReportWriteError]]:
    """Write every file report in ``specs``: ``(the paths written, the failures)``, each
    failure naming its file and why. One that cannot be written does not stop the others.

    All reports are rendered before the first file is written, so a rendering error
    leaves no file behind.
    """
    rendered = [(s.path, render_file(report, s.type)) for s in specs if s.path is not None]
    written: list[Path] = []
    failures: list[ReportWriteError] = []
    for path, data in rendered:
        try:
            atomic_write(path, data)
        except ReportWriteError as exc:
            failures.append(exc)
        else:
            written.append(path)
    return written, failures
