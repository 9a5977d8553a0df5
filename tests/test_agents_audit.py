"""LLM audits end to end: ``--orchestrate-dimensions=...,agent:NAME`` through a fake claude.

The fake prints claude's documented ``--output-format json`` result object whose ``result``
is the answer text given in ``FAKE_AGENT_TEXT``: here the seeds' Markdown example report.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from fakes import SEEDS_REPORT, install_fakes

from pytest_orchestrator.models import Report

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the fake CLIs are POSIX scripts")


@pytest.fixture
def odoo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An ai_service module (files long enough for the report's lines), a passing test,
    and the fake CLIs first on PATH."""
    module = pytester.path / "addons" / "ai_service"
    for name, lines in (
        ("controllers/api.py", 80),
        ("models/query.py", 140),
        ("models/user.py", 40),
    ):
        path = module / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"value_{i} = {i}\n" for i in range(lines)))
    (module / "__init__.py").write_text("")
    pytester.makepyfile(test_module="def test_ok():\n    assert True\n")
    bin_dir = install_fakes(pytester.path.parent / f"{pytester.path.name}-bin")
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    # the fakes' logs live beside them: writable in the agents' sandbox
    monkeypatch.setenv("PYTEST_ORCHESTRATOR_SANDBOX_WRITABLE", str(bin_dir))
    monkeypatch.setenv("FAKE_AGENT_LOG", str(calls_log(pytester)))
    for name in [k for k in os.environ if k.startswith("FAKE_AGENT_") and k != "FAKE_AGENT_LOG"]:
        monkeypatch.delenv(name)
    return pytester


def run_audit(pytester: pytest.Pytester, *extra: str) -> tuple[pytest.RunResult, Report]:
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,agent:backend",
        "--orchestrate-audit-agent=claude",
        "--orchestrate-report=terminal",
        "--orchestrate-report=json:report.json",
        *extra,
    )
    report = Report.model_validate(json.loads((pytester.path / "report.json").read_text()))
    return result, report


def calls_log(pytester: pytest.Pytester) -> Path:
    """The fake CLIs' log of this test (outside the project, so no tool audits it)."""
    return pytester.path.parent / f"{pytester.path.name}-bin" / "agent-calls.jsonl"


def agent_calls(pytester: pytest.Pytester) -> list[dict[str, object]]:
    log = calls_log(pytester)
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_seeds_markdown_report_reaches_the_gate(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_TEXT", SEEDS_REPORT)
    result, report = run_audit(odoo)

    audit = report.audit("agent:backend")
    assert audit is not None and audit.status == "ok"
    assert audit.score == 75.0
    found = sorted((f.severity.value, f.path, f.line, f.message) for f in audit.findings)
    assert found == [
        ("P0", "addons/ai_service/controllers/api.py", 45,
         "Missing error handling in FastAPI endpoints"),
        ("P0", "addons/ai_service/models/query.py", 128,
         "SQL injection vulnerability in query builder"),
        ("P1", "addons/ai_service/controllers/api.py", 67, "No rate limiting on API endpoints"),
        ("P1", "addons/ai_service/models/user.py", 34, "Missing input validation for user data"),
    ]  # fmt: skip
    assert {f.tool for f in audit.findings} == {"claude"}
    # every lost point is explained, by severity
    assert round(sum(d.points for d in audit.deductions), 2) == 25.0
    assert [d.reason for d in audit.deductions] == [
        "2 x P0 from claude",
        "2 x P1 from claude",
    ]
    assert "answer read as markdown" in audit.notes
    assert "recommendation: Use parameterized queries to prevent SQL injection" in audit.notes
    # the gate: two P0 findings fail it (fail-on P0), the overall score is the weighted mean
    assert not report.verdict.passed
    assert (
        "2 P0 findings at a failing severity (P0): addons/ai_service/controllers/api.py:45 "
        "agent-finding; addons/ai_service/models/query.py:128 agent-finding"
    ) in report.verdict.reasons
    assert report.score.overall == round((100 * 30 + 75 * 20) / 50, 2)
    # the call is on the ledger, with claude's reported cost
    assert report.agents is not None
    [call] = report.agents.calls
    assert (call.agent, call.purpose, call.outcome) == ("claude", "agent:backend", "ok")
    assert (call.cost_usd, call.cost_source) == (0.0123, "reported")
    assert (call.tokens_in, call.tokens_out) == (1000, 200)
    assert report.agents.spent_usd == 0.0123 and report.agents.budget_usd == 5.0
    result.stdout.fnmatch_lines(
        ["agents: 1 call, $0.0123 of the $5.00 budget: claude-sonnet-4-5-20250929 $0.0123"]
    )
    # read-only: the prompt arrived on stdin, claude was denied the writing tools
    [logged] = agent_calls(odoo)
    argv = logged["argv"]
    assert isinstance(argv, list) and "--disallowedTools" in argv and "acceptEdits" not in argv
    assert "Audit the project" in str(logged["stdin"])
    assert not any("Audit the project" in str(a) for a in argv)


def test_a_json_answer_and_dropped_findings(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = {
        "score": 90,
        "summary": "Mostly fine.",
        "findings": [
            {"severity": "P2", "title": "Magic number", "path": "addons/ai_service/models/user.py",
             "line": 3, "recommendation": "Name it"},
            {"severity": "P1", "title": "Outside", "path": "/etc/passwd", "line": 1},
            {"severity": "P1", "title": "Past the end", "path": "addons/ai_service/models/user.py",
             "line": 999},
        ],
        "recommendations": [],
    }  # fmt: skip
    monkeypatch.setenv("FAKE_AGENT_TEXT", "Here it is:\n```json\n" + json.dumps(answer) + "\n```\n")
    _, report = run_audit(odoo)

    audit = report.audit("agent:backend")
    assert audit is not None and audit.score == 90.0
    assert [(f.message, f.line) for f in audit.findings] == [("Magic number", 3)]
    assert "answer read as json" in audit.notes
    assert any("outside the repository" in n for n in audit.notes)
    assert any("past the end of its file" in n for n in audit.notes)


def test_an_unreadable_answer_is_an_error_not_a_score(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_TEXT", "I looked around and it seems fine, I guess.")
    result, report = run_audit(
        odoo, "--orchestrate-report=markdown:report.md", "--orchestrate-report=junit:gate.xml"
    )

    audit = report.audit("agent:backend")
    assert audit is not None and audit.status == "error" and audit.score is None
    assert audit.reason is not None and "answer could not be read" in audit.reason
    assert any("I looked around" in n for n in audit.notes)
    assert report.score.overall == 100.0  # left out of the score (orchestrate_unavailable=skip)
    result.stdout.fnmatch_lines(
        [
            "*! agent:backend is error: claude's answer could not be read*",
            "    answer excerpt: I looked around and it seems fine, I guess.",
        ]
    )
    assert "| agent:backend | - |" in (odoo.path / "report.md").read_text()
    assert "**error**: claude's answer could not be read" in (odoo.path / "report.md").read_text()
    assert "error: claude's answer could not be read" in (odoo.path / "gate.xml").read_text()


def test_several_audits_share_the_budget_one_call_at_a_time(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_TEXT", SEEDS_REPORT)
    monkeypatch.setenv("FAKE_AGENT_COST", "0.2")
    odoo.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,agent:backend,agent:security",
        "--orchestrate-audit-agent=claude",
        "--orchestrate-budget=0.4",
    )

    caps = sorted(
        c["argv"][c["argv"].index("--max-budget-usd") + 1]  # type: ignore[index,union-attr]
        for c in agent_calls(odoo)
    )
    # the second call was told what the first one left, not the whole budget
    assert caps == ["0.2", "0.4"]


def test_an_unknown_model_is_charged_the_highest_rate_and_said(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """codex without a model uses its configured one, which it does not name: the call is
    priced at the most expensive known rate. (A model named but not priced is a usage
    error before the tests: see test_hardening.)"""
    monkeypatch.setenv("FAKE_AGENT_TEXT", SEEDS_REPORT)
    result, report = run_audit(odoo, "--orchestrate-audit-agent=codex")

    assert report.agents is not None
    [call] = report.agents.calls
    assert (call.model, call.cost_source) == (None, "computed")
    assert call.cost_usd == round((1000 * 10 + 200 * 30) / 1e6, 6)  # highest: 10/30
    result.stdout.fnmatch_lines(
        ["! agents: the model is not known (none was given); priced at the most expensive*"]
    )


def test_pricing_overrides_in_the_ini_change_the_computed_cost(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # codex reports tokens (1000 in, 200 out), no cost: the call is priced from the table.
    monkeypatch.setenv("FAKE_AGENT_TEXT", SEEDS_REPORT)
    agent = "--orchestrate-audit-agent=codex:openai/gpt-4o-2024-08-06"  # gpt-4o, normalised
    (odoo.path.parent / "prices.json").write_text(json.dumps({"models": {"gpt-4o": [2, 4]}}))
    costs = []
    for ini in (
        "",
        "orchestrate_pricing_file = ../prices.json\n",
        "orchestrate_pricing_file = ../prices.json\n"
        "orchestrate_pricing =\n    openai/GPT-4o-2024-11-20=1/2\n",
    ):
        odoo.makeini("[pytest]\n" + ini)
        _, report = run_audit(odoo, agent)
        assert report.agents is not None
        [call] = report.agents.calls
        assert (call.cost_source, call.warnings) == ("computed", [])
        costs.append(call.cost_usd)

    assert costs == [
        round((1000 * 2.5 + 200 * 10) / 1e6, 6),  # the shipped gpt-4o: 2.5/10
        round((1000 * 2 + 200 * 4) / 1e6, 6),  # the file's
        round((1000 * 1 + 200 * 2) / 1e6, 6),  # the ini lines win over the file
    ]


def test_an_estimated_cost_is_said_in_the_human_report(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # copilot prints text only: its cost is estimated from the prompt's and answer's size.
    monkeypatch.setenv("FAKE_AGENT_TEXT", SEEDS_REPORT)
    result, report = run_audit(
        odoo, "--orchestrate-audit-agent=copilot", "--orchestrate-report=markdown:report.md"
    )

    assert report.agents is not None
    [call] = report.agents.calls
    assert call.cost_source == "estimated" and call.cost_usd > 0
    line = f"agents: 1 call, ${call.cost_usd:.4f} of the $5.00 budget (partly estimated): "
    result.stdout.fnmatch_lines([line + f"copilot ${call.cost_usd:.4f}"])
    assert line in (odoo.path / "report.md").read_text()


@pytest.mark.parametrize("agent", ["copilot", "claude", "codex", "gemini"])
def test_an_empty_answer_is_an_error_with_an_excerpt(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, agent: str
) -> None:
    monkeypatch.setenv("FAKE_AGENT_TEXT", "")
    result, report = run_audit(odoo, f"--orchestrate-audit-agent={agent}")

    audit = report.audit("agent:backend")
    assert audit is not None and (audit.status, audit.score) == ("error", None)
    assert audit.reason is not None
    assert audit.reason.startswith(f"{agent}'s answer could not be read: ")
    assert audit.notes == ["answer excerpt: (empty answer)"]
    result.stdout.fnmatch_lines(
        [f"*! agent:backend is error: {agent}'s answer could not be read*", "*(empty answer)"]
    )


def test_output_not_in_the_clis_format_is_an_error_with_what_it_printed(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_MODE", "garbage")
    _, report = run_audit(odoo)

    audit = report.audit("agent:backend")
    assert audit is not None and audit.status == "error"
    assert audit.reason is not None and "claude printed no JSON result object" in audit.reason
    assert audit.notes == ["answer excerpt: Segmentation fault in the fake claude (not JSON)"]


@pytest.mark.parametrize(
    ("args", "ini", "turns"),
    [
        (["--orchestrate-max-turns=7"], "", "7"),
        ([], "orchestrate_max_turns = 4\n", "4"),
        (["--orchestrate-max-turns=9"], "orchestrate_max_turns = 4\n", "9"),
        ([], "", None),
    ],
)
def test_max_turns_reaches_claude(
    odoo: pytest.Pytester, args: list[str], ini: str, turns: str | None
) -> None:
    odoo.makeini("[pytest]\n" + ini)
    _, report = run_audit(odoo, *args)

    assert report.agents is not None and [c.outcome for c in report.agents.calls] == ["ok"]
    [logged] = agent_calls(odoo)
    argv = logged["argv"]
    assert isinstance(argv, list)
    if turns is None:  # not given: the CLI's own default
        assert "--max-turns" not in argv
    else:
        assert argv[argv.index("--max-turns") + 1] == turns


def test_secrets_and_escape_sequences_in_agent_output_never_reach_the_reports(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ant-api03-" + "A1b2C3d4" * 6
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    leak = (
        "import os; import sys; "  # no comma: the agent list is comma-separated
        "sys.stderr.write('auth failed for ' + os.environ['ANTHROPIC_API_KEY'] + "
        "' GITHUB_TOKEN=ghp_' + 'x' * 36 + ' \\x1b]0;pwned\\x07\\x1b[2J'); sys.exit(1)"
    )
    result = odoo.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,agent:backend",
        f"--orchestrate-audit-agent=command:{sys.executable} -c {shlex.quote(leak)}",
        "--orchestrate-report=terminal",
        "--orchestrate-report=json:report.json",
        "--orchestrate-report=markdown:report.md",
        "--orchestrate-report=junit:gate.xml",
    )

    report = Report.model_validate(json.loads((odoo.path / "report.json").read_text()))
    audit = report.audit("agent:backend")
    assert audit is not None and audit.status == "unavailable"
    assert audit.reason is not None and "auth failed for ***" in audit.reason
    outputs = [result.stdout.str()] + [
        (odoo.path / name).read_text() for name in ("report.json", "report.md", "gate.xml")
    ]
    for text in outputs:
        assert key not in text and "ghp_xxxx" not in text
        assert "\x1b" not in text and "pwned\x07" not in text


def test_a_pytest_started_by_an_agent_does_not_orchestrate_again(
    odoo: pytest.Pytester,
) -> None:
    # The ini turns the gate on; the "agent" runs pytest in the same project. Without the
    # guard, that pytest would orchestrate and call the agent again, and so on.
    odoo.makeini(
        f"""
        [pytest]
        orchestrate = true
        orchestrate_dimensions = tests,agent:tests
        orchestrate_audit_agent = command:{sys.executable} -m pytest -q -p no:cacheprovider
        orchestrate_report = json:report.json
        """
    )
    started = time.monotonic()
    odoo.runpytest_subprocess()

    assert time.monotonic() - started < 60
    report = Report.model_validate(json.loads((odoo.path / "report.json").read_text()))
    assert report.agents is not None and len(report.agents.calls) == 1
    audit = report.audit("agent:tests")
    assert audit is not None and audit.status == "error"  # pytest's output is no audit


def test_a_missing_login_makes_the_dimension_unavailable(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_MODE", "auth")
    _, report = run_audit(odoo, "--orchestrate-audit-agent=claude,codex")

    audit = report.audit("agent:backend")
    assert audit is not None and audit.status == "unavailable"
    assert audit.reason is not None
    assert "ANTHROPIC_API_KEY" in audit.reason and "CODEX_API_KEY" in audit.reason
    assert report.agents is not None
    assert [c.outcome for c in report.agents.calls] == ["auth", "auth"]


def _fake_agents_alive(log: str) -> list[int]:
    """Processes of the fake CLIs whose FAKE_AGENT_LOG is ``log``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if b"fake_agent.py" in cmdline and f"FAKE_AGENT_LOG={log}".encode() in environ:
                alive.append(int(entry.name))
    return alive


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_an_interrupted_session_stops_the_agent(
    odoo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_MODE", "timeout")
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "60")  # the fake claude would answer in 60 s
    log = os.environ["FAKE_AGENT_LOG"]
    # The test waits until the agent runs, then interrupts the session (Ctrl-C).
    odoo.makepyfile(
        test_stop=f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_agents_audit import _fake_agents_alive

        def test_stop():
            deadline = time.monotonic() + 20
            while not _fake_agents_alive({log!r}):
                assert time.monotonic() < deadline, "the agent never started"
                time.sleep(0.1)
            raise KeyboardInterrupt
        """
    )
    started = time.monotonic()
    result = odoo.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,agent:backend",
        "--orchestrate-audit-agent=claude",
    )

    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    assert time.monotonic() - started < 50
    assert _fake_agents_alive(log) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--orchestrate-dimensions=tests,agent:backend"],
            "ERROR: --orchestrate-dimensions: agent:backend needs an agent; give "
            "--orchestrate-audit-agent=NAME (e.g. claude) or --orchestrate-agent=NAME",
        ),
        (
            ["--orchestrate-agent=chatgpt"],
            "ERROR: --orchestrate-agent: unknown agent 'chatgpt'; use one of aider, claude, "
            "codex, copilot, gemini, command:ARGV",
        ),
        (
            ["--orchestrate-dimensions=tests,agent:poetry", "--orchestrate-agent=claude"],
            "ERROR: --orchestrate-dimensions: unknown dimension 'agent:poetry'; known: *",
        ),
        (
            ["--orchestrate-budget=-1"],
            "ERROR: --orchestrate-budget: '-1' is not a valid budget in USD; give a number of "
            "at least 0",
        ),
        (
            ["-o", "orchestrate_pricing=gpt-4o=5"],
            "ERROR: orchestrate_pricing (ini): 'gpt-4o=5' is not MODEL=INPUT/OUTPUT*",
        ),
    ],
)
def test_bad_agent_settings_are_one_line_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_module="def test_ok():\n    assert True\n")
    result = pytester.runpytest("--orchestrate", *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()
