"""The ratchet (``--orchestrate-baseline=PATH``): compare this run with an earlier JSON report.

The baseline is a report written by ``--orchestrate-report=json:PATH`` (the
:class:`pytest_orchestrator.models.Report` model, ``schema_version`` "1.0", "1.1" or "1.2"),
typically on the main branch. The gate then also requires (see
:func:`pytest_orchestrator.scoring.evaluate_gate`):

- the overall score >= the baseline's overall score, both as rounded in the reports (2
  decimals), with no other tolerance;
- no finding whose fingerprint the baseline lacks. Fingerprints are counted as a multiset:
  a second finding with the fingerprint of one the baseline has once is new;
- coverage percent >= the baseline's, when the baseline has a coverage figure and this run
  audits coverage (an unavailable coverage fails: the ratchet cannot be checked);
- no more suppressions (``# noqa``, ``# nosec``, skips, ...) than the baseline counted, when
  it counted them (schema 1.1).

A baseline that is missing, unreadable, not JSON, of another ``schema_version`` or not a
report of that schema is a :class:`BaselineError` (a usage error at configure time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from pytest_orchestrator import jsonio
from pytest_orchestrator.errors import OrchestratorError
from pytest_orchestrator.models import (
    READABLE_SCHEMA_VERSIONS,
    AuditResult,
    BaselineComparison,
    Finding,
    Report,
    SuppressionSummary,
)

#: How many new fingerprints the report lists (all are counted).
LISTED = 10
_HOW = "write one with --orchestrate-report=json:PATH"


class BaselineError(OrchestratorError):
    """The baseline report cannot be used; one line saying why and what to do."""


def load(path: Path) -> Report:
    """Read and validate the baseline report at ``path``.

    :raises BaselineError: missing, unreadable, not JSON, another schema_version, or not a
        report of this schema (the first validation error is named).
    """
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BaselineError(f"baseline {where!r} does not exist; {_HOW}") from None
    except IsADirectoryError:
        raise BaselineError(f"baseline {where!r} is a directory; give the JSON report") from None
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {where!r}: {exc.strerror or exc}") from None
    try:
        data = jsonio.loads(raw)
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BaselineError(f"baseline {where!r} is not JSON ({first}); {_HOW}") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise BaselineError(
            f"baseline {where!r} is not a pytest-orchestrator report (no schema_version); {_HOW}"
        )
    version = data["schema_version"]
    if version not in READABLE_SCHEMA_VERSIONS:
        names = [repr(v) for v in READABLE_SCHEMA_VERSIONS]
        readable = f"{', '.join(names[:-1])} or {names[-1]}"
        raise BaselineError(
            f"baseline {where!r} has schema_version {str(version)!r}, this version reads "
            f"{readable}; regenerate it with this version ({_HOW})"
        )
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(part) for part in error["loc"]) or "the report"
        message = " ".join(str(error["msg"]).split())
        raise BaselineError(
            f"baseline {where!r} does not match the report schema {version} "
            f"({loc}: {message}); {_HOW}"
        ) from None


def coverage_percent(audits: Sequence[AuditResult]) -> float | None:
    """The coverage percent of ``audits`` (None when coverage is absent or not ok)."""
    for audit in audits:
        if audit.dimension == "coverage" and audit.status == "ok":
            if audit.coverage is not None:
                return audit.coverage.percent
            return audit.score
    return None


def compare(
    path: Path,
    baseline: Report,
    findings: Sequence[Finding],
    suppressions: SuppressionSummary | None = None,
) -> BaselineComparison:
    """This run's ``findings`` and ``suppressions`` against ``baseline``.

    :param findings: every finding of this run, worst severity first (the order in which
        new fingerprints are listed).
    """
    before = Counter(f.fingerprint for f in baseline.findings())
    now = Counter(f.fingerprint for f in findings)
    seen: Counter[str] = Counter()
    new: list[Finding] = []
    for finding in findings:
        seen[finding.fingerprint] += 1
        if seen[finding.fingerprint] > before.get(finding.fingerprint, 0):
            new.append(finding)
    fixed = before - now
    return BaselineComparison(
        path=str(path),
        created=baseline.created,
        score=baseline.score.overall,
        coverage=coverage_percent(baseline.audits),
        dimensions={a.dimension: a.score for a in baseline.audits if a.score is not None},
        new_findings=len(new),
        new_fingerprints=[f.fingerprint for f in new[:LISTED]],
        fixed_findings=sum(fixed.values()),
        suppressions=baseline.suppressions.total if baseline.suppressions else None,
        suppressions_now=suppressions.total if suppressions is not None else None,
        suppressions_by_kind=_kind_changes(baseline.suppressions, suppressions),
    )


def _kind_changes(
    before: SuppressionSummary | None, now: SuppressionSummary | None
) -> dict[str, int]:
    if before is None or now is None:
        return {}
    kinds = sorted(before.by_kind.keys() | now.by_kind.keys())
    changes = {k: now.by_kind.get(k, 0) - before.by_kind.get(k, 0) for k in kinds}
    return {k: v for k, v in changes.items() if v}


def describe(comparison: BaselineComparison, report: Report) -> str:
    """One line for the human reports: the baseline's figures -> this run's."""
    score, coverage = report.score.overall, coverage_percent(report.audits)
    cov = ""
    if comparison.coverage is not None or coverage is not None:
        was = f"{comparison.coverage:.2f}" if comparison.coverage is not None else "-"
        cov = f", coverage {was} -> {f'{coverage:.2f}' if coverage is not None else '-'}"
    return (
        f"baseline {comparison.path} ({comparison.created:%Y-%m-%d %H:%M}): score "
        f"{comparison.score:.2f} -> {score:.2f}{cov}, {comparison.new_findings} new "
        f"finding(s), {comparison.fixed_findings} fixed"
        + (
            f", suppressions {comparison.suppressions} -> {comparison.suppressions_now}"
            if comparison.suppressions is not None and comparison.suppressions_now is not None
            else ""
        )
    )
