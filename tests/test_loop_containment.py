"""Agents run contained: hostile ``command:`` agents against a real git repository.

Each agent tries one way to reach outside the tree, plant something that runs later, or
outlive its call. With the sandbox (bubblewrap) it is denied; without it
(``--orchestrate-sandbox=none``) the snapshot's rollback must still leave nothing behind:
nothing outside the tree changes, the tree and ``.git`` (config, hooks, HEAD, refs, the
index) are byte-identical afterwards (ten seconds after, where something could act late),
and nothing the agent planted ever runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_loop_integrity import everything, gate, git

from pytest_orchestrator.models import Report

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX processes and bwrap")

CALC = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a + b\n"
TESTS = (
    "from pkg.calc import add, mul\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\n"
    "def test_mul():\n    assert mul(3, 3) == 9\n"
)
FIX = """
from pathlib import Path
calc = Path('pkg/calc.py')
text = calc.read_text()
calc.write_text(text[: text.rindex('a + b')] + 'a * b' + text[text.rindex('a + b') + 5 :])
"""


@pytest.fixture
def repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = pytester.path
    files = {
        "pkg/__init__.py": "",
        "pkg/calc.py": CALC,
        "tests/test_calc.py": TESTS,
        "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n',
        ".gitignore": ".pytest_cache/\n__pycache__/\n.ruff_cache/\nout/\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    (root.parent / f"{root.name}-agent").mkdir()
    monkeypatch.setenv(
        "PYTEST_ORCHESTRATOR_SANDBOX_WRITABLE", str(root.parent / f"{root.name}-agent")
    )
    return root


@pytest.fixture
def outside(repo: Path) -> Path:
    """A directory beside the tree, with a file and a directory of the user's."""
    place = repo.parent / f"{repo.name}-outside"
    (place / "hooks").mkdir(parents=True)
    (place / "hooks" / "keep.txt").write_text("the user's\n")
    (place / "config").write_text("[user]\n\tname = someone else\n")
    return place


def agent(repo: Path, source: str) -> str:
    script = repo.parent / f"{repo.name}-agent" / "agent.py"
    script.write_text(textwrap.dedent(source))
    return f"--orchestrate-agent=command:{sys.executable} {script}"


def files(place: Path) -> dict[str, bytes]:
    return {
        p.relative_to(place).as_posix(): p.read_bytes() for p in place.rglob("*") if p.is_file()
    }


#: name -> the agent's script (OUTSIDE, MARK and REPO are filled in); marker files a planted
#: program would write (never written: nothing planted runs).
HOSTILE = {
    "config-link": """
        import os
        os.remove('.git/config')
        os.symlink('{OUTSIDE}/config', '.git/config')
        open('notes.txt', 'w').write('x')
        """,
    "hooks-link": """
        import os, shutil
        shutil.rmtree('.git/hooks', ignore_errors=True)
        os.symlink('{OUTSIDE}/hooks', '.git/hooks')
        open('notes.txt', 'w').write('x')
        """,
    "big-hook": """
        import os
        os.makedirs('.git/hooks', exist_ok=True)
        with open('.git/hooks/pre-commit', 'w') as hook:
            hook.write('#!/bin/sh\\ntouch {MARK}\\n' + '#' * (2 << 20) + '\\n')
        os.chmod('.git/hooks/pre-commit', 0o755)
        open('notes.txt', 'w').write('x')
        """,
    "fsmonitor": """
        import subprocess
        subprocess.run(['git', 'config', 'core.fsmonitor', "sh -c 'touch {MARK}'"], check=True)
        open('notes.txt', 'w').write('x')
        """,
    "filter-driver": """
        import subprocess
        subprocess.run(['git', 'config', 'filter.evil.clean', "sh -c 'touch {MARK}; cat'"],
                       check=True)
        open('.gitattributes', 'w').write('* filter=evil\\n')
        open('pkg/calc.py', 'a').write('# touched\\n')
        """,
    "corrupt-config": """
        open('.git/config', 'w').write('[[[ this is not a git config\\n')
        open('notes.txt', 'w').write('x')
        """,
    "ignored-dir-conftest": """
        import os
        os.makedirs('tests/hidden')
        open('tests/hidden/.gitignore', 'w').write('*\\n')
        open('tests/hidden/conftest.py', 'w').write("open('{MARK}', 'w').write('ran')\\n")
        """,
    "nested-repo-conftest": """
        import os, subprocess
        os.makedirs('tests/nested')
        subprocess.run(['git', 'init', '-q', 'tests/nested'], check=True)
        open('tests/nested/conftest.py', 'w').write("open('{MARK}', 'w').write('ran')\\n")
        """,
    "write-outside": """
        for path in ('{OUTSIDE}/config', '{OUTSIDE}/new.txt', '{HOME}/.pytest-orchestrator-evil'):
            try:
                open(path, 'a').write('evil\\n')
            except OSError:
                pass
        open('notes.txt', 'w').write('x')
        """,
}


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_agent_leaves_nothing_behind(
    repo: Path, outside: Path, request: pytest.FixtureRequest, case: str, sandbox: str
) -> None:
    if sandbox == "bwrap":
        request.getfixturevalue("bwrap")
    if case == "write-outside" and sandbox == "none":
        pytest.skip("without a sandbox nothing stops a write outside the tree (documented)")
    mark = repo.parent / f"{repo.name}-planted-ran"
    home = Path.home()
    source = (
        HOSTILE[case]
        .replace("{OUTSIDE}", str(outside))
        .replace("{MARK}", str(mark))
        .replace("{HOME}", str(home))
    )
    before, outside_before = everything(repo), files(outside)
    done, report = gate(
        repo, agent(repo, source), f"--orchestrate-sandbox={sandbox}", "--orchestrate-confirm=no"
    )

    assert report.loop is not None, done.stdout + done.stderr
    [iteration] = report.loop.iterations
    assert not iteration.accepted, iteration
    assert report.agents is not None and report.agents.calls[0].sandbox == sandbox
    # a later session: a conftest.py the agent hid would run now
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        timeout=120,
        check=False,
    )
    git(repo, "status", "--porcelain")  # and our user's next git command
    assert everything(repo) == before
    assert files(outside) == outside_before
    assert not mark.exists(), f"{case}: something the agent planted ran"
    assert not (home / ".pytest-orchestrator-evil").exists()


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_nothing_the_agent_started_outlives_its_call(
    repo: Path, request: pytest.FixtureRequest, sandbox: str
) -> None:
    """A process left in the background (``setsid`` with bwrap: its PID namespace ends with
    the call; without a sandbox: one in the agent's process group, killed with it) never
    writes into the tree after the rollback."""
    if sandbox == "bwrap":
        request.getfixturevalue("bwrap")
    late = repo / "late.txt"
    detach = "start_new_session=True" if sandbox == "bwrap" else "start_new_session=False"
    source = f"""
        import subprocess
        subprocess.Popen(['sh', '-c', 'sleep 3; echo late > {late}'], {detach},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open('notes.txt', 'w').write('x')
        """
    before = everything(repo)
    started = time.monotonic()
    done, report = gate(repo, agent(repo, source), f"--orchestrate-sandbox={sandbox}")

    assert report.loop is not None, done.stdout
    time.sleep(max(0.0, 10 - (time.monotonic() - started)))
    assert not late.exists()
    assert everything(repo) == before


@pytest.mark.serial
@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_an_honest_fix_with_a_grandchild_holding_its_output_is_accepted_at_once(
    repo: Path, request: pytest.FixtureRequest, sandbox: str
) -> None:
    if sandbox == "bwrap":
        request.getfixturevalue("bwrap")
    source = FIX + "import subprocess\nsubprocess.Popen(['sleep', '60'])  # keeps stdout open\n"
    done, report = gate(
        repo,
        agent(repo, source),
        f"--orchestrate-sandbox={sandbox}",
        "-o",
        "orchestrate_agent_timeout=30",
    )

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted, iteration
    assert iteration.timings["agent"] < 10, iteration.timings
    assert "a * b" in (repo / "pkg" / "calc.py").read_text()


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_our_git_runs_no_hook_when_it_commits(
    repo: Path, request: pytest.FixtureRequest, sandbox: str
) -> None:
    """Hooks of the user's own (a post-commit, a reference-transaction hook) and
    ``core.hooksPath``: ``--orchestrate-commit`` runs none of them."""
    if sandbox == "bwrap":
        request.getfixturevalue("bwrap")
    mark = repo.parent / f"{repo.name}-hook-ran"
    for name in ("pre-commit", "post-commit", "reference-transaction", "commit-msg"):
        hook = repo / ".git" / "hooks" / name
        hook.write_text(f"#!/bin/sh\ntouch {mark}\n")
        hook.chmod(0o755)
    done, report = gate(
        repo, agent(repo, FIX), f"--orchestrate-sandbox={sandbox}", "--orchestrate-commit"
    )

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted and iteration.commit is not None, iteration
    assert git(repo, "log", "-1", "--format=%H").strip() == iteration.commit
    assert not mark.exists()


def test_a_rollback_that_cannot_complete_keeps_the_snapshot_and_says_how_to_restore(
    repo: Path,
) -> None:
    """Without a sandbox the agent stages a file and leaves git's index lock behind (as a
    crashed git would): the index cannot be put back, the loop stops, the snapshot stays on
    disk, and ``pytest-orchestrator restore PATH`` finishes the job once the lock is gone."""
    source = """
        import subprocess
        open('notes.txt', 'w').write('x')
        subprocess.run(['git', 'add', 'notes.txt'], check=True)
        open('.git/index.lock', 'w').close()
        """
    before = everything(repo)
    done, report = gate(repo, agent(repo, source), "--orchestrate-sandbox=none")

    assert report.loop is not None, done.stdout
    assert report.loop.stop_reason is not None
    assert report.loop.stop_reason.startswith("rollback incomplete, the snapshot is kept")
    line = next(x for x in done.stdout.splitlines() if "pytest-orchestrator restore" in x)
    store = Path(line.rsplit("pytest-orchestrator restore ", 1)[1].strip().strip("'"))
    assert (store / "manifest.json").is_file()
    (repo / ".git" / "index.lock").unlink()
    restored = subprocess.run(
        [sys.executable, "-m", "pytest_orchestrator.cli", "restore", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr
    assert not store.exists()
    assert everything(repo) == before


def test_two_loops_in_one_repository_do_not_undo_each_other(repo: Path) -> None:
    started = repo.parent / f"{repo.name}-agent" / "started"
    slow = FIX + f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(6)\n"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--orchestrate",
        "--target-score=100",
        "--orchestrate-max-iterations=1",
        "--orchestrate-report=json:out/report.json",
        agent(repo, slow),
    ]
    first = subprocess.Popen(argv, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        second = subprocess.run(
            [*argv[:-1], "--orchestrate-report=json:out/second.json", argv[-1]],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == pytest.ExitCode.USAGE_ERROR, second.stdout + second.stderr
    assert f"another gap-closure loop (pid {first.pid}" in second.stderr
    assert not (repo / "out" / "second.json").exists()
    report = Report.model_validate(json.loads((repo / "out" / "report.json").read_text()))
    assert report.loop is not None and report.loop.iterations[0].accepted, output
    assert "a * b" in (repo / "pkg" / "calc.py").read_text()
    # the lock is gone again, and a stale lock file does not block the next loop
    assert not (repo / ".git" / "pytest-orchestrator.lock").exists()
    (repo / ".git" / "pytest-orchestrator.lock").write_text('{"pid": 999999}')
    git(repo, "commit", "-qam", "accepted fix")
    again = subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=300)
    assert again.returncode != pytest.ExitCode.USAGE_ERROR, again.stdout + again.stderr
    assert os.path.exists(repo / "out" / "report.json")


def fake_bwrap(place: Path) -> Path:
    """A ``bwrap`` that fails as bubblewrap does where user namespaces are off."""
    place.mkdir(exist_ok=True)
    script = place / "bwrap"
    script.write_text(
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"
    )
    script.chmod(0o755)
    return place


def test_auto_warns_without_a_working_bwrap_and_bwrap_is_then_a_usage_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = fake_bwrap(repo.parent / f"{repo.name}-nobwrap")
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    done, report = gate(repo, agent(repo, FIX))

    assert report.agents is not None
    [call] = report.agents.calls
    assert call.sandbox == "none"
    warning = (
        "agents run without a sandbox: bwrap does not work here (bwrap: setting up uid map: "
        "Permission denied)"
    )
    assert call.warnings and call.warnings[0].startswith(warning)
    assert f"! agents: {warning}" in done.stdout

    git(repo, "commit", "-qam", "the accepted fix")
    head = git(repo, "rev-parse", "HEAD")
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--orchestrate",
            "--orchestrate-sandbox=bwrap",
            agent(repo, FIX),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR
    assert refused.stderr.startswith(
        "ERROR: --orchestrate-sandbox=bwrap: bwrap does not work here (bwrap: setting up uid "
        "map: Permission denied)"
    ), refused.stderr
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""


def test_a_read_only_call_cannot_write_the_tree_in_the_sandbox(repo: Path, bwrap: None) -> None:
    """LLM audits run read-only: in bwrap the tree is mounted read-only for them."""
    from pytest_orchestrator.agents.adapters import ADAPTERS
    from pytest_orchestrator.agents.base import AgentRequest, AgentSpec
    from pytest_orchestrator.agents.sandbox import Sandbox

    spec = AgentSpec.parse(f"command:{sys.executable} -c \"open('x.txt', 'w').write('x')\"")
    result = ADAPTERS["command"](spec).run(
        AgentRequest(prompt="look", cwd=repo, edit=False), sandbox=Sandbox.choose("bwrap")
    )
    assert result.error is not None and "Read-only file system" in result.error.message
    assert not (repo / "x.txt").exists()


def test_the_loops_own_session_files_survive_an_agent_that_unignores_them(
    repo: Path,
) -> None:
    """The repository does not ignore ``.pytest_cache`` itself: the directory's own
    ``.gitignore`` does. An agent that deletes it makes the session files look untracked;
    the rollback must not delete them."""
    (repo / ".gitignore").write_text("__pycache__/\n.ruff_cache/\nout/\n")
    git(repo, "commit", "-qam", "no .pytest_cache line")
    source = "import os\nos.remove('.pytest_cache/.gitignore')\nopen('notes.txt', 'w').write('x')\n"
    _, first = gate(repo, agent(repo, source), "--orchestrate-sandbox=none")
    _, second = gate(repo, agent(repo, source), "--orchestrate-sandbox=none")

    assert first.loop is not None and second.loop is not None
    sessions = repo / ".pytest_cache" / "d" / "orchestrator-sessions"
    saved = sorted(p.stem for p in sessions.glob("*.json"))
    assert saved == sorted([first.loop.session_id, second.loop.session_id])


def test_committing_an_accepted_fix_leaves_out_what_it_wrote_under_ignored_paths(
    repo: Path,
) -> None:
    source = (
        FIX + "import os\nos.makedirs('out', exist_ok=True)\nopen('out/log.txt', 'w').write('x')\n"
    )
    done, report = gate(
        repo, agent(repo, source), "--orchestrate-commit", "--orchestrate-confirm=yes"
    )

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted and iteration.commit is not None, iteration
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["pkg/calc.py"]


def test_a_git_planted_on_path_never_runs(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory of the tree on PATH (a project's ``bin/``): the agent puts a ``git``
    there; ours was found before any agent ran."""
    mark = repo.parent / f"{repo.name}-planted-git-ran"
    (repo / "bin").mkdir()
    (repo / "bin" / "README").write_text("scripts\n")
    git(repo, "add", "bin")
    git(repo, "commit", "-qm", "a bin directory")
    monkeypatch.setenv("PATH", os.pathsep.join([str(repo / "bin"), os.environ["PATH"]]))
    source = FIX + (
        f"import os\nopen('bin/git', 'w').write('#!/bin/sh\\ntouch {mark}\\n')\n"
        "os.chmod('bin/git', 0o755)\n"
    )
    done, report = gate(repo, agent(repo, source), "--orchestrate-sandbox=none")

    assert report.loop is not None, done.stdout
    assert not mark.exists()


def test_a_nested_repositorys_git_is_read_only_in_the_sandbox(repo: Path, bwrap: None) -> None:
    mark = repo.parent / f"{repo.name}-nested-hook-ran"
    nested = repo / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "lib.py").write_text("X = 1\n")
    git(nested, "add", "lib.py")
    git(nested, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "lib")
    git(repo, "add", "vendor/lib")  # a gitlink, as a submodule's
    git(repo, "commit", "-qm", "vendored")
    before = (nested / ".git" / "config").read_bytes()
    source = f"""
        with open('vendor/lib/.git/config', 'a') as config:
            config.write('[core]\\n\\tfsmonitor = touch {mark}\\n')
        """
    done, report = gate(repo, agent(repo, source), "--orchestrate-sandbox=bwrap")

    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.reason.startswith("agent failed"), iteration.reason  # read-only
    assert (nested / ".git" / "config").read_bytes() == before
    git(nested, "status", "--porcelain")
    assert not mark.exists()


def test_no_socket_to_start_processes_outside_the_sandbox(repo: Path, bwrap: None) -> None:
    """The user's runtime directory (session bus, ssh agent) is hidden: a server listening
    there gets no connection from the agent."""
    import socket

    runtime = Path(f"/run/user/{os.getuid()}")
    try:
        runtime.mkdir(parents=True, exist_ok=True)
    except OSError:
        pytest.skip(f"cannot make {runtime} here")
    path = runtime / f"pytest-orchestrator-{os.getpid()}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(0.5)
    try:
        source = f"""
            import socket
            client = socket.socket(socket.AF_UNIX)
            client.connect({str(path)!r})
            client.sendall(b'started outside')
            """
        done, report = gate(repo, agent(repo, source), "--orchestrate-sandbox=bwrap")
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()
        path.unlink()
    assert report.loop is not None, done.stdout
    assert report.loop.iterations[0].reason.startswith("agent failed")


def test_the_container_engines_socket_is_out_of_reach_and_the_call_still_runs(
    repo: Path, bwrap: None
) -> None:
    """With a Docker engine on the machine (``.ci/run`` starts one; ``/var/run`` is a link
    to ``/run`` on Debian), the sandbox masks its socket and the agent's honest fix still
    runs: masking a socket reached through a link once broke every sandboxed call."""
    from pytest_orchestrator.agents.sandbox import MASKED_SOCKETS

    present = [s for s in MASKED_SOCKETS if os.path.exists(s)]
    if not present:
        if os.environ.get("ORCHESTRATOR_REQUIRE_DOCKER") == "1":
            pytest.fail("ORCHESTRATOR_REQUIRE_DOCKER=1 but no container engine socket exists")
        pytest.skip("no container engine socket on this machine")
    mark = repo.parent / f"{repo.name}-agent" / "reached.txt"
    source = f"""
        import socket
        for path in {present!r}:
            client = socket.socket(socket.AF_UNIX)
            try:
                client.connect(path)
            except OSError:
                continue
            open({str(mark)!r}, 'a').write(path + '\\n')
        """
    done, report = gate(
        repo, agent(repo, textwrap.dedent(source) + FIX), "--orchestrate-sandbox=bwrap"
    )
    assert report.loop is not None, done.stdout
    [iteration] = report.loop.iterations
    assert iteration.accepted, iteration.reason
    assert not mark.exists(), mark.read_text()


def test_an_interrupted_iteration_whose_rollback_fails_keeps_its_snapshot(repo: Path) -> None:
    import signal

    started = repo.parent / f"{repo.name}-agent" / "started"
    source = f"""
        import subprocess, time
        open('notes.txt', 'w').write('x')
        subprocess.run(['git', 'add', 'notes.txt'], check=True)
        open('.git/index.lock', 'w').close()
        open({str(started)!r}, 'w').close()
        time.sleep(60)
        """
    before = everything(repo)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--orchestrate",
            "--orchestrate-sandbox=none",
            agent(repo, source),
        ],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not started.exists():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)

    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    line = next(x for x in output.splitlines() if "pytest-orchestrator restore" in x)
    store = Path(line.rsplit("pytest-orchestrator restore ", 1)[1].strip().strip("'"))
    assert (store / "manifest.json").is_file()
    (repo / ".git" / "index.lock").unlink()
    restored = subprocess.run(
        [sys.executable, "-m", "pytest_orchestrator.cli", "restore", str(store)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert restored.returncode == 0, restored.stderr
    assert everything(repo) == before
