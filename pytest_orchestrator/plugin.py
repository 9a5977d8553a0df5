"""pytest entry point (``pytest11``): options, hook specs, and the switch.

This module is imported by every pytest run in an environment where the package is
installed, so it imports only pytest and the standard library. Everything else
(pydantic, rich, coverage, junitparser) is imported only when ``--orchestrate`` is on.
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

import pytest

#: Set in the environment of the remote pytest of an ``--orchestrate-exec`` run.
REMOTE_ENV = "PYTEST_ORCHESTRATOR_REMOTE"
#: Set in the environment of the AI agents we run: a pytest they start does not orchestrate.
AGENT_ENV = "PYTEST_ORCHESTRATOR_AGENT"
#: Set (to the JSON report's path) for the child pytest that re-audits during gap closure.
CHILD_ENV = "PYTEST_ORCHESTRATOR_CHILD"
#: Set for that child to the JSON file of the session's start observation (the oracle).
ORACLE_ENV = "PYTEST_ORCHESTRATOR_ORACLE"


class Option(NamedTuple):
    """A command-line option and its ini twin (``ini``); ``field`` names the config field."""

    flag: str
    dest: str
    ini: str
    field: str | None
    help: str
    metavar: str | None = None
    action: str = "store"


OPTIONS = (
    Option(
        "--orchestrate",
        "orchestrate",
        "orchestrate",
        None,
        "Audit the project around this test session, score it 0-100 and gate on the score",
        action="store_true",
    ),
    Option(
        "--target-score",
        "orchestrate_target_score",
        "orchestrate_target_score",
        "target_score",
        "Overall score the quality gate requires, 0-100 (default: 90)",
        "N",
    ),
    Option(
        "--orchestrate-dimensions",
        "orchestrate_dimensions",
        "orchestrate_dimensions",
        "dimensions",
        "Comma-separated dimensions to audit (default: tests,coverage,lint,security; opt-in: "
        "types, agent:NAME)",
        "A,B",
    ),
    Option(
        "--orchestrate-fail-on",
        "orchestrate_fail_on",
        "orchestrate_fail_on",
        "fail_on",
        "Comma-separated severities that fail the gate whatever the score (default: P0; "
        "'none' for none)",
        "P0,P1",
    ),
    Option(
        "--orchestrate-report",
        "orchestrate_report",
        "orchestrate_report",
        "reports",
        "Report to write: terminal, json, junit, markdown, sarif, codeclimate (GitLab Code "
        "Quality), github (annotations and step summary inside GitHub Actions) or pr-comment "
        "(one comment on the pull request, updated in place), optionally TYPE:PATH; "
        "repeatable (default: terminal)",
        "TYPE[:PATH]",
        "append",
    ),
    Option(
        "--orchestrate-agent",
        "orchestrate_agent",
        "orchestrate_agent",
        "agents",
        "AI agent(s) to use, NAME[:MODEL] (claude, codex, gemini, copilot, aider) or "
        "command:ARGV; several, comma-separated, are tried in order",
        "NAME[:MODEL]",
    ),
    Option(
        "--orchestrate-audit-agent",
        "orchestrate_audit_agent",
        "orchestrate_audit_agent",
        "audit_agents",
        "Agent(s) for the agent:NAME audit dimensions (default: --orchestrate-agent)",
        "NAME[:MODEL]",
    ),
    Option(
        "--orchestrate-reruns",
        "orchestrate_reruns",
        "orchestrate_reruns",
        "reruns",
        "Run a test whose call failed again, up to N times; one that fails, then passes, is a "
        "flaky finding and counts as passed (default: 0)",
        "N",
    ),
    Option(
        "--orchestrate-budget",
        "orchestrate_budget",
        "orchestrate_budget",
        "budget_usd",
        "USD the agents may spend in this session (default: 5.00)",
        "USD",
    ),
    Option(
        "--orchestrate-max-turns",
        "orchestrate_max_turns",
        "orchestrate_max_turns",
        "max_turns",
        "Agent turns one agent call may take, a whole number of at least 1, passed as "
        "claude's --max-turns; the other CLIs have no such option (default: the CLI's own)",
        "N",
    ),
    Option(
        "--orchestrate-max-iterations",
        "orchestrate_max_iterations",
        "orchestrate_max_iterations",
        "max_iterations",
        "Gap-closure iterations at most, with --orchestrate-agent (default: 10)",
        "N",
    ),
    Option(
        "--orchestrate-confirm",
        "orchestrate_confirm",
        "orchestrate_confirm",
        "confirm",
        "Answer to the guard's questions on risky agent changes: ask (on a terminal; no "
        "without one), yes or no (default: ask)",
        "ask|yes|no",
    ),
    Option(
        "--orchestrate-sandbox",
        "orchestrate_sandbox",
        "orchestrate_sandbox",
        "sandbox",
        "What agent calls and gap closure's re-audits run in: auto (bubblewrap where it "
        "works, else none with a warning), bwrap (required) or none (default: auto)",
        "auto|bwrap|none",
    ),
    Option(
        "--orchestrate-allow-dirty",
        "orchestrate_allow_dirty",
        "orchestrate_allow_dirty",
        "allow_dirty",
        "Let gap closure start on a tree with uncommitted changes (its snapshots keep them)",
        action="store_true",
    ),
    Option(
        "--orchestrate-develop",
        "orchestrate_develop",
        "orchestrate_develop",
        "develop",
        "Let gap closure write missing tests for uncovered code, once confirmed",
        action="store_true",
    ),
    Option(
        "--orchestrate-commit",
        "orchestrate_commit",
        "orchestrate_commit",
        "commit",
        "Commit each accepted gap-closure iteration (nothing is pushed)",
        action="store_true",
    ),
    Option(
        "--orchestrate-resume",
        "orchestrate_resume",
        "orchestrate_resume",
        "resume",
        "Continue a saved gap-closure session: its ID, or 'last'",
        "ID|last",
    ),
    Option(
        "--orchestrate-exec",
        "orchestrate_exec",
        "orchestrate_exec",
        "exec_prefix",
        "Run the tests inside a container through this exec prefix, in one round trip, "
        "e.g. 'docker compose exec -T odoo'",
        "PREFIX",
    ),
    Option(
        "--orchestrate-exec-command",
        "orchestrate_exec_command",
        "orchestrate_exec_command",
        "exec_command",
        "The remote pytest command, PYTHON -m pytest [OPTIONS] (default: python -m pytest)",
        "COMMAND",
    ),
    Option(
        "--orchestrate-exec-timeout",
        "orchestrate_exec_timeout",
        "orchestrate_exec_timeout",
        "exec_timeout",
        "Seconds the remote test run may take (default: 3600)",
        "SECONDS",
    ),
    Option(
        "--orchestrate-path-map",
        "orchestrate_path_map",
        "orchestrate_path_map",
        "path_map",
        "Container directory REMOTE holds the files of LOCAL (relative to the rootdir); "
        "repeatable (default: the container's working directory is the rootdir)",
        "REMOTE=LOCAL",
        "append",
    ),
    Option(
        "--orchestrate-diff-base",
        "orchestrate_diff_base",
        "orchestrate_diff_base",
        "diff_base",
        "Judge only new code: the lines changed since the merge base of REF and HEAD, plus "
        "uncommitted and untracked files (new-code score, findings, diff coverage)",
        "REF",
    ),
    Option(
        "--orchestrate-baseline",
        "orchestrate_baseline",
        "orchestrate_baseline",
        "baseline",
        "Ratchet against an earlier JSON report: fail when the score or coverage drops "
        "below it or a finding it lacks appears",
        "PATH",
    ),
)

#: Settings that exist only in the ini file: ini name -> config field.
INI_ONLY = {
    "orchestrate_weights": "weights",
    "orchestrate_min_scores": "min_scores",
    "orchestrate_path_minimums": "path_minimums",
    "orchestrate_unavailable": "unavailable",
    "orchestrate_allow_unavailable": "allow_unavailable",
    "orchestrate_severity_map": "severity_map",
    "orchestrate_severity_points": "severity_points",
    "orchestrate_ruff_select": "ruff_select",
    "orchestrate_lint_tests": "lint_tests",
    "orchestrate_security_engine": "security_engine",
    "orchestrate_tool_timeout": "tool_timeout",
    "orchestrate_pricing": "pricing",
    "orchestrate_pricing_file": "pricing_file",
    "orchestrate_templates_dir": "templates_dir",
    "orchestrate_agent_timeout": "agent_timeout",
    "orchestrate_agent_retries": "agent_retries",
    "orchestrate_loop_batch": "loop_batch",
    "orchestrate_min_acceptable_score": "min_acceptable_score",
    "orchestrate_guard": "guard",
    "orchestrate_guard_core_files": "guard_core_files",
    "orchestrate_sandbox_writable": "sandbox_writable",
}

_INI_HELP: dict[str, tuple[Literal["args", "string", "linelist"], str]] = {
    "orchestrate_weights": (
        "args",
        "Dimension weights in the overall score, e.g. tests=30 coverage=30 lint=20 security=20",
    ),
    "orchestrate_min_scores": (
        "args",
        "Per-dimension minimum scores of the gate (default: tests=80 coverage=70)",
    ),
    "orchestrate_path_minimums": (
        "linelist",
        "Gate conditions on groups of files, one per line: PATTERN DIMENSION>=N, e.g. "
        "'src/core/** coverage>=95' or 'src/cli/** lint>=80' (the dimension scored over the "
        "matching files only)",
    ),
    "orchestrate_unavailable": (
        "string",
        "What an unavailable dimension does: fail (fails the gate, default), "
        "skip (left out of the score) or zero (counts as 0)",
    ),
    "orchestrate_allow_unavailable": (
        "args",
        "Dimensions that may be unavailable without failing the gate (left out of the "
        "score), e.g. security agent:security",
    ),
    "orchestrate_severity_map": (
        "linelist",
        "Severity overrides, one TOOL:RULE-PREFIX=SEVERITY per line, e.g. ruff:E501=P4",
    ),
    "orchestrate_severity_points": (
        "args",
        "Points a finding costs per 1,000 lines of code (default: P0=20 P1=8 P2=3 P3=1 P4=0)",
    ),
    "orchestrate_ruff_select": (
        "string",
        "ruff rules to select when the project has no ruff configuration (default: E4,E7,E9,F)",
    ),
    "orchestrate_lint_tests": (
        "string",
        "Test code in the lint score: count (like the rest, default), lower (its findings "
        "one severity lower) or skip (neither its findings nor its lines count)",
    ),
    "orchestrate_security_engine": (
        "string",
        "Security engine: auto (bandit when the project configures it, else ruff's S rules; "
        "default), ruff or bandit",
    ),
    "orchestrate_tool_timeout": (
        "string",
        "Seconds ruff or bandit may run before the dimension is unavailable (default: 600)",
    ),
    "orchestrate_pricing": (
        "linelist",
        "Model prices, one MODEL=INPUT/OUTPUT per line in USD per 1M tokens, e.g. gpt-4o=5/15",
    ),
    "orchestrate_pricing_file": (
        "string",
        'JSON file of model prices: {"models": {"MODEL": [INPUT, OUTPUT]}} (USD per 1M tokens)',
    ),
    "orchestrate_templates_dir": (
        "string",
        "Directory whose NAME.j2 prompt templates override the packaged ones",
    ),
    "orchestrate_agent_timeout": (
        "string",
        "Seconds one agent call may take (default: 900)",
    ),
    "orchestrate_agent_retries": (
        "string",
        "Retries of a rate-limited agent call (default: 3)",
    ),
    "orchestrate_loop_batch": (
        "string",
        "Findings an agent is asked to close per iteration (default: 5)",
    ),
    "orchestrate_min_acceptable_score": (
        "string",
        "Score from which P2/P3 findings are closed too (default: 80)",
    ),
    "orchestrate_guard": (
        "args",
        "Guard thresholds: max_lines_removed=50 max_files_modified=5 confirm_at=medium",
    ),
    "orchestrate_sandbox_writable": (
        "linelist",
        "More paths the sandboxed agent calls and re-audits may write, one per line",
    ),
    "orchestrate_guard_core_files": (
        "linelist",
        "File name patterns whose change needs confirmation (default: __init__.py, "
        "__manifest__.py, pyproject.toml, setup.py, setup.cfg, requirements*.txt, and the "
        "files the gate's rules come from: conftest.py, pytest.toml, .pytest.toml, "
        "pytest.ini, .pytest.ini, tox.ini, .coveragerc, ruff.toml, .ruff.toml, mypy.ini, "
        ".mypy.ini, pyrightconfig.json, .bandit, .flake8)",
    ),
}


def ini_names() -> list[str]:
    """Every ini setting of the plugin (``orchestrate``, ``orchestrate_target_score``, ...)."""
    return [option.ini for option in OPTIONS] + list(_INI_HELP)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("orchestrator", "quality gate and gap closure")
    for option in OPTIONS:
        extra = {} if option.action == "store_true" else {"metavar": option.metavar}
        group.addoption(
            option.flag,
            action=option.action,
            dest=option.dest,
            default=None,
            help=option.help,
            **extra,
        )
        if option.action == "store_true":
            parser.addini(option.ini, option.help, type="bool", default=False)
        elif option.action == "append":
            parser.addini(option.ini, option.help, type="args")
        else:
            parser.addini(option.ini, option.help, type="string")
    for name, (kind, text) in _INI_HELP.items():
        parser.addini(name, text, type=kind)


@pytest.hookimpl
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_orchestrator import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def enabled(config: pytest.Config, early: bool = False) -> bool:
    """True when ``--orchestrate`` is given or ``orchestrate = true`` is in the ini file,
    except in the pytest that an ``--orchestrate-exec`` run starts in the container or that
    an agent we run starts (no recursion).

    :param early: read the options pytest parsed before loading conftest.py files
        (``pytest_load_initial_conftests`` runs before the full parse).
    """
    if os.environ.get(REMOTE_ENV) or os.environ.get(AGENT_ENV):
        # the remote side of an --orchestrate-exec run, or a pytest an agent started
        return False
    if early:
        flag = getattr(config.known_args_namespace, "orchestrate", None)
    else:
        flag = config.getoption("orchestrate", default=None)
    return bool(flag) or bool(config.getini("orchestrate"))


@pytest.hookimpl
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Start coverage before conftest.py files and test modules import the project (pytest
    # loads them in its own trylast implementation), and after pytest-cov's (tryfirst).
    if enabled(early_config, early=True):
        from pytest_orchestrator.auditors.measure import start_measurement

        remote = bool(_exec_prefix(early_config))
        if remote:
            # The container loads the project's conftest.py files; here they may not even
            # import (the code only runs there), and no test runs here.
            early_config.known_args_namespace.noconftest = True
        start_measurement(early_config, remote=remote, contexts=_gap_closure(early_config))
        if _security_expected(early_config):
            # bandit's start-up (importing it: ~0.1 s) overlaps pytest's own
            from pytest_orchestrator.auditors.tools import prelaunch_bandit

            prelaunch_bandit(early_config)


def early_dimensions(config: pytest.Config) -> list[str]:
    """The dimensions asked for, as given (validated later by the settings), read from the
    options pytest parsed before loading conftest.py files."""
    raw = getattr(config.known_args_namespace, "orchestrate_dimensions", None)
    if raw is None:
        raw = config.getini("orchestrate_dimensions") or "tests,coverage,lint,security"
    return str(raw).replace(",", " ").split()


def _security_expected(config: pytest.Config) -> bool:
    """A bandit security audit will run here: bandit is installed and is the engine, the
    dimension is asked for, and this is no --collect-only, --help, remote
    (--orchestrate-exec) run or xdist worker."""
    import importlib.util

    from pytest_orchestrator.auditors.security import engine

    namespace = config.known_args_namespace
    return (
        "security" in early_dimensions(config)
        and engine(config) == "bandit"
        and not getattr(namespace, "collectonly", False)
        and not getattr(namespace, "help", False)
        and not _exec_prefix(config)
        and not os.environ.get("PYTEST_XDIST_WORKER")
        and importlib.util.find_spec("bandit") is not None
    )


def _gap_closure(config: pytest.Config) -> bool:
    """Gap closure will run here (an agent is given, and this is not a loop's re-audit):
    its loop re-tests first the tests that cover an agent's change, so coverage records
    each line's tests."""
    value = getattr(config.known_args_namespace, "orchestrate_agent", None)
    if value is None:
        value = config.getini("orchestrate_agent")
    return bool(value) and not os.environ.get(CHILD_ENV)


def _exec_prefix(config: pytest.Config) -> str:
    value = getattr(config.known_args_namespace, "orchestrate_exec", None)
    return str(value if value is not None else config.getini("orchestrate_exec") or "")


def ignored_options(config: pytest.Config) -> list[str]:
    """The options of this plugin given on the command line of a session that does not
    orchestrate (no ``--orchestrate``): they do nothing."""
    if os.environ.get(REMOTE_ENV) or os.environ.get(AGENT_ENV) or enabled(config):
        return []
    return [
        option.flag
        for option in OPTIONS
        if option.flag != "--orchestrate"
        and config.getoption(option.dest, default=None) not in (None, False, [])
    ]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if not enabled(config) and config.getoption("orchestrate_exec", default=None):
        raise pytest.UsageError("--orchestrate-exec needs --orchestrate; add it")
    ignored = ignored_options(config) if not hasattr(config, "workerinput") else []
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if ignored and reporter is not None:
        reporter.write_line(
            f"WARNING: {', '.join(ignored)} "
            + ("does" if len(ignored) == 1 else "do")
            + " nothing without --orchestrate; add --orchestrate (or orchestrate = true "
            "in the ini file)",
            yellow=True,
        )
    if enabled(config):
        from pytest_orchestrator.orchestrator import Orchestrator

        Orchestrator.install(config)
