"""Gap closure: audit -> close gaps with an agent -> guard -> re-test and re-audit -> keep or
roll back, until the target score, the iteration limit, the budget or a lack of progress
stops it.

The first audit is the user's own pytest session. Each iteration:

1. picks the findings to close: P0 first, then P1 (P2 and P3 too once the score is at
   least ``min_acceptable_score``), at most ``loop_batch``;
2. renders ``close_gap.j2`` with them (file excerpts, the test command through the exec
   prefix, the budget left);
3. snapshots the working tree (``loop.snapshot``) and runs the agent with edit permission;
4. inspects the change (``loop.guard``); a check that needs confirmation is put to the
   ``pytest_orchestrator_confirm`` hook, else to ``--orchestrate-confirm`` (ask on a
   terminal with pytest's capture suspended, no without one); a refusal rolls back;
5. re-runs the tests and the audits in a child pytest (same arguments, JSON report; LLM
   audits are not repeated) and keeps the change only when the overall score rose and no
   new P0 finding appeared; otherwise the snapshot is restored byte for byte.

The session (iterations, confirmations, agent calls, stop reason) is saved atomically after
every step under the pytest cache directory, and ``--orchestrate-resume=ID|last`` continues
it with its spent budget and iteration count. Ctrl-C rolls back the iteration in flight,
saves the session and lets pytest exit with its interrupted status.
"""

from __future__ import annotations

import contextlib
import json
import os
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
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel, Field

from pytest_orchestrator.models import (
    AgentCall,
    Finding,
    GuardFinding,
    Iteration,
    LoopSummary,
    Report,
    Severity,
)
from pytest_orchestrator.plugin import CHILD_ENV
from pytest_orchestrator.redact import redact_text

if TYPE_CHECKING:
    from pytest_orchestrator.agents.runner import AgentRunner, Ledger
    from pytest_orchestrator.config import OrchestrationConfig
    from pytest_orchestrator.loop.guard import GuardSettings

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
        return LoopState.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
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


class Loop:
    """One gap-closure run for a session (see the module docstring)."""

    def __init__(
        self,
        config: pytest.Config,
        settings: OrchestrationConfig,
        ledger: Ledger,
        runner: AgentRunner,
        first: Report,
        state: LoopState | None = None,
    ) -> None:
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
        if self.state.strategy_changed:
            self.batch = max(1, self.batch // 2)

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
        return self.report

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
        from pytest_orchestrator.agents.base import AgentRequest
        from pytest_orchestrator.loop.guard import inspect, uncommitted_work
        from pytest_orchestrator.loop.snapshot import Snapshot, SnapshotError

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
        snapshot = Snapshot.take(self.rootdir)
        settled = False
        try:
            self._save()  # the iteration in flight is on record before the agent runs
            self._progress(number, f"agent {iteration.agent} on {len(findings)} findings")
            prompt = self._prompt(findings, "develop_feature" if develop else "close_gap")
            result = self.runner.call(
                AgentRequest(
                    prompt=prompt,
                    cwd=self.rootdir,
                    timeout=self.settings.agent_timeout,
                    edit=True,
                    max_turns=self.settings.max_turns,
                ),
                purpose=f"iteration {number}",
            )
            iteration.cost_usd = round(self.ledger.spent_usd - spent_before, 6)
            changes = snapshot.diff()
            iteration.files = [c.path for c in changes.changes]
            iteration.lines_added = changes.lines_added
            iteration.lines_removed = changes.lines_removed
            if result.error is not None:
                self._roll_back(snapshot, iteration, f"agent failed: {result.error.message}")
                if result.error.kind in ("budget", "auth", "missing_executable"):
                    self.state.stop_reason = f"agent unavailable: {result.error.message}"
                return
            if changes.empty:
                self._roll_back(snapshot, iteration, "the agent changed nothing")
                return
            checks = inspect(changes, self._guard_settings())
            touched = uncommitted_work(changes, self.state.dirty_files, self.state.backup_ref)
            if touched is not None:
                checks.append(touched)
            if not self._approved(number, checks, iteration):
                self._roll_back(snapshot, iteration, "refused by the guard")
                return
            self._progress(number, f"re-testing {len(changes.changes)} changed files")
            child = self._reaudit()
            if child is None:
                self._roll_back(snapshot, iteration, "the re-audit did not produce a report")
                return
            iteration.score_after = child.score.overall
            new_p0 = {f.fingerprint for f in child.findings() if f.severity is Severity.P0} - {
                f.fingerprint for f in self.report.findings() if f.severity is Severity.P0
            }
            if new_p0:
                self._roll_back(snapshot, iteration, f"{len(new_p0)} new P0 finding(s)")
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
                    f"score rose {self.report.score.overall:.2f} -> {child.score.overall:.2f}"
                )
                self.report = child
                self.state.current_score = child.score.overall
                if self.settings.commit:
                    iteration.commit = self._commit(number, iteration)
            settled = True
        except BaseException as exc:
            if not isinstance(exc, SnapshotError):
                _uninterrupted(snapshot.restore)
                iteration.reason = iteration.reason or "interrupted: rolled back"
                settled = True
            raise
        finally:
            iteration.duration = round(time.monotonic() - started, 3)
            self.state.calls = list(self.ledger.calls)
            if settled:
                snapshot.discard()  # else kept: the only copy of what to restore

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
        from pytest_orchestrator.agents.templates import FindingVars, PromptTemplates
        from pytest_orchestrator.auditors.agent import tests_command

        settings = self.settings
        return PromptTemplates(settings.templates_dir).render(
            template,
            {
                "project": self.report.project.model_dump(),
                "findings": [FindingVars.from_finding(f, self.rootdir) for f in findings],
                "exec_prefix": settings.exec_prefix or None,
                "test_command": tests_command(settings.exec_prefix, settings.exec_command),
                "budget_left_usd": self.ledger.left_usd,
                "target_score": settings.target_score,
                "score": self.report.score.overall,
            },
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

    def _approved(self, number: int, checks: list[Any], iteration: Iteration) -> bool:
        settings = self._guard_settings()
        asking = [c for c in checks if c.needs_confirmation(settings)]
        iteration.guard = [
            GuardFinding(name=c.name, risk=c.risk, message=c.message) for c in checks
        ]
        if not asking:
            return True
        question = f"keep iteration {number}? " + "; ".join(c.message for c in asking)
        answer = self._confirm(number, question, [c.name for c in asking])
        for entry in iteration.guard:
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

    def _reaudit(self) -> Report | None:
        """Run the tests and the audits again in a child pytest; its JSON report, or None."""
        with tempfile.TemporaryDirectory(prefix="pytest-orchestrator-reaudit-") as scratch:
            path = Path(scratch) / "report.json"
            env = dict(os.environ)
            env[CHILD_ENV] = str(path)
            argv = [
                sys.executable,
                "-m",
                "pytest",
                *child_args(self.state.args),
                "--continue-on-collection-errors",
            ]
            child = subprocess.Popen(
                argv,
                cwd=self.config.invocation_params.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                child.wait(self.settings.exec_timeout)
            except BaseException:  # a hung test suite, or Ctrl-C: the child goes too
                with contextlib.suppress(OSError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                    raise
                return None
            if not path.is_file():
                return None
            try:
                return Report.model_validate(json.loads(path.read_text(encoding="utf-8")))
            except ValueError:
                return None

    def _roll_back(self, snapshot: Any, iteration: Iteration, reason: str) -> None:
        _uninterrupted(snapshot.restore)
        iteration.accepted = False
        iteration.reason = redact_text(reason)

    def _commit(self, number: int, iteration: Iteration) -> str | None:
        """Commit the accepted iteration's files; the commit id, or None when git refused."""
        files = iteration.files
        if not files:
            return None
        from pytest_orchestrator.loop.snapshot import git_root

        git = ["git", "-C", str(git_root(self.rootdir))]  # the change's paths are from there
        subprocess.run([*git, "add", "--all", "--", *files], capture_output=True, check=False)
        message = f"pytest-orchestrator: iteration {number}, {iteration.reason}"
        done = subprocess.run(
            [*git, "commit", "--no-verify", "-m", message, "--", *files],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            return None
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        return head.stdout.strip() or None

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
