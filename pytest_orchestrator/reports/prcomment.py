"""The pr-comment report: one comment on the pull request, updated in place on every run.

``--orchestrate-report=pr-comment`` posts, inside GitHub Actions on a ``pull_request`` or
``pull_request_target`` event, one Markdown comment on the pull request through the GitHub
REST API, and updates that same comment on later runs instead of adding one:

- **Endpoints** (REST API version ``2022-11-28``, "Issue comments"; a pull request is an
  issue): ``GET /repos/{owner}/{repo}/issues/{number}/comments?per_page=100`` (following the
  ``Link: <...>; rel="next"`` header, same host only), ``POST`` to the same path to create,
  ``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` to update. The API root is
  ``GITHUB_API_URL`` (``https://api.github.com`` by default, GitHub Enterprise Server's
  ``https://HOST/api/v3``), the repository ``GITHUB_REPOSITORY``, the token ``GITHUB_TOKEN``
  and the pull request's number ``pull_request.number`` of the event payload at
  ``GITHUB_EVENT_PATH``.
- **Which comment**: the body starts with a hidden marker naming the workflow (its file,
  from ``GITHUB_WORKFLOW_REF``; else its name, ``GITHUB_WORKFLOW``), the job
  (``GITHUB_JOB``) and an optional id (``PYTEST_ORCHESTRATOR_COMMENT_ID``, e.g. a matrix
  entry), so every workflow, job and matrix entry keeps its own comment. Only a comment
  written by a bot (``user.type`` ``Bot``: the ``github-actions[bot]`` of the job's token)
  is updated: one a person wrote with the marker is left alone and a new one is created.
- **Content**: the verdict, score and target; a table of the dimensions with their change
  against the baseline (``--orchestrate-baseline``) and their new-code score (with
  ``--orchestrate-diff-base``); the new-code figures; the top findings, linked to their
  lines; the gate's conditions and the points lost in a collapsed ``<details>`` section.
  At most :data:`COMMENT_LIMIT` characters (GitHub's limit on a comment's body): longer
  content is cut at a line boundary, with a note.
- **Failures** never change the gate's verdict or exit status: no token, no pull request in
  the event, a read-only token (a pull request from a fork: HTTP 403), an expired token
  (HTTP 401), any other API error or an unreachable API each give one line in the terminal.
  The token is sent only to the API's own scheme and host (no redirect is followed), and
  never appears in any output.
- **The token** is ``PYTEST_ORCHESTRATOR_GITHUB_TOKEN`` (how the action passes it), taken
  out of the environment when the session starts so that neither the tests nor an agent
  can read it, else ``GITHUB_TOKEN``.

Outside GitHub Actions, or on another event, it writes one line saying it was skipped.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pytest_orchestrator.redact import redact_text

if TYPE_CHECKING:
    from pytest_orchestrator.models import Report

#: GitHub's maximum length of an issue or pull-request comment body (characters): the API
#: answers 422 "body is too long (maximum is 65536 characters)" above it.
COMMENT_LIMIT = 65536
#: Environment variable naming the comment apart from the workflow and job (a matrix entry).
ID_ENV = "PYTEST_ORCHESTRATOR_COMMENT_ID"
#: Environment variable of the token when the action passes it (read once, then removed).
ACCESS_ENV = "PYTEST_ORCHESTRATOR_GITHUB_TOKEN"
#: Events whose payload names a pull request.
EVENTS = ("pull_request", "pull_request_target")
#: Findings listed in the comment (every finding is in the JSON report).
TOP_FINDINGS = 10
#: Seconds to wait for each API request.
TIMEOUT = 30.0
#: Pages of comments read at most (100 each) while looking for ours.
MAX_PAGES = 50
API_VERSION = "2022-11-28"
_PREFIX = "pr-comment report"
_MARKER = "<!-- pytest-orchestrator:pr-comment"
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class CommentError(Exception):
    """The comment could not be posted; the message is one line, safe to print."""


@dataclass(frozen=True)
class Target:
    """Where the comment goes: the API root, ``owner/repo``, the pull request's number."""

    api: str
    repository: str
    number: int
    head_sha: str | None = None


def take_token(environ: MutableMapping[str, str]) -> str | None:
    """Remove :data:`ACCESS_ENV` from ``environ`` (the process environment, before any test
    or agent runs); its value, or None."""
    return environ.pop(ACCESS_ENV, None) or None


def workflow_name(environ: Mapping[str, str]) -> str:
    """The workflow's file (``.github/workflows/gate.yml``) from ``GITHUB_WORKFLOW_REF``
    (``OWNER/REPO/.github/workflows/gate.yml@refs/pull/7/merge``), else its name."""
    ref = environ.get("GITHUB_WORKFLOW_REF", "")
    path = ref.rpartition("@")[0] if "@" in ref else ref
    parts = path.split("/", 2)
    if len(parts) == 3 and parts[2]:
        return parts[2]
    return environ.get("GITHUB_WORKFLOW", "")


def marker(environ: Mapping[str, str]) -> str:
    """The hidden first line that names this workflow, job and id (URL-quoted: a name
    cannot end the HTML comment)."""
    parts = [
        f"workflow={quote(workflow_name(environ), safe='')}",
        f"job={quote(environ.get('GITHUB_JOB', ''), safe='')}",
    ]
    ident = environ.get(ID_ENV, "")
    if ident:
        parts.append(f"id={quote(ident, safe='')}")
    return f"{_MARKER} {' '.join(parts)} -->"


def target(environ: Mapping[str, str]) -> Target:
    """The pull request of this workflow run.

    :raises CommentError: the event is not a pull request's, or its payload, the
        repository or the API root is missing or malformed.
    """
    event = environ.get("GITHUB_EVENT_NAME", "")
    if event not in EVENTS:
        raise CommentError(f"skipped: the event is {event or 'unknown'!r}, not a pull request's")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise CommentError(f"not posted: GITHUB_REPOSITORY is {repository!r}, not OWNER/REPO")
    api = (environ.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    if urlsplit(api).scheme not in ("https", "http") or not urlsplit(api).hostname:
        raise CommentError(f"not posted: GITHUB_API_URL is {api!r}, not an http(s) URL")
    from pytest_orchestrator import jsonio

    path = environ.get("GITHUB_EVENT_PATH", "")
    try:
        with open(path, "rb") as handle:
            payload = jsonio.loads(handle.read(10 * 1024 * 1024 + 1))
    except (OSError, ValueError, RecursionError) as exc:
        raise CommentError(f"not posted: cannot read the event payload {path!r}: {exc}") from None
    pull = payload.get("pull_request") if isinstance(payload, dict) else None
    number = pull.get("number") if isinstance(pull, dict) else None
    if type(number) is not int or number < 1:
        raise CommentError(f"not posted: the event payload {path!r} names no pull request")
    head = pull.get("head") if isinstance(pull, dict) else None
    sha = head.get("sha") if isinstance(head, dict) else None
    sha = sha if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40,64}", sha) else None
    return Target(api=api, repository=repository, number=number, head_sha=sha)


def _changes(report: Report) -> dict[str, str]:
    """Per dimension, the change of its score against the baseline: ``+1.50``, ``-2.00``."""
    from pytest_orchestrator.scoring import fmt

    baseline = report.baseline
    if baseline is None:
        return {}
    out = {}
    for audit in report.audits:
        before = baseline.dimensions.get(audit.dimension)
        if before is not None and audit.score is not None:
            delta = round(audit.score - before, 2)
            out[audit.dimension] = ("+" if delta > 0 else "") + fmt(delta)
    delta = round(report.score.overall - baseline.score, 2)
    out["overall"] = ("+" if delta > 0 else "") + fmt(delta)
    return out


def render(report: Report, links: str | None, head: str = "", limit: int = COMMENT_LIMIT) -> str:
    """The comment's Markdown: ``head`` (the marker) first, at most ``limit`` characters.

    :param links: URL prefix of finding links (``markdown.link_base``); None for none.
    """
    from pytest_orchestrator import __version__
    from pytest_orchestrator.reports.markdown import _cell as _plain
    from pytest_orchestrator.reports.markdown import _score_line, location
    from pytest_orchestrator.reports.newcode_text import describe, new_code_scores
    from pytest_orchestrator.scoring import fmt, plural

    verdict = report.verdict
    word, icon = ("PASSED", ":white_check_mark:") if verdict.passed else ("FAILED", ":x:")
    changes = _changes(report)
    new_scores = new_code_scores(report) or {}
    columns = ["dimension", "score"]
    if report.baseline is not None and changes:
        columns.append(f"change since baseline ({report.baseline.created:%Y-%m-%d})")
    if new_scores:
        columns.append("new code")
    columns.append("status")
    out = [
        head,
        f"### {icon} Quality gate {word}",
        "",
        f"{_score_line(report).rstrip(',')}.",
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 2) + "---|",
    ]
    for audit in report.audits:
        cells = [_plain(audit.dimension), fmt(audit.score) if audit.score is not None else "-"]
        if changes:
            cells.append(changes.get(audit.dimension, "-"))
        if new_scores:
            cells.append(new_scores.get(audit.dimension, "-"))
        status = "ok" if audit.status == "ok" else f"{audit.status}: {_plain(audit.reason or '')}"
        out.append("| " + " | ".join([*cells, status]) + " |")
    total = ["**overall**", f"**{fmt(report.score.overall)}**"]
    if changes:
        total.append(f"**{changes['overall']}**")
    if new_scores:
        total.append(f"**{new_scores.get('overall', '-')}**")
    out += ["| " + " | ".join([*total, ""]) + " |", ""]
    failed = [c for c in verdict.conditions if not c.passed]
    out += [f"- :x: {_plain(c.message)}" for c in failed]
    if report.new_code is not None:
        out += [f"- {_plain(line.strip())}" for line in describe(report.new_code)]
    if report.baseline is not None:
        from pytest_orchestrator.baseline import describe as describe_baseline

        out.append(f"- {_plain(describe_baseline(report.baseline, report))}")
    if out[-1]:
        out.append("")
    findings = report.findings()
    if findings:
        shown = findings[:TOP_FINDINGS]
        out += [
            f"**Top findings** ({len(shown)} of {plural(len(findings), 'finding')}):",
            "",
            "| severity | location | rule | message |",
            "|---|---|---|---|",
        ]
        for finding in shown:
            out.append(
                f"| {finding.severity.value} | {location(finding, links)} | "
                f"{_plain(finding.rule_id)} | {_plain(finding.message)} |"
            )
        out.append("")
    details = ["<details><summary>Gate conditions and points lost</summary>", ""]
    details += [f"- {'✅' if c.passed else '❌'} {_plain(c.message)}" for c in verdict.conditions]
    for audit in report.audits:
        if audit.deductions:
            details += ["", f"**{_plain(audit.dimension)}**", ""]
            largest = sorted(audit.deductions, key=lambda d: -d.points)
            details += [f"- -{fmt(d.points)}: {_plain(d.reason)}" for d in largest]
    details += ["", "</details>", ""]
    foot = f"<sub>pytest-orchestrator {__version__}</sub>\n"
    return _fit(out, details, foot, limit)


def _fit(body: list[str], details: list[str], foot: str, limit: int) -> str:
    """``body``, ``details`` and ``foot`` joined, cut line by line from the end of the body
    and the details to fit ``limit`` characters, with a note saying so."""
    text = "\n".join(body + details) + "\n" + foot
    if len(text) <= limit:
        return text
    note = (
        f"\n> **Comment cut**: GitHub takes at most {limit:,} characters in a comment; the "
        "whole report is in the job's log.\n\n"
    )
    close = ["", "</details>", ""]
    room = limit - len(foot) - len(note)
    kept_details = details[:2]
    size = len("\n".join(body)) + 1 + len("\n".join(kept_details + close)) + 1
    if size > room:  # the details' head alone does not fit: cut the body too
        kept = []
        used = 0
        for line in body:
            if used + len(line) + 1 > room:
                break
            kept.append(line)
            used += len(line) + 1
        return ("\n".join(kept) + "\n" + note + foot)[:limit]
    for line in details[2:-3]:
        if size + len(line) + 1 > room:
            break
        kept_details.append(line)
        size += len(line) + 1
    return "\n".join(body + kept_details + close) + note + foot


def _request(
    method: str, url: str, token: str, body: dict[str, Any] | None = None
) -> tuple[Any, str | None]:
    """One API request: ``(the decoded JSON answer, the next page's URL or None)``.

    :raises CommentError: HTTP errors and unreachable hosts, as one line.
    """
    from pytest_orchestrator import jsonio

    data = json.dumps(body).encode("utf-8") if body is not None else None
    # http(s) only: the API root's scheme is checked in target(), a next page must be on the
    # API's host, and the opener has no handler for any other scheme
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("X-GitHub-Api-Version", API_VERSION)
    request.add_header("User-Agent", "pytest-orchestrator")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):  # no redirect handler: a redirect must not carry the token anywhere
        opener.add_handler(handler)
    try:
        with opener.open(request, timeout=TIMEOUT) as answer:
            raw = answer.read(20 * 1024 * 1024)
            link = answer.headers.get("Link", "")
    except urllib.error.HTTPError as exc:
        raise CommentError(_http_problem(method, url, exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CommentError(f"not posted: cannot reach {urlsplit(url).netloc}: {reason}") from None
    except (http.client.HTTPException, ValueError) as exc:  # a garbled answer
        raise CommentError(
            f"not posted: {method} {urlsplit(url).path}: a broken HTTP answer "
            f"({type(exc).__name__})"
        ) from None
    try:
        decoded = jsonio.loads(raw) if raw else None
    except (ValueError, RecursionError):
        raise CommentError(f"not posted: {method} {urlsplit(url).path}: not JSON") from None
    found = _NEXT.search(link)
    return decoded, found.group(1) if found else None


def _http_problem(method: str, url: str, exc: urllib.error.HTTPError) -> str:
    """One line for an HTTP error answer, with GitHub's message and what to do."""
    message = ""
    try:
        from pytest_orchestrator import jsonio

        answer = jsonio.loads(exc.read(64 * 1024))
        if isinstance(answer, dict) and isinstance(answer.get("message"), str):
            message = f": {answer['message'][:300]}"
    except (ValueError, RecursionError, OSError):
        pass
    hint = {
        401: " (the token is invalid or expired)",
        403: (
            " (the token cannot write to the pull request: a pull request from a fork gets a "
            "read-only token; the workflow needs 'permissions: pull-requests: write')"
        ),
        404: " (no such repository or pull request for this token)",
    }.get(exc.code, "")
    return f"not posted: {method} {urlsplit(url).path} answered HTTP {exc.code}{message}{hint}"


def _ours(comments: list[Any], head: str) -> int | None:
    """The id of our comment among ``comments``: the first a bot wrote that starts with
    ``head``; None when there is none (a person's comment is never taken over)."""
    for comment in comments:
        if (
            isinstance(comment, dict)
            and isinstance(comment.get("body"), str)
            and comment["body"].startswith(head)
            and type(comment.get("id")) is int
            and isinstance(comment.get("user"), dict)
            and comment["user"].get("type") == "Bot"
        ):
            return int(comment["id"])
    return None


def post(body: str, where: Target, token: str, head: str) -> str:
    """Create or update the comment starting with ``head``; ``created`` or ``updated``.

    :raises CommentError: on any API failure.
    """
    base = f"{where.api}/repos/{where.repository}/issues"
    url: str | None = f"{base}/{where.number}/comments?per_page=100"
    origin = urlsplit(where.api)[:2]
    existing = None
    for _ in range(MAX_PAGES):
        if url is None or existing is not None:
            break
        if urlsplit(url)[:2] != origin:  # never send the token elsewhere, nor in clear
            raise CommentError(
                f"not posted: the API's next page is at {urlsplit(url).scheme}://"
                f"{urlsplit(url).netloc}, not at {where.api}"
            )
        page, url = _request("GET", url, token)
        if not isinstance(page, list):
            raise CommentError("not posted: the comment list is not a JSON array")
        existing = _ours(page, head)
    else:
        if existing is None and url is not None:
            raise CommentError(
                f"not posted: more than {MAX_PAGES * 100:,} comments on the pull request, "
                "ours not among the first ones"
            )
    if existing is not None:
        _request("PATCH", f"{base}/comments/{existing}", token, {"body": body})
        return "updated"
    _request("POST", f"{base}/{where.number}/comments", token, {"body": body})
    return "created"


def publish(
    report: Report,
    environ: Mapping[str, str],
    write_line: Callable[[str], None],
    token: str | None = None,
) -> None:
    """Post or update the comment; one line in the terminal either way, never an exception
    (the gate's verdict is decided already).

    :param environ: the process environment (see the module's docstring for the variables).
    :param write_line: writes one line to the terminal.
    :param token: the token taken by :func:`take_token`; None: ``GITHUB_TOKEN``.
    """
    token = token or environ.get("GITHUB_TOKEN", "")

    def say(text: str) -> None:
        line = redact_text(f"{_PREFIX}: {text}")
        write_line(line.replace(token, "***") if token else line)

    if environ.get("GITHUB_ACTIONS") != "true":
        say("skipped: not running in GitHub Actions")
        return
    try:
        where = target(environ)
        if not token:
            raise CommentError(
                "not posted: GITHUB_TOKEN is not set; set it in the step's env to the job's "
                "token, github.token"
            )
        from pytest_orchestrator.reports.markdown import link_base

        head = marker(environ)
        shown = dict(environ)
        if where.head_sha and environ.get("GITHUB_EVENT_NAME") == "pull_request_target":
            shown["GITHUB_SHA"] = where.head_sha  # that event's GITHUB_SHA is the base's
        text = render(report, link_base(report, shown), head)
        # the marker is ours and must stay as written: an id can look like a secret
        body = head + redact_text(text[len(head) :]).replace(token, "***")
        done = post(body[:COMMENT_LIMIT], where, token, head)
    except CommentError as exc:
        say(str(exc))
        return
    except Exception as exc:  # a bug here must not change the session's outcome
        say(f"not posted: {type(exc).__name__}: {exc}")
        return
    say(f"{done} the comment on pull request #{where.number}")
