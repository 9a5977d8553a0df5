"""Merge the JSON reports of CI shards into one report with one verdict.

A shard is one ``pytest --orchestrate --orchestrate-report=json:PATH`` run on a slice of the
tests (a GitHub Actions matrix job, with or without pytest-xdist inside). Each shard audits
the whole project, but runs and measures only its slice. :func:`merge_reports` combines the
shards' :class:`~pytest_orchestrator.models.Report` objects:

- **tests**: outcome counts summed, failures united by fingerprint (the node id), scored as
  the ``tests`` auditor scores (:func:`pytest_orchestrator.auditors.tests.tests_result`).
- **coverage**: combined, not averaged. Per file, a line counts as covered when any shard
  covered it: the merged missing lines are the intersection of the shards' missing lines
  (``CoverageFile.missing_lines``). A file a shard does not report was not run by it (all
  its lines missing there), so it does not narrow the intersection. Branches likewise: the
  merged missing branch arcs are the intersection of the shards'
  ``CoverageFile.missing_branch_arcs``. Reports written before that field existed carry only
  branch *counts*, which cannot be combined exactly: then a file's merged missing branches
  are the fewest any shard missed, an upper bound (the merged score can only be too low,
  never too high), and the coverage notes name the files. The score, deductions and
  findings are rebuilt by the coverage auditor's own
  :func:`~pytest_orchestrator.auditors.cov.coverage_result`.
- **static dimensions** (lint, security, ``agent:*``, third-party ones): every shard audits
  the whole project, so they should be identical and are taken from the first shard where
  the dimension ran. When shards disagree (different finding fingerprints or scores), the
  findings are united by fingerprint and a note says so; the score is recomputed with the
  finding formula when that formula reproduces every shard's own score, else the lowest
  shard score is kept (an agent's own score, a third-party formula).
- the overall score and the gate are recomputed by :mod:`pytest_orchestrator.scoring` with
  the settings recorded in the reports (``Report.config``); per-path minimums
  (``orchestrate_path_minimums``): a coverage group on the merged coverage, a finding
  dimension's group as the first shard that audited it computed it.

Refused (:class:`MergeError`, one line): shards of different projects or code (name,
sources, files, lines of code, a file's statements or branches), different settings (target
score, fail-on severities, weights, minimums, per-path minimums, unavailable rule, coverage
severities), a shard
without the ``tests`` or ``coverage`` dimension that another shard has, a shard that ran gap
closure, the same run given twice, and report sections this module does not know how to
combine. Harmless (noted where it matters): different rootdirs (paths in a report are
relative to its rootdir), different tool versions, different dimension or severity order, a
whole-project dimension that only some shards audited (e.g. lint and LLM audits in one shard
only, to save time and money), a shard whose coverage or static tool was unavailable (the
other shards' results are used), and a target score overridden with ``target_score``.

Sections: ``remote`` is the first shard's with tests and round trips summed; ``agents``
lists every shard's calls, spending and budgets summed; ``duration`` is the longest shard's
(the shards ran side by side); ``created`` is the time of the merge.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from pytest_orchestrator.models import (
    AgentUsage,
    AuditResult,
    ConfigSummary,
    CoverageFile,
    Finding,
    GateCondition,
    RemoteRun,
    Report,
    Severity,
    SuppressionSummary,
    TestSummary,
    ToolInfo,
)
from pytest_orchestrator.scoring import plural

if TYPE_CHECKING:
    from pytest_orchestrator.config import OrchestrationConfig

#: Report fields this module combines; a shard with any other field set is refused.
_COMBINED = frozenset(
    {
        "schema_version",
        "tool",
        "created",
        "duration",
        "project",
        "config",
        "audits",
        "score",
        "verdict",
        "remote",
        "agents",
        "loop",
        "suppressions",
    }
)
#: "... (P2, 3 points each per 1 KLOC)" in the deductions of scoring.finding_score.
_POINTS = re.compile(r"\((P[0-4]), ([0-9][0-9.eE+-]*) points each per ")


class MergeError(ValueError):
    """The shards cannot be merged; the message is one line saying why and what to do."""


@dataclass
class Shard:
    """One shard: its label (the path it was read from) and its report."""

    label: str
    report: Report


@dataclass
class Merged:
    """The merged report and notes about the merge as a whole (per-dimension notes are in
    the audits' ``notes``)."""

    report: Report
    notes: list[str] = field(default_factory=list)


def merge_reports(shards: Sequence[Shard], target_score: float | None = None) -> Merged:
    """One report with one verdict from the reports of ``shards`` (see the module docstring).

    :param target_score: the gate's target (0-100) instead of the one the shards recorded;
        shards that recorded different targets may then be merged.
    :raises MergeError: the shards cannot be merged (one line).
    """
    if not shards:
        raise MergeError("no report to merge; give the JSON reports of the shards")
    notes: list[str] = []
    _check_sections(shards)
    _check_distinct(shards)
    notes += _check_project(shards)
    config = _check_config(shards, target_score)
    settings = scoring_settings(config)
    notes += _check_scores(shards, settings)
    lines_of_code = shards[0].report.project.lines_of_code
    audits: list[AuditResult] = []
    for dimension in config.dimensions:
        results = [
            (s.label, _audit(s, dimension))
            for s in shards
            if dimension in s.report.config.dimensions
        ]
        if dimension == "tests" and all(r.tests is not None for _, r in results):
            audits.append(_merge_tests(results))
        elif dimension == "coverage" and all(
            r.coverage is not None for _, r in results if r.status == "ok"
        ):
            audits.append(_merge_coverage(results))
        else:
            audits.append(_merge_static(dimension, results, lines_of_code, shards))
            if len(results) < len(shards):
                audits[-1].notes.append(
                    f"audited by {len(results)} of the {len(shards)} shards (a whole-project "
                    "audit needs one)"
                )

    from pytest_orchestrator import __version__
    from pytest_orchestrator.scoring import evaluate_gate, overall_score

    score = overall_score(audits, settings)
    verdict = evaluate_gate(score, audits, settings)
    if config.path_minimums:
        paths = _path_conditions(shards, audits, config, settings)
        verdict.conditions += paths
        verdict.passed = verdict.passed and all(c.passed for c in paths)
    first = shards[0].report
    report = Report(
        tool=ToolInfo(version=__version__),
        created=datetime.now(timezone.utc),
        # the shards ran side by side: the longest one is the wall time of the whole run
        duration=max(s.report.duration for s in shards),
        project=first.project,
        config=config,
        audits=audits,
        score=score,
        verdict=verdict,
        remote=_merge_remote(shards),
        agents=_merge_agents(shards),
        suppressions=_merge_suppressions(shards, notes),
    )
    return Merged(report=report, notes=notes)


def _path_conditions(
    shards: Sequence[Shard],
    audits: Sequence[AuditResult],
    config: ConfigSummary,
    settings: OrchestrationConfig,
) -> list[GateCondition]:
    """The ``orchestrate_path_minimums`` conditions of the merged report, in their order:
    a coverage group is computed again on the merged coverage
    (:func:`pytest_orchestrator.scoring.path_conditions`); a finding dimension's group is
    the first auditing shard's own condition (every shard audits the whole project, and
    the group's lines of code are counted on its tree, which the merge may not have).

    :raises MergeError: a line that is not ``PATTERN DIMENSION>=N``.
    """
    from pathlib import Path

    from pytest_orchestrator.config import PathMinimum
    from pytest_orchestrator.scoring import path_conditions

    out: list[GateCondition] = []
    for line in config.path_minimums:
        pattern, _, rest = line.rpartition(" ")
        dimension, _, minimum = rest.partition(">=")
        try:
            rule = PathMinimum(pattern=pattern, dimension=dimension, minimum=float(minimum))
        except ValueError:
            raise MergeError(
                f"config.path_minimums has {line!r}; a report has 'PATTERN DIMENSION>=N'"
            ) from None
        name = f"path minimum {rule.pattern} {rule.dimension}"
        if rule.dimension == "coverage":
            one = settings.model_copy(update={"path_minimums": (rule,)})
            out += path_conditions(audits, one, Path.cwd())
            continue
        found = [
            c
            for s in shards
            if rule.dimension in s.report.config.dimensions
            for c in s.report.verdict.conditions
            if c.name == name
        ]
        out.append(
            found[0]
            if found
            else GateCondition(
                name=name,
                passed=False,
                message=f"{rule.pattern} {rule.dimension}: not measured (no shard audited it)",
            )
        )
    return out


def _merge_suppressions(shards: Sequence[Shard], notes: list[str]) -> SuppressionSummary | None:
    """Every shard counts the whole tree's suppressions: the first count (the shards of
    one commit agree; when they do not, a note names the range)."""
    counts = [s.report.suppressions for s in shards if s.report.suppressions is not None]
    if not counts:
        return None
    totals = sorted({c.total for c in counts})
    if len(totals) > 1:
        notes.append(
            f"the shards counted {totals[0]} to {totals[-1]} suppressions (different code?); "
            "the first shard's count is kept"
        )
    return counts[0]


def scoring_settings(config: ConfigSummary) -> OrchestrationConfig:
    """The settings :mod:`pytest_orchestrator.scoring` needs, from a report's ``config``.

    The values were validated when the shard ran; only what JSON could have bent is
    checked again here.

    :raises MergeError: a value the scoring cannot use.
    """
    from pytest_orchestrator.config import OrchestrationConfig

    rules: dict[str, Literal["skip", "zero", "fail"]] = {
        "skip": "skip",
        "zero": "zero",
        "fail": "fail",
    }
    unavailable = rules.get(config.unavailable)
    if unavailable is None:
        raise MergeError(
            f"config.unavailable is {config.unavailable!r}; a report has skip, zero or fail"
        )
    if not 0 <= config.target_score <= 100:
        raise MergeError(f"config.target_score {config.target_score:g} is not from 0 to 100")
    if any(w < 0 for w in config.weights.values()):
        raise MergeError("config.weights has a negative weight")
    return OrchestrationConfig.model_construct(
        target_score=config.target_score,
        dimensions=tuple(config.dimensions),
        fail_on=tuple(config.fail_on),
        weights=dict(config.weights),
        min_scores=dict(config.min_scores),
        unavailable=unavailable,
        allow_unavailable=tuple(config.allow_unavailable),
    )


# -- checks ----------------------------------------------------------------------------------


def _check_sections(shards: Sequence[Shard]) -> None:
    for shard in shards:
        report = shard.report
        if report.loop is not None:
            raise MergeError(
                f"{shard.label}: this run closed gaps with an agent (it changed the code); "
                "merge the reports of audit-only shards (no --orchestrate-agent)"
            )
        for name in type(report).model_fields:
            value = getattr(report, name)
            if name not in _COMBINED and value not in (None, [], {}):
                raise MergeError(
                    f"{shard.label}: its report has a '{name}' section, which merge cannot "
                    "combine yet; run the shards without the option that adds it"
                )


def _check_distinct(shards: Sequence[Shard]) -> None:
    """The same run twice would count its tests twice."""
    seen: dict[datetime, str] = {}
    for shard in shards:
        other = seen.get(shard.report.created)
        if other is not None:
            same = "is given twice" if other == shard.label else f"and {other} are the same run"
            raise MergeError(
                f"{shard.label} {same} (created {shard.report.created.isoformat()}); give "
                "each shard's report once"
            )
        seen[shard.report.created] = shard.label


def _check_project(shards: Sequence[Shard]) -> list[str]:
    from pytest_orchestrator.scoring import plural

    def what(report: Report) -> str:
        p = report.project
        return (
            f"{p.name!r} ({plural(p.files, 'Python file')}, {p.lines_of_code} lines of code in "
            f"{', '.join(p.sources) or 'no package'})"
        )

    first = shards[0]
    for shard in shards[1:]:
        a, b = first.report.project, shard.report.project
        if (a.name, sorted(a.sources), a.files, a.lines_of_code) != (
            b.name,
            sorted(b.sources),
            b.files,
            b.lines_of_code,
        ):
            raise MergeError(
                f"the shards audited different projects or code: {first.label} has "
                f"{what(first.report)}, {shard.label} has {what(shard.report)}; merge "
                "shards of one commit"
            )
    roots = {s.report.project.rootdir for s in shards}
    if len(roots) > 1:
        return [
            f"the shards ran in {len(roots)} different directories; paths are relative to "
            f"each rootdir, the merged report names {shards[0].report.project.rootdir}"
        ]
    return []


def _check_config(shards: Sequence[Shard], target_score: float | None) -> ConfigSummary:
    """The settings of the merged report; the shards' must agree.

    Harmless: a whole-project dimension (lint, security, ``agent:*``) that only some shards
    audited (it is taken from those), and a different target when ``target_score`` decides.
    ``tests`` and ``coverage`` must be in every shard or none: a shard without them would
    leave the merged counts incomplete.
    """
    first = shards[0]
    base = first.report.config
    dimensions = list(dict.fromkeys(d for s in shards for d in s.report.config.dimensions))
    for dimension in ("tests", "coverage"):
        having = [s for s in shards if dimension in s.report.config.dimensions]
        lacking = [s for s in shards if dimension not in s.report.config.dimensions]
        if having and lacking:
            raise MergeError(
                f"{lacking[0].label} did not audit {dimension} but {having[0].label} did: "
                f"every shard must run the {dimension} dimension, or the merged {dimension} "
                "would be incomplete"
            )

    def key(config: ConfigSummary) -> dict[str, object]:
        return {
            "target_score": config.target_score if target_score is None else None,
            "fail_on": sorted(s.value for s in config.fail_on),
            "min_scores": config.min_scores,
            "unavailable": config.unavailable,
            "allow_unavailable": sorted(config.allow_unavailable),
            "path_minimums": config.path_minimums,
        }

    expected = key(base)
    weights = dict(base.weights)
    weights_from = dict.fromkeys(base.weights, first.label)
    for shard in shards[1:]:
        config = shard.report.config
        got = key(config)
        for name, value in expected.items():
            if got[name] != value:
                hint = " (or give --target-score to decide)" if name == "target_score" else ""
                raise MergeError(
                    f"the shards ran with different settings: {name} is {_show(value)} in "
                    f"{first.label} but {_show(got[name])} in {shard.label}; run every shard "
                    f"with the same configuration{hint}"
                )
        for dimension, weight in config.weights.items():
            known = weights.setdefault(dimension, weight)
            other = weights_from.setdefault(dimension, shard.label)
            if known != weight:
                raise MergeError(
                    f"the shards ran with different settings: the weight of {dimension} is "
                    f"{known:g} in {other} but {weight:g} in {shard.label}; run every shard "
                    "with the same configuration"
                )
    update: dict[str, object] = {"dimensions": dimensions, "weights": weights}
    if target_score is not None:
        if not 0 <= target_score <= 100:
            raise MergeError(f"target score {target_score:g} is not from 0 to 100")
        update["target_score"] = float(target_score)
    return base.model_copy(update=update, deep=True)


def _show(value: object) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v:g}" for k, v in sorted(value.items())) or "(none)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _check_scores(shards: Sequence[Shard], settings: OrchestrationConfig) -> list[str]:
    """A shard whose overall score is not the default weighted mean had a scoring hook."""
    from pytest_orchestrator.scoring import overall_score

    odd = [
        s.label
        for s in shards
        if overall_score(s.report.audits, settings).overall != s.report.score.overall
    ]
    if not odd:
        return []
    return [
        f"{', '.join(odd)}: the overall score is not the default weighted mean (a "
        "pytest_orchestrator_score hook?); the merged score is the default weighted mean"
    ]


def _audit(shard: Shard, dimension: str) -> AuditResult:
    result = shard.report.audit(dimension)
    if result is None:
        raise MergeError(
            f"{shard.label}: no '{dimension}' audit although its config lists it; "
            "the report was edited or is incomplete"
        )
    return result


# -- dimensions ------------------------------------------------------------------------------


def _unite(findings: Sequence[Sequence[Finding]]) -> tuple[list[Finding], int]:
    """Findings united by fingerprint (first occurrence kept, in order); and how many
    fingerprints more than one group had."""
    out: dict[str, Finding] = {}
    groups: dict[str, int] = {}
    for group in findings:
        for fp in {f.fingerprint for f in group}:
            groups[fp] = groups.get(fp, 0) + 1
        for finding in group:
            out.setdefault(finding.fingerprint, finding.model_copy(deep=True))
    return list(out.values()), sum(1 for n in groups.values() if n > 1)


def _shard_notes(results: Sequence[tuple[str, AuditResult]]) -> list[str]:
    """The shards' own notes, once each; prefixed with the shard when not every shard has it."""
    out: dict[str, None] = {}
    for label, result in results:
        for note in result.notes:
            common = all(note in r.notes for _, r in results)
            out.setdefault(note if common or len(results) == 1 else f"{label}: {note}")
    return list(out)


def _versions(results: Sequence[tuple[str, AuditResult]]) -> tuple[str | None, list[str]]:
    """The first tool version, and a note when the shards' versions differ."""
    versions = list(dict.fromkeys(r.tool_version for _, r in results if r.tool_version))
    if len(versions) > 1:
        tool = next((r.tool for _, r in results if r.tool), "the tool")
        return versions[0], [f"the shards ran different {tool} versions: {', '.join(versions)}"]
    return (versions[0] if versions else None), []


def _merge_tests(results: Sequence[tuple[str, AuditResult]]) -> AuditResult:
    from pytest_orchestrator.auditors.tests import tests_result

    counts = {name: 0 for name in TestSummary.model_fields}
    for _, result in results:
        assert result.tests is not None
        for name in counts:
            counts[name] += getattr(result.tests, name)
    findings, repeated = _unite([r.findings for _, r in results])
    version, notes = _versions(results)
    merged = tests_result(TestSummary(**counts), findings, version)
    notes.insert(
        0, f"merged from {plural(len(results), 'shard')}: test counts summed, failures united"
    )
    if repeated:
        notes.append(
            f"{repeated} failing test(s) were reported by more than one shard: do the shards "
            "overlap? their counts are summed"
        )
    merged.notes = _shard_notes(results) + notes
    merged.duration = max(r.duration for _, r in results)
    return merged


def _merge_coverage(results: Sequence[tuple[str, AuditResult]]) -> AuditResult:
    from pytest_orchestrator.auditors.cov import coverage_result, line_ranges, parse_line_ranges

    measured = [(label, r) for label, r in results if r.status == "ok"]
    notes = [
        f"{label}: coverage {r.status} ({r.reason}); its lines count as not covered"
        for label, r in results
        if r.status != "ok"
    ]
    if not measured:
        merged = results[0][1].model_copy(deep=True)
        merged.reason = f"no shard measured coverage ({merged.reason})"
        merged.notes = _shard_notes(results) + notes
        return merged

    per_file: dict[str, list[tuple[str, CoverageFile]]] = {}
    for label, result in measured:
        assert result.coverage is not None
        for f in result.coverage.files:
            per_file.setdefault(f.path, []).append((label, f))

    files: list[CoverageFile] = []
    approximate: list[str] = []
    for path in sorted(per_file):
        shard_files = per_file[path]
        label0, f0 = shard_files[0]
        missing: set[int] | None = None
        arcs: set[tuple[int, int]] | None = None
        exact_branches = all(f.missing_branch_arcs is not None for _, f in shard_files)
        for label, f in shard_files:
            if (f.statements, f.branches) != (f0.statements, f0.branches):
                raise MergeError(
                    f"{path} has {f0.statements} statements and {f0.branches} branches in "
                    f"{label0} but {f.statements} and {f.branches} in {label}: the shards ran "
                    "different code or coverage settings"
                )
            try:
                lines = parse_line_ranges(f.missing_lines)
            except ValueError:
                lines = None
            if lines is None or len(lines) != f.missing:
                raise MergeError(
                    f"{label}: coverage of {path} counts {f.missing} missing lines but lists "
                    f"{f.missing_lines!r}; the report was edited or is damaged"
                )
            missing = lines if missing is None else missing & lines
            if exact_branches:
                shard_arcs = {(a, b) for a, b in f.missing_branch_arcs or []}
                if len(shard_arcs) != f.missing_branches:
                    raise MergeError(
                        f"{label}: coverage of {path} counts {f.missing_branches} missing "
                        f"branches but lists {len(shard_arcs)} arcs; the report was edited "
                        "or is damaged"
                    )
                arcs = shard_arcs if arcs is None else arcs & shard_arcs
        assert missing is not None
        if exact_branches:
            assert arcs is not None
            missing_branches = len(arcs)
            arc_list: list[tuple[int, int]] | None = sorted(arcs)
        else:
            missing_branches = min(f.missing_branches for _, f in shard_files)
            arc_list = None
            if f0.branches and len(shard_files) > 1:
                approximate.append(path)
        total = f0.statements + f0.branches
        covered = total - len(missing) - missing_branches
        files.append(
            CoverageFile(
                path=path,
                statements=f0.statements,
                missing=len(missing),
                branches=f0.branches,
                missing_branches=missing_branches,
                percent=round(100.0 * covered / total, 2) if total else 100.0,
                missing_lines=line_ranges(sorted(missing)),
                missing_branch_arcs=arc_list,
            )
        )

    summaries = [r.coverage for _, r in measured if r.coverage is not None]
    measured_by = summaries[0].measured_by
    cores = list(dict.fromkeys(s.core for s in summaries))
    if len({s.measured_by for s in summaries}) > 1:
        notes.append(
            "the shards read different measurements: "
            + ", ".join(dict.fromkeys(s.measured_by for s in summaries))
        )
    if len(cores) > 1:
        notes.append(
            "the shards used different coverage.py cores: " + ", ".join(str(c) for c in cores)
        )
    if approximate:
        notes.append(
            "branch coverage of "
            + ", ".join(approximate)
            + " is an upper bound of what was missed: a shard's report has branch counts "
            "but no missing_branch_arcs (written by an older pytest-orchestrator), so the "
            "fewest branches any shard missed are counted"
        )
    version, version_notes = _versions(measured)
    unparsable = sorted(
        {p for _, r in measured if r.coverage is not None for p in r.coverage.unparsable}
    )
    merged = coverage_result(
        files,
        measured_by=measured_by,
        core=cores[0],
        notes=[],
        severity_map=_coverage_severities(measured),
        unparsable=unparsable,
    )
    merged.tool_version = version
    merged.duration = max(r.duration for _, r in results)
    merged.notes = [
        *_shard_notes(results),
        f"combined from {len(measured)} shards: a line or branch counts as covered when any "
        "shard covered it",
        *notes,
        *version_notes,
    ]
    return merged


def _coverage_severities(results: Sequence[tuple[str, AuditResult]]) -> dict[str, Severity]:
    """``orchestrate_severity_map`` entries for the coverage rules, read off the shards'
    coverage findings (the map itself is not in the report).

    A merged file is uncovered only where every shard reporting it had a finding for it, so
    each merged finding's rule has a severity here.

    :raises MergeError: shards gave one rule different severities (different settings).
    """
    out: dict[str, Severity] = {}
    where: dict[str, str] = {}
    for label, result in results:
        for finding in result.findings:
            key = f"coverage:{finding.rule_id}"
            known = out.setdefault(key, finding.severity)
            where.setdefault(key, label)
            if known != finding.severity:
                raise MergeError(
                    f"the shards ran with different settings: coverage rule "
                    f"{finding.rule_id} is {known.value} in {where[key]} but "
                    f"{finding.severity.value} in {label} (orchestrate_severity_map); run "
                    "every shard with the same configuration"
                )
    return out


def _severity_points(shards: Sequence[Shard]) -> dict[Severity, float]:
    """The points per finding of each severity, read off the shards' finding-formula
    deductions where they show them, else the defaults (``orchestrate_severity_points``
    is not in the report)."""
    from pytest_orchestrator.config import DEFAULT_SEVERITY_POINTS

    points = dict(DEFAULT_SEVERITY_POINTS)
    for shard in shards:
        for audit in shard.report.audits:
            for deduction in audit.deductions:
                match = _POINTS.search(deduction.reason)
                if match:
                    try:
                        points[Severity(match.group(1))] = float(match.group(2))
                    except ValueError:
                        continue
    return points


def _merge_static(
    dimension: str,
    results: Sequence[tuple[str, AuditResult]],
    lines_of_code: int,
    shards: Sequence[Shard],
) -> AuditResult:
    ran = [(label, r) for label, r in results if r.status == "ok"]
    notes = [
        f"{label}: {dimension} {r.status} ({r.reason}); taken from the shards where it ran"
        for label, r in results
        if r.status != "ok" and ran
    ]
    if not ran:
        merged = results[0][1].model_copy(deep=True)
        merged.notes = _shard_notes(results)
        return merged

    def signature(result: AuditResult) -> tuple[float | None, list[str]]:
        return result.score, sorted(f.fingerprint for f in result.findings)

    version, version_notes = _versions(ran)
    if all(signature(r) == signature(ran[0][1]) for _, r in ran):
        merged = ran[0][1].model_copy(deep=True)
        merged.notes = [*_shard_notes(results), *notes, *version_notes]
        return merged

    from pytest_orchestrator.scoring import finding_score

    findings, _ = _unite([r.findings for _, r in ran])
    points = _severity_points(shards)
    formula = all(
        finding_score(dimension, r.findings, lines_of_code, points)[0] == r.score for _, r in ran
    )
    if formula:
        score, deductions = finding_score(dimension, findings, lines_of_code, points)
        how = "scored by the finding formula"
        merged = ran[0][1].model_copy(deep=True)
        merged.score, merged.deductions = score, deductions
    else:
        label, merged = min(ran, key=lambda item: item[1].score or 0.0)
        merged = merged.model_copy(deep=True)
        how = (
            f"the score is the lowest shard score ({label}): the shards' scores are not "
            "the finding formula's"
        )
    merged.findings = findings
    merged.duration = max(r.duration for _, r in ran)
    merged.tool_version = version
    scores = ", ".join(f"{label} {r.score:.2f}" for label, r in ran if r.score is not None)
    merged.notes = [
        *_shard_notes(results),
        f"the shards disagree ({scores}; {len(findings)} distinct findings): findings "
        f"united by fingerprint, {how}",
        *notes,
        *version_notes,
    ]
    return merged


# -- sections --------------------------------------------------------------------------------


def _merge_remote(shards: Sequence[Shard]) -> RemoteRun | None:
    """The first shard's remote run, with the tests and round trips of every shard."""
    runs = [s.report.remote for s in shards if s.report.remote is not None]
    if not runs:
        return None
    merged = runs[0].model_copy(deep=True)
    merged.tests = sum(r.tests for r in runs)
    merged.round_trips = sum(r.round_trips for r in runs)
    merged.duration = max(r.duration for r in runs)
    merged.timed_out = any(r.timed_out for r in runs)
    merged.unmapped = list(dict.fromkeys(p for r in runs for p in r.unmapped))
    merged.problems = list(dict.fromkeys(p for r in runs for p in r.problems))
    return merged


def _merge_agents(shards: Sequence[Shard]) -> AgentUsage | None:
    """Every shard's agent calls (each shard ran its own LLM audits), spending summed."""
    usages = [s.report.agents for s in shards if s.report.agents is not None]
    if not usages:
        return None
    budgets = [u.budget_usd for u in usages if u.budget_usd is not None]
    return AgentUsage(
        budget_usd=sum(budgets) if budgets else None,
        spent_usd=round(sum(u.spent_usd for u in usages), 6),
        calls=[c.model_copy(deep=True) for u in usages for c in u.calls],
    )
