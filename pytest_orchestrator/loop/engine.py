"""Gap closure: audit -> close gaps with an agent -> guard -> re-test and re-audit -> keep or
roll back, until the target score, the iteration limit, the budget or a lack of progress
stops it.

The first audit is the user's own pytest session. Each iteration:

1. picks the findings to close: P0 first, then P1 (P2 and P3 too once the score is at
   least ``min_acceptable_score``), at most ``loop_batch``;
2. renders ``close_gap.j2`` with them (file excerpts, the test command through the exec
   prefix, the budget left);
3. snapshots the working tree (``loop.snapshot``) and runs the agent with edit permission;
4. inspects the change (``loop.guard`` and the integrity checks of ``loop.integrity``); a
   check that needs confirmation is put to the ``pytest_orchestrator_confirm`` hook, else
   to ``--orchestrate-confirm`` (ask on a terminal with pytest's capture suspended, no
   without one); a refusal rolls back;
5. re-runs the tests and the audits in a child pytest (same arguments, JSON report; LLM
   audits are not repeated) on the *measured view* of the tree (the session's rules, the
   agent's suppressions removed: ``loop.integrity.MeasuredView``), with the session's test
   outcomes as the oracle, and keeps the change only when a finding of the iteration's
   start was resolved by a change no check flagged, no new P0 or P1 finding appeared and
   the overall score rose; otherwise the snapshot is restored byte for byte.

The session (iterations, confirmations, agent calls, stop reason) is saved atomically after
every step under the pytest cache directory, and ``--orchestrate-resume=ID|last`` continues
it with its spent budget and iteration count. Ctrl-C rolls back the iteration in flight,
saves the session and lets pytest exit with its interrupted status.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from pydantic import BaseModel, Field

from pytest_orchestrator import jsonio
from pytest_orchestrator.models import (
    AgentCall,
    Finding,
    GuardFinding,
    Iteration,
    LoopSummary,
    Report,
    Severity,
)
from pytest_orchestrator.plugin import CHILD_ENV, ORACLE_ENV
from pytest_orchestrator.redact import redact_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from coverage.data import CoverageData

    from pytest_orchestrator.agents.base import AgentResult
    from pytest_orchestrator.agents.runner import AgentRunner, Ledger
    from pytest_orchestrator.auditors.tests import Observation
    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.loop.guard import GuardCheck, GuardSettings
    from pytest_orchestrator.loop.snapshot import ChangeSet, Snapshot

#: Iterations without improvement before the strategy changes (then the loop stops).
STUCK_AFTER = 3
#: Options of the session that the child pytest must not repeat (it writes its own report).
_CHILD_DROPPED = ("--orchestrate-report", "--orchestrate-resume", "--junitxml", "--junit-xml")


class LoopState(BaseModel):
    """What is saved after every step (``.pytest_cache/.../orchestrator-sessions/ID.json``)."""

    session_id: str
    created: float
    rootdir: str
    args: list[str]
    target_score: float
    initial_score: float
    current_score: float
    severities_before: dict[str, int] = Field(default_factory=dict)
    iterations: list[Iteration] = Field(default_factory=list)
    calls: list[AgentCall] = Field(default_factory=list)
    confirmations: list[dict[str, Any]] = Field(default_factory=list)
    stop_reason: str | None = None
    strategy_changed: bool = False
    strategy_changed_at: int = Field(0, description="Iterations before the change of strategy")
    budget_asked: bool = False
    develop_confirmed: bool | None = Field(None, description="The answer to --orchestrate-develop")
    backup_ref: str | None = Field(
        None, description="With --orchestrate-allow-dirty: the ref saving the uncommitted work"
    )
    dirty_files: list[str] = Field(
        default_factory=list, description="Paths with uncommitted changes when the loop began"
    )
    start: dict[str, Any] | None = Field(
        None,
        description="The first run's observation of its tests (outcomes, locations, plugin "
        "files): the oracle of every iteration, resumed ones included",
    )
    changed_paths: list[str] = Field(
        default_factory=list,
        description="Paths the accepted iterations of this run changed (relative to the "
        "working tree's top): measured against the run's start",
    )


def sessions_dir(config: pytest.Config) -> Path:
    """Where sessions are saved: the pytest cache's ``d/orchestrator-sessions``."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("orchestrator-sessions"))
    path = config.rootpath / ".pytest_cache" / "d" / "orchestrator-sessions"
    path.mkdir(parents=True, exist_ok=True)
    ignore = config.rootpath / ".pytest_cache" / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Created by pytest-orchestrator.\n*\n")  # as pytest's own
    return path


def save(state: LoopState, directory: Path) -> Path:
    """Write ``state`` atomically (secrets masked) as ``directory/ID.json``."""
    from pytest_orchestrator.reports import atomic_write

    path = directory / f"{state.session_id}.json"
    text = json.dumps(_masked(state.model_dump(mode="json")), indent=2)
    atomic_write(path, text.encode("utf-8"))
    return path


def _masked(value: Any) -> Any:
    """``value`` (JSON data) with secrets masked in every string (see ``redact``)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value


def _interrupt_on_termination() -> dict[int, Any]:
    """SIGTERM and SIGHUP (a cancelled CI job, a closed terminal) interrupt the loop like
    Ctrl-C: the iteration in flight is rolled back. Only in the main thread."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, interrupt)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


def _uninterrupted(action: Any) -> None:
    """Run ``action`` (a restore) with SIGINT, SIGTERM and SIGHUP held back until it ends:
    a second Ctrl-C must not stop a rollback half-way."""
    held = {signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)}
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        action()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        action()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def load(directory: Path, which: str) -> LoopState:
    """The saved session ``which`` (an ID, or ``last``).

    :raises pytest.UsageError: no such session (one line, listing how to find them).
    """
    files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if which == "last":
        if not files:
            raise pytest.UsageError(f"--orchestrate-resume=last: no saved session in {directory}")
        path = files[-1]
    else:
        path = directory / f"{which}.json"
        if not path.is_file():
            known = ", ".join(p.stem for p in files[-5:]) or "none"
            raise pytest.UsageError(
                f"--orchestrate-resume: no session {which!r}; the last ones: {known}"
            )
    try:
        return LoopState.model_validate(jsonio.loads(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--orchestrate-resume: {path} is unreadable: {exc}") from None


def pick_findings(
    report: Report, batch: int, min_acceptable: float, develop: bool = False
) -> list[Finding]:
    """The findings to close next, at most ``batch``, with a file only.

    P0 then P1; P2 and P3 too once the score is at least ``min_acceptable``. Coverage
    findings (code without tests) are feature development: left out unless ``develop``,
    and then taken only when nothing else is left, in a batch of their own.
    """
    allowed = {Severity.P0, Severity.P1}
    if report.score.overall >= min_acceptable:
        allowed |= {Severity.P2, Severity.P3}
    candidates = [f for f in report.findings() if f.path]
    fixes = [f for f in candidates if f.severity in allowed and f.dimension != "coverage"]
    if fixes or not develop:
        return fixes[:batch]
    return [f for f in candidates if f.dimension == "coverage"][:batch]


def severity_counts(report: Report) -> dict[str, int]:
    """Findings per severity, e.g. {"P0": 2, "P1": 1}."""
    return dict(Counter(f.severity.value for f in report.findings()))


def child_args(args: Sequence[str]) -> list[str]:
    """The session's arguments without its report options (the child writes its own)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _CHILD_DROPPED:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _record(check: GuardCheck) -> GuardFinding:
    return GuardFinding(name=check.name, risk=check.risk, message=check.message)


def _nothing_changed(changes: ChangeSet) -> bool:
    """No file of the tree, git file, HEAD or index changed, and nothing but caches under
    ignored paths (which are dropped)."""
    from pytest_orchestrator.loop.snapshot import is_cache

    return (
        not changes.tracked
        and not changes.nested
        and not changes.git_files
        and not changes.head_moved
        and not changes.index_changed
        and all(is_cache(c.path) for c in changes.hidden)
    )


def _programs() -> dict[str, str]:
    """git's and ruff's paths, found before any agent runs (see ``programs``)."""
    from pytest_orchestrator.auditors.tools import find_executable
    from pytest_orchestrator.loop.snapshot import git_program

    found = {"git": git_program(), "ruff": find_executable("ruff") or ""}
    return {name: path for name, path in found.items() if os.path.isabs(path)}


def _prefix(top: Path, rootdir: Path) -> str:
    """The rootdir relative to the working tree's top ('' when they are the same)."""
    try:
        rel = Path(os.path.realpath(rootdir)).relative_to(os.path.realpath(top)).as_posix()
    except ValueError:
        return ""
    return "" if rel == "." else rel


PretestOutcome = Literal["passed", "failed", "inconclusive"]


class _PretestFailed(Exception):
    """A test that covers the agent's change failed in the pre-test (the message says which)."""


def _changed_lines(old: bytes | None, path: Path) -> tuple[set[int], set[int]] | None:
    """``(changed, inserted)``: the lines of ``old`` (1-based) that the file at ``path``
    changed or removed, and the lines after which it inserted code; None (every line) when
    either side cannot be read."""
    try:
        new = path.read_bytes()
    except OSError:
        return None
    if old is None:
        return None
    before = old.decode("utf-8", "replace").splitlines()
    after = new.decode("utf-8", "replace").splitlines()
    changed: set[int] = set()
    inserted: set[int] = set()
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            changed.update(range(i1 + 1, i2 + 1))
        elif tag == "insert":
            inserted.add(i1)  # after old line i1 (1-based), before old line i1 + 1
    return changed, inserted


class Loop:
    """One gap-closure run for a session (see the module docstring)."""

    def __init__(
        self,
        config: pytest.Config,
        settings: OrchestrationConfig,
        ledger: Ledger,
        runner: AgentRunner,
        first: Report,
        start: Observation,
        state: LoopState | None = None,
    ) -> None:
        from pytest_orchestrator.auditors.tests import Observation

        self.config = config
        self.settings = settings
        self.ledger = ledger
        self.runner = runner
        self.rootdir = config.rootpath
        self.report = first
        self.directory = sessions_dir(config)
        self.batch = settings.loop_batch
        self.state = state or LoopState(
            session_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6],
            created=time.time(),
            rootdir=str(self.rootdir),
            args=list(config.invocation_params.args),
            target_score=settings.target_score,
            initial_score=first.score.overall,
            current_score=first.score.overall,
            severities_before=severity_counts(first),
        )
        self.state.current_score = first.score.overall
        self.state.stop_reason = None  # a resumed session goes on
        self.state.args = list(config.invocation_params.args)  # re-test what is asked now
        self.state.changed_paths = []  # measured against this run's start
        if self.state.start is None:
            self.state.start = json.loads(start.to_json())
        #: The oracle: the first run's tests (a resumed session keeps its first run's).
        self.start = Observation.from_data(self.state.start)
        #: The plugin modules of this run's start: measured as they were then.
        self.plugins = list(start.plugins)
        if self.state.strategy_changed:
            self.batch = max(1, self.batch // 2)
        #: The tree when this run's loop started (its first iteration's snapshot): every
        #: re-audit measures with its rules, and "added by the agent" is judged against it.
        self.origin: Snapshot | None = None
        self._timings: dict[str, float] = {}
        self._programs = _programs()
        #: Private directories of the re-audits (caches out of the agent's reach).
        self._private: Path | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> Report:
        """Iterate until a stop reason; returns the final report (the last accepted one).

        :raises KeyboardInterrupt: after rolling back and saving (pytest then exits 2).
        """
        from pytest_orchestrator.loop.snapshot import SnapshotError

        previous = _interrupt_on_termination()
        try:
            self._back_up_uncommitted_work()
            self._save()
            while self.state.stop_reason is None:
                self.state.stop_reason = self._stop_reason()
                if self.state.stop_reason is None:
                    self._iterate(len(self.state.iterations) + 1)
                self._save()
        except KeyboardInterrupt:
            self.state.stop_reason = "interrupted"
            self._save()
            raise
        except SnapshotError as exc:
            self.state.stop_reason = f"rollback incomplete, the snapshot is kept: {exc}"
            self._save()
        finally:
            _restore_handlers(previous)
            if self.origin is not None and not self.origin.kept:
                self.origin.discard()
            if self._private is not None:
                shutil.rmtree(self._private, ignore_errors=True)
        return self.report

    def _say(self, line: str) -> None:
        """One line on pytest's terminal (not under ``-q -q``)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.get_verbosity() >= -1:
            reporter.write_line(f"gap closure: {line}")

    def _stop_reason(self) -> str | None:
        state = self.state
        if self.report.verdict.passed:
            return f"target reached ({self.report.score.overall:.2f} >= {state.target_score:.2f})"
        if len(state.iterations) >= self.settings.max_iterations:
            return f"max iterations ({self.settings.max_iterations})"
        left = self.ledger.left_usd
        costs = [i.cost_usd for i in state.iterations if i.cost_usd > 0]
        if left is not None and costs and left < sum(costs) / len(costs):
            return (
                f"budget exhausted (${left:.4f} left, less than an iteration's average "
                f"${sum(costs) / len(costs):.4f})"
            )
        if left is not None and left <= 0:
            return (
                f"budget exhausted (${self.ledger.spent_usd:.4f} of ${self.ledger.budget_usd:.2f})"
            )
        recent = state.iterations[state.strategy_changed_at :][-STUCK_AFTER:]
        if len(recent) == STUCK_AFTER and not any(i.accepted for i in recent):
            if state.strategy_changed:
                return f"stuck (no improvement in {STUCK_AFTER} iterations, strategy changed)"
            self._change_strategy()
        budget = self.ledger.budget_usd
        if budget and not state.budget_asked and self.ledger.spent_usd >= 0.8 * budget:
            state.budget_asked = True
            question = (
                f"continue? ${self.ledger.spent_usd:.4f} of the ${budget:.2f} budget (80 %) is "
                f"spent, score {self.report.score.overall:.2f} of {state.target_score:.2f}"
            )
            if not self._confirm(len(state.iterations), question, ["budget-80"]):
                return "declined to continue at 80 % of the budget"
        if not self._pick():
            return "nothing left to close (no finding with a file at a closable severity)"
        return None

    def _back_up_uncommitted_work(self) -> None:
        """With ``--orchestrate-allow-dirty``, once per session: save the uncommitted work
        under ``refs/pytest-orchestrator/ID`` and remember which files held it (the guard's
        ``uncommitted-work`` check asks before an agent's edit to them is kept)."""
        from pytest_orchestrator.loop.snapshot import SnapshotError, backup, dirty_paths

        state = self.state
        if not self.settings.allow_dirty or state.backup_ref or state.iterations:
            return
        state.dirty_files = dirty_paths(self.rootdir)
        if not state.dirty_files:
            return
        ref = f"refs/pytest-orchestrator/{state.session_id}"
        try:
            backup(self.rootdir, ref, f"pytest-orchestrator: uncommitted work before {ref}")
        except SnapshotError as exc:
            state.stop_reason = f"could not save your uncommitted work, nothing was changed: {exc}"
            return
        state.backup_ref = ref
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"gap closure: your uncommitted changes ({len(state.dirty_files)} files) are "
                f"saved as {ref}; restore them with: git restore --source={ref} --worktree -- :/"
            )

    def _change_strategy(self) -> None:
        """Once: a smaller batch, and the next agent of the chain first."""
        self.state.strategy_changed = True
        self.state.strategy_changed_at = len(self.state.iterations)
        self.batch = max(1, self.batch // 2)
        if len(self.runner.specs) > 1:
            self.runner.specs = [*self.runner.specs[1:], self.runner.specs[0]]

    def _progress(self, number: int, phase: str) -> None:
        """The live line: iteration i/N, phase, score, cost (on pytest's terminal)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 0:
            return
        budget = self.ledger.budget_usd
        cost = f"${self.ledger.spent_usd:.4f}" + (f"/${budget:.2f}" if budget is not None else "")
        reporter.write_line(
            f"gap closure: iteration {number}/{self.settings.max_iterations}, {phase}, "
            f"score {self.report.score.overall:.2f}/{self.settings.target_score:.2f}, {cost}"
        )

    def _iterate(self, number: int) -> None:
        from pytest_orchestrator.agents.templates import TemplateError
        from pytest_orchestrator.loop.integrity import CHECKS, REFUSED
        from pytest_orchestrator.loop.snapshot import Snapshot, SnapshotError, is_cache

        started = time.monotonic()
        findings = self._pick()
        develop = bool(findings) and all(f.dimension == "coverage" for f in findings)
        iteration = Iteration(
            number=number,
            agent=self.runner.specs[0].label,
            findings=[f.fingerprint for f in findings],
            score_before=self.report.score.overall,
            reason="",
        )
        self.state.iterations.append(iteration)
        spent_before = self.ledger.spent_usd
        self._save()  # the iteration in flight is on record before the agent runs
        self._timings = iteration.timings
        with self._timed("snapshot"):
            snapshot = Snapshot.take(self.rootdir, exclude=[self.directory])
        if self.origin is None:
            self.origin = snapshot  # kept for the whole run: the rules to measure with
        try:
            self._progress(number, f"agent {iteration.agent} on {len(findings)} findings")
            try:
                prompt = self._prompt(findings, "develop_feature" if develop else "close_gap")
            except TemplateError as exc:  # checked at the start; data may still break one
                self._roll_back(snapshot, iteration, f"no prompt: {exc}")
                self.state.stop_reason = f"template error: {exc}"
                return
            with self._timed("agent"):
                result = self._call_agent(prompt, number)
            iteration.cost_usd = round(self.ledger.spent_usd - spent_before, 6)
            try:
                with self._timed("diff"):
                    changes = snapshot.diff()
                    snapshot.drop_caches(changes)  # compiled code the agent wrote never runs
            except SnapshotError as exc:  # git cannot read the repository any more
                self._roll_back(snapshot, iteration, f"refused: the agent broke git ({exc})")
                return
            iteration.files = [
                c.path for c in changes.changes if not (c.ignored and is_cache(c.path))
            ]
            iteration.lines_added = changes.lines_added
            iteration.lines_removed = changes.lines_removed
            if result.error is not None:
                self._roll_back(snapshot, iteration, f"agent failed: {result.error.message}")
                if result.error.kind in ("budget", "auth", "missing_executable"):
                    self.state.stop_reason = f"agent unavailable: {result.error.message}"
                return
            if _nothing_changed(changes):
                self._roll_back(snapshot, iteration, "the agent changed nothing")
                return
            since_start = {*self.state.changed_paths, *(c.path for c in changes.changes)}
            with self._timed("integrity"):
                checks = self._inspect(changes, since_start)
            refused = [c for c in checks if c.name in REFUSED]
            if refused:
                iteration.guard = [_record(c) for c in checks if c.name not in CHECKS]
                iteration.integrity = [_record(c) for c in checks if c.name in CHECKS]
                self._refuse(snapshot, iteration, "refused", refused[0])
                return
            if not self._approved(number, checks, iteration):
                asked = [c for c in checks if c.needs_confirmation(self._guard_settings())]
                self._refuse(snapshot, iteration, "refused by the guard", asked[0])
                return
            self._progress(number, f"re-testing {len(changes.tracked)} changed files")
            try:
                child, observed, changed_tree = self._measure(
                    snapshot, changes, since_start, iteration
                )
            except OSError as exc:  # a rule file the agent made a directory, a link ...
                self._roll_back(snapshot, iteration, f"refused: cannot measure the tree ({exc})")
                return
            except _PretestFailed as failed:
                self._roll_back(snapshot, iteration, f"rejected: {failed}")
                return
            if child is None or observed is None:
                self._roll_back(snapshot, iteration, "the re-audit did not produce a report")
                return
            iteration.score_after = child.score.overall
            with self._timed("integrity"):
                after = self._outcome_checks(observed, changed_tree)
            iteration.integrity += [_record(c) for c in after]
            if after:
                self._refuse(snapshot, iteration, "refused", after[0])
                return
            self._judge(snapshot, iteration, child, checks)
            if iteration.accepted:
                self.state.changed_paths = sorted(since_start)
                if self.settings.commit:
                    iteration.commit = self._commit(number, [c.path for c in changes.tracked])
        except SnapshotError:
            self._keep(snapshot)  # a rollback failed: the only copy of what to restore
            raise
        except BaseException as exc:  # Ctrl-C, SIGTERM, a crash: roll back, then go on up
            try:
                _uninterrupted(snapshot.restore)
            except SnapshotError as failed:
                self._keep(snapshot)
                iteration.reason = f"interrupted; the rollback could not complete: {failed}"
                raise exc from failed
            iteration.reason = iteration.reason or "interrupted: rolled back"
            raise
        finally:
            iteration.duration = round(time.monotonic() - started, 3)
            self.state.calls = list(self.ledger.calls)
            if not snapshot.kept and snapshot is not self.origin:
                snapshot.discard()

    def _call_agent(self, prompt: str, number: int) -> AgentResult:
        from pytest_orchestrator.agents.base import AgentRequest

        return self.runner.call(
            AgentRequest(
                prompt=prompt,
                cwd=self.rootdir,
                tree=self.origin.root if self.origin is not None else None,
                protected=self._protected(),
                timeout=self.settings.agent_timeout,
                edit=True,
                max_turns=self.settings.max_turns,
            ),
            purpose=f"iteration {number}",
        )

    def _protected(self) -> tuple[Path, ...]:
        """What stays read-only in the sandbox inside the tree: the session files, and the
        ``.git`` of nested repositories."""
        if self.origin is None:
            return (self.directory,)
        root = self.origin.root
        return (self.directory, *(root / rel / ".git" for rel in sorted(self.origin.nested)))

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        """Add the seconds the block takes to the iteration's ``timings[phase]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            self._timings[phase] = round(self._timings.get(phase, 0.0) + spent, 4)

    def _inspect(self, changes: ChangeSet, since_start: set[str]) -> list[GuardCheck]:
        """The guard's checks of the change, then the integrity checks (``loop.integrity``)
        on everything changed since the run's start."""
        from pytest_orchestrator.loop import integrity
        from pytest_orchestrator.loop.guard import inspect, uncommitted_work

        assert self.origin is not None
        root = self.origin.root
        checks = inspect(changes, self._guard_settings())
        touched = uncommitted_work(changes, self.state.dirty_files, self.state.backup_ref)
        if touched is not None:
            checks.append(touched)
        start = self._start_in_tree()
        checks += integrity.inspect_tests(root, self.origin, since_start, start)
        checks += integrity.inspect_new_tests(root, self.origin, since_start)
        checks += integrity.inspect_code(root, self.origin, since_start, start.plugins)
        checks += integrity.inspect_shadowing(root, [c.path for c in changes.changes])
        checks += integrity.inspect_stubs(root, changes)
        checks += integrity.inspect_hidden(changes)
        return checks

    def _start_in_tree(self) -> Observation:
        """The oracle with its paths relative to the working tree's top (the snapshot's),
        not to the rootdir (they differ when the rootdir is a subdirectory)."""
        from pytest_orchestrator.auditors.tests import Observation

        assert self.origin is not None
        prefix = _prefix(self.origin.root, self.rootdir)
        if not prefix:
            return Observation(
                self.start.outcomes, self.start.locations, self.plugins, self.start.not_run
            )
        return Observation(
            self.start.outcomes,
            {
                k: [posixpath.join(prefix, str(v[0])) if v and v[0] else "", *v[1:]]
                for k, v in self.start.locations.items()
            },
            [posixpath.join(prefix, p) for p in self.plugins],
            self.start.not_run,
        )

    def _measure(
        self, snapshot: Snapshot, changes: ChangeSet, since_start: set[str], iteration: Iteration
    ) -> tuple[Report | None, Observation | None, list[str]]:
        """Re-audit the measured view of the tree (``loop.integrity.MeasuredView``): the
        child's report and observation, and what the re-audit itself changed in the tree
        or in git's own files (it must change nothing).

        The tests that cover the change run first (:meth:`_pretest`, recorded in
        ``iteration``): when one of them fails, :class:`_PretestFailed` is raised, before
        the full re-test."""
        from pytest_orchestrator.loop.integrity import MeasuredView, drop_bytecode
        from pytest_orchestrator.loop.snapshot import RULE_NAMES

        assert self.origin is not None
        root = self.origin.root
        now_rules = {
            *snapshot.rule_files(),
            *(c.path for c in changes.changes if posixpath.basename(c.path) in RULE_NAMES),
        }
        plugins = self._start_in_tree().plugins
        selected = self._pretest_selection(snapshot, changes)
        with self._timed("integrity"):
            view = MeasuredView.plan(root, self.origin, now_rules, since_start, plugins)
            before = snapshot.state_of_tree()
            view.__enter__()
        # the modules changed since the start, and the rule files the view put back
        touched = since_start | now_rules
        try:
            drop_bytecode(root, touched)
            if selected:
                iteration.pretest = selected
                with self._timed("pre-test"):
                    iteration.pretest_outcome, failed = self._pretest(selected)
                if failed is not None:
                    raise _PretestFailed(failed)
            with self._timed("re-audit"):
                child, observed = self._reaudit()
        finally:
            with self._timed("integrity"):
                view.__exit__(None, None, None)
                drop_bytecode(root, touched)  # compiled from the view's versions
        with self._timed("integrity"):
            after = snapshot.state_of_tree()
        changed = sorted(
            path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
        )
        return child, observed, changed

    def _coverage_data(self) -> CoverageData | None:
        """The session's coverage data when it recorded each line's tests (gap closure on,
        our own measurement, not in a container), else None."""
        from pytest_orchestrator.auditors.measure import MEASUREMENT_KEY

        measurement = self.config.stash.get(MEASUREMENT_KEY, None)
        if measurement is None or measurement.cov is None or self.settings.exec_prefix:
            return None
        if not self.config.pluginmanager.has_plugin("orchestrator-contexts"):
            return None
        return measurement.cov.get_data()

    def _pretest_selection(self, snapshot: Snapshot, changes: ChangeSet) -> list[str]:
        """Node ids of the tests to run first: those that passed at the session's start
        and ran a line the agent changed (every line of a file an earlier iteration
        changed: the map's line numbers are the session start's), then the test files it
        added or changed, whole. Without a test-to-line map (pytest-cov's or coverage run's
        measurement, no coverage dimension), the agent's test files only; none in a
        container (``--orchestrate-exec``: its tests do not run on this host)."""
        from pytest_orchestrator.auditors.measure import covering_tests
        from pytest_orchestrator.sources import is_test_file

        if self.origin is None or self.settings.exec_prefix:
            return []
        prefix = _prefix(self.origin.root, self.rootdir)
        python = [
            c for c in changes.tracked if c.path.endswith(".py") and c.path.startswith(prefix)
        ]
        files = sorted(
            c.path[len(prefix) :]
            for c in python
            if is_test_file(c.path[len(prefix) :]) and c.kind != "deleted"
        )
        data = self._coverage_data()
        if data is None:
            return files
        measured = {os.path.realpath(name): name for name in data.measured_files()}
        passed = {n for n, outcome in self.start.outcomes.items() if outcome == "passed"}
        tests: set[str] = set()
        for change in python:
            if is_test_file(change.path[len(prefix) :]):
                continue
            name = measured.get(os.path.realpath(self.origin.root / change.path))
            if name is None:
                continue
            diff = None
            if change.kind == "modified" and change.path not in self.state.changed_paths:
                diff = _changed_lines(snapshot.read(change.path), self.origin.root / change.path)
            if diff is None:
                found = covering_tests(data, name, None)
            else:
                found = covering_tests(data, name, *diff)
            if found is None:
                return files  # no map for this file: the agent's tests still run first
            tests |= found & passed
        return sorted(tests) + files

    def _pretest_options(self) -> list[str]:
        """The session's own options (``-W``, ``-p``, ``-o`` ...) for the pre-test: its
        arguments without this plugin's options, the report options and its test paths
        (the pre-test names its tests), and never a rerun of pytest-rerunfailures. A value
        mistaken for a path leaves an option without its value: a usage error, so an
        inconclusive pre-test, never a wrong verdict."""
        from pytest_orchestrator.plugin import OPTIONS

        takes_value = {o.flag for o in OPTIONS if o.action != "store_true"}
        paths = {str(a) for a in self.config.option.file_or_dir or []}
        out: list[str] = []
        skip = False
        for arg in child_args(self.state.args):
            if skip:
                skip = False
                continue
            name = arg.split("=", 1)[0]
            if name.startswith("--orchestrate"):
                skip = name in takes_value and "=" not in arg
                continue
            if arg in paths:
                continue
            out.append(arg)
        if self.config.pluginmanager.has_plugin("xdist"):
            out += ["-n", "0"]  # a few tests: no workers to start (the last -n wins)
        if self.config.pluginmanager.has_plugin("rerunfailures"):
            # no rerun, whatever its options, ini or a test's flaky marker say: the agent's
            # tests must pass each of their three runs (pytest-rerunfailures' --force-reruns
            # overrides the markers)
            out.append("--force-reruns=0")
        return out

    def _pretest(self, selected: list[str]) -> tuple[PretestOutcome, str | None]:
        """Run ``selected`` (node ids, files) in a child pytest at the rootdir, in the
        sandbox of the re-audit, with the session's options but not the gate, stopping at
        the first failure:
        (outcome, why it rejects the change, or None). pytest's exit status 1 is failed;
        0 passed; anything else (a test renamed, a usage error in the options) is
        inconclusive and the full re-test decides.

        The test files the agent wrote or edited (the whole files of ``selected``) run three
        times in the one child (``--keep-duplicates``): a test of the agent's that does not
        pass all three times refuses the iteration, so a flaky test is never accepted."""
        agents = [item for item in selected if "::" not in item]
        repeat = [*agents, *agents, "--keep-duplicates"] if agents else []
        argv = [
            sys.executable, "-m", "pytest", *self._pretest_options(), "-q", "-x",
            "--no-header", "-p", "no:cacheprovider", "-o", "orchestrate=false", *selected,
            *repeat,
        ]  # fmt: skip
        ran = self._run_contained(
            argv, self.rootdir, dict(os.environ), [self._private_dirs()], sockets=False, out=True
        )
        if ran is None:
            return "inconclusive", None
        code, out = ran
        if code == 0:
            return "passed", None
        if code != 1:
            return "inconclusive", None
        text = out.decode("utf-8", "replace")
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.MULTILINE)
        first = f" (first: {redact_text(failed[0])})" if failed else ""
        return "failed", (
            f"a test that covers the change, or one the agent wrote or edited (run three "
            f"times), fails{first}; the full re-test was not run"
        )

    def _outcome_checks(self, observed: Observation, changed_tree: list[str]) -> list[GuardCheck]:
        from pytest_orchestrator.loop import integrity
        from pytest_orchestrator.loop.guard import SHOWN, GuardCheck

        checks = integrity.outcome_checks(self.start, observed)
        if changed_tree:
            shown = ", ".join(changed_tree[:SHOWN])
            more = f" and {len(changed_tree) - SHOWN} more" if len(changed_tree) > SHOWN else ""
            checks.append(
                GuardCheck(
                    "retest-changed-tree",
                    "high",
                    f"running the tests changed the tree or git's own files: {shown}{more}",
                    always=True,
                )
            )
        return checks

    def _judge(
        self, snapshot: Snapshot, iteration: Iteration, child: Report, checks: list[GuardCheck]
    ) -> None:
        """Accept the re-audited change, or roll it back: a finding of the iteration's start
        resolved by an unflagged change, no new P0 or P1 finding, and a higher score."""
        from pytest_orchestrator.loop import integrity

        def grave(report: Report) -> Counter[str]:
            return Counter(
                f.fingerprint for f in report.findings() if f.severity in (Severity.P0, Severity.P1)
            )

        new = grave(child) - grave(self.report)
        with self._timed("integrity"):
            tainted = integrity.tainted_fingerprints(checks, self.start)
            resolved = integrity.resolved(self.report, child, tainted)
        iteration.resolved = [f.fingerprint for f in resolved]
        if new:
            by_severity = Counter(
                f.severity.value for f in child.findings() if f.fingerprint in new
            )
            worst = ", ".join(f"{n} new {sev}" for sev, n in sorted(by_severity.items()))
            self._roll_back(snapshot, iteration, f"{worst} finding(s)")
        elif not resolved:
            taint = next((c for c in checks if c.tainted and c.name in integrity.TAINTING), None)
            why = f" by a change no check flagged ({taint.message})" if taint else ""
            self._roll_back(
                snapshot, iteration, f"no finding of the iteration's start was resolved{why}"
            )
            self._say(f"iteration {iteration.number} rolled back: {iteration.reason}")
        elif child.score.overall <= self.report.score.overall:
            self._roll_back(
                snapshot,
                iteration,
                f"the score did not rise ({child.score.overall:.2f} <= "
                f"{self.report.score.overall:.2f})",
            )
        else:
            iteration.accepted = True
            iteration.reason = (
                f"score rose {self.report.score.overall:.2f} -> {child.score.overall:.2f}; "
                f"{len(resolved)} finding{'s' if len(resolved) != 1 else ''} resolved"
            )
            self.report = child
            self.state.current_score = child.score.overall

    def _refuse(
        self, snapshot: Snapshot, iteration: Iteration, how: str, check: GuardCheck
    ) -> None:
        """Roll back for ``check`` and say why in one line."""
        self._roll_back(snapshot, iteration, f"{how}: {check.message}")
        self._say(f"iteration {iteration.number} {how}: {redact_text(check.message)}")

    def _keep(self, snapshot: Snapshot) -> None:
        """A rollback failed: leave the snapshot on disk and say how to restore it."""
        path = snapshot.keep()
        self._say(
            f"the rollback could not complete; the snapshot is kept in {path}; restore it "
            f"with: pytest-orchestrator restore {shlex.quote(str(path))}"
        )

    # -- steps ----------------------------------------------------------------------------

    def _pick(self) -> list[Finding]:
        """:func:`pick_findings` with feature development when asked and confirmed once."""
        develop = self.settings.develop and self.state.develop_confirmed is not False
        findings = pick_findings(
            self.report, self.batch, self.settings.min_acceptable_score, develop
        )
        wants = bool(findings) and all(f.dimension == "coverage" for f in findings)
        if wants and self.state.develop_confirmed is None:
            question = (
                f"develop? write missing tests for {len(findings)} uncovered files or line "
                "ranges (the agent adds test files)"
            )
            self.state.develop_confirmed = self._confirm(
                len(self.state.iterations), question, ["develop"]
            )
            if not self.state.develop_confirmed:
                return pick_findings(self.report, self.batch, self.settings.min_acceptable_score)
        return findings

    def _prompt(self, findings: list[Finding], template: str = "close_gap") -> str:
        from pytest_orchestrator.agents.templates import FindingVars
        from pytest_orchestrator.auditors.agent import loop_prompt, session_templates

        return loop_prompt(
            session_templates(self.config, self.settings),
            template,
            self.settings,
            self.report.project,
            [FindingVars.from_finding(f, self.rootdir) for f in findings],
            self.ledger.left_usd,
            self.report.score.overall,
        )

    def _guard_settings(self) -> GuardSettings:
        from pytest_orchestrator.loop.guard import GuardSettings

        values = self.settings.guard
        kwargs: dict[str, Any] = {}
        for key in ("max_lines_removed", "max_files_modified"):
            if key in values:
                kwargs[key] = int(float(values[key]))
        if "confirm_at" in values:
            kwargs["confirm_at"] = values["confirm_at"]
        if self.settings.guard_core_files:
            kwargs["core_globs"] = tuple(self.settings.guard_core_files)
        return GuardSettings(**kwargs)

    def _approved(self, number: int, checks: list[GuardCheck], iteration: Iteration) -> bool:
        """Whether the checks that need confirmation are confirmed; records every check (the
        guard's in ``iteration.guard``, the integrity checks in ``iteration.integrity``)."""
        from pytest_orchestrator.loop.integrity import CHECKS

        settings = self._guard_settings()
        asking = [c for c in checks if c.needs_confirmation(settings)]
        iteration.guard = [_record(c) for c in checks if c.name not in CHECKS]
        iteration.integrity = [_record(c) for c in checks if c.name in CHECKS]
        if not asking:
            return True
        question = f"keep iteration {number}? " + "; ".join(c.message for c in asking)
        answer = self._confirm(number, question, [c.name for c in asking])
        for entry in [*iteration.guard, *iteration.integrity]:
            if entry.name in {c.name for c in asking}:
                entry.confirmed = answer
        return answer

    def _confirm(self, number: int, question: str, checks: list[str]) -> bool:
        """Ask the hook, else ``--orchestrate-confirm``; the answer is recorded."""
        answer = self.config.hook.pytest_orchestrator_confirm(
            config=self.config, question=question, checks=checks
        )
        how = "hook"
        if answer is None:
            answer, how = self._ask(question)
        self.state.confirmations.append(
            {"iteration": number, "question": question, "answer": bool(answer), "by": how}
        )
        return bool(answer)

    def _ask(self, question: str) -> tuple[bool, str]:
        mode = self.settings.confirm
        if mode != "ask":
            return mode == "yes", f"--orchestrate-confirm={mode}"
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)  # the real stdin, not pytest's stand-in
        try:
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                return False, "no terminal (ask means no)"
            reply = input(f"\npytest-orchestrator: {question} [y/N] ")
        except EOFError:
            reply = ""
        finally:
            if capture is not None:
                capture.resume_global_capture()
        return reply.strip().lower() in ("y", "yes"), "terminal"

    def _private_dirs(self) -> Path:
        """This run's private directory for the re-audits: a pytest cache, seeded with the
        session's static audit cache, out of the tree and so out of the agent's reach (an
        agent could forge cache entries). Made once per run."""
        if self._private is None:
            from pytest_orchestrator.auditors.cache import CACHE_DIR, session_cache_dir

            private = Path(tempfile.mkdtemp(prefix="pytest-orchestrator-loop-"))
            os.chmod(private, 0o700)
            audit = private / "pytest-cache" / "d" / CACHE_DIR
            with contextlib.suppress(OSError):
                shutil.copytree(session_cache_dir(self.config, self.rootdir), audit)
            audit.mkdir(parents=True, exist_ok=True)
            self._private = private
        return self._private

    def _reaudit(self) -> tuple[Report | None, Observation | None]:
        """Run the tests and the audits again in a child pytest, with the session's start
        as the tests' oracle; its JSON report and observation, or Nones."""
        from pytest_orchestrator.auditors.cache import CACHE_DIR, ENV_DIR
        from pytest_orchestrator.auditors.tests import Observation
        from pytest_orchestrator.programs import PROGRAMS_ENV

        private = self._private_dirs()
        with tempfile.TemporaryDirectory(prefix="pytest-orchestrator-reaudit-") as scratch:
            path = Path(scratch) / "report.json"
            oracle = Path(scratch) / "oracle.json"
            oracle.write_text(self.start.to_json(), encoding="utf-8")
            env = dict(os.environ)
            env[CHILD_ENV] = str(path)
            env[ORACLE_ENV] = str(oracle)
            env[ENV_DIR] = str(private / "pytest-cache" / "d" / CACHE_DIR)
            env[PROGRAMS_ENV] = json.dumps(self._programs)
            extra = ["--continue-on-collection-errors"]
            if self.config.pluginmanager.has_plugin("cacheprovider"):
                extra += ["-o", f"cache_dir={private / 'pytest-cache'}"]
            argv = [sys.executable, "-m", "pytest", *child_args(self.state.args), *extra]
            if self.runner.sandbox is not None and self.runner.sandbox.kind == "bwrap":
                # ruff keeps its own cache by its configuration, maybe outside the tree: a
                # private one instead
                env["RUFF_CACHE_DIR"] = str(private / "ruff-cache")
            ran = self._run_contained(
                argv,
                self.config.invocation_params.dir,
                env,
                [Path(scratch), private],
                sockets=bool(self.settings.exec_prefix),
            )
            if ran is None:
                return None, None
            try:
                report = Report.model_validate(jsonio.loads(path.read_bytes()))
                observed = Observation.from_data(
                    jsonio.loads(path.with_name("observed.json").read_bytes())
                )
            except (OSError, ValueError):
                return None, None
            return report, observed

    def _run_contained(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        writable: list[Path],
        *,
        sockets: bool,
        out: bool = False,
    ) -> tuple[int, bytes] | None:
        """Run a child pytest on the agent's code: in the sandbox of the agent calls (the
        tree and ``writable`` writable; ``sockets``: the container engine's kept, for
        ``--orchestrate-exec``), in a session of its own that is killed whole when it
        ends, times out (``--orchestrate-exec-timeout``) or is interrupted.

        :returns: its exit status and, with ``out``, its standard output; None on timeout.
        :raises BaseException: Ctrl-C and the like, after the child is killed.
        """
        sandbox = self.runner.sandbox
        if sandbox is not None and sandbox.kind == "bwrap" and self.origin is not None:
            argv = sandbox.wrap(
                argv,
                tree=self.origin.root,
                cwd=cwd,
                writable=writable,
                protected=self._protected(),
                env=env,
                sockets=sockets,
            )
        child = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if out else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            stdout, _ = child.communicate(timeout=self.settings.exec_timeout)
        except BaseException:  # a hung test suite, or Ctrl-C: the child goes too
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                raise
            return None
        with contextlib.suppress(OSError):  # what the tests left running
            os.killpg(child.pid, signal.SIGKILL)
        return child.returncode, stdout or b""

    def _roll_back(self, snapshot: Snapshot, iteration: Iteration, reason: str) -> None:
        with self._timed("rollback"):
            _uninterrupted(snapshot.restore)
        iteration.accepted = False
        if snapshot.unrestored:
            reason += (
                f"; {len(snapshot.unrestored)} ignored file(s) the agent changed could not be "
                f"put back (never copied): {', '.join(snapshot.unrestored[:5])}"
            )
        iteration.reason = redact_text(reason)

    def _commit(self, number: int, files: list[str]) -> str | None:
        """Commit ``files`` (the accepted iteration's, not those under ignored paths); the
        commit id, or None when git refused.

        No hook runs (``--no-verify``, and :func:`~pytest_orchestrator.loop.snapshot.run_git`
        points ``core.hooksPath`` at no directory: post-commit hooks too).
        """
        if not files:
            return None
        from pytest_orchestrator.loop.snapshot import SnapshotError, git_root, run_git

        iteration = self.state.iterations[number - 1]
        try:
            top = git_root(self.rootdir)  # the change's paths are from there
            run_git(top, "add", "--all", "--", *files)
            message = f"pytest-orchestrator: iteration {number}, {iteration.reason}"
            run_git(top, "commit", "--no-verify", "--no-gpg-sign", "-m", message, "--", *files)
            head = run_git(top, "rev-parse", "HEAD").stdout.decode().strip()
        except SnapshotError as exc:
            self._say(f"iteration {number} was not committed: {exc}")
            return None
        return head or None

    def _save(self) -> None:
        self.state.calls = list(self.ledger.calls)
        save(self.state, self.directory)

    # -- the result -----------------------------------------------------------------------

    def summary(self) -> LoopSummary:
        """The ``loop`` section of the final report."""
        state = self.state
        accepted = [i for i in state.iterations if i.accepted]
        return LoopSummary(
            session_id=state.session_id,
            iterations=state.iterations,
            stop_reason=state.stop_reason,
            initial_score=state.initial_score,
            final_score=self.report.score.overall,
            severities_before=state.severities_before,
            severities_after=severity_counts(self.report),
            files_modified=len({f for i in accepted for f in i.files}),
            lines_added=sum(i.lines_added for i in accepted),
            lines_removed=sum(i.lines_removed for i in accepted),
            backup_ref=state.backup_ref,
        )
