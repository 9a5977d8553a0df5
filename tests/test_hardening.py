"""Faults found by trying the landed gate as a new user would and probing it with bad input
(issue 13). Each test runs a real pytest session, a real tool or our real CLI, and failed
before its fix."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from fakes import install_fakes

from pytest_orchestrator.models import Report

REPORT = "--orchestrate-report=json:out/report.json"
EXIT_USAGE = 4
EXIT_REPORT_FAILED = 7
#: An absurd JSON value for every boundary: nested far deeper than any stack.
DEEP = "[" * 200_000 + "]" * 200_000
#: An integer of 5,000 digits (past CPython's 4,300-digit conversion limit).
HUGE_INT = "9" * 5000


def load(root: Path, name: str = "out/report.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / name).read_text(encoding="utf-8"))
    return data


def audit(report: dict[str, Any], dimension: str) -> dict[str, Any]:
    return next(a for a in report["audits"] if a["dimension"] == dimension)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_orchestrator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def committed(root: Path) -> Path:
    """``root`` as a git repository with everything committed (pytester's own files and
    caches ignored)."""
    ignored = ".pytest_cache/\n__pycache__/\nout/\nstdout\nstderr\nrunpytest-*\n"
    root.joinpath(".gitignore").write_text(ignored)
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    return root


# --- 1. the gate's own measures ---------------------------------------------------------


def test_a_module_that_does_not_parse_is_a_p0_finding(pytester: pytest.Pytester) -> None:
    """ruff 0.17 names a syntax error ``invalid-syntax``: it is P0 and fails the gate."""
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/broken": "def f(:\n    return 1\n",
            "tests/test_ok": "def test_ok():\n    assert True\n",
        }
    )
    result = pytester.runpytest_subprocess("--orchestrate", "--orchestrate-dimensions=lint", REPORT)

    lint = audit(load(pytester.path), "lint")
    found = {
        (f["rule_id"], f["severity"]) for f in lint["findings"] if f["path"] == "pkg/broken.py"
    }
    assert found == {("invalid-syntax", "P0")}
    assert result.ret == 6  # every test passed, the P0 fails the gate
    result.stdout.fnmatch_lines(
        ["*FAIL 2 P0 findings at a failing severity (P0): pkg/broken.py:1*"]
    )


def test_the_codes_the_severity_map_names_exist_in_the_installed_tools(tmp_path: Path) -> None:
    """The defaults of ``severity.py`` against ruff's and bandit's own catalogues: a code
    renamed by a new tool version would silently fall back to the default severity."""
    from pytest_orchestrator.auditors.tools import find_executable
    from pytest_orchestrator.severity import RUFF_DEFAULTS

    ruff = find_executable("ruff")
    assert ruff is not None
    rules = json.loads(
        subprocess.run(
            [ruff, "rule", "--all", "--output-format=json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    codes = {r["code"] for r in rules if r.get("code")}
    linters = {
        item.get("prefix", "")
        for item in json.loads(
            subprocess.run(
                [ruff, "linter", "--output-format=json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    }
    for key in RUFF_DEFAULTS:
        if key in ("syntax-error", "invalid-syntax"):
            continue  # not rules: what ruff prints for a file it cannot parse
        assert key in codes or key in linters or any(c.startswith(key) for c in codes), key
    # what the installed ruff calls a syntax error is mapped
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    out = subprocess.run(
        [ruff, "check", "--output-format=json", "--no-cache", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert {item["code"] or "syntax-error" for item in json.loads(out)} <= set(RUFF_DEFAULTS)
    # bandit's JSON still carries the two fields the bandit severities are made of
    risky = tmp_path / "risky.py"
    risky.write_text("import subprocess\nsubprocess.call('ls', shell=True)\n")
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-f", "json", str(risky)],
        capture_output=True,
        text=True,
        check=False,
    )
    [issue] = [r for r in json.loads(done.stdout)["results"] if r["test_id"] == "B602"]
    assert {issue["issue_severity"], issue["issue_confidence"]} <= {"LOW", "MEDIUM", "HIGH"}


def test_a_file_coverage_cannot_parse_costs_only_itself(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/a_before": "def a():\n    return 1\n",
            "pkg/b_broken": "def b(:\n    return 2\n",
            "pkg/c_after": "def c():\n    return 3\n",
            "tests/test_pkg": "from pkg.a_before import a\nfrom pkg.c_after import c\n\n\n"
            "def test_both():\n    assert a() + c() == 4\n",
        }
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,coverage",
        REPORT,
        "--orchestrate-report=terminal",
    )

    coverage = audit(load(pytester.path), "coverage")
    files = {f["path"]: f["missing"] for f in coverage["coverage"]["files"]}
    assert files == {"pkg/__init__.py": 0, "pkg/a_before.py": 0, "pkg/c_after.py": 0}
    assert coverage["score"] == 100.0  # the files after the broken one still count
    assert coverage["coverage"]["unparsable"] == ["pkg/b_broken.py"]
    [finding] = coverage["findings"]
    assert (finding["rule_id"], finding["severity"], finding["path"]) == (
        "unparsable-file",
        "P1",
        "pkg/b_broken.py",
    )
    result.stdout.fnmatch_lines(["! coverage.py could not parse pkg/b_broken.py*"])


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_failing_test_points_at_its_failing_line(
    pytester: pytest.Pytester, xdist: list[str]
) -> None:
    """The finding's line is the test frame's line in the traceback, as pytest's short
    summary has it, not the ``def`` line; a failure in a library stays in the test."""
    pytester.makepyfile(
        test_lines="""\
            import json


            def check(value):
                assert value == 2


            def test_direct():
                x = 1
                assert x == 2


            def test_through_a_helper():
                y = 1
                check(y)


            def test_in_a_library():
                json.loads("{")
            """
    )
    pytester.runpytest_subprocess("--orchestrate", "--orchestrate-dimensions=tests", REPORT, *xdist)

    findings = audit(load(pytester.path), "tests")["findings"]
    lines = {f["message"].split(":", 3)[2]: f["line"] for f in findings}
    assert lines == {"test_direct": 10, "test_through_a_helper": 15, "test_in_a_library": 19}


# --- 2. writing and reading -------------------------------------------------------------


def test_a_report_that_cannot_be_written_is_not_announced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests",
        "--orchestrate-report=json:/proc/report.json",  # no terminal report: the verdict only
        "--orchestrate-report=markdown:out/report.md",
    )

    assert result.ret == EXIT_REPORT_FAILED
    out = result.stdout.str()
    assert "json report: /proc/report.json" not in out
    result.stdout.fnmatch_lines(
        [
            "markdown report: */out/report.md",
            "ERROR: cannot write report '/proc/report.json': *",
        ]
    )
    assert (pytester.path / "out" / "report.md").is_file()  # the others are still written


HOSTILE = "lint\n::error::pwned\x1b]0;owned\x07 | <b>x</b>"


def test_show_and_merge_print_report_text_made_safe(pytester: pytest.Pytester) -> None:
    """Text read from a report file is data: no workflow command, no escape sequence, no
    broken Markdown table, whatever a dimension name or a message holds."""
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    pytester.runpytest_subprocess("--orchestrate", "--orchestrate-dimensions=tests", REPORT)
    data = load(pytester.path)
    data["project"]["name"] = HOSTILE
    data["audits"][0]["findings"] = [
        {
            "dimension": "tests",
            "severity": "P3",
            "rule_id": "x\n::warning::y",
            "message": "\x1b[2J\x1b[31mred\r\n::error file=a.py::forged",
            "path": "a.py",
            "line": 1,
            "tool": "pytest",
            "fingerprint": "f" * 16,
        }
    ]
    (pytester.path / "shard.json").write_text(json.dumps(data))
    data["audits"][0]["dimension"] = HOSTILE  # show reads what merge would refuse
    data["score"]["deductions"] = []
    hostile = pytester.path / "hostile.json"
    hostile.write_text(json.dumps(data))

    outputs = [
        cli("show", str(hostile), "-v", cwd=pytester.path),
        cli("show", str(hostile), "--format", "markdown", cwd=pytester.path),
        cli("merge", "shard.json", "--markdown", "merged.md", cwd=pytester.path),
    ]
    texts = [done.stdout + done.stderr for done in outputs]
    texts.append((pytester.path / "merged.md").read_text())
    for text in texts:
        assert "\x1b" not in text and "\x07" not in text
        assert not any(line.lstrip().startswith("::") for line in text.splitlines()), text
    for markdown in (texts[1], texts[3]):
        for line in markdown.splitlines():  # every table row keeps its number of cells
            if line.startswith("| tests") or line.startswith("| lint"):
                header = next(
                    h for h in markdown.splitlines() if h.startswith("| dimension")
                ).count(" | ")
                assert line.count(" | ") == header, line


@pytest.mark.parametrize(
    ("content", "why"),
    [(DEEP, "nested deeper than 64 levels"), (f'{{"schema_version": {HUGE_INT}}}', "too large")],
    ids=["deep", "huge-int"],
)
def test_absurd_json_is_a_clean_error_at_every_boundary(
    pytester: pytest.Pytester, content: str, why: str
) -> None:
    """Reports (show, merge), the baseline and a saved session: a one-line error with
    each path's documented status, no traceback."""
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    bad = pytester.path / "bad.json"
    bad.write_text(content)
    for args in (("show", str(bad)), ("merge", str(bad))):
        done = cli(*args, cwd=pytester.path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and why in done.stderr, done.stderr
        assert "Traceback" not in done.stderr

    result = pytester.runpytest_subprocess("--orchestrate", f"--orchestrate-baseline={bad}")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines([f"ERROR: *baseline*{why}*"])

    committed(pytester.path)
    sessions = pytester.path / ".pytest_cache" / "d" / "orchestrator-sessions"
    sessions.mkdir(parents=True)
    (sessions / "s1.json").write_text(content)
    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-agent=command:true", "--orchestrate-resume=s1"
    )
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines([f"ERROR: --orchestrate-resume: *unreadable*{why}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_an_absurd_bundle_from_the_container_is_a_clean_error(pytester: pytest.Pytester) -> None:
    """A container that answers with a bundle nested 200,000 deep: the run says the
    result is damaged, and the session still writes its report."""
    from pytest_orchestrator.remote.bootstrap import BEGIN, END, PROTOCOL

    payload = f'{{"protocol": {PROTOCOL}, "junit": {DEEP}}}'.encode()
    bundle = base64.b64encode(zlib.compress(payload)).decode()
    container = pytester.path.parent / "hostile-container"
    container.write_text(f"#!/bin/sh\nprintf '%s\\n%s\\n%s\\n' '{BEGIN}' '{bundle}' '{END}'\n")
    container.chmod(0o755)
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        f"--orchestrate-exec={container}",
        "--orchestrate-dimensions=tests",
        REPORT,
    )

    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out
    assert "the result from the container is damaged (nested deeper than 64 levels)" in out
    report = load(pytester.path)
    assert report["verdict"]["passed"] is False


SECRET = "s3cr3t-Value-0123456789"


def test_a_secret_in_a_failure_message_is_masked_in_every_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_API_TOKEN", SECRET)
    pytester.makepyfile(
        test_leak="import os\n\n\ndef test_leak():\n"
        "    assert False, os.environ['ORCH_TEST_API_TOKEN']\n"
    )
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests",
        "--orchestrate-report=terminal",
        REPORT,
        "--orchestrate-report=junit:out/junit.xml",
        "--orchestrate-report=markdown:out/report.md",
        "--orchestrate-report=sarif:out/report.sarif",
    )

    for name in ("report.json", "junit.xml", "report.md", "report.sarif"):
        text = (pytester.path / "out" / name).read_text()
        assert SECRET not in text, name
        assert "***" in text, name
    # our section, not pytest's own traceback and summary
    gate = result.stdout.str().split("quality gate", 1)[1].split("short test summary", 1)[0]
    assert SECRET not in gate and "test_leak.py::test_leak: AssertionError: ***" in gate


# --- 3. agents and budget ---------------------------------------------------------------


@pytest.fixture
def fakes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake agent CLIs first on PATH (their logs writable in the sandbox)."""
    bin_dir = install_fakes(pytester.path.parent / f"{pytester.path.name}-bin")
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    monkeypatch.setenv("PYTEST_ORCHESTRATOR_SANDBOX_WRITABLE", str(bin_dir))
    for name in [k for k in os.environ if k.startswith("FAKE_AGENT_")]:
        monkeypatch.delenv(name)
    return bin_dir


AUDIT = (
    "--orchestrate",
    "--orchestrate-dimensions=tests,agent:backend",
    "--orchestrate-report=terminal",
    REPORT,
)
ANSWER = '```json\n{"score": 90, "summary": "fine", "findings": []}\n```'


@pytest.mark.parametrize("cost", ["-5", "nan", "inf", "1e999"])
def test_a_cost_that_is_no_cost_is_priced_from_the_tokens(
    pytester: pytest.Pytester, fakes: Path, monkeypatch: pytest.MonkeyPatch, cost: str
) -> None:
    """claude reports ``total_cost_usd``; a negative, NaN or infinite one is not charged as
    $0 (the budget would never bind) but priced from the tokens, with a warning."""
    monkeypatch.setenv("FAKE_AGENT_COST", cost)
    monkeypatch.setenv("FAKE_AGENT_TEXT", ANSWER)
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess(
        *AUDIT, "--orchestrate-audit-agent=claude:claude-sonnet-4-5", "--orchestrate-budget=5"
    )

    report = Report.model_validate(load(pytester.path))  # readable: no Infinity, no null
    assert report.agents is not None
    [call] = report.agents.calls
    assert call.cost_source == "computed"
    assert call.cost_usd == round((1000 * 3 + 200 * 15) / 1e6, 6)  # claude-sonnet-4-5: 3/15
    assert any("which no call costs; priced as unreported" in w for w in call.warnings)
    assert report.agents.spent_usd == call.cost_usd
    result.stdout.fnmatch_lines(["*! agents: *reported a cost of*priced as unreported*"])


def test_absurd_token_counts_bind_the_budget_and_end_the_loop_cleanly(
    pytester: pytest.Pytester, fakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """codex reporting 400-digit token counts: no OverflowError; the call is charged as the
    largest count (the budget binds), the loop stops with a reason and the report is
    written."""
    monkeypatch.setenv("FAKE_AGENT_TOKENS_IN", "9" * 400)
    monkeypatch.setenv("FAKE_AGENT_TOKENS_OUT", "9" * 400)
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/calc": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_calc": "from pkg.calc import add\n\n\n"
            "def test_add():\n    assert add(1, 1) == 2\n",
        }
    )
    pytester.makeini("[pytest]\npythonpath = .\n")
    committed(pytester.path)
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--target-score=100",
        "--orchestrate-agent=codex:gpt-4o",
        "--orchestrate-budget=1",
        "--orchestrate-dimensions=tests,lint",
        REPORT,
    )

    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    report = Report.model_validate(load(pytester.path))
    assert report.loop is not None and report.loop.stop_reason, out
    assert report.agents is not None
    assert 1 <= report.agents.spent_usd < float("inf")
    assert "budget" in report.loop.stop_reason


def test_a_missing_agent_or_an_unpriced_model_ends_the_session_before_its_tests(
    pytester: pytest.Pytester, fakes: Path
) -> None:
    pytester.makepyfile(test_slow="def test_marker():\n    open('ran', 'w').close()\n")
    committed(pytester.path)
    result = pytester.runpytest_subprocess("--orchestrate", "--orchestrate-agent=codex:gpt-9-turbo")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(
        [
            "ERROR: --orchestrate-agent=codex:gpt-9-turbo: no price for model 'gpt-9-turbo'*"
            "orchestrate_pricing = gpt-9-turbo=INPUT/OUTPUT*"
        ]
    )

    (fakes / "gemini").unlink()
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--orchestrate-dimensions=tests,agent:backend",
        "--orchestrate-audit-agent=gemini",
    )
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(
        [
            "ERROR: --orchestrate-audit-agent=gemini: 'gemini' is not on PATH; install it "
            "(npm install -g @google/gemini-cli)*"
        ]
    )
    assert not (pytester.path / "ran").exists()  # no test ran

    # claude reports its own cost: a model we have no price for is fine
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patch:
        patch.setenv("FAKE_AGENT_TEXT", ANSWER)
        result = pytester.runpytest_subprocess(
            "--orchestrate",
            "--orchestrate-dimensions=tests,agent:backend",
            "--orchestrate-audit-agent=claude:claude-future-9",
        )
    assert result.ret in (0, 6), result.stderr.str()


# --- templates --------------------------------------------------------------------------


def template_project(pytester: pytest.Pytester, close_gap: str) -> Path:
    pytester.makepyfile(test_ok="def test_ok():\n    open('ran', 'w').close()\n")
    folder = pytester.path / "prompts"
    folder.mkdir()
    (folder / "close_gap.j2").write_text(close_gap)
    pytester.makeini("[pytest]\norchestrate_templates_dir = prompts\n")
    committed(pytester.path)
    return folder


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ('{{ "".__class__.__mro__ }}', "forbidden by the sandbox: access to attribute"),
        ("{{ (score | int) ** 10000000 }}", "forbidden by the sandbox: a power above 1024"),
        ("{{ 'x' * 100000000 }}", "forbidden by the sandbox: a value larger than 1000000"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}xx{% endfor %}{% endfor %}",
            "the prompt grows past 1000000 characters",
        ),
        ("{% include '_outside.j2' %}", "_outside.j2 is a link to"),
        ("{{ undefined_thing }}", "'undefined_thing' is undefined"),
        ("{% if %}", "syntax error"),
    ],
    ids=["forbidden", "power", "repeat", "runaway-loop", "link-out", "undefined", "syntax"],
)
def test_a_broken_template_is_a_usage_error_before_the_tests(
    pytester: pytest.Pytester, template: str, error: str
) -> None:
    folder = template_project(pytester, template)
    if "_outside" in template:
        outside = pytester.path.parent / "secret.j2"
        outside.write_text("the secret\n")
        (folder / "_outside.j2").symlink_to(outside)

    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-agent=command:true", "--orchestrate-sandbox=none"
    )

    assert result.ret == EXIT_USAGE, result.stdout.str()
    assert not (pytester.path / "ran").exists()
    result.stderr.fnmatch_lines([f"ERROR: *{error}*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_templates_are_read_once_when_the_session_starts(
    pytester: pytest.Pytester, fakes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent that rewrites the templates does not change the next prompt."""
    folder = template_project(pytester, "Fix: {{ findings | length }} findings\n")
    (pytester.path / "mod.py").write_text("import os\nimport sys\n")
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-q", "-m", "lint")
    script = fakes / "edit.py"
    script.write_text(
        f"from pathlib import Path\nPath({str(folder / 'close_gap.j2')!r}).write_text("
        "'{{ \"\".__class__ }}')\nPath('mod.py').write_text('import os\\n')\n"
    )
    monkeypatch.setenv("FAKE_AGENT_SCRIPT", str(script))
    monkeypatch.setenv("FAKE_AGENT_LOG", str(fakes / "calls.jsonl"))
    result = pytester.runpytest_subprocess(
        "--orchestrate",
        "--target-score=100",
        "--orchestrate-dimensions=tests,lint",
        "--orchestrate-agent=claude",
        "--orchestrate-max-iterations=2",
        "--orchestrate-confirm=yes",
        REPORT,
    )

    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out, out
    prompts = [
        json.loads(line)["stdin"] for line in (fakes / "calls.jsonl").read_text().splitlines()
    ]
    assert len(prompts) == 2, out
    assert "__class__" in (folder / "close_gap.j2").read_text()  # the change was kept
    assert all(re.fullmatch(r"Fix: \d findings\n", p) for p in prompts), prompts


# --- 4. telling the user ----------------------------------------------------------------


def test_plugin_options_without_orchestrate_say_they_do_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess("--target-score=80", "--orchestrate-dimensions=tests")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "WARNING: --target-score, --orchestrate-dimensions do nothing without "
            "--orchestrate; add --orchestrate*"
        ]
    )
    assert "WARNING" not in pytester.runpytest_subprocess().stdout.str()


def test_points_lost_are_on_one_scale_and_labelled(pytester: pytest.Pytester) -> None:
    """The detail lines are in overall points like their dimension's line, each with its
    own-scale figure labelled; "1 point", not "1 points"."""
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/mod": "import os\n",
            "tests/test_a": "def test_a():\n    assert False\n\n\n"
            "def test_b():\n    assert True\n\n\ndef test_c():\n    assert True\n",
        }
    )
    pytester.makeini(
        "[pytest]\npythonpath = .\norchestrate_severity_points = P2=1\n"
        "orchestrate_weights = tests=30 lint=20\n"
    )
    result = pytester.runpytest_subprocess(
        "--orchestrate", "--orchestrate-dimensions=tests,lint", "--orchestrate-report=terminal"
    )

    result.stdout.fnmatch_lines(
        [
            "Points lost (20.40 of the 100 overall; in brackets, of the dimension's own 100):",
            "*-20.00  tests: 66.67 with weight 30 of 50",
            "*-20.00  1 failed of 3 tests (-33.33 of 100 in tests)",
            "*-0.40  lint: 99.00 with weight 20 of 50",
            "*-0.40  1 x F401 (P2, 1 point each per 1 KLOC) (-1.00 of 100 in lint)",
        ]
    )


def test_a_diff_base_past_the_start_of_history_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    committed(pytester.path)
    pytester.path.joinpath("more.py").write_text("x = 1\n")
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-q", "-m", "second")

    result = pytester.runpytest_subprocess("--orchestrate", "--orchestrate-diff-base=HEAD~5")
    assert result.ret == EXIT_USAGE
    result.stderr.fnmatch_lines(
        [
            "ERROR: --orchestrate-diff-base: diff base 'HEAD~5' is before the first commit: "
            "the history of 'HEAD' has 2 commits; give a nearer one (at most HEAD~1)"
        ]
    )
    result = pytester.runpytest_subprocess("--orchestrate", "--orchestrate-agent=nope")
    result.stderr.fnmatch_lines(
        [
            "ERROR: --orchestrate-agent: unknown agent 'nope'; use one of aider, claude, codex, "
            "copilot, gemini, command:ARGV"
        ]
    )
