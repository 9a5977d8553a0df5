"""One pydantic model for every setting: command line beats ini beats default.

:class:`OrchestrationConfig` is built by :meth:`OrchestrationConfig.from_pytest` from a
``pytest.Config``. Every command-line option ``--x`` has an ini twin ``orchestrate_x`` in
``[tool.pytest.ini_options]`` (the table is :data:`pytest_orchestrator.plugin.OPTIONS`);
settings that only make sense in a file (weights, minimums, severity map) are ini-only.
A bad value raises ``pytest.UsageError`` with one line: which setting, what is wrong,
what is allowed.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pytest_orchestrator.models import Severity
from pytest_orchestrator.plugin import INI_ONLY, OPTIONS, enabled

BUILTIN_DIMENSIONS = ("tests", "coverage", "lint", "security")
REPORT_TYPES = (
    "terminal",
    "json",
    "junit",
    "markdown",
    "sarif",
    "codeclimate",
    "github",
    "pr-comment",
)
#: Reports written to the terminal, the CI runner or the pull request, never to a PATH.
PATHLESS_REPORTS = ("terminal", "github", "pr-comment")
DEFAULT_REPORT_PATHS = {
    "json": "orchestrator-report.json",
    "junit": "orchestrator-junit.xml",
    "markdown": "orchestrator-report.md",
    "sarif": "orchestrator-report.sarif",
    "codeclimate": "orchestrator-codeclimate.json",
}
DEFAULT_WEIGHTS = {"tests": 30.0, "coverage": 30.0, "lint": 20.0, "security": 20.0}
#: Weight of a dimension that ``orchestrate_weights`` does not name (third-party auditors).
DEFAULT_OTHER_WEIGHT = 20.0
#: Per-dimension minimums from the seeds' quality gates: pass rate >= 80, coverage >= 70.
DEFAULT_MIN_SCORES = {"tests": 80.0, "coverage": 70.0}
#: Points one finding costs per 1,000 lines of code (see scoring.finding_score).
DEFAULT_SEVERITY_POINTS = {
    Severity.P0: 20.0,
    Severity.P1: 8.0,
    Severity.P2: 3.0,
    Severity.P3: 1.0,
    Severity.P4: 0.0,
}
#: ruff's rule selection when the project has no ruff configuration (ruff's own default
#: before 0.16 widened it; pinned so scores do not jump with ruff upgrades).
DEFAULT_RUFF_SELECT = "E4,E7,E9,F"


def _split(value: Any) -> list[str]:
    """'a,b c' or ['a,b', 'c'] -> ['a', 'b', 'c']."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        out.extend(p for p in str(item).replace(",", " ").split() if p)
    return out


def _severity(text: str) -> Severity:
    try:
        return Severity(text.strip().upper())
    except ValueError:
        raise ValueError(
            f"unknown severity {text!r}; use P0, P1, P2, P3 or P4 (P0 is critical)"
        ) from None


def _pairs(value: Any, what: str) -> dict[str, str]:
    """'tests=30 coverage=20' -> {'tests': '30', 'coverage': '20'}."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for item in _split(value):
        key, sep, val = item.partition("=")
        if not sep or not key or not val:
            raise ValueError(f"{item!r} is not KEY=VALUE; write it like {what}")
        out[key] = val
    return out


def _number(text: str, what: str, low: float = 0.0, high: float | None = 100.0) -> float:
    try:
        number = float(text)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number < low or (high is not None and number > high):
        bound = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
        raise ValueError(f"{text!r} is not a valid {what}; give a number {bound}")
    return number


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` (a POSIX path glob relative to the rootdir) as a regex for ``fullmatch``.

    ``**`` is any number of directories (none included; at the end, anything below), ``*``
    any characters but ``/``, ``?`` one character but ``/``; everything else is literal. A
    pattern without a wildcard also matches everything below it, as a directory.
    """
    parts = pattern.strip().strip("/").split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        segment = "".join(
            "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part
        )
        out.append(segment if last else segment + "/")
    text = "".join(out)
    if not any(c in pattern for c in "*?"):
        text += "(?:/.*)?"
    return re.compile(text)


class PathMinimum(BaseModel):
    """One ``orchestrate_path_minimums`` line, ``src/core/** coverage>=95``: the files the
    pattern matches (see :func:`glob_regex`) must reach ``minimum`` (0-100) in ``dimension``
    (coverage, or a finding dimension scored over those files only)."""

    model_config = ConfigDict(frozen=True)

    pattern: str
    dimension: str
    minimum: float

    def matches(self, path: str) -> bool:
        """Whether the rootdir-relative POSIX ``path`` is one of the group's files."""
        return glob_regex(self.pattern).fullmatch(path) is not None

    def describe(self) -> str:
        """The line as written back: ``src/core/** coverage>=95``."""
        return f"{self.pattern} {self.dimension}>={self.minimum:g}"


_PATH_MINIMUM = re.compile(r"(?P<pattern>\S+)\s+(?P<dimension>[\w:.-]+)\s*>=\s*(?P<value>\S+)")


class ReportSpec(BaseModel):
    """One ``--orchestrate-report=TYPE[:PATH]``: the type and the absolute output path."""

    model_config = ConfigDict(frozen=True)

    type: Literal[
        "terminal", "json", "junit", "markdown", "sarif", "codeclimate", "github", "pr-comment"
    ]
    path: Path | None = None


def check_writable(path: Path) -> None:
    """Raise ValueError when a report could not be written at ``path``."""
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory; give a file path")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: {str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(
            f"cannot write {str(path)!r}: directory {str(parent)!r} is not writable; "
            "choose another PATH"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"cannot write {str(path)!r}: the file is read-only")


def _one_of(value: Any, choices: tuple[str, ...], why: str = "") -> str:
    """``value`` as one of ``choices`` (case and spaces ignored).

    :raises ValueError: ``'x' is not a, b or c (WHY)``.
    """
    text = str(value).strip().lower()
    if text not in choices:
        listed = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise ValueError(f"{value!r} is not {listed}" + (f" ({why})" if why else ""))
    return text


class OrchestrationConfig(BaseModel):
    """Resolved settings of pytest-orchestrator (units: scores 0-100, timeouts in seconds).

    Build it with :meth:`from_pytest`; validation context keys: ``known_dimensions``
    (set of str), ``invocation_dir`` (Path, for relative report paths) and ``rootdir``
    (Path, for relative LOCAL directories of path maps).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    target_score: float = Field(90.0, description="Gate threshold on the overall score, 0-100")
    dimensions: tuple[str, ...] = BUILTIN_DIMENSIONS
    fail_on: tuple[Severity, ...] = (Severity.P0,)
    reports: tuple[ReportSpec, ...] = (ReportSpec(type="terminal"),)
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    min_scores: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MIN_SCORES))
    reruns: int = Field(0, description="Reruns of a test whose call failed, 0-100")
    path_minimums: tuple[PathMinimum, ...] = Field(
        (), description="Gate conditions on groups of files: PATTERN DIMENSION>=N"
    )
    unavailable: Literal["skip", "zero", "fail"] = Field(
        "fail",
        description="An unavailable dimension: fail (left out of the score, fails the gate), "
        "skip (left out of the score) or zero (counts as 0)",
    )
    allow_unavailable: tuple[str, ...] = Field(
        (), description="Dimensions whose unavailability does not fail the gate (skipped)"
    )
    severity_map: dict[str, Severity] = Field(default_factory=dict)
    severity_points: dict[Severity, float] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_POINTS)
    )
    ruff_select: str = DEFAULT_RUFF_SELECT
    lint_tests: Literal["count", "lower", "skip"] = Field(
        "count",
        description="Test code in lint: counted, its findings one severity lower, or left out",
    )
    security_engine: Literal["auto", "ruff", "bandit"] = Field(
        "auto",
        description="Security engine: bandit when the project configures it, else ruff (auto)",
    )
    tool_timeout: float = Field(600.0, description="Seconds a static tool may run")
    agents: tuple[str, ...] = Field((), description="Agent chain, NAME[:MODEL] or command:ARGV")
    audit_agents: tuple[str, ...] = Field((), description="Agents of the agent:NAME audits")
    budget_usd: float = Field(5.0, description="USD the agents may spend in the session")
    pricing: tuple[str, ...] = ()
    pricing_file: Path | None = None
    templates_dir: Path | None = None
    agent_timeout: float = Field(900.0, description="Seconds one agent call may take")
    agent_retries: int = Field(3, description="Retries of a transient agent error")
    max_turns: int | None = Field(
        None, description="Agent turns one call may take (claude's --max-turns); None: its own"
    )
    max_iterations: int = Field(10, description="Gap-closure iterations at most")
    sandbox: Literal["auto", "bwrap", "none"] = Field(
        "auto", description="What agent calls and re-audits run in (agents.sandbox)"
    )
    sandbox_writable: tuple[Path, ...] = Field(
        (), description="More paths the sandboxed calls may write (absolute)"
    )
    confirm: Literal["ask", "yes", "no"] = "ask"
    allow_dirty: bool = False
    develop: bool = False
    commit: bool = False
    resume: str | None = None
    loop_batch: int = Field(5, description="Findings per iteration")
    min_acceptable_score: float = Field(80.0, description="Score from which P2/P3 are closed")
    guard: dict[str, str] = Field(default_factory=dict)
    guard_core_files: tuple[str, ...] = ()
    exec_prefix: str = Field("", description="Exec prefix of remote runs; '' runs locally")
    exec_command: str = "python -m pytest"
    exec_timeout: float = Field(3600.0, description="Seconds the remote run may take")
    path_map: tuple[str, ...] = ()
    diff_base: str | None = Field(
        None, description="Git ref whose merge base with HEAD starts the new code"
    )
    baseline: Path | None = Field(None, description="Earlier JSON report of the ratchet")

    @field_validator("target_score", mode="before")
    @classmethod
    def _target(cls, value: Any) -> float:
        return _number(str(value), "target score")

    @field_validator("dimensions", mode="before")
    @classmethod
    def _dimensions(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        names = _split(value)
        known = set((info.context or {}).get("known_dimensions") or BUILTIN_DIMENSIONS)
        if not names:
            raise ValueError(f"no dimension given; choose from {', '.join(sorted(known))}")
        for name in names:
            if name not in known:
                plain = sorted(k for k in known if not k.startswith("agent:"))
                audits = sorted(k.removeprefix("agent:") for k in known if k.startswith("agent:"))
                listed = ", ".join(plain)
                if audits:
                    listed += f"; LLM audits: agent:NAME with NAME one of {', '.join(audits)}"
                raise ValueError(f"unknown dimension {name!r}; known: {listed}")
        return tuple(dict.fromkeys(names))

    @field_validator("fail_on", mode="before")
    @classmethod
    def _fail_on(cls, value: Any) -> tuple[Severity, ...]:
        items = _split(value)
        if items == ["none"]:
            return ()
        return tuple(dict.fromkeys(_severity(v) for v in items))

    @field_validator("reports", mode="before")
    @classmethod
    def _reports(cls, value: Any, info: ValidationInfo) -> tuple[ReportSpec, ...]:
        if value and all(isinstance(v, ReportSpec) for v in value):
            return tuple(value)
        base = Path((info.context or {}).get("invocation_dir") or Path.cwd())
        specs: list[ReportSpec] = []
        for item in _split(value):
            kind, _, raw_path = item.partition(":")
            if kind not in REPORT_TYPES:
                raise ValueError(
                    f"unknown report type {kind!r}; use {', '.join(REPORT_TYPES)}"
                    " (TYPE or TYPE:PATH)"
                )
            if kind in PATHLESS_REPORTS:
                if raw_path:
                    raise ValueError(f"the {kind} report takes no PATH; write '{kind}'")
                specs.append(ReportSpec(type=kind))
                continue
            path = base / (raw_path or DEFAULT_REPORT_PATHS[kind])
            check_writable(path)
            specs.append(ReportSpec(type=kind, path=path))
        return tuple(dict.fromkeys(specs))

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, value: Any) -> dict[str, float]:
        pairs = _pairs(value, "tests=30 coverage=30 lint=20 security=20")
        merged = dict(DEFAULT_WEIGHTS)
        merged.update({k: _number(v, f"weight for {k}", high=None) for k, v in pairs.items()})
        return merged

    @field_validator("min_scores", mode="before")
    @classmethod
    def _min_scores(cls, value: Any) -> dict[str, float]:
        pairs = _pairs(value, "tests=80 coverage=70")
        merged = dict(DEFAULT_MIN_SCORES)
        merged.update({k: _number(v, f"minimum score for {k}") for k, v in pairs.items()})
        return merged

    @field_validator("reruns", mode="before")
    @classmethod
    def _reruns(cls, value: Any) -> int:
        text = str(value).strip()
        if not text.isdigit() or int(text) > 100:
            raise ValueError(f"{text!r} is not a whole number from 0 to 100")
        return int(text)

    @field_validator("path_minimums", mode="before")
    @classmethod
    def _path_minimums(cls, value: Any, info: ValidationInfo) -> tuple[PathMinimum, ...]:
        if value and all(isinstance(v, PathMinimum) for v in value):
            return tuple(value)
        lines = [value] if isinstance(value, str) else list(value or ())
        dimensions = info.data.get("dimensions") or BUILTIN_DIMENSIONS
        rootdir = (info.context or {}).get("rootdir")
        files: list[str] | None = None
        out: list[PathMinimum] = []
        for raw in lines:
            line = str(raw).strip()
            if not line or line.startswith("#"):
                continue
            found = _PATH_MINIMUM.fullmatch(line)
            if found is None:
                raise ValueError(
                    f"{line!r} is not PATTERN DIMENSION>=N; write it like "
                    "'src/core/** coverage>=95'"
                )
            dimension = found["dimension"]
            if dimension == "tests":
                raise ValueError(
                    f"{line!r}: a path minimum takes coverage or a finding dimension (lint, "
                    "security, ...), not tests"
                )
            if dimension not in dimensions:
                raise ValueError(
                    f"{line!r}: {dimension} is not among the audited dimensions "
                    f"({', '.join(dimensions)})"
                )
            rule = PathMinimum(
                pattern=found["pattern"],
                dimension=dimension,
                minimum=_number(found["value"], f"minimum in {line!r}"),
            )
            if rootdir is not None:
                if files is None:
                    from pytest_orchestrator.suppressions import python_files

                    files = python_files(Path(rootdir))
                if not any(rule.matches(f) for f in files):
                    raise ValueError(
                        f"{line!r}: {rule.pattern!r} matches no Python file under the rootdir "
                        "(patterns are relative to it, e.g. src/core/**)"
                    )
            out.append(rule)
        return tuple(out)

    @field_validator("allow_unavailable", mode="before")
    @classmethod
    def _allow_unavailable(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        names = _split(value)
        known = set((info.context or {}).get("known_dimensions") or BUILTIN_DIMENSIONS)
        for name in names:
            if name not in known and not name.startswith("agent:"):
                raise ValueError(f"unknown dimension {name!r}; known: {', '.join(sorted(known))}")
        return tuple(dict.fromkeys(names))

    def unavailable_rule(self, dimension: str) -> Literal["skip", "zero", "fail"]:
        """What ``dimension`` being unavailable does: ``skip`` when it is in
        ``allow_unavailable``, else ``orchestrate_unavailable``."""
        return "skip" if dimension in self.allow_unavailable else self.unavailable

    @field_validator("severity_map", mode="before")
    @classmethod
    def _severity_map(cls, value: Any) -> dict[str, Severity]:
        out: dict[str, Severity] = {}
        for key, sev in _pairs(value, "ruff:E501=P4 bandit:B105=P3").items():
            tool, sep, rule = key.partition(":")
            if not sep or not tool or not rule:
                raise ValueError(f"{key!r} is not TOOL:RULE; write it like ruff:E501=P4")
            out[key] = _severity(sev)
        return out

    @field_validator("severity_points", mode="before")
    @classmethod
    def _severity_points(cls, value: Any) -> dict[Severity, float]:
        merged = dict(DEFAULT_SEVERITY_POINTS)
        for key, val in _pairs(value, "P0=20 P1=8 P2=3 P3=1 P4=0").items():
            merged[_severity(key)] = _number(val, f"points for {key}")
        return merged

    @field_validator("tool_timeout", "agent_timeout", "exec_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        return _number(str(value), "timeout in seconds", low=1, high=None)

    @field_validator("agents", "audit_agents", mode="before")
    @classmethod
    def _agents(cls, value: Any) -> tuple[str, ...]:
        from pytest_orchestrator.agents.base import AgentSpec

        items = value if isinstance(value, (list, tuple)) else [value]
        specs = [p.strip() for item in items for p in str(item).split(",") if p.strip()]
        for spec in specs:
            AgentSpec.parse(spec)
        return tuple(specs)

    @field_validator("budget_usd", mode="before")
    @classmethod
    def _budget(cls, value: Any) -> float:
        return _number(str(value).lstrip("$"), "budget in USD", high=None)

    @field_validator("pricing", mode="before")
    @classmethod
    def _pricing(cls, value: Any) -> tuple[str, ...]:
        from pytest_orchestrator.agents.pricing import PricingTable

        lines = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        PricingTable.parse_lines(lines)
        return tuple(lines)

    @field_validator("pricing_file", "templates_dir", mode="before")
    @classmethod
    def _existing_path(cls, value: Any, info: ValidationInfo) -> Path | None:
        if value in (None, ""):
            return None
        path = Path((info.context or {}).get("rootdir") or Path.cwd()) / str(value)
        want_dir = info.field_name == "templates_dir"
        if not (path.is_dir() if want_dir else path.is_file()):
            kind = "directory" if want_dir else "file"
            raise ValueError(f"{str(path)!r} is not a {kind}; give a path relative to the rootdir")
        return path

    @field_validator("agent_retries", mode="before")
    @classmethod
    def _agent_retries(cls, value: Any) -> int:
        number = _number(str(value), "number of retries", low=0, high=10)
        if number != int(number):
            raise ValueError(f"{value!r} is not a whole number of retries from 0 to 10")
        return int(number)

    @field_validator("max_turns", mode="before")
    @classmethod
    def _max_turns(cls, value: Any) -> int | None:
        if value in (None, ""):
            return None
        try:
            number = float(str(value))
        except ValueError:
            number = float("nan")
        if not (math.isfinite(number) and number >= 1 and number == int(number)):
            raise ValueError(
                f"{value!r} is not a number of turns; give a whole number of at least 1"
            )
        return int(number)

    @field_validator("max_iterations", "loop_batch", mode="before")
    @classmethod
    def _count(cls, value: Any, info: ValidationInfo) -> int:
        what = "number of iterations" if info.field_name == "max_iterations" else "batch size"
        number = _number(str(value), what, low=1, high=1000)
        if number != int(number):
            raise ValueError(f"{value!r} is not a whole {what} from 1 to 1000")
        return int(number)

    @field_validator("min_acceptable_score", mode="before")
    @classmethod
    def _acceptable(cls, value: Any) -> float:
        return _number(str(value), "minimum acceptable score")

    @field_validator("confirm", mode="before")
    @classmethod
    def _confirm(cls, value: Any) -> str:
        return _one_of(value, ("ask", "yes", "no"))

    @field_validator("lint_tests", mode="before")
    @classmethod
    def _lint_tests(cls, value: Any) -> str:
        return _one_of(
            value,
            ("count", "lower", "skip"),
            "test code in the lint score: counted like the rest, its findings one severity "
            "lower, or left out",
        )

    @field_validator("security_engine", mode="before")
    @classmethod
    def _security_engine(cls, value: Any) -> str:
        return _one_of(
            value,
            ("auto", "ruff", "bandit"),
            "auto: bandit when the project configures it in [tool.bandit] or .bandit, else "
            "ruff's S rules",
        )

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox(cls, value: Any) -> str:
        return _one_of(
            value, ("auto", "bwrap", "none"), "auto: bwrap where it works, else none with a warning"
        )

    @field_validator("sandbox_writable", mode="before")
    @classmethod
    def _writable(cls, value: Any, info: ValidationInfo) -> tuple[Path, ...]:
        items = value if isinstance(value, (list, tuple)) else [value]
        rootdir = Path((info.context or {}).get("rootdir") or Path.cwd())
        paths = []
        for item in (str(v).strip() for v in items):
            if not item:
                continue
            path = Path(os.path.expanduser(item))
            path = path if path.is_absolute() else rootdir / path
            if not path.exists():
                raise ValueError(f"{item!r} does not exist; give an existing file or directory")
            paths.append(path)
        return tuple(paths)

    @field_validator("guard", mode="before")
    @classmethod
    def _guard(cls, value: Any) -> dict[str, str]:
        pairs = _pairs(value, "max_lines_removed=50 max_files_modified=5 confirm_at=medium")
        for key, val in pairs.items():
            if key in ("max_lines_removed", "max_files_modified"):
                _number(val, f"{key} threshold", high=None)
            elif key == "confirm_at":
                if val not in ("low", "medium", "high", "critical"):
                    raise ValueError(f"confirm_at={val!r}; use low, medium, high or critical")
            else:
                raise ValueError(
                    f"unknown guard setting {key!r}; use max_lines_removed, "
                    "max_files_modified or confirm_at"
                )
        return pairs

    @field_validator("guard_core_files", mode="before")
    @classmethod
    def _globs(cls, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(str(v).strip() for v in items if str(v).strip())

    @field_validator("exec_prefix", mode="before")
    @classmethod
    def _exec_prefix(cls, value: Any) -> str:
        import shutil

        from pytest_orchestrator.remote.prefix import ExecPrefix

        text = str(value or "").strip()
        if not text:
            return ""
        program = ExecPrefix.parse(text).argv[0]
        if shutil.which(program) is None:
            raise ValueError(f"{program!r} not found on PATH; install it or give its full path")
        return text

    @field_validator("exec_command", mode="before")
    @classmethod
    def _exec_command(cls, value: Any) -> str:
        from pytest_orchestrator.remote.runner import ExecCommand

        ExecCommand.parse(str(value))
        return str(value)

    @field_validator("path_map", mode="before")
    @classmethod
    def _path_map(cls, value: Any, info: ValidationInfo) -> tuple[str, ...]:
        from pytest_orchestrator.remote.pathmap import PathMapping

        items = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        rootdir = Path((info.context or {}).get("rootdir") or Path.cwd())
        for item in items:
            PathMapping.parse(item, rootdir)
        return tuple(items)

    @field_validator("diff_base", mode="before")
    @classmethod
    def _diff_base(cls, value: Any, info: ValidationInfo) -> str | None:
        from pytest_orchestrator.newcode import DiffBaseError, resolve

        text = str(value or "").strip()
        if not text:
            return None
        try:
            resolve(Path((info.context or {}).get("rootdir") or Path.cwd()), text)
        except DiffBaseError as exc:
            raise ValueError(str(exc)) from None
        return text

    @field_validator("baseline", mode="before")
    @classmethod
    def _baseline(cls, value: Any, info: ValidationInfo) -> Path | None:
        from pytest_orchestrator.baseline import BaselineError, load

        if value in (None, ""):
            return None
        path = Path((info.context or {}).get("invocation_dir") or Path.cwd()) / str(value)
        try:
            load(path)
        except BaselineError as exc:
            raise ValueError(str(exc)) from None
        return path

    @model_validator(mode="after")
    def _agents_usable(self) -> OrchestrationConfig:
        """The agent settings work together: an agent for the LLM audits, a readable
        pricing file (the templates and the agents' programs are checked when the session
        starts: ``Orchestrator.install``)."""
        wanted = [d for d in self.dimensions if d.startswith("agent:")]
        if wanted and not self.audit_agent_chain:
            raise ValueError(
                f"--orchestrate-dimensions: {wanted[0]} needs an agent; give "
                "--orchestrate-audit-agent=NAME (e.g. claude) or --orchestrate-agent=NAME"
            )
        if self.pricing_file is not None:
            from pytest_orchestrator.agents.pricing import PricingTable

            try:
                PricingTable.load(file=self.pricing_file)
            except ValueError as exc:
                raise ValueError(f"orchestrate_pricing_file (ini): {exc}") from None
        return self

    @property
    def audit_agent_chain(self) -> tuple[str, ...]:
        """The agents of LLM audits: ``audit_agents``, else ``agents``."""
        return self.audit_agents or self.agents

    def weight(self, dimension: str) -> float:
        """Weight of ``dimension`` in the overall score (``DEFAULT_OTHER_WEIGHT`` if unnamed)."""
        return self.weights.get(dimension, DEFAULT_OTHER_WEIGHT)

    @classmethod
    def from_pytest(
        cls, config: pytest.Config, known_dimensions: set[str] | None = None
    ) -> OrchestrationConfig:
        """Resolve every setting from ``config`` (command line > ini > default).

        :param known_dimensions: dimensions that auditors provide (builtin and from hooks).
        :raises pytest.UsageError: one line naming the setting, the problem and what is allowed.
        """
        data: dict[str, Any] = {"enabled": enabled(config)}
        sources: dict[str, str] = {}
        for option in OPTIONS:
            if option.field is None:
                continue
            value = config.getoption(option.dest, default=None)
            if value is not None:
                data[option.field], sources[option.field] = value, option.flag
                continue
            ini = config.getini(option.ini)
            if ini not in ("", [], None):
                data[option.field], sources[option.field] = ini, f"{option.ini} (ini)"
        for ini_name, field in INI_ONLY.items():
            ini = config.getini(ini_name)
            if ini not in ("", [], None):
                data[field], sources[field] = ini, f"{ini_name} (ini)"
        context = {
            "known_dimensions": known_dimensions or set(BUILTIN_DIMENSIONS),
            "invocation_dir": config.invocation_params.dir,
            "rootdir": config.rootpath,
        }
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            where = f"{sources.get(field, field)}: " if field else ""
            raise pytest.UsageError(where + message) from None
