"""The codeclimate report: GitLab's Code Quality format, shown in the merge-request widget.

``--orchestrate-report=codeclimate:PATH`` (default ``orchestrator-codeclimate.json``) writes
a JSON array with one issue per finding, the subset of the Code Climate engine
specification that GitLab reads ("Code Quality", section "Code Quality report format" of
GitLab's documentation; Code Climate's ``SPEC.md``, "Issues"):

=========================  ==================================================================
field                      value
=========================  ==================================================================
``type``                   ``"issue"``
``description``            the finding's message
``check_name``             the rule id (``F401``, ``B602``, ``test-failed``, ``uncovered``)
``fingerprint``            the finding's fingerprint (:func:`pytest_orchestrator.models.
                           fingerprint`), made unique within the report: GitLab compares
                           fingerprints between the source and target branches' reports
``severity``               ``blocker`` (P0), ``critical`` (P1), ``major`` (P2), ``minor``
                           (P3), ``info`` (P4)
``categories``             ``Bug Risk`` (tests, coverage, types), ``Security``, ``Style``
                           (lint), ``Clarity`` (any other dimension)
``location.path``          the file, relative to the repository's top (the git work tree
                           holding the rootdir; the rootdir when there is none)
``location.lines.begin``   the 1-based line (1 for a finding about a whole file)
=========================  ==================================================================

A finding without a file (a session-wide problem) is reported on the project's
``pyproject.toml`` (or the rootdir's first configuration file), line 1: GitLab drops issues
without a path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_orchestrator.models import Report

#: GitLab's severities, by our severity.
SEVERITIES = {"P0": "blocker", "P1": "critical", "P2": "major", "P3": "minor", "P4": "info"}
#: Code Climate's categories, by dimension (anything else: Clarity).
CATEGORIES = {
    "tests": "Bug Risk",
    "coverage": "Bug Risk",
    "security": "Security",
    "lint": "Style",
    "types": "Bug Risk",
}
_SESSION_FILES = ("pyproject.toml", "setup.cfg", "pytest.ini", "tox.ini", "setup.py")


def repository_prefix(rootdir: Path) -> str:
    """What to put before a rootdir-relative path to make it relative to the repository's
    top (``git rev-parse --show-prefix`` of the rootdir): ``""`` at the top or outside git."""
    from pytest_orchestrator.loop.snapshot import SnapshotError, run_git

    try:
        done = run_git(rootdir, "rev-parse", "--show-prefix", check=False)
    except SnapshotError:
        return ""
    if done.returncode != 0:
        return ""
    return os.fsdecode(done.stdout).strip()


def issues(report: Report, prefix: str = "") -> list[dict[str, Any]]:
    """One Code Quality issue per finding, worst first (see the module's docstring).

    :param prefix: :func:`repository_prefix` of the rootdir.
    """
    rootdir = Path(report.project.rootdir)
    fallback = next((n for n in _SESSION_FILES if (rootdir / n).is_file()), "pyproject.toml")
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for finding in report.findings():
        count = seen.get(finding.fingerprint, 0)
        seen[finding.fingerprint] = count + 1
        fingerprint = finding.fingerprint if not count else f"{finding.fingerprint}-{count}"
        path = prefix + (finding.path or fallback)
        out.append(
            {
                "type": "issue",
                "description": (finding.message or finding.rule_id)
                + (f" ({finding.url})" if finding.url else ""),
                "check_name": finding.rule_id,
                "fingerprint": fingerprint,
                "severity": SEVERITIES[finding.severity.value],
                "categories": [CATEGORIES.get(finding.dimension, "Clarity")],
                "location": {"path": path, "lines": {"begin": finding.line or 1}},
            }
        )
    return out


def render(report: Report) -> bytes:
    """The report's bytes: a JSON array (UTF-8, indented)."""
    prefix = repository_prefix(Path(report.project.rootdir))
    return (json.dumps(issues(report, prefix), indent=2, ensure_ascii=False) + "\n").encode()
