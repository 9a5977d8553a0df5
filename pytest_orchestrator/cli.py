"""The ``pytest-orchestrator`` command: ``merge`` shard reports, ``show`` a saved report.

::

    pytest-orchestrator merge shard-1.json shard-2.json -o merged.json --markdown merged.md
    pytest-orchestrator show merged.json
    pytest-orchestrator show last            # the newest gap-closure session here
    pytest-orchestrator restore /tmp/pytest-orchestrator-snapshot-xyz

``merge`` combines the JSON reports of CI shards (``pytest --orchestrate
--orchestrate-report=json:shard-N.json`` on slices of the tests) into one report with one
verdict (see :mod:`pytest_orchestrator.merge` for how each dimension is combined), prints
it as the terminal report and writes the files asked for, atomically.

``show`` prints a saved JSON report, or a saved gap-closure session
(``.pytest_cache/d/orchestrator-sessions/ID.json``), as the terminal report, Markdown or
JSON.

``restore`` puts a working tree back as a gap-closure snapshot left on disk recorded it (a
rollback that could not complete keeps its snapshot and prints this command): exit status
0 when everything was put back (the snapshot is then removed, unless ``--keep``), 1 when
something could not be (named on stderr; the snapshot stays), 2 for bad input.

Exit status (both commands):

- 0: the verdict passed (a session: it stopped with the target reached);
- 1: the verdict failed and a test failed or errored (pytest's own status for that);
- 6 (``EXIT_GATE_FAILED``): the verdict failed with every test passing (a session: it
  stopped below the target), as ``pytest --orchestrate`` exits;
- 2: bad input: a missing, unreadable or non-JSON file, a file that is not a report, shards
  that cannot be merged, an output file that cannot be written. One line on stderr.

Heavy modules (pydantic models, rich, the scoring) are imported only when a command runs,
so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from pydantic import ValidationError

    from pytest_orchestrator.loop.engine import LoopState
    from pytest_orchestrator.models import Report

PROG = "pytest-orchestrator"
#: Exit status for bad input (argparse's own status for usage errors).
EXIT_BAD_INPUT = 2
#: Where gap-closure sessions are saved, under a pytest rootdir (see loop.engine.sessions_dir).
SESSIONS = Path(".pytest_cache", "d", "orchestrator-sessions")


class CliError(Exception):
    """Bad input; the message is the one line printed on stderr."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``pytest-orchestrator``."""
    parser = _Parser(
        prog=PROG,
        description="Merge the JSON reports of CI shards into one quality gate, or show a "
        "saved report. Exit status: 0 the gate passed; 1 it failed and a test failed; "
        "6 it failed with every test passing; 2 bad input.",
    )
    from pytest_orchestrator import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    merge = commands.add_parser(
        "merge",
        help="combine shard reports into one report with one verdict",
        description="Combine the JSON reports of CI shards (pytest --orchestrate "
        "--orchestrate-report=json:shard-N.json, each on a slice of the tests) into one "
        "report with one verdict. Test counts are summed and failures united; coverage is "
        "combined per line and branch (covered when any shard covered it), not averaged; "
        "lint, security and other whole-project audits are taken from one shard (united, "
        "with a note, if the shards disagree). The score and the gate are recomputed with "
        "the settings the shards recorded. Prints the terminal report.",
        epilog="Exit status: 0 the merged gate passed; 1 it failed and a test failed; "
        "6 it failed with every test passing; 2 bad input (one line on stderr).",
    )
    merge.add_argument(
        "reports", nargs="+", metavar="REPORT.json", help="JSON reports of the shards"
    )
    merge.add_argument(
        "-o", "--output", metavar="OUT.json", type=Path, help="write the merged JSON report"
    )
    merge.add_argument(
        "--markdown", metavar="OUT.md", type=Path, help="write the merged Markdown report"
    )
    merge.add_argument(
        "--target-score",
        metavar="N",
        type=_score,
        help="gate on this target (0-100) instead of the one the shards recorded",
    )
    _display_options(merge)

    show = commands.add_parser(
        "show",
        help="print a saved JSON report or gap-closure session",
        description="Print a saved JSON report (pytest --orchestrate-report=json:PATH, or "
        "a merged one) or a saved gap-closure session as the terminal report. PATH 'last' "
        "is the newest session under .pytest_cache/d/orchestrator-sessions of the current "
        "directory or the nearest parent that has one; a session ID works too.",
        epilog="Exit status: 0 the verdict passed (a session: the target was reached); "
        "1 it failed and a test failed; 6 it failed with every test passing (a session: "
        "it stopped below the target); 2 bad input (one line on stderr).",
    )
    show.add_argument("path", metavar="PATH", help="a JSON report or session file, last, or ID")
    show.add_argument(
        "--format",
        choices=("terminal", "markdown", "json"),
        default="terminal",
        help="terminal (default), markdown or json",
    )
    _display_options(show)
    restore = commands.add_parser(
        "restore",
        help="put a working tree back from a gap-closure snapshot left on disk",
        description="Put the working tree, git's HEAD, refs, index, config and hooks back as "
        "the snapshot at PATH recorded them (the path a gap-closure loop prints when a "
        "rollback could not complete). The snapshot is removed afterwards unless --keep.",
        epilog="Exit status: 0 restored; 1 something could not be put back (named); 2 bad "
        "input (not a snapshot).",
    )
    restore.add_argument("snapshot", metavar="PATH", type=Path, help="the snapshot directory")
    restore.add_argument("--keep", action="store_true", help="keep the snapshot afterwards")
    return parser


def _display_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="less output (-qq: the verdict line only), as pytest's -q",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="list every deduction")
    parser.add_argument(
        "--color",
        choices=("auto", "yes", "no"),
        default="auto",
        help="colours in the terminal report (auto: on a terminal, unless NO_COLOR is set)",
    )


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 100:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a target score; give 0 to 100")
    return value


# -- reading ---------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    """The JSON value in ``path``.

    :raises CliError: missing, unreadable, not UTF-8 or not JSON (one line).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a JSON file") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    from pytest_orchestrator import jsonio

    try:
        return jsonio.loads(data)
    except UnicodeDecodeError:
        raise CliError(f"{path}: not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except ValueError as exc:
        raise CliError(f"{path}: not JSON this tool reads ({exc})") from None


def _validation(exc: ValidationError) -> str:
    """A pydantic validation error in one line: the first problem and how many more."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _kind(data: Any) -> str:
    """'report', 'session' or 'other', from the top-level keys."""
    if isinstance(data, dict):
        if "schema_version" in data or "verdict" in data:
            return "report"
        if "session_id" in data and "iterations" in data:
            return "session"
    return "other"


def parse_report(data: Any, path: Path) -> Report:
    """``data`` (from ``path``) as a :class:`Report`.

    :raises CliError: it is not a pytest-orchestrator JSON report (one line).
    """
    from pydantic import ValidationError

    from pytest_orchestrator.models import Report

    kind = _kind(data)
    if kind == "session":
        raise CliError(
            f"{path}: a gap-closure session, not a report; merge takes JSON reports "
            "(--orchestrate-report=json:PATH)"
        )
    if kind != "report":
        raise CliError(
            f"{path}: not a pytest-orchestrator report (no schema_version; write one with "
            "--orchestrate-report=json:PATH)"
        )
    from pytest_orchestrator.reports import clean_report

    try:
        return clean_report(Report.model_validate(data))  # untrusted text: made safe
    except ValidationError as exc:
        raise CliError(
            f"{path}: not a valid pytest-orchestrator report: {_validation(exc)}"
        ) from None


def parse_session(data: Any, path: Path) -> LoopState:
    """``data`` (from ``path``) as a saved gap-closure session.

    :raises CliError: it is not one (one line).
    """
    from pydantic import ValidationError

    from pytest_orchestrator.loop.engine import LoopState
    from pytest_orchestrator.redact import clean_data

    try:
        return LoopState.model_validate(clean_data(data))  # untrusted text: made safe
    except ValidationError as exc:
        raise CliError(f"{path}: not a valid gap-closure session: {_validation(exc)}") from None


def find_session(which: str, start: Path) -> Path | None:
    """The session file ``which`` (an ID, or ``last``: the newest), looked up in the
    sessions directory of ``start`` or its nearest parent that has one; None when there is
    no sessions directory or no such session.
    """
    for directory in (start, *start.parents):
        sessions = directory / SESSIONS
        if sessions.is_dir():
            if which != "last":
                path = sessions / f"{which}.json"
                return path if path.is_file() else None
            files = sorted(sessions.glob("*.json"), key=lambda p: p.stat().st_mtime)
            return files[-1] if files else None
    return None


# -- output ----------------------------------------------------------------------------------


def _markup(choice: str) -> bool:
    if choice != "auto":
        return choice == "yes"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _terminal(report: Report, args: argparse.Namespace) -> str:
    from pytest_orchestrator.reports.terminal import render

    return render(
        report,
        markup=_markup(args.color),
        width=shutil.get_terminal_size().columns,
        verbosity=args.verbose - args.quiet,
    )


def exit_status(report: Report) -> int:
    """0 when the verdict passed; else 1 when a test failed or errored, else
    ``EXIT_GATE_FAILED`` (6): the status ``pytest --orchestrate`` exits with."""
    if report.verdict.passed:
        return 0
    tests = report.audit("tests")
    counts = tests.tests if tests is not None else None
    if counts is not None and (counts.failed or counts.errors or counts.collection_errors):
        return 1
    from pytest_orchestrator.orchestrator import EXIT_GATE_FAILED

    return EXIT_GATE_FAILED


def _check_outputs(outputs: Sequence[tuple[str, Path]]) -> None:
    """Refuse, before anything is written, two outputs at one path or one that cannot be
    written (so a bad ``--markdown`` leaves no ``-o`` file behind).

    :param outputs: ``(kind, path)`` pairs.
    :raises CliError: one line naming the path.
    """
    from pytest_orchestrator.config import check_writable

    seen: dict[Path, str] = {}
    for kind, path in outputs:
        key = path.resolve()
        if key in seen:
            raise CliError(f"{path}: given for both the {seen[key]} and the {kind} report")
        seen[key] = kind
        try:
            check_writable(path)
        except ValueError as exc:
            raise CliError(str(exc)) from None


def _write(outputs: Sequence[tuple[Path, bytes]]) -> None:
    """Write every output atomically (all were rendered before the first is written)."""
    from pytest_orchestrator.errors import ReportWriteError
    from pytest_orchestrator.reports import atomic_write

    for path, data in outputs:
        try:
            atomic_write(path, data)
        except ReportWriteError as exc:
            raise CliError(str(exc)) from None


# -- commands --------------------------------------------------------------------------------


def cmd_merge(args: argparse.Namespace) -> int:
    """``merge``: read, merge, print the terminal report, write the files; the exit status."""
    from pytest_orchestrator.merge import MergeError, Shard, merge_reports
    from pytest_orchestrator.reports import render_file

    paths = [Path(p) for p in args.reports]
    kinds = [("json", args.output), ("markdown", args.markdown)]
    files = [(kind, path) for kind, path in kinds if path is not None]
    _check_outputs(files)
    seen: dict[Path, Path] = {}
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise CliError(f"{path} is given twice; give each shard's report once")
        seen[key] = path
    shards = [Shard(str(path), parse_report(read_json(path), path)) for path in paths]
    try:
        merged = merge_reports(shards, target_score=args.target_score)
    except MergeError as exc:
        raise CliError(str(exc)) from None
    report = merged.report
    _write([(path, render_file(report, kind)) for kind, path in files])
    for note in merged.notes:
        print(f"{PROG} merge: note: {note}", file=sys.stderr)
    text = _terminal(report, args)
    for kind, path in files:
        text += f"{kind} report: {path}\n"
    sys.stdout.write(text)
    return exit_status(report)


def cmd_show(args: argparse.Namespace) -> int:
    """``show``: print a report or a session in the format asked for; the exit status."""
    path = Path(args.path)
    looks_like_id = args.path == "last" or not args.path.endswith(".json")
    if not path.exists() and looks_like_id and "/" not in args.path and os.sep not in args.path:
        found = find_session(args.path, Path.cwd())
        if found is None:
            where = "no sessions directory here" if args.path == "last" else "no such session"
            raise CliError(
                f"{args.path}: no such file, and {where} ({SESSIONS} in {Path.cwd()} or a parent)"
            )
        path = found
    data = read_json(path)
    if _kind(data) == "session":
        return _show_session(parse_session(data, path), args)
    report = parse_report(data, path)
    if args.format == "json":
        from pytest_orchestrator.reports import render_file

        sys.stdout.write(render_file(report, "json").decode("utf-8"))
    elif args.format == "markdown":
        from pytest_orchestrator.reports.markdown import render as render_markdown

        sys.stdout.write(render_markdown(report))
    else:
        sys.stdout.write(_terminal(report, args))
    return exit_status(report)


def session_lines(state: LoopState) -> list[str]:
    """A saved gap-closure session as text lines (scores 0-100, USD)."""
    from pytest_orchestrator.models import AgentUsage

    accepted = sum(1 for i in state.iterations if i.accepted)
    lines = [
        f"gap-closure session {state.session_id} in {state.rootdir}",
        f"score {state.initial_score:.2f} -> {state.current_score:.2f} (target "
        f"{state.target_score:.2f}) in {len(state.iterations)} iterations ({accepted} "
        f"accepted); stopped: {state.stop_reason or 'not yet (running or interrupted)'}",
    ]
    for i in state.iterations:
        lines.append(
            f"  #{i.number} {i.agent or '-'}: {i.score_before:.2f} -> "
            + (f"{i.score_after:.2f}" if i.score_after is not None else "-")
            + f" {'accepted' if i.accepted else 'rolled back'} ({i.reason}), "
            f"{len(i.files)} files, +{i.lines_added}/-{i.lines_removed} lines, "
            f"${i.cost_usd:.4f}"
        )
    if state.calls:
        usage = AgentUsage(
            spent_usd=round(sum(c.cost_usd for c in state.calls), 6), calls=state.calls
        )
        lines.append(usage.describe())
    return lines


def _session_passed(state: LoopState) -> bool:
    return (state.stop_reason or "").startswith("target reached")


def _show_session(state: LoopState, args: argparse.Namespace) -> int:
    passed = _session_passed(state)
    verdict = (
        f"Session {'PASSED' if passed else 'FAILED'}: score {state.current_score:.2f} "
        f"(target {state.target_score:.2f})"
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(state.model_dump(mode="json"), indent=2) + "\n")
    elif args.format == "markdown":
        head, *rest = session_lines(state)
        body = "\n".join(f"- {line.strip()}" for line in rest)
        sys.stdout.write(f"# {verdict}\n\n{head}\n\n{body}\n")
    elif args.verbose - args.quiet < -1:
        sys.stdout.write(verdict + "\n")
    else:
        sys.stdout.write("\n".join([*session_lines(state), verdict]) + "\n")
    if passed:
        return 0
    from pytest_orchestrator.orchestrator import EXIT_GATE_FAILED

    return EXIT_GATE_FAILED


def cmd_restore(args: argparse.Namespace) -> int:
    """``pytest-orchestrator restore PATH``: restore from a snapshot kept on disk."""
    from pytest_orchestrator.loop.snapshot import Snapshot, SnapshotError

    try:
        snapshot = Snapshot.load(args.snapshot)
    except SnapshotError as exc:
        raise CliError(str(exc)) from None
    try:
        snapshot.restore()
    except SnapshotError as exc:
        print(f"{PROG} restore: {exc}; the snapshot stays in {args.snapshot}", file=sys.stderr)
        return 1
    for item in snapshot.unrestored:
        print(f"{PROG} restore: not restored (never copied): {item}", file=sys.stderr)
    print(f"restored {snapshot.root} from {args.snapshot}")
    if not args.keep:
        shutil.rmtree(args.snapshot, ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pytest-orchestrator`` with ``argv`` (default: the command line); the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = {"merge": cmd_merge, "show": cmd_show, "restore": cmd_restore}[args.command]
    try:
        return command(args)
    except CliError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the input held
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
