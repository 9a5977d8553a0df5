"""Reading an audit agent's answer (untrusted text) into an AgentAudit, and keeping its findings
that point into the repository."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import jsonschema
import pytest
from fakes import SEEDS_REPORT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_orchestrator.agents.parse import (
    EXCERPT_MAX,
    MAX_FINDINGS,
    MAX_RECOMMENDATIONS,
    MAX_TEXT,
    TITLE_MAX,
    AgentAudit,
    AgentFinding,
    ParseError,
    audit_schema,
    clean_findings,
    parse_audit,
)
from pytest_orchestrator.models import Severity

P0, P1, P2, P3, P4 = Severity.P0, Severity.P1, Severity.P2, Severity.P3, Severity.P4

SEED_EXAMPLE = SEEDS_REPORT


def brief(audit: AgentAudit) -> list[tuple[str, str, str | None, int | None]]:
    return [(f.severity.value, f.title, f.path, f.line) for f in audit.findings]


def markdown(text: str) -> AgentAudit:
    audit, how = parse_audit(text)
    assert how == "markdown"
    return audit


# --- the seeds' format -------------------------------------------------------------------


def test_seed_example() -> None:
    audit, how = parse_audit(SEED_EXAMPLE)
    assert how == "markdown"
    assert audit.score == 75.0
    assert brief(audit) == [
        (
            "P0",
            "Missing error handling in FastAPI endpoints",
            "addons/ai_service/controllers/api.py",
            45,
        ),
        (
            "P0",
            "SQL injection vulnerability in query builder",
            "addons/ai_service/models/query.py",
            128,
        ),
        ("P1", "No rate limiting on API endpoints", "addons/ai_service/controllers/api.py", 67),
        ("P1", "Missing input validation for user data", "addons/ai_service/models/user.py", 34),
    ]
    assert audit.recommendations == [
        "Implement try-except blocks in all API endpoints",
        "Use parameterized queries to prevent SQL injection",
        "Add rate limiting middleware with Redis",
        "Implement Pydantic models for input validation",
    ]
    assert audit.summary is None


def test_seed_example_with_crlf_line_ends_reads_the_same() -> None:
    assert parse_audit(SEED_EXAMPLE.replace("\n", "\r\n")) == parse_audit(SEED_EXAMPLE)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[P0] Title (src/app.py:45)", ("P0", "Title", "src/app.py", 45)),
        ("- [P1] Title (src/app.py)", ("P1", "Title", "src/app.py", None)),
        ("1. [P2] Title (src/app.py:45:3)", ("P2", "Title", "src/app.py", 45)),
        ("- **[P3]** Title — `src/app.py:9`", ("P3", "Title", "src/app.py", 9)),
        ("[p4] lower-case tag (Dockerfile)", ("P4", "lower-case tag", "Dockerfile", None)),
        ("(P0) In parentheses (a/b.py, line 7)", ("P0", "In parentheses", "a/b.py", 7)),
        ("P1: Bare code (a/b.py#L12)", ("P1", "Bare code", "a/b.py", 12)),
        ("[Critical] A word tag (x.py:1)", ("P0", "A word tag", "x.py", 1)),
        ("[HIGH] Upper word", ("P1", "Upper word", None, None)),
        ("Medium: bare word with colon", ("P2", "bare word with colon", None, None)),
        ("[Crítico] Spanish word tag", ("P0", "Spanish word tag", None, None)),
        ("[P0 - Critical] Code and word", ("P0", "Code and word", None, None)),
        ("🔴 [P0] Emoji first", ("P0", "Emoji first", None, None)),
        (
            "[P1] Bare location at the end src/x.py:7.",
            ("P1", "Bare location at the end src/x.py:7.", "src/x.py", 7),
        ),
        ("[P1] Named in `views.py` line 40", ("P1", "Named in views.py line 40", "views.py", 40)),
        ("[P2] Not a location (see the docs)", ("P2", "Not a location (see the docs)", None, None)),
        (
            "[P2] A URL is not a path (https://example.com/a.py)",
            ("P2", "A URL is not a path (https://example.com/a.py)", None, None),
        ),
        ("[P2] Line zero is no line (a.py:0)", ("P2", "Line zero is no line", "a.py", None)),
    ],
)
def test_tagged_lines(line: str, expected: tuple[str, str, str | None, int | None]) -> None:
    assert brief(markdown(line)) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "[P9] Not a severity",
        "[Note] Not a severity",
        "Note: not a severity",
        "P0: 2",
        "- Critical: none",
        "[P1] 3 issues",
        "Somewhere in the middle [P0] is no tag",
        "```\n[P0] Inside a code block\n```",
        "    [P0] Indented code block",
        "<!-- [P0] html comment -->",
    ],
)
def test_lines_that_are_not_findings(text: str) -> None:
    with pytest.raises(ParseError):
        parse_audit(text)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("**Score:** 75/100", 75.0),
        ("Score: 75/100", 75.0),
        ("**Score**: 75", 75.0),
        ("__Score__ = 29/100", 29.0),
        ("## Score: 88", 88.0),
        ("Overall score: 62 / 100", 62.0),
        ("Score (0-100): 40", 40.0),
        ("**Puntuación:** 80/100", 80.0),
        ("Puntuación general: 70,5", 70.5),
        ("Score: 7.5/10", 75.0),
        ("Score: 90%", 90.0),
        ("Score: 0/100", 0.0),
        ("Score: 100/100", 100.0),
        ("| **Score** | 64/100 |\n|---|---|\n| Date | today |", 64.0),
        ("Score: 150/100\nScore: 60", 60.0),
        ("Score: 101\nScore: 99", 99.0),
        ("Score: -5\nScore: 5", 5.0),
        ("Score: 12/0\nScore: 12", 12.0),
        ("Score: 75/100\nScore: 20/100", 75.0),
    ],
)
def test_score_forms(text: str, score: float) -> None:
    assert markdown(text).score == score


@pytest.mark.parametrize(
    "text",
    ["Score: 101", "Score: 150/100", "Score: -5", "Score: 1000", "Scores: 50", "Our score is 50"],
)
def test_scores_out_of_range_or_not_at_line_start_are_ignored(text: str) -> None:
    with pytest.raises(ParseError):
        parse_audit(text)


def test_severity_headings_give_their_severity_to_untagged_items() -> None:
    audit = markdown(
        """\
# Audit

Overall score: 62 / 100

## Critical
- SQL injection in query.py:128
  - Fix: use parameterized queries
  - also affects the reports module
- Hard-coded secret key (settings.py)

Some prose under the heading is not a finding.

### High (P1)
- No rate limiting
- [P3] A tag beats the heading (a.py:2)

## Hallazgos Medios
- Slow query in `db/models.py:40`

## Summary
- Plain items under a neutral heading are not findings
- P0: 2
- Critical: none

## High-level overview
- "High" in a compound word is no severity
"""
    )
    assert audit.score == 62.0
    assert brief(audit) == [
        ("P0", "SQL injection in query.py:128", "query.py", 128),
        ("P0", "Hard-coded secret key", "settings.py", None),
        ("P1", "No rate limiting", None, None),
        ("P3", "A tag beats the heading", "a.py", 2),
        ("P2", "Slow query in db/models.py:40", "db/models.py", 40),
    ]
    assert audit.findings[0].recommendation == "use parameterized queries"


def test_headings_with_labelled_bodies_are_findings() -> None:
    audit = markdown(
        """\
# Report

### SQL injection in query builder
**Severity:** P0
**File:** `models/query.py:128`
**Recommendation:** Use bound parameters

### Weak hashing
- Severidad: Alta
- Archivo: auth/hash.py, line 9

### Just a heading
Some prose, no severity.

## Critical (P0)

### Secrets in the repository
- File: config/settings.py
- Line: 3

### A group heading
- An untagged item under it (app/main.py:5)
"""
    )
    assert brief(audit) == [
        ("P0", "SQL injection in query builder", "models/query.py", 128),
        ("P1", "Weak hashing", "auth/hash.py", 9),
        ("P0", "Secrets in the repository", "config/settings.py", 3),
        ("P0", "An untagged item under it", "app/main.py", 5),
    ]
    assert audit.findings[0].recommendation == "Use bound parameters"


def test_tagged_headings_are_findings_and_label_lines_complete_them() -> None:
    audit = markdown(
        """\
### [P1] Missing CSRF protection
Location: web/views.py:40
Fix: enable the CSRF middleware

[P2] Slow endpoint
File: api/slow.py
Line: 12
Recommendation: cache the result
"""
    )
    assert brief(audit) == [
        ("P1", "Missing CSRF protection", "web/views.py", 40),
        ("P2", "Slow endpoint", "api/slow.py", 12),
    ]
    assert [f.recommendation for f in audit.findings] == [
        "enable the CSRF middleware",
        "cache the result",
    ]


def test_tables_with_a_severity_column() -> None:
    audit = markdown(
        """\
## Findings

| Severity | Issue | File | Line | Recommendation |
|---|---|---|---|---|
| 🔴 Critical | Missing auth on admin | `admin.py` | 12 | Add a permission check |
| P2 | Slow query | db/models.py:40 | | Add an index |
| Low | Typo in docstring | a.py | x | |
| Unknown | No severity, no heading | b.py | | |
| P1 | 2 | c.py | | |

| Severidad | Descripción | Ubicación |
|---|---|---|
| Alta | Sin validación de entrada | models/user.py:34 |

| Severity | Count |
|---|---|
| P0 | 2 |

## Critical

| Title | Location |
|---|---|
| Untagged row under a severity heading | x/y.py:3 |
"""
    )
    assert brief(audit) == [
        ("P0", "Missing auth on admin", "admin.py", 12),
        ("P2", "Slow query", "db/models.py", 40),
        ("P3", "Typo in docstring", "a.py", None),
        ("P1", "Sin validación de entrada", "models/user.py", 34),
        ("P0", "Untagged row under a severity heading", "x/y.py", 3),
    ]
    assert [f.recommendation for f in audit.findings[:3]] == [
        "Add a permission check",
        "Add an index",
        None,
    ]


def test_recommendations_section() -> None:
    audit = markdown(
        """\
Score: 90

## Recommendations

- Add **rate limiting**
  with Redis
- Short term:
  - Pin the dependencies
- [P0] A tagged line under recommendations is a recommendation

Prose under the heading is not a recommendation.

## Next section
- Not a recommendation
"""
    )
    assert audit.recommendations == [
        "Add rate limiting with Redis",
        "Pin the dependencies",
        "[P0] A tagged line under recommendations is a recommendation",
    ]
    assert audit.findings == []


def test_recommendations_alone_are_not_usable() -> None:
    with pytest.raises(ParseError):
        parse_audit("## Recommendations\n\n- Do something\n")


# --- JSON --------------------------------------------------------------------------------

JSON_AUDIT = {
    "score": 81.5,
    "summary": "Mostly fine.\nTwo problems.",
    "findings": [
        {"severity": "P0", "title": "SQL injection", "path": "a/q.py", "line": 3},
        {"severity": "high", "title": "No rate limit", "recommendation": "Add one"},
        {"severity": "info", "title": "Style"},
    ],
    "recommendations": ["Use bound parameters", "  ", "Add\nrate limiting"],
}


def check_json_audit(audit: AgentAudit) -> None:
    assert audit.score == 81.5
    assert audit.summary == "Mostly fine.\nTwo problems."
    assert brief(audit) == [
        ("P0", "SQL injection", "a/q.py", 3),
        ("P1", "No rate limit", None, None),
        ("P4", "Style", None, None),
    ]
    assert audit.findings[1].recommendation == "Add one"
    assert audit.recommendations == ["Use bound parameters", "Add rate limiting"]


def test_json_in_a_fenced_block() -> None:
    text = f"Here is my audit.\n\n```json\n{json.dumps(JSON_AUDIT, indent=2)}\n```\n\nBye.\n"
    audit, how = parse_audit(text)
    assert how == "json"
    check_json_audit(audit)


def test_json_as_the_whole_answer() -> None:
    audit, how = parse_audit("\n  " + json.dumps(JSON_AUDIT) + "\n")
    assert how == "json"
    check_json_audit(audit)


def test_json_in_an_untagged_fence() -> None:
    audit, how = parse_audit(f"```\n{json.dumps(JSON_AUDIT)}\n```")
    assert how == "json"
    check_json_audit(audit)


def test_the_last_valid_json_block_wins() -> None:
    first = {"score": 10, "findings": []}
    last = {"score": 90}
    invalid = {"score": 200}
    blocks = [first, last, invalid, {}]
    text = "\n\n".join(f"```json\n{json.dumps(b)}\n```" for b in blocks)
    audit, how = parse_audit(text)
    assert (how, audit.score) == ("json", 90.0)


def test_json_with_unknown_keys_or_a_bad_finding_is_read_leniently() -> None:
    text = json.dumps(
        {
            "score": 60,
            "date": "2025-11-13",
            "findings": [
                {"severity": "P0", "title": "SQL injection", "cwe": 89, "path": "a.py"},
                {"severity": "P9", "title": "unknown severity"},
                "not an object",
            ],
        }
    )
    audit, how = parse_audit(f"```json\n{text}\n```\n\n{SEED_EXAMPLE}")
    assert how == "json" and audit.score == 60.0
    assert [(f.severity, f.title, f.path) for f in audit.findings] == [
        (Severity.P0, "SQL injection", "a.py")
    ]
    assert audit.dropped == 2


def test_json_takes_precedence_over_markdown() -> None:
    text = f"{SEED_EXAMPLE}\n```json\n{json.dumps({'score': 12})}\n```\n"
    audit, how = parse_audit(text)
    assert (how, audit.score, audit.findings) == ("json", 12.0, [])


@pytest.mark.parametrize(
    "blob",
    [
        '{"score": 80, "findings": [',  # truncated
        "{'score': 80}",  # not JSON
        '{"score": 180}',  # out of range
        '{"score": true}',  # boolean
        '{"score": NaN}',
        '{"score": "eighty"}',
        '{"findings": [{"severity": "P9", "title": "x"}]}',
        '{"findings": [{"severity": "P0", "title": "x", "line": 0}]}',
        '{"findings": [{"severity": "P0", "title": "   "}]}',
        '{"findings": [{"severity": "urgent", "title": "x"}]}',
        '{"findings": {"severity": "P0", "title": "x"}}',
        '["score", 80]',
        "{}",
        '{"recommendations": ["only advice"]}',
        "[" * 100_000,
        '{"a":' * 40_000,  # deep, but within MAX_TEXT so the Markdown after it is read
    ],
)
def test_invalid_json_falls_back_to_markdown(blob: str) -> None:
    audit, how = parse_audit(f"```json\n{blob}\n```\n\n{SEED_EXAMPLE}")
    assert how == "markdown"
    assert audit == parse_audit(SEED_EXAMPLE)[0]
    with pytest.raises(ParseError):
        parse_audit(f"```json\n{blob}\n```\n")
    with pytest.raises(ParseError):
        parse_audit(blob)


def test_json_strings_are_cleaned() -> None:
    blob = {
        "score": 50,
        "summary": "  line one\r\nline\x1b[31m two\u202e  ",
        "findings": [
            {
                "severity": "p1",
                "title": "Multi\nline\ttitle \x00with controls " + "x" * 400,
                "path": " src/a\x07.py ",
                "recommendation": "Fix\n\nit",
            }
        ],
        "recommendations": ["a\u200bb", "\x01"],
    }
    audit, _ = parse_audit(json.dumps(blob))
    assert audit.summary == "line one\nline[31m two"
    (finding,) = audit.findings
    assert finding.severity is P1
    assert finding.title.startswith("Multi line title with controls xxx")
    assert len(finding.title) == TITLE_MAX
    assert finding.path == "src/a.py"
    assert finding.recommendation == "Fix it"
    assert audit.recommendations == ["ab"]


def test_json_findings_and_recommendations_are_capped() -> None:
    blob = {
        "findings": [{"severity": "P3", "title": f"f{i}"} for i in range(MAX_FINDINGS + 50)],
        "recommendations": [f"r{i}" for i in range(MAX_RECOMMENDATIONS + 5)],
    }
    audit, how = parse_audit(json.dumps(blob))
    assert how == "json"
    assert len(audit.findings) == MAX_FINDINGS
    assert audit.findings[-1].title == f"f{MAX_FINDINGS - 1}"
    assert len(audit.recommendations) == MAX_RECOMMENDATIONS


def test_audit_schema_is_a_json_schema_that_accepts_an_audit() -> None:
    schema = audit_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(JSON_AUDIT | {"findings": [JSON_AUDIT["findings"][0]]})
    assert not validator.is_valid({"score": 101})
    assert not validator.is_valid({"score": 50, "extra": 1})
    assert not validator.is_valid({"findings": [{"severity": "P5", "title": "x"}]})
    assert schema["$defs"]["Severity"]["enum"] == ["P0", "P1", "P2", "P3", "P4"]
    assert set(schema["properties"]) == {"score", "summary", "findings", "recommendations"}


# --- untrusted text ----------------------------------------------------------------------


def test_markdown_titles_are_one_clean_line() -> None:
    audit = markdown(
        "[P0] Bad\x1b[31m title\x07 with\u202e controls\u200b (a.py:1)\n"
        f"[P1] {'long ' * 100}(b.py:2)\n"
    )
    first, second = audit.findings
    assert first.title == "Bad[31m title with controls"
    assert len(second.title) <= TITLE_MAX
    assert second.title == second.title.strip()
    assert (second.path, second.line) == ("b.py", 2)


def test_markdown_findings_are_capped() -> None:
    text = "".join(f"[P2] finding number {i}\n" for i in range(MAX_FINDINGS + 20))
    audit = markdown(text + "\nScore: 42\n\n## Recommendations\n- Still read\n")
    assert len(audit.findings) == MAX_FINDINGS
    assert audit.findings[-1].title == f"finding number {MAX_FINDINGS - 1}"
    assert (audit.score, audit.recommendations) == (42.0, ["Still read"])


def test_only_the_first_mb_is_read() -> None:
    padding = "x" * (MAX_TEXT - 2) + "\n\n"
    with pytest.raises(ParseError):
        parse_audit(padding + "[P0] Past the cap (a.py:1)\n")
    assert len(markdown("[P0] Within the cap\n\n" + padding).findings) == 1


def test_links_are_text_and_never_followed() -> None:
    audit = markdown("[P0] See [the file](https://example.invalid/x) ({{ 7 * 7 }})\n")
    (finding,) = audit.findings
    assert finding.title == "See the file ({{ 7 * 7 }})"
    assert finding.path is None


@pytest.mark.parametrize(
    ("text", "message", "excerpt"),
    [
        ("", "the agent's answer is empty", ""),
        ("   \n\t\r\n", "the agent's answer is empty", ""),
        ("\x00\x1b\u200b", "the agent's answer is empty", ""),
        ("hello world", "neither a score nor any finding", "hello world"),
        ("\x1b[31mred\x1b[0m\n", "neither a score nor any finding", "[31mred[0m"),
        ("lorem " * 200, "neither a score nor any finding", ("lorem " * 200)[:EXCERPT_MAX]),
        ("```json\n{}\n```", "neither a score nor any finding", "```json\n{}\n```"),
    ],
)
def test_parse_error(text: str, message: str, excerpt: str) -> None:
    with pytest.raises(ParseError) as raised:
        parse_audit(text)
    error = raised.value
    assert isinstance(error, ValueError)
    assert message in str(error)
    assert "\n" not in str(error)
    assert error.message == str(error)
    assert error.excerpt == excerpt


# --- clean_findings ----------------------------------------------------------------------


def finding(path: str | None, line: int | None = None, title: str = "t") -> AgentFinding:
    return AgentFinding(severity=P2, title=title, path=path, line=line)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("one\ntwo\nthree\n")
    (root / "no_newline.py").write_text("one\ntwo")
    (root / "empty.py").write_text("")
    (tmp_path / "outside.py").write_text("x\n" * 10)
    return root


needs_symlinks = pytest.mark.skipif(
    sys.platform == "win32", reason="symlinks need privileges on Windows"
)


@needs_symlinks
def test_clean_findings(repo: Path, tmp_path: Path) -> None:
    (repo / "link_out.py").symlink_to(tmp_path / "outside.py")
    (repo / "link_in.py").symlink_to(repo / "src" / "app.py")
    audit = AgentAudit(
        findings=[
            finding(None, title="no path"),
            finding("src/app.py", 3, title="relative"),
            finding("./src/../src/app.py", 1, title="dotted"),
            finding(str(repo / "src" / "app.py"), 2, title="absolute inside"),
            finding("link_in.py", title="symlink inside"),
            finding("../outside.py", 1, title="dot-dot escape"),
            finding(str(tmp_path / "outside.py"), title="absolute outside"),
            finding("link_out.py", 1, title="symlink out"),
            finding("src/app.py", 4, title="past the end"),
            finding("src/missing.py", title="missing"),
            finding("src", title="a directory"),
        ]
    )
    kept, notes = clean_findings(audit, repo)
    assert [(f.title, f.path, f.line) for f in kept] == [
        ("no path", None, None),
        ("relative", "src/app.py", 3),
        ("dotted", "src/app.py", 1),
        ("absolute inside", "src/app.py", 2),
        ("symlink inside", "link_in.py", None),
    ]
    assert notes == [
        "dropped 3 findings with paths outside the repository",
        "dropped 2 findings whose files do not exist",
        "dropped 1 finding whose line is past the end of its file",
    ]


def test_clean_findings_singular_and_plural_notes(repo: Path) -> None:
    audit = AgentAudit(
        findings=[
            finding("../x.py"),
            finding("/etc/passwd", 1),
            finding("nope.py"),
            finding("src/app.py", 9),
            finding("src/app.py", 10),
        ]
    )
    kept, notes = clean_findings(audit, repo)
    assert kept == []
    assert notes == [
        "dropped 2 findings with paths outside the repository",
        "dropped 1 finding whose file does not exist",
        "dropped 2 findings whose lines are past the end of their files",
    ]


def test_clean_findings_keeps_everything_valid_without_notes(repo: Path) -> None:
    audit = AgentAudit(findings=[finding(None), finding("src/app.py", 1)])
    assert clean_findings(audit, repo) == (audit.findings, [])


@pytest.mark.parametrize(
    ("path", "line", "kept"),
    [
        ("no_newline.py", 2, True),
        ("no_newline.py", 3, False),
        ("src/app.py", 3, True),
        ("src/app.py", 4, False),
        ("empty.py", 1, False),
        ("empty.py", None, True),
    ],
)
def test_clean_findings_line_count(repo: Path, path: str, line: int | None, kept: bool) -> None:
    result, _ = clean_findings(AgentAudit(findings=[finding(path, line)]), repo)
    assert bool(result) is kept


def test_clean_findings_line_count_of_a_big_file(repo: Path) -> None:
    (repo / "big.py").write_bytes(b"x" * 200_000 + b"\n" + b"y" * 200_000)
    findings = [finding("big.py", 2), finding("big.py", 3)]
    kept, _ = clean_findings(AgentAudit(findings=findings), repo)
    assert [f.line for f in kept] == [2]


@needs_symlinks
def test_clean_findings_with_a_symlinked_rootdir(repo: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(repo, target_is_directory=True)
    audit = AgentAudit(
        findings=[
            finding(str(repo / "src" / "app.py"), 1),
            finding(str(alias / "src" / "app.py"), 2),
            finding("src/app.py", 3),
        ]
    )
    kept, notes = clean_findings(audit, alias)
    assert [(f.path, f.line) for f in kept] == [
        ("src/app.py", 1),
        ("src/app.py", 2),
        ("src/app.py", 3),
    ]
    assert notes == []


def test_parsed_paths_go_through_clean_findings(repo: Path) -> None:
    text = (
        "[P0] Real (src/app.py:2)\n[P1] Invented (src/ghost.py:1)\n[P2] Escape (../outside.py:1)\n"
    )
    kept, notes = clean_findings(markdown(text), repo)
    assert [f.title for f in kept] == ["Real"]
    assert len(notes) == 2


# --- properties --------------------------------------------------------------------------

PROPERTIES = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FRAGMENTS = [
    "# ",
    "## ",
    "### ",
    "## Hallazgos Críticos (P0)\n",
    "## Critical\n",
    "### High (P1)\n",
    "## Recommendations\n",
    "## Recomendaciones\n",
    "[P0] ",
    "[P1]",
    "(P2) ",
    "P3: ",
    "[Critical] ",
    "[p4]",
    "[P9] ",
    "- ",
    "1. ",
    "  - ",
    "    ",
    "> ",
    "Fix: ",
    "File: ",
    "Line: ",
    "Severity: ",
    "Score: ",
    "**Score:** ",
    "Puntuación: ",
    "75/100",
    "101",
    "-5",
    "7.5/10",
    "0",
    "99999999999999999999",
    "a.py:12",
    "(src/x.py:0)",
    "(../../etc/passwd:1)",
    "(https://example.com/a.py)",
    "Missing error handling ",
    "| Severity | Title | File | Line |\n|---|---|---|---|\n",
    "| P0 | t | a.py:1 | 3 |\n",
    "|",
    "```json\n",
    "```\n",
    "```",
    "~~~\n",
    '{"score": 50}',
    '{"score": 150}',
    '{"findings": [{"severity": "P0", "title": "x", "line": 2}]}',
    '{"findings": [{"severity": "P0", "title": ""}]}',
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\n",
    "\n\n",
    "\t",
    "\r\n",
    "\r",
    "\x00",
    "\x1b[31m",
    "\x85",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\u200b",
    "é",
    "🔥",
    "Ⅻ",
    "\u0667\u0665",  # Arabic-Indic 75
    "<details>",
    "<!--",
    "**",
    "`",
    "_",
    "\\",
    "&amp;",
    "{{ 7 * 7 }}",
]
markdownish = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=40
).map("".join)

CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n", "\t"}


def check_answer(text: str) -> None:
    """parse_audit raises only ParseError and returns valid, clean, deterministic audits."""
    try:
        audit, how = parse_audit(text)
    except ParseError as error:
        assert "\n" not in str(error)
        assert len(error.excerpt) <= EXCERPT_MAX
        with pytest.raises(ParseError):
            parse_audit(text)
        return
    assert how in ("json", "markdown")
    assert audit.score is not None or audit.findings
    assert AgentAudit.model_validate(audit.model_dump()).model_dump() == audit.model_dump()
    assert (
        AgentAudit.model_validate_json(audit.model_dump_json()).model_dump() == audit.model_dump()
    )
    assert audit.score is None or 0 <= audit.score <= 100
    assert len(audit.findings) <= MAX_FINDINGS
    assert len(audit.recommendations) <= MAX_RECOMMENDATIONS
    for item in audit.findings:
        assert isinstance(item.severity, Severity)
        assert 1 <= len(item.title) <= TITLE_MAX
        assert item.title == " ".join(item.title.split())
        assert not CONTROLS & set(item.title)
        assert item.line is None or item.line >= 1
        assert item.path is None or (item.path.strip() and "\n" not in item.path)
    for recommendation in audit.recommendations:
        assert recommendation == " ".join(recommendation.split())
    assert parse_audit(text) == (audit, how)


@PROPERTIES
@given(st.text(max_size=300))
def test_property_random_text(text: str) -> None:
    check_answer(text)


@PROPERTIES
@given(markdownish)
def test_property_markdownish_text(text: str) -> None:
    check_answer(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
finding_dicts = st.fixed_dictionaries(
    {},
    optional={
        "severity": st.sampled_from(["P0", "p3", "high", "info", "P7", "", 3]) | json_values,
        "title": st.text(max_size=20) | json_values,
        "path": st.text(max_size=20) | json_values,
        "line": st.integers(-2, 5) | json_values,
        "recommendation": st.text(max_size=20) | json_values,
    },
)
audit_dicts = st.fixed_dictionaries(
    {},
    optional={
        "score": st.floats(-10, 110) | st.integers(-10, 110) | json_values,
        "summary": st.text(max_size=20) | json_values,
        "findings": st.lists(finding_dicts, max_size=4) | json_values,
        "recommendations": st.lists(st.text(max_size=10), max_size=3) | json_values,
        "extra": json_values,
    },
)


@PROPERTIES
@given(audit_dicts, st.booleans())
def test_property_random_json_objects(blob: dict[str, object], fenced: bool) -> None:
    text = json.dumps(blob)
    check_answer(f"```json\n{text}\n```" if fenced else text)


def clean_text(value: str) -> bool:
    """A title hypothesis may hand AgentFinding: something printable is left after cleaning."""
    return any(unicodedata.category(c)[0] not in "CZ" for c in value)


agent_findings = st.builds(
    AgentFinding,
    severity=st.sampled_from(Severity),
    title=st.text(max_size=400).filter(clean_text),
    path=st.none() | st.text(max_size=40),
    line=st.none() | st.integers(1, 10**9),
    recommendation=st.none() | st.text(max_size=80),
)
agent_audits = st.builds(
    AgentAudit,
    score=st.none() | st.floats(0, 100),
    summary=st.none() | st.text(max_size=200),
    findings=st.lists(agent_findings, max_size=6),
    recommendations=st.lists(st.text(max_size=60), max_size=5),
).filter(lambda audit: audit.score is not None or audit.findings)


@PROPERTIES
@given(agent_audits, st.sampled_from([None, 2]), st.text(max_size=80))
def test_property_json_round_trips_through_a_fenced_block(
    audit: AgentAudit, indent: int | None, prose: str
) -> None:
    blob = audit.model_dump_json(indent=indent)
    prose = prose.replace("`", "").replace("~", "")
    text = f"{prose}\n\n```json\n{blob}\n```\n\n{prose}\n"
    assert parse_audit(text) == (audit, "json")
    assert parse_audit(blob) == (audit, "json")


@PROPERTIES
@given(agent_audits)
def test_property_model_cleaning_is_idempotent(audit: AgentAudit) -> None:
    again = AgentAudit.model_validate_json(audit.model_dump_json())
    assert again == audit
    for item in audit.findings:
        assert "\n" not in item.title and len(item.title) <= TITLE_MAX


@PROPERTIES
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["[P0]", "(P1)", "P2:", "[high]", "- [P3]", "1. [P4]"]),
            st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=30),
            st.none() | st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,2}\.py", fullmatch=True),
            st.none() | st.integers(1, 99999),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_property_generated_tagged_lines_are_read_back(
    lines: list[tuple[str, str, str | None, int | None]],
) -> None:
    tags = {"[P0]": P0, "(P1)": P1, "P2:": P2, "[high]": P1, "- [P3]": P3, "1. [P4]": P4}
    text_lines = []
    expected = []
    for tag, title, path, line in lines:
        title = f"Broken {title}"
        location = "" if path is None else f" ({path}" + ("" if line is None else f":{line}") + ")"
        text_lines.append(f"{tag} {title}{location}")
        expected.append((tags[tag], title, path, line if path is not None else None))
    text = "\n\n".join(text_lines) + "\n"
    audit = markdown(text)
    assert [(f.severity, f.title, f.path, f.line) for f in audit.findings] == expected
