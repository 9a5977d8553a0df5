"""The GitHub Action's gate step: the action's inputs -> one pytest command -> its exit status.

``action.yml`` hands every input to this script through ``env:`` (``INPUT_TARGET_SCORE``,
``INPUT_PYTEST_ARGS``, ...), never through ``${{ inputs.x }}`` inside a ``run:`` script, where
the value would become shell code. Here each value is validated (a bad one gives one line and
exit status 2) and becomes one element of an argv list that is run without a shell::

    python -m pytest --orchestrate --orchestrate-report=terminal --orchestrate-report=github
        --orchestrate-report=json:DIR/report.json --orchestrate-report=markdown:DIR/report.md
        [--orchestrate-report=sarif:DIR/report.sarif] [--orchestrate-report=pr-comment]
        [--target-score=N] [--orchestrate-dimensions=...] [--orchestrate-fail-on=...]
        [--orchestrate-diff-base=REF] [--orchestrate-baseline=PATH]
        [--orchestrate-agent=... [--orchestrate-budget=USD]] PYTEST_ARGS...

``python -m pytest_orchestrator.action --dry-run`` prints that argv as JSON instead of running
it. Inside GitHub Actions, workflow commands are stopped while pytest runs (nothing a test
prints can act as a command or use up the annotation limits) and the github report resumes
them for its own annotations (see :mod:`pytest_orchestrator.reports.github`).

Only the standard library and the github report's escaping are imported: this runs before
anything else of the package is needed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_orchestrator.reports.github import RESUME_ENV, escape_data

#: pytest_orchestrator.reports.prcomment's ID_ENV and ACCESS_ENV (not imported here).
COMMENT_ID_ENV = "PYTEST_ORCHESTRATOR_COMMENT_ID"
COMMENT_ACCESS_ENV = "PYTEST_ORCHESTRATOR_GITHUB_TOKEN"

EXIT_BAD_INPUT = 2
PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DIMENSION = re.compile(r"[A-Za-z0-9_.:-]+")
_SEVERITY = re.compile(r"P[0-4]")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class InputError(ValueError):
    """An input of the action that cannot be used; the message names it."""


@dataclass(frozen=True)
class Inputs:
    """The validated inputs of the gate step."""

    target_score: str | None = None
    dimensions: str | None = None
    fail_on: str | None = None
    diff_base: str | None = None
    baseline: str | None = None
    agent: str | None = None
    budget: str | None = None
    pytest_args: tuple[str, ...] = ()
    report_dir: str = ".orchestrator"
    sarif: bool = True
    comment: bool = False


def _value(environ: Mapping[str, str], name: str) -> str:
    return environ.get(f"INPUT_{name.upper().replace('-', '_')}", "").strip()


def _plain(value: str, name: str) -> str:
    if _UNSAFE.search(value):
        raise InputError(f"{name}: {value!r} contains a line break or control character")
    return value


def _number(value: str, name: str, high: float | None) -> str:
    if not _NUMBER.fullmatch(value) or (high is not None and float(value) > high):
        allowed = f"a number from 0 to {high:g}" if high is not None else "a number >= 0"
        raise InputError(f"{name}: {value!r} is not {allowed}")
    return value


def _ref(value: str, name: str) -> str:
    """A git revision that git cannot mistake for an option."""
    _plain(value, name)
    if value.startswith("-") or " " in value:
        raise InputError(f"{name}: {value!r} is not a git ref (like origin/main or a commit)")
    return value


def _boolean(value: str, name: str, default: bool) -> bool:
    if not value:
        return default
    if value.lower() not in ("true", "false"):
        raise InputError(f"{name}: {value!r} is not true or false")
    return value.lower() == "true"


def _diff_base(value: str, environ: Mapping[str, str]) -> str | None:
    """The ``--orchestrate-diff-base`` ref: ``auto`` (or empty) means the pull request's base
    branch (``origin/$GITHUB_BASE_REF``) on pull request events and none elsewhere."""
    if value.lower() == "none":
        return None
    if value.lower() in ("", "auto"):
        base = environ.get("GITHUB_BASE_REF", "").strip()
        if environ.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS and base:
            return _ref(f"origin/{base}", "diff-base (from GITHUB_BASE_REF)")
        return None
    return _ref(value, "diff-base")


def read_inputs(environ: Mapping[str, str], cwd: Path | None = None) -> Inputs:
    """The gate step's inputs from ``environ`` (``INPUT_*`` variables), validated.

    :param cwd: the directory relative paths (baseline) are relative to; the current one.
    :raises InputError: an input is invalid (the message names it and says what is allowed).
    """
    target = _value(environ, "target-score")
    if target:
        _number(target, "target-score", 100)
    dimensions = _value(environ, "dimensions")
    if dimensions:
        items = [d.strip() for d in dimensions.split(",")]
        if not all(_DIMENSION.fullmatch(d) for d in items):
            raise InputError(
                f"dimensions: {dimensions!r} is not a comma-separated list of dimensions "
                "(like tests,coverage,lint,security)"
            )
        dimensions = ",".join(items)
    fail_on = _value(environ, "fail-on")
    if fail_on:
        items = [s.strip().upper() for s in fail_on.split(",")]
        if items != ["NONE"] and not all(_SEVERITY.fullmatch(s) for s in items):
            raise InputError(
                f"fail-on: {fail_on!r} is not a list of severities P0-P4 (like P0,P1) or none"
            )
        fail_on = ",".join(items).lower() if items == ["NONE"] else ",".join(items)
    baseline = _plain(_value(environ, "baseline"), "baseline")
    if baseline and not ((cwd or Path.cwd()) / baseline).is_file():
        raise InputError(
            f"baseline: {baseline!r} is not a file; give the path of an earlier JSON report, "
            "relative to working-directory"
        )
    agent = _plain(_value(environ, "agent"), "agent")
    budget = _value(environ, "budget")
    if budget:
        _number(budget, "budget", None)
    raw_args = environ.get("INPUT_PYTEST_ARGS", "")
    try:
        pytest_args = tuple(shlex.split(raw_args))
    except ValueError as exc:
        raise InputError(
            f"pytest-args: cannot split {raw_args!r} into arguments ({exc}); quote as in a "
            "POSIX shell, e.g. -k 'not slow'"
        ) from None
    report_dir = _plain(_value(environ, "report-dir") or ".orchestrator", "report-dir")
    return Inputs(
        target_score=target or None,
        dimensions=dimensions or None,
        fail_on=fail_on or None,
        diff_base=_diff_base(_value(environ, "diff-base"), environ),
        baseline=baseline or None,
        agent=agent or None,
        budget=budget or None,
        pytest_args=pytest_args,
        report_dir=report_dir,
        sarif=_boolean(_value(environ, "sarif"), "sarif", default=True),
        comment=_boolean(_value(environ, "comment"), "comment", default=True)
        and environ.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS,
    )


def build_argv(inputs: Inputs, python: str = sys.executable) -> list[str]:
    """The pytest command line of ``inputs``, as an argv list (never a shell string)."""
    directory = inputs.report_dir.rstrip("/") or "/"
    reports = ["terminal", "github", f"json:{directory}/report.json"]
    reports.append(f"markdown:{directory}/report.md")
    if inputs.sarif:
        reports.append(f"sarif:{directory}/report.sarif")
    if inputs.comment:
        reports.append("pr-comment")
    argv = [python, "-m", "pytest", "--orchestrate"]
    argv += [f"--orchestrate-report={r}" for r in reports]
    options = (
        ("--target-score", inputs.target_score),
        ("--orchestrate-dimensions", inputs.dimensions),
        ("--orchestrate-fail-on", inputs.fail_on),
        ("--orchestrate-diff-base", inputs.diff_base),
        ("--orchestrate-baseline", inputs.baseline),
        ("--orchestrate-agent", inputs.agent),
        ("--orchestrate-budget", inputs.budget),
    )
    argv += [f"{flag}={value}" for flag, value in options if value is not None]
    return [*argv, *inputs.pytest_args]


def child_environment(environ: Mapping[str, str], comment: bool = True) -> dict[str, str]:
    """pytest's environment: ``environ`` without the action's ``INPUT_GITHUB_TOKEN`` and
    ``INPUT_COMMENT_ID``; with ``comment``, the token as ``PYTEST_ORCHESTRATOR_GITHUB_TOKEN``
    (the plugin takes it out of the environment before any test or agent runs) and the id as
    ``PYTEST_ORCHESTRATOR_COMMENT_ID``."""
    env = {k: v for k, v in environ.items() if k not in ("INPUT_GITHUB_TOKEN", "INPUT_COMMENT_ID")}
    if comment and environ.get("INPUT_GITHUB_TOKEN"):
        env[COMMENT_ACCESS_ENV] = environ["INPUT_GITHUB_TOKEN"]
    if comment and environ.get("INPUT_COMMENT_ID"):
        env[COMMENT_ID_ENV] = environ["INPUT_COMMENT_ID"]
    return env


def run(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``argv``; its exit status. Inside GitHub Actions, workflow commands are stopped
    while it runs, and the token that resumes them is passed in ``RESUME_ENV``."""
    env = child_environment(environ, comment="--orchestrate-report=pr-comment" in argv)
    token = secrets.token_hex(16) if environ.get("GITHUB_ACTIONS") == "true" else None
    if token:
        env[RESUME_ENV] = token
        print(f"::stop-commands::{token}", flush=True)
    try:
        # printed while commands are stopped: an argument cannot act as a command
        print(f"pytest-orchestrator action: {shlex.join(argv)}", flush=True)
        return subprocess.run(list(argv), env=env, check=False).returncode
    finally:
        if token:
            print(f"::{token}::", flush=True)


def _error(message: str, environ: Mapping[str, str]) -> None:
    if environ.get("GITHUB_ACTIONS") == "true":
        print(f"::error title=pytest-orchestrator action::{escape_data(message)}", flush=True)
    else:
        print(f"pytest-orchestrator action: error: {message}", file=sys.stderr, flush=True)


def main(args: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """``python -m pytest_orchestrator.action [--dry-run]``; the exit status."""
    args = list(sys.argv[1:] if args is None else args)
    environ = os.environ if environ is None else environ
    if args not in ([], ["--dry-run"]):
        _error(f"usage: python -m pytest_orchestrator.action [--dry-run], not {args!r}", environ)
        return EXIT_BAD_INPUT
    try:
        argv = build_argv(read_inputs(environ))
    except InputError as exc:
        _error(str(exc), environ)
        return EXIT_BAD_INPUT
    if args == ["--dry-run"]:
        print(json.dumps(argv))
        return 0
    return run(argv, environ)


if __name__ == "__main__":
    sys.exit(main())
