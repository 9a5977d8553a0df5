"""The pr-comment report against a local server that speaks GitHub's issue-comment endpoints.

The server implements what the report uses of the REST API ("Issue comments", version
2022-11-28): ``GET /repos/{owner}/{repo}/issues/{number}/comments`` with ``per_page`` and
``page`` and a ``Link: <...>; rel="next"`` header, ``POST`` to the same path (201 with the new
comment), ``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` (200), GitHub's 401/403/422
answers with a JSON ``message``, and the 65,536-character limit on a body. It records every
request, so the tests check what GitHub would receive. Sessions are real pytest runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_orchestrator.reports.prcomment import COMMENT_LIMIT, ID_ENV, marker, render

TOKEN = "ghs_" + "T" * 36
REPO = "acme/shop"
NUMBER = 7


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    api_version: str | None
    body: dict[str, Any] | None


@dataclass
class FakeGitHub:
    """Comments of one pull request, the requests received, and the failures to answer."""

    url: str = ""
    comments: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    fail_writes: tuple[int, str] | None = None  # (status, message) for POST and PATCH
    fail_all: tuple[int, str] | None = None
    next_host: str | None = None  # a Link to another host
    garbage: bool = False  # answer writes with bytes that are not HTTP
    next_id: int = 1000

    def add(self, body: str, user_type: str = "Bot", login: str = "github-actions[bot]") -> int:
        self.next_id += 1
        self.comments.append(
            {"id": self.next_id, "body": body, "user": {"login": login, "type": user_type}}
        )
        return self.next_id


def _handler(state: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    list_path = re.compile(rf"/repos/{REPO}/issues/(\d+)/comments")
    edit_path = re.compile(rf"/repos/{REPO}/issues/comments/(\d+)")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        def _record(self) -> Seen:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                self.headers.get("Authorization"),
                self.headers.get("X-GitHub-Api-Version"),
                body,
            )
            state.requests.append(seen)
            return seen

        def _handle(self) -> None:
            seen = self._record()
            if seen.authorization != f"Bearer {TOKEN}":
                return self._answer(401, {"message": "Bad credentials"})
            if state.fail_all:
                return self._answer(state.fail_all[0], {"message": state.fail_all[1]})
            if self.command != "GET" and state.garbage:
                self.wfile.write(b"this is not HTTP\r\n\r\n")
                self.close_connection = True
                return None
            if self.command != "GET" and state.fail_writes:
                return self._answer(state.fail_writes[0], {"message": state.fail_writes[1]})
            if self.command in ("POST", "PATCH"):
                text = (seen.body or {}).get("body", "")
                if len(text) > COMMENT_LIMIT:
                    return self._answer(
                        422, {"message": "body is too long (maximum is 65536 characters)"}
                    )
            listed = list_path.fullmatch(seen.path)
            edited = edit_path.fullmatch(seen.path)
            if listed and int(listed.group(1)) == NUMBER and self.command == "GET":
                per_page = int(seen.query.get("per_page", ["30"])[0])
                page = int(seen.query.get("page", ["1"])[0])
                chunk = state.comments[(page - 1) * per_page : page * per_page]
                headers = {}
                if page * per_page < len(state.comments):
                    host = state.next_host or state.url
                    headers["Link"] = (
                        f'<{host}{seen.path}?per_page={per_page}&page={page + 1}>; rel="next"'
                    )
                return self._answer(200, chunk, headers)
            if listed and int(listed.group(1)) == NUMBER and self.command == "POST":
                new = state.add(seen.body["body"])  # type: ignore[index]
                return self._answer(201, state.comments[-1] | {"id": new})
            if edited and self.command == "PATCH":
                for comment in state.comments:
                    if comment["id"] == int(edited.group(1)):
                        comment["body"] = seen.body["body"]  # type: ignore[index]
                        return self._answer(200, comment)
            return self._answer(404, {"message": "Not Found"})

        do_GET = do_POST = do_PATCH = _handle

    return Handler


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    state = FakeGitHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pull_request(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeGitHub:
    """The environment of a workflow run on a pull_request event, pointed at the server."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "pull_request": {"number": NUMBER}}))
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_WORKFLOW": "quality",
        "GITHUB_JOB": "gate",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_SHA": "0123abc",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(ID_ENV, raising=False)
    return github


#: Deselects the demo's failing test: the session passes (exit status 0) without the comment.
PASSING = (
    "--orchestrate-dimensions=tests",
    "--deselect=tests/test_cart.py::test_discount_is_applied_once",
)


def gate(demo: pytest.Pytester, *args: str) -> pytest.RunResult:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(demo.path))
    try:
        return demo.runpytest_subprocess(
            "--orchestrate", "--orchestrate-report=pr-comment", "-p", "no:randomly", *args
        )
    finally:
        monkeypatch.undo()


def writes(github: FakeGitHub) -> list[Seen]:
    return [r for r in github.requests if r.method != "GET"]


def test_the_first_run_creates_the_comment(demo: pytest.Pytester, pull_request: FakeGitHub) -> None:
    result = gate(demo)
    assert result.ret == 1  # the demo's failing test: the gate's own exit status
    [created] = writes(pull_request)
    assert (created.method, created.path) == ("POST", f"/repos/{REPO}/issues/{NUMBER}/comments")
    assert created.authorization == f"Bearer {TOKEN}"
    assert created.api_version == "2022-11-28"
    body = created.body["body"]  # type: ignore[index]
    assert body.startswith("<!-- pytest-orchestrator:pr-comment workflow=quality job=gate -->\n")
    assert "### :x: Quality gate FAILED" in body
    assert re.search(r"\*\*Score \d+\.\d\d\*\* \(target 90\.00\)", body)
    assert "| dimension | score | status |" in body
    assert "| tests | " in body and "| **overall** | " in body
    # the failing test, linked to its line at the run's commit
    assert (
        "[`tests/test_cart.py:30`](https://github.com/acme/shop/blob/0123abc/tests/test_cart.py#L30)"
        in body
    )
    assert "<details><summary>Gate conditions and points lost</summary>" in body
    assert body.rstrip().endswith("</sub>")
    result.stdout.fnmatch_lines(
        [f"pr-comment report: created the comment on pull request #{NUMBER}"]
    )
    assert TOKEN not in result.stdout.str() + result.stderr.str()


def test_a_later_run_updates_its_own_comment_found_on_a_later_page(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    for number in range(150):  # two pages of other people's comments first
        pull_request.add(f"comment {number}", user_type="User", login="someone")
    other_job = pull_request.add(marker({"GITHUB_WORKFLOW": "quality", "GITHUB_JOB": "lint"}))
    ours = pull_request.add(marker({"GITHUB_WORKFLOW": "quality", "GITHUB_JOB": "gate"}) + "\nold")
    result = gate(demo, "--orchestrate-dimensions=tests")
    assert result.ret == 1
    pages = [r.query.get("page", ["1"])[0] for r in pull_request.requests if r.method == "GET"]
    assert pages == ["1", "2"]
    [update] = writes(pull_request)
    assert (update.method, update.path) == ("PATCH", f"/repos/{REPO}/issues/comments/{ours}")
    by_id = {c["id"]: c["body"] for c in pull_request.comments}
    assert "Quality gate FAILED" in by_id[ours] and "old" not in by_id[ours]
    assert "Quality gate" not in by_id[other_job]  # another job's comment is left alone
    assert len(pull_request.comments) == 152  # nothing added
    result.stdout.fnmatch_lines(
        [f"pr-comment report: updated the comment on pull request #{NUMBER}"]
    )


def test_matrix_entries_and_workflows_keep_their_own_comments(
    demo: pytest.Pytester, pull_request: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ids that look like secrets to the redaction (long, no space) must stay as written
    monkeypatch.setenv(ID_ENV, "ubuntu-py3.12")
    gate(demo, *PASSING)
    monkeypatch.setenv(ID_ENV, "ubuntu-py3.13")
    gate(demo, *PASSING)
    gate(demo, *PASSING)
    monkeypatch.setenv(
        "GITHUB_WORKFLOW_REF", f"{REPO}/.github/workflows/other.yml@refs/pull/7/merge"
    )
    gate(demo, *PASSING)
    assert [r.method for r in writes(pull_request)] == ["POST", "POST", "PATCH", "POST"]
    heads = sorted(c["body"].splitlines()[0] for c in pull_request.comments)
    assert heads == [
        "<!-- pytest-orchestrator:pr-comment workflow=.github%2Fworkflows%2Fother.yml job=gate "
        "id=ubuntu-py3.13 -->",
        "<!-- pytest-orchestrator:pr-comment workflow=quality job=gate id=ubuntu-py3.12 -->",
        "<!-- pytest-orchestrator:pr-comment workflow=quality job=gate id=ubuntu-py3.13 -->",
    ]


def test_a_fork_s_read_only_token_gives_one_line_and_the_same_verdict(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    pull_request.fail_writes = (403, "Resource not accessible by integration")
    result = gate(demo, *PASSING)
    assert result.ret == 0  # as without the comment
    lines = [line for line in result.stdout.lines if line.startswith("pr-comment report")]
    assert lines == [
        f"pr-comment report: not posted: POST /repos/{REPO}/issues/{NUMBER}/comments answered "
        "HTTP 403: Resource not accessible by integration (the token cannot write to the pull "
        "request: a pull request from a fork gets a read-only token; the workflow needs "
        "'permissions: pull-requests: write')"
    ]
    result.stdout.fnmatch_lines(["Quality gate PASSED*"])


def test_a_broken_answer_or_a_rejected_body_gives_one_line_and_the_same_verdict(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    pull_request.garbage = True
    result = gate(demo, *PASSING)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"pr-comment report: not posted: POST /repos/{REPO}/issues/{NUMBER}/comments: a broken "
            "HTTP answer (*)"
        ]
    )
    pull_request.garbage = False
    pull_request.fail_writes = (422, "Validation Failed")
    result = gate(demo, *PASSING)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["pr-comment report: not posted: POST * answered HTTP 422: Validation Failed"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_an_expired_token_and_a_server_error_give_one_line_each(
    demo: pytest.Pytester, pull_request: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_expired" + "E" * 30)
    result = gate(demo, "--orchestrate-dimensions=tests")
    result.stdout.fnmatch_lines(
        [
            "pr-comment report: not posted: GET * answered HTTP 401: Bad credentials (the token "
            "is invalid or expired)"
        ]
    )
    assert "ghs_expired" not in result.stdout.str()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    pull_request.fail_all = (502, "Server Error")
    result = gate(demo, "--orchestrate-dimensions=tests")
    result.stdout.fnmatch_lines(
        ["pr-comment report: not posted: GET * answered HTTP 502: Server Error"]
    )
    assert result.ret == 1


def test_a_comment_over_github_s_limit_is_cut_with_a_note(
    pytester: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    # 800 modules no test runs: one coverage deduction each, over 65,536 characters in all
    package = pytester.mkpydir("pkg")
    for number in range(800):
        (package / f"a_module_with_a_rather_long_name_{number:03}.py").write_text(
            "def f():\n    return 1\n"
        )
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    result = gate(pytester, "--orchestrate-dimensions=tests,coverage")
    assert result.ret == 6  # the gate failed: coverage under its minimum
    [created] = writes(pull_request)
    body = created.body["body"]  # type: ignore[index]
    assert len(body) <= COMMENT_LIMIT
    assert "**Comment cut**: GitHub takes at most 65,536 characters in a comment" in body
    assert body.startswith("<!-- pytest-orchestrator:pr-comment")
    assert body.count("<details>") == body.count("</details>") == 1
    assert "a_module_with_a_rather_long_name_000.py" in body
    assert "a_module_with_a_rather_long_name_799.py" not in body
    result.stdout.fnmatch_lines(["pr-comment report: created the comment on pull request #7"])


def test_render_cuts_at_any_limit_and_keeps_the_head(demo: pytest.Pytester, tmp_path: Path) -> None:
    from pytest_orchestrator.models import Report

    demo.runpytest_subprocess(
        "--orchestrate", f"--orchestrate-report=json:{tmp_path / 'r.json'}", "-p", "no:randomly"
    )
    report = Report.model_validate_json((tmp_path / "r.json").read_text())
    full = render(report, None, "<!-- head -->")
    for limit in (len(full), len(full) - 1, 2000, 600, 300):
        text = render(report, None, "<!-- head -->", limit)
        assert len(text) <= limit
        assert text.startswith("<!-- head -->\n")
        assert (text == full) == (limit >= len(full))


def test_the_baseline_change_and_new_code_columns(
    demo: pytest.Pytester, pull_request: FakeGitHub, tmp_path: Path
) -> None:
    demo.runpytest_subprocess(
        "--orchestrate", f"--orchestrate-report=json:{tmp_path / 'base.json'}", "-p", "no:randomly"
    )
    (demo.path / "shop" / "cart.py").write_text(
        (demo.path / "shop" / "cart.py").read_text() + "\nimport json\n"
    )  # one more unused import: lint drops
    gate(demo, f"--orchestrate-baseline={tmp_path / 'base.json'}")
    body = writes(pull_request)[0].body["body"]  # type: ignore[index]
    header = next(line for line in body.splitlines() if line.startswith("| dimension"))
    assert re.fullmatch(
        r"\| dimension \| score \| change since baseline \(\d{4}-\d\d-\d\d\) \| status \|", header
    )
    lint = next(line for line in body.splitlines() if line.startswith("| lint |"))
    assert re.fullmatch(r"\| lint \| \d+\.\d\d \| -\d+\.\d\d \| ok \|", lint)
    tests = next(line for line in body.splitlines() if line.startswith("| tests |"))
    assert "| 0.00 |" in tests
    assert re.search(
        r"^- baseline \S+base\.json \(.*\): score \d+\.\d\d -&gt; \d+\.\d\d", body, re.M
    )


def test_the_new_code_column_and_figures_with_a_diff_base(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=demo.path, check=True, env={**os.environ, **env})
    (demo.path / "shop" / "added.py").write_text("import sys\n\n\ndef f():\n    return 1\n")
    gate(demo, "--orchestrate-diff-base=main")
    body = writes(pull_request)[0].body["body"]  # type: ignore[index]
    header = next(line for line in body.splitlines() if line.startswith("| dimension"))
    assert header == "| dimension | score | new code | status |"
    lint = next(line for line in body.splitlines() if line.startswith("| lint |"))
    assert re.fullmatch(r"\| lint \| \d+\.\d\d \| \d+\.\d\d \| ok \|", lint)
    assert "- against main (merge base " in body
    assert "- diff coverage 0.00: 0 of 3 changed executable lines covered" in body
    assert "- not covered: shop/added.py: 1, 4-5" in body
    assert re.search(
        r"^\*\*New-code score \d+\.\d\d\*\* \(target 90\.00\) on .*; overall \d+\.\d\d\.$",
        body,
        re.M,
    )


def test_outside_a_pull_request_it_says_it_skipped(
    demo: pytest.Pytester, pull_request: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    result = gate(demo, "--orchestrate-dimensions=tests")
    result.stdout.fnmatch_lines(
        ["pr-comment report: skipped: the event is 'push', not a pull request's"]
    )
    monkeypatch.delenv("GITHUB_ACTIONS")
    result = gate(demo, "--orchestrate-dimensions=tests")
    result.stdout.fnmatch_lines(["pr-comment report: skipped: not running in GitHub Actions"])
    assert pull_request.requests == []


def test_the_token_goes_to_the_api_host_only(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    for number in range(120):
        pull_request.add(f"comment {number}", user_type="User", login="someone")
    pull_request.next_host = "http://127.0.0.2:9"  # a next page on another host
    result = gate(demo, *PASSING)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "pr-comment report: not posted: the API's next page is at http://127.0.0.2:9, "
            f"not at {pull_request.url}"
        ]
    )
    assert [r.method for r in pull_request.requests] == ["GET"]


def test_the_action_s_token_is_out_of_the_tests_reach_and_out_of_the_comment(
    demo: pytest.Pytester, pull_request: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("PYTEST_ORCHESTRATOR_GITHUB_TOKEN", TOKEN)
    demo.makepyfile(
        **{
            "tests/test_snoop": """
        import os

        def test_snoop():
            seen = {k: v for k, v in os.environ.items() if v.startswith("ghs_")}
            assert not seen, seen
        """
        }
    )
    result = gate(demo, *PASSING)
    result.stdout.fnmatch_lines(["*5 passed, 1 deselected*"])  # test_snoop ran, saw no token
    assert result.ret == 0
    [created] = writes(pull_request)
    assert created.authorization == f"Bearer {TOKEN}"


def test_a_token_a_test_prints_is_masked_in_the_comment(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    demo.makepyfile(
        **{
            "tests/test_leak": """
        import os

        def test_leak():
            assert False, "token is " + os.environ["GITHUB_TOKEN"]
        """
        }
    )
    gate(demo, "--orchestrate-dimensions=tests")
    body = writes(pull_request)[0].body["body"]  # type: ignore[index]
    assert "test_leak" in body and "token is ***" in body
    assert TOKEN not in body


def test_a_missing_token_or_event_says_what_to_do(
    demo: pytest.Pytester, pull_request: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    result = gate(demo, "--orchestrate-dimensions=tests")
    result.stdout.fnmatch_lines(
        [
            "pr-comment report: not posted: GITHUB_TOKEN is not set; set it in the step's env "
            "to the job's token, github.token"
        ]
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    (tmp_path / "event.json").write_text('{"pull_request": {"number": "7; rm"}}')
    result = gate(demo, "--orchestrate-dimensions=tests")
    result.stdout.fnmatch_lines(
        ["pr-comment report: not posted: the event payload * names no pull request"]
    )
    assert pull_request.requests == []


def test_the_marker_cannot_be_closed_by_a_name() -> None:
    head = marker({"GITHUB_WORKFLOW": "a --> <b>", "GITHUB_JOB": "j", ID_ENV: "x y"})
    assert head == (
        "<!-- pytest-orchestrator:pr-comment workflow=a%20--%3E%20%3Cb%3E job=j id=x%20y -->"
    )
    assert head.count("-->") == 1


def test_a_person_s_comment_carrying_our_marker_is_never_taken_over(
    demo: pytest.Pytester, pull_request: FakeGitHub
) -> None:
    head = marker({"GITHUB_WORKFLOW": "quality", "GITHUB_JOB": "gate"})
    planted = pull_request.add(head + "\nplanted", user_type="User", login="mallory")
    gate(demo, *PASSING)
    assert [(r.method, r.path) for r in writes(pull_request)] == [
        ("POST", f"/repos/{REPO}/issues/{NUMBER}/comments")
    ]
    # with the bot's own comment on a later page, that one is updated
    for number in range(120):
        pull_request.add(f"comment {number}", user_type="User", login="someone")
    ours = pull_request.comments[1]["id"]
    pull_request.comments.append(pull_request.comments.pop(1))  # to the second page
    pull_request.requests.clear()
    gate(demo, *PASSING)
    [update] = writes(pull_request)
    assert update.path.endswith(f"/comments/{ours}")
    assert {c["id"]: c["body"] for c in pull_request.comments}[planted].endswith("planted")


def test_on_pull_request_target_findings_link_to_the_head_commit(
    demo: pytest.Pytester, pull_request: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    head = "f" * 40
    (tmp_path / "event.json").write_text(
        json.dumps({"pull_request": {"number": NUMBER, "head": {"sha": head}}})
    )
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request_target")
    gate(demo, "--orchestrate-dimensions=tests")
    body = writes(pull_request)[0].body["body"]  # type: ignore[index]
    assert f"(https://github.com/acme/shop/blob/{head}/tests/test_cart.py#L30)" in body
    assert "/blob/0123abc/" not in body
