"""pytest entry point (``pytest11``): options, hook specs, and the switch.

This module is imported by every pytest run in an environment where the package is
installed, so it imports only pytest and the standard library. Everything else
(pydantic, rich, coverage, junitparser) is imported only when ``--orchestrate`` is on.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import pytest


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
        "Comma-separated dimensions to audit (default: tests,coverage,lint,security)",
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
        "Report to write: terminal, json, junit or markdown, optionally TYPE:PATH; "
        "repeatable (default: terminal)",
        "TYPE[:PATH]",
        "append",
    ),
)

#: Settings that exist only in the ini file: ini name -> config field.
INI_ONLY = {
    "orchestrate_weights": "weights",
    "orchestrate_min_scores": "min_scores",
    "orchestrate_unavailable": "unavailable",
    "orchestrate_severity_map": "severity_map",
    "orchestrate_severity_points": "severity_points",
    "orchestrate_ruff_select": "ruff_select",
    "orchestrate_tool_timeout": "tool_timeout",
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
    "orchestrate_unavailable": (
        "string",
        "What an unavailable dimension does: skip (left out of the score, default), "
        "zero (counts as 0) or fail (fails the gate)",
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
    "orchestrate_tool_timeout": (
        "string",
        "Seconds ruff or bandit may run before the dimension is unavailable (default: 600)",
    ),
}


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
    """True when ``--orchestrate`` is given or ``orchestrate = true`` is in the ini file.

    :param early: read the options pytest parsed before loading conftest.py files
        (``pytest_load_initial_conftests`` runs before the full parse).
    """
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

        start_measurement(early_config)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if enabled(config):
        from pytest_orchestrator.orchestrator import Orchestrator

        Orchestrator.install(config)
