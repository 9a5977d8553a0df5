"""The github report: workflow-command escaping, annotation limits, step summary, outputs.

The runner's side is emulated from actions/runner's sources (``ActionCommand.TryParseV2`` and
``TryParse`` in ``src/Runner.Common/ActionCommand.cs``, stop/resume in
``src/Runner.Worker/ActionCommandManager.cs``, the ``name<<DELIMITER`` file-command format), so
that the tests check what GitHub would do with our output, not only what we print.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_orchestrator.models import (
    AuditResult,
    BaselineComparison,
    ConfigSummary,
    Deduction,
    Discovery,
    Finding,
    NewCode,
    Report,
    Score,
    Severity,
    ToolInfo,
    Verdict,
)
from pytest_orchestrator.reports import github
from pytest_orchestrator.reports.github import (
    ANNOTATION_LIMITS,
    RESUME_ENV,
    SUMMARY_LIMIT,
    annotate,
    command,
    escape_data,
    escape_property,
    fit_summary,
    ordered_findings,
    output_lines,
    path_prefix,
    publish,
)

# ---------------------------------------------------------------------------------------------
# The runner, emulated


#: Commands the runner knows (ActionCommandManager's extensions); others are not commands.
RUNNER_COMMANDS = {
    "error",
    "warning",
    "notice",
    "debug",
    "group",
    "endgroup",
    "echo",
    "add-mask",
    "add-path",
    "set-env",
    "set-output",
    "save-state",
    "add-matcher",
    "remove-matcher",
    "stop-commands",
}


@dataclass
class Command:
    """A workflow command as the runner parsed it."""

    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def _unescape(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    for token, replacement in pairs:
        text = text.replace(replacement, token)
    return text


_DATA = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))
_PROPERTY = (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25"))
_V1 = ((";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D"), ("%", "%25"))


def _parse_v2(line: str, known: set[str]) -> Command | None:
    message = line.lstrip()
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    info = message[2:end]
    name, _, props = info.partition(" ")
    if name not in known:
        return None
    command = Command(name)
    for part in props.strip().split(","):
        key, sep, value = part.partition("=")
        if part and sep and key and value:
            command.properties[key] = _unescape(value, _PROPERTY)
    command.data = _unescape(message[end + 2 :], _DATA)
    return command


def _parse_v1(line: str, known: set[str]) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    name, _, props = line[start + 3 : end].partition(" ")
    if name not in known:
        return None
    command = Command(name)
    for part in props.split(";"):
        key, sep, value = part.partition("=")
        if part and sep and key and value:
            command.properties[key] = _unescape(value, _V1)
    command.data = _unescape(line[end + 1 :], _V1)
    return command


def runner_commands(output: str) -> list[Command]:
    """The commands the runner would process in a step's ``output``, stop/resume included
    (a resume shows as the command ``resume``)."""
    known = set(RUNNER_COMMANDS)
    stop_token: str | None = None
    processed: list[Command] = []
    for line in re.split(r"\r\n|\r|\n", output):
        parsed = _parse_v2(line, known) or _parse_v1(line, known)
        if parsed is None:
            continue
        if stop_token is not None:
            if parsed.name.lower() == stop_token.lower():
                known.discard(stop_token)
                stop_token = None
                processed.append(Command("resume"))
            continue
        if parsed.name == "stop-commands":
            assert parsed.data and parsed.data not in known, "the runner refuses this token"
            stop_token = parsed.data
            known.add(stop_token)
        processed.append(parsed)
    return processed


def read_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` as the runner reads it: ``name=value`` or ``name<<DELIMITER``."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)  # ValueError: unterminated heredoc
            values[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            name, sep, value = line.partition("=")
            assert sep, f"not an output line: {line!r}"
            values[name] = value
            index += 1
    return values


# ---------------------------------------------------------------------------------------------
# Reports


def finding(
    severity: str = "P0",
    message: str = "boom",
    path: str | None = "pkg/mod.py",
    line: int | None = 3,
    rule: str = "R1",
    dimension: str = "lint",
) -> Finding:
    return Finding(
        dimension=dimension,
        severity=Severity(severity),
        rule_id=rule,
        message=message,
        path=path,
        line=line,
        tool="ruff",
        fingerprint="0123456789abcdef",
    )


def report(
    findings: list[Finding],
    passed: bool = False,
    rootdir: str = "/work/p",
    deductions: list[Deduction] | None = None,
    fail_on: tuple[str, ...] = ("P0",),
) -> Report:
    return Report(
        tool=ToolInfo(version="0"),
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
        duration=1.0,
        project=Discovery(name="p", rootdir=rootdir, sources=["pkg"], files=1, lines_of_code=10),
        config=ConfigSummary(
            target_score=90,
            dimensions=["lint"],
            fail_on=[Severity(s) for s in fail_on],
            weights={"lint": 20},
            min_scores={},
            unavailable="skip",
        ),
        audits=[
            AuditResult(
                dimension="lint",
                status="ok",
                score=72.5,
                findings=findings,
                deductions=deductions or [],
            )
        ],
        score=Score(overall=72.5, dimensions=[], deductions=[]),
        verdict=Verdict(passed=passed, target=90, score=72.5, conditions=[]),
    )


@pytest.fixture
def actions_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a GitHub Actions step, with empty output and summary files."""
    (tmp_path / "output").write_text("")
    (tmp_path / "summary").write_text("")
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_WORKSPACE": "/work/p",
    }


def published(
    rep: Report, environ: dict[str, str], paths: dict[str, Path] | None = None
) -> list[str]:
    lines: list[str] = []
    publish(rep, environ, lines.append, paths or {})
    assert all("\n" not in line and "\r" not in line for line in lines)
    return lines


# ---------------------------------------------------------------------------------------------
# Escaping


def test_escaping_follows_the_toolkit() -> None:
    assert escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert escape_property("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext%3A a%2Cb"
    assert escape_data("%0A") == "%250A"  # an escape sequence in the data stays data
    assert (
        command("error", {"file": "a,b.py", "line": 3, "col": None, "title": ""}, "m:1\n2")
        == "::error file=a%2Cb.py,line=3::m:1%0A2"
    )
    assert command("notice", {}, "x") == "::notice::x"


INJECTIONS = [
    "x\n::set-output name=passed::true",
    "x\r\n::add-mask::secret",
    "x\n::stop-commands::abc\n::error::forged",
    "::warning file=a.py::forged",
    "%0A::set-env name=A::b",
]


@pytest.mark.parametrize("message", INJECTIONS)
def test_a_message_cannot_forge_a_command(message: str) -> None:
    line = command("error", {"file": "a.py", "title": message}, message)
    assert [c.name for c in runner_commands(line)] == ["error"]
    parsed = runner_commands(line)[0]
    assert parsed.data == message
    assert parsed.properties == {"file": "a.py", "title": message}


#: The runner trims the property list (``propertiesStr.Trim()``): a value cannot start or end
#: it with whitespace; annotate() strips paths and titles for that reason.
EDGELESS = st.text().filter(lambda s: s == s.strip())


@given(
    st.text(),
    EDGELESS,
    EDGELESS,
    st.one_of(st.none(), st.integers(min_value=1, max_value=10**6)),
)
def test_any_text_round_trips_through_the_runner(
    message: str, path: str, title: str, line: int | None
) -> None:
    emitted = command("warning", {"file": path, "line": line, "title": title}, message)
    assert "\n" not in emitted and "\r" not in emitted
    parsed = runner_commands(emitted)
    assert len(parsed) == 1
    assert parsed[0].name == "warning"
    assert parsed[0].data == message
    expected = {"file": path, "line": str(line) if line else "", "title": title}
    assert parsed[0].properties == {k: v for k, v in expected.items() if v}


@given(st.text())
def test_escaped_properties_hold_no_separator(text: str) -> None:
    escaped = escape_property(text)
    assert not {",", ":", "\n", "\r"} & set(escaped)
    assert _unescape(escaped, _PROPERTY) == text


# ---------------------------------------------------------------------------------------------
# Annotations


def test_fifteen_p0_findings_give_ten_errors_and_a_note_of_five_more() -> None:
    found = annotate([finding("P0", f"m{i}", line=i + 1) for i in range(15)])
    assert len(found.lines) == 10
    assert all(line.startswith("::error file=pkg/mod.py,line=") for line in found.lines)
    # worst first and in order: the first ten findings are the ones annotated
    assert [runner_commands(line)[0].data for line in found.lines] == [f"m{i}" for i in range(10)]
    assert found.dropped == {"P0": 5}
    note = found.note()
    assert note is not None and note.startswith("5 more findings were not annotated (5 P0)")


def test_levels_and_per_kind_limits() -> None:
    findings = (
        [finding("P1")] * 3
        + [finding("P2")] * 12
        + [finding("P3")] * 11
        + [finding("P4")] * 2
        + [finding("P0")]  # limits are per kind: errors still have room
    )
    found = annotate(findings)
    names = [runner_commands(line)[0].name for line in found.lines]
    assert names.count("error") == 4
    assert names.count("warning") == ANNOTATION_LIMITS["warning"]
    assert names.count("notice") == ANNOTATION_LIMITS["notice"]
    assert found.dropped == {"P2": 2, "P3": 1}
    assert found.info == 2
    assert found.note() == (
        "3 more findings were not annotated (2 P2, 1 P3): GitHub shows at most 10 errors, "
        "10 warnings, 10 notices per step; 2 P4 (info) findings are never annotated. "
        "Every finding is in the reports."
    )
    assert annotate([finding("P3")]).note() is None


def test_a_failing_severity_is_an_error() -> None:
    found = annotate([finding("P2"), finding("P3")], fail_on=("P0", "P2"))
    assert [runner_commands(line)[0].name for line in found.lines] == ["error", "notice"]


def test_new_findings_are_annotated_first() -> None:
    old_p0, old_p1 = finding("P0", "old p0"), finding("P1", "old p1")
    on_new_code, new_in_baseline = finding("P2", "new code"), finding("P3", "new vs baseline")
    on_new_code.fingerprint, new_in_baseline.fingerprint = "a" * 16, "b" * 16
    rep = report([old_p1, new_in_baseline, on_new_code, old_p0])
    assert [f.message for f in ordered_findings(rep)] == [
        "old p0",
        "old p1",
        "new code",
        "new vs baseline",
    ]
    rep.new_code = NewCode(
        base="origin/main", merge_base="1" * 40, head="2" * 40, findings=["a" * 16]
    )
    rep.baseline = BaselineComparison(
        path="base.json",
        created=datetime(2026, 1, 1, tzinfo=timezone.utc),
        score=80.0,
        new_fingerprints=["b" * 16],
    )
    assert [f.message for f in ordered_findings(rep)] == [
        "new code",
        "new vs baseline",
        "old p0",
        "old p1",
    ]


def test_annotation_content_title_file_and_recommendation() -> None:
    f = finding("P1", "eval() is evil", rule="B307", dimension="security")
    f.recommendation = "use ast.literal_eval"
    f.path, f.line = "shop/pricing.py", 6
    (parsed,) = runner_commands(annotate([f], prefix="sub/").lines[0])
    assert parsed.name == "error"
    assert parsed.properties == {
        "file": "sub/shop/pricing.py",
        "line": "6",
        "title": "P1 security: B307",
    }
    assert parsed.data == "eval() is evil\nuse ast.literal_eval"
    # a finding without a path is annotated on the job, without file or line
    (parsed,) = runner_commands(annotate([finding(path=None, line=None)]).lines[0])
    assert parsed.properties == {"title": "P0 lint: R1"}


def test_annotations_are_redacted_and_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "hunter2-hunter2")
    key = "sk-ant-" + "a1" * 20
    message = f"leaked {key} and hunter2-hunter2 \x1b[31mred\x1b[0m " + "x" * 10_000
    (line,) = annotate([finding(message=message)]).lines
    assert key not in line and "hunter2" not in line and "\x1b" not in line
    data = runner_commands(line)[0].data
    assert data.startswith("leaked *** and *** red x")
    assert len(data) == github.MESSAGE_LIMIT and data.endswith("…")


def test_path_prefix_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "sub" / "proj").mkdir(parents=True)
    assert path_prefix(str(tmp_path / "sub" / "proj"), str(tmp_path)) == "sub/proj/"
    assert path_prefix(str(tmp_path), str(tmp_path)) == ""
    assert path_prefix(str(tmp_path), str(tmp_path / "sub")) == ""  # outside: as it is
    assert path_prefix(str(tmp_path), None) == ""


# ---------------------------------------------------------------------------------------------
# Step summary


def test_fit_summary_cuts_at_a_line_boundary_counting_utf8_bytes() -> None:
    lines = [f"| {i} | {'é' * 60} |" for i in range(20_000)]  # 2.4 MB, 1.3 M characters
    text = "\n".join(lines) + "\n"
    assert len(text) < 2 * SUMMARY_LIMIT < len(text.encode())
    fitted = fit_summary(text, SUMMARY_LIMIT)
    size = len(fitted.encode("utf-8"))
    assert SUMMARY_LIMIT - 2048 < size <= SUMMARY_LIMIT
    body, _, note = fitted.partition("\n\n> **Summary truncated**")
    assert note.endswith("job log.\n")
    kept = body.split("\n")
    assert kept[-1] == ""  # ends with a whole line
    assert kept[:-1] == lines[: len(kept) - 1]
    assert fit_summary("short\n", SUMMARY_LIMIT) == "short\n"
    assert fit_summary("x" * 500, 100) == ""  # not even the note fits


def test_fit_summary_closes_a_code_block_it_cuts() -> None:
    text = "intro\n```\n" + "code line\n" * 1000 + "```\n"
    fitted = fit_summary(text, 2000)
    assert len(fitted.encode()) <= 2000
    assert fitted.count("```") == 2
    assert fitted.rindex("```") < fitted.index("> **Summary truncated**")


def test_summary_of_a_huge_report_stays_under_the_limit(
    actions_env: dict[str, str], tmp_path: Path
) -> None:
    deductions = [
        Deduction(dimension="lint", reason=f"{i}: " + "ü" * 100, points=0.0) for i in range(10_000)
    ]
    rep = report([finding("P0")] * 12, deductions=deductions)
    Path(actions_env["GITHUB_STEP_SUMMARY"]).write_text("earlier step output\n" * 1000)
    lines = published(rep, actions_env)
    text = Path(actions_env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) <= SUMMARY_LIMIT
    assert text.startswith("earlier step output\n")
    assert "# Quality gate FAILED" in text
    assert "> **Summary truncated**" in text
    assert text.endswith(
        "> 2 more findings were not annotated (2 P0): GitHub shows at most 10 errors, "
        "10 warnings, 10 notices per step. Every finding is in the reports.\n"
    )
    assert lines[-2:] == [
        "github report: wrote 10 annotations, step summary, step outputs (score, passed, report)",
        "github report: 2 more findings were not annotated (2 P0): GitHub shows at most 10 "
        "errors, 10 warnings, 10 notices per step. Every finding is in the reports.",
    ]


def test_a_full_summary_is_left_alone(actions_env: dict[str, str]) -> None:
    summary_file = Path(actions_env["GITHUB_STEP_SUMMARY"])
    summary_file.write_bytes(b"x" * SUMMARY_LIMIT)
    lines = published(report([finding()]), actions_env)
    assert summary_file.stat().st_size == SUMMARY_LIMIT
    assert lines[-1] == (
        "github report: the step summary is full (1 MiB): the report was not added"
    )


# ---------------------------------------------------------------------------------------------
# Step outputs


def test_output_lines_use_the_heredoc_form() -> None:
    assert output_lines({"score": "72.50", "passed": "false"}, delimiter="EOF") == (
        "score<<EOF\n72.50\nEOF\npassed<<EOF\nfalse\nEOF\n"
    )
    multi = output_lines({"a": "line 1\nb=2\nEOF-not\n"})
    assert read_outputs(multi) == {"a": "line 1\nb=2\nEOF-not\n"}
    first, second = output_lines({"a": "1"}), output_lines({"a": "1"})
    assert first.split("\n")[0] != second.split("\n")[0]  # a random delimiter each time
    assert re.fullmatch(r"a<<ghadelimiter_[0-9a-f-]{36}", first.split("\n")[0])
    with pytest.raises(ValueError, match="delimiter"):
        output_lines({"a": "x EOF y"}, delimiter="EOF")
    with pytest.raises(ValueError, match="invalid output name"):
        output_lines({"a\nb": "1"})


def test_publish_writes_outputs_summary_and_annotations(
    actions_env: dict[str, str], tmp_path: Path
) -> None:
    json_report = tmp_path / "r.json"
    json_report.write_text("{}")
    rep = report(
        [finding("P1", "x\n::set-output name=passed::true"), finding("P2"), finding("P4")],
        rootdir="/work/p/sub",
    )
    lines = published(rep, actions_env, {"json": json_report, "sarif": tmp_path / "missing.sarif"})
    commands = runner_commands("\n".join(lines))
    assert [c.name for c in commands] == ["error", "warning"]
    assert commands[0].properties["file"] == "sub/pkg/mod.py"
    assert commands[0].data == "x\n::set-output name=passed::true"
    outputs = read_outputs(Path(actions_env["GITHUB_OUTPUT"]).read_text())
    assert outputs == {"score": "72.50", "passed": "false", "report": str(json_report)}
    summary = Path(actions_env["GITHUB_STEP_SUMMARY"]).read_text()
    assert summary.startswith("# Quality gate FAILED")
    assert summary.endswith(
        "> 1 P4 (info) findings are never annotated. Every finding is in the reports.\n"
    )


def test_publish_resumes_commands_only_for_its_annotations(actions_env: dict[str, str]) -> None:
    token = "ab" * 16
    lines = published(report([finding("P0"), finding("P3")]), {**actions_env, RESUME_ENV: token})
    assert lines[0] == f"::{token}::"
    assert lines[3] == f"::stop-commands::{token}"
    # as the runner sees the whole step: stopped by the action, resumed, stopped again
    log = [f"::stop-commands::{token}", "::error::forged by a test", *lines, "::error::late"]
    assert [c.name for c in runner_commands("\n".join(log))] == [
        "stop-commands",
        "resume",
        "error",
        "notice",
        "stop-commands",
    ]
    # a token that is not ours (not hex) is not written
    lines = published(report([finding()]), {**actions_env, RESUME_ENV: "x\n::add-mask::y"})
    assert lines[0].startswith("::error file=")


def test_outside_github_actions_publish_does_nothing(tmp_path: Path) -> None:
    env = {"GITHUB_OUTPUT": str(tmp_path / "o"), "GITHUB_STEP_SUMMARY": str(tmp_path / "s")}
    lines = published(report([finding()]), env)
    assert lines == []
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_missing_and_unwritable_files_give_one_line_each(tmp_path: Path) -> None:
    lines = published(report([finding()]), {"GITHUB_ACTIONS": "true"})
    assert lines[1:] == [
        "github report: wrote 1 annotations",
        "github report: GITHUB_STEP_SUMMARY is not set: no step summary written",
        "github report: GITHUB_OUTPUT is not set: no step outputs written",
    ]
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path),  # a directory
        "GITHUB_OUTPUT": str(tmp_path / "no" / "such" / "dir" / "out"),
    }
    lines = published(report([finding()]), env)
    assert (
        lines[-2]
        == f"github report: cannot write the step summary to {str(tmp_path)!r}: Is a directory"
    )
    assert lines[-1].startswith("github report: cannot write the step outputs to ")
    assert lines[-1].endswith(": No such file or directory")


def test_summary_and_output_files_are_created_when_missing(tmp_path: Path) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    lines = published(report([finding()]), env)
    assert lines[-1] == (
        "github report: wrote 1 annotations, step summary, step outputs (score, passed, report)"
    )
    assert (tmp_path / "summary").read_text().startswith("# Quality gate FAILED")
    assert read_outputs((tmp_path / "output").read_text())["score"] == "72.50"


def test_outputs_that_cannot_be_written_give_one_line(
    actions_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(github, "outputs", lambda report, paths: {"bad name": "1"})
    lines = published(report([finding()]), actions_env)
    assert (
        lines[-1] == "github report: cannot write the step outputs: invalid output name 'bad name'"
    )
    assert Path(actions_env["GITHUB_OUTPUT"]).read_text() == ""


def test_a_summary_that_cannot_be_rendered_gives_one_line(
    actions_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(report: Report, links: str | None = None) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr("pytest_orchestrator.reports.markdown.render", broken)
    lines = published(report([finding()]), actions_env)
    assert (
        lines[-1] == "github report: cannot render the step summary: RuntimeError('renderer bug')"
    )
    assert read_outputs(Path(actions_env["GITHUB_OUTPUT"]).read_text())["passed"] == "false"


def test_secrets_stay_out_of_the_summary(actions_env: dict[str, str]) -> None:
    key = "ghp_" + "Z" * 36
    published(report([finding(message=f"token {key}")]), actions_env)
    summary = Path(actions_env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "token ***" in summary and key not in summary


# ---------------------------------------------------------------------------------------------
# In a real pytest session


def test_github_report_in_a_session(
    demo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("output", "summary"):
        (tmp_path / name).write_text("")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(demo.path.parent))
    monkeypatch.delenv(RESUME_ENV, raising=False)
    result = demo.runpytest_subprocess(
        "--orchestrate", "--orchestrate-report=github", "--orchestrate-report=json:out/r.json"
    )
    assert result.ret == 1  # a test failed
    sub = demo.path.name
    commands = runner_commands(result.stdout.str())
    assert [(c.name, c.properties.get("file"), c.properties.get("line")) for c in commands] == [
        ("error", f"{sub}/tests/test_cart.py", "30"),
        ("error", f"{sub}/shop/pricing.py", "6"),
        ("warning", f"{sub}/shop/export.py", None),
        ("warning", f"{sub}/shop/cart.py", "3"),
        ("notice", f"{sub}/shop/pricing.py", "6"),
    ]
    assert commands[0].properties["title"] == "P0 tests: test-failed"
    outputs = read_outputs((tmp_path / "output").read_text())
    saved = json.loads(Path(outputs["report"]).read_text())
    assert outputs == {
        "score": f"{saved['score']['overall']:.2f}",
        "passed": "false",
        "report": str(demo.path / "out" / "r.json"),
    }
    assert (tmp_path / "summary").read_text().startswith("# Quality gate FAILED")
    result.stdout.fnmatch_lines(["github report: wrote 5 annotations, step summary, *"])


def test_github_report_outside_actions_in_a_session(
    demo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    result = demo.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests", "--orchestrate-report=github"
    )
    assert result.ret == 1
    assert runner_commands(result.stdout.str()) == []
    assert "github report" not in result.stdout.str()
    result.stdout.fnmatch_lines(["Quality gate FAILED*"])  # the session reported as usual


def test_the_summary_links_findings_to_their_lines(actions_env: dict[str, str]) -> None:
    environ = {
        **actions_env,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_SHA": "0123abc",
    }
    rep = report([finding()])
    published(rep, environ)
    summary = Path(actions_env["GITHUB_STEP_SUMMARY"]).read_text()
    [found] = rep.findings()
    assert f"(https://github.com/acme/shop/blob/0123abc/{found.path}#L{found.line})" in summary
