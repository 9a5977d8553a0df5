"""The ``pytest-orchestrator`` command: ``merge`` of CI shard reports, and ``show``.

The shards are real ``pytest --orchestrate`` sessions of the demo project (seeded defects,
branch coverage on), split with ``-k`` so that each shard covers different lines and
branches of the same files; one shard runs under pytest-xdist (``-n 2``) and in another
directory, as a CI matrix job would. The merge must equal one unsharded session of the same
tests: counts, coverage per file (lines and branch arcs), findings, score and verdict.

The sessions run once per module in child interpreters (coverage measures the child); most
CLI calls run in-process through :func:`pytest_orchestrator.cli.main`, a few through the
real entry points (``python -m pytest_orchestrator.cli`` and the console script).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pytest_orchestrator import EXIT_GATE_FAILED
from pytest_orchestrator.cli import main
from pytest_orchestrator.models import AgentCall, Iteration, Report

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo"
SCHEMA = json.loads((ROOT / "pytest_orchestrator" / "report.schema.json").read_text())
#: The demo's 5 tests, split so that both shards run lines and branches of shop/cart.py
#: and shop/pricing.py that the other does not (13->14 in one, 13->15 in the other).
SHARD_1 = ["-k", "fixed or negative", "-n", "2"]
SHARD_2 = ["-k", "not fixed and not negative"]


def child_env(home: Path) -> dict[str, str]:
    """The environment of a shard: none of this session's pytest, xdist or coverage state."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_"))
    }
    env["XDG_CACHE_HOME"] = str(home / "xdg-cache")  # bandit's plugin cache, not in projects
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass
class Runs:
    """Two shard sessions and one unsharded session of the demo, with their JSON reports."""

    base: Path
    shard_1: Path
    shard_2: Path
    lean_2: Path
    full: Path
    full_status: int

    def load(self, path: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def gate(project: Path, report: Path, extra: list[str], env: dict[str, str]) -> int:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--orchestrate",
            f"--orchestrate-report=json:{report}",
            *extra,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert report.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("shards")
    env = child_env(base)
    here, there = base / "checkout-1", base / "checkout-2"
    shutil.copytree(DEMO, here)
    with (here / "pyproject.toml").open("a") as handle:
        # per-path minimums (the pytest table is the file's last): the merge computes the
        # coverage group again on the merged coverage
        handle.write('orchestrate_path_minimums = "shop/cart.py coverage>=10"\n')
        handle.write("\n[tool.coverage.run]\nbranch = true\n")
    shutil.copytree(here, there)  # the second shard runs in another checkout, as on CI
    runs = Runs(
        base=base,
        shard_1=base / "shard-1.json",
        shard_2=base / "shard-2.json",
        lean_2=base / "lean-2.json",
        full=base / "full.json",
        full_status=0,
    )
    gate(here, runs.shard_1, SHARD_1, env)
    gate(there, runs.shard_2, SHARD_2, env)
    gate(there, runs.lean_2, [*SHARD_2, "--orchestrate-dimensions=tests,coverage"], env)
    runs.full_status = gate(here, runs.full, [], env)
    return runs


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``pytest-orchestrator ARGS`` in-process: (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as exc:  # argparse: --help, usage errors
        status = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return status, out, err


def coverage_of(data: dict[str, Any]) -> dict[str, Any]:
    audit = next(a for a in data["audits"] if a["dimension"] == "coverage")
    summary: dict[str, Any] = audit["coverage"]
    return summary


def files_of(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        f["path"]: (
            f["statements"],
            f["missing"],
            f["missing_lines"],
            f["branches"],
            f["missing_branches"],
            f["missing_branch_arcs"],
            f["percent"],
        )
        for f in coverage_of(data)["files"]
    }


def findings_of(data: dict[str, Any], dimension: str) -> set[tuple[str, str, str]]:
    audit = next(a for a in data["audits"] if a["dimension"] == dimension)
    return {(f["fingerprint"], f["severity"], f["rule_id"]) for f in audit["findings"]}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data))
    return path


# -- merge: equal to one unsharded session --------------------------------------------------


def test_merge_equals_the_unsharded_session(runs: Runs, tmp_path: Path) -> None:
    out, markdown = tmp_path / "merged.json", tmp_path / "merged.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_orchestrator.cli",
            "merge",
            str(runs.shard_1),
            str(runs.shard_2),
            "-o",
            str(out),
            "--markdown",
            str(markdown),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    full, one, two = runs.load(runs.full), runs.load(runs.shard_1), runs.load(runs.shard_2)
    merged = json.loads(out.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(merged)
    Report.model_validate(merged)

    # one verdict, the unsharded session's, and its exit status (a test failed: 1)
    assert proc.returncode == runs.full_status == 1, proc.stderr
    verdict_line = f"Quality gate FAILED: score {full['score']['overall']:.2f} (target 90.00)"
    assert verdict_line in proc.stdout
    assert merged["verdict"] == full["verdict"]
    assert merged["score"] == full["score"]
    paths = {c["name"]: c["message"] for c in merged["verdict"]["conditions"]}
    # each shard missed lines of cart.py; merged, the group is fully covered, as unsharded
    assert paths["path minimum shop/cart.py coverage"].startswith(
        "shop/cart.py coverage 100.00 >= minimum 10.00 (1 file)"
    )
    assert markdown.read_text().startswith("# Quality gate FAILED")
    # the second shard ran in another checkout: harmless, and said
    assert "different directories" in proc.stderr

    # tests: counts summed, the failure once
    tests = {a["dimension"]: a for a in merged["audits"]}["tests"]
    full_tests = {a["dimension"]: a for a in full["audits"]}["tests"]
    assert tests["tests"] == full_tests["tests"]
    assert (tests["tests"]["passed"], tests["tests"]["failed"]) == (4, 1)
    assert findings_of(merged, "tests") == findings_of(full, "tests")

    # coverage: combined from the shards' lines and branches, not averaged
    assert files_of(merged) == files_of(full)
    assert coverage_of(merged) | {"files": None} == coverage_of(full) | {"files": None}
    assert findings_of(merged, "coverage") == findings_of(full, "coverage")
    shard_percents = [coverage_of(one)["percent"], coverage_of(two)["percent"]]
    assert coverage_of(full)["percent"] > max(shard_percents)  # so averaging would be wrong
    cart = [files_of(d)["shop/cart.py"] for d in (one, two, full)]
    assert cart[0][2] and cart[1][2] and not cart[2][2]  # each shard missed lines of cart.py
    assert cart[0][5] and cart[1][5] and not cart[2][5]  # and a different branch each

    # the whole-project audits: the same findings and scores
    for dimension in ("lint", "security"):
        assert findings_of(merged, dimension) == findings_of(full, dimension) != set()
    scores = {a["dimension"]: a["score"] for a in merged["audits"]}
    assert scores == {a["dimension"]: a["score"] for a in full["audits"]}


def test_a_finding_dimension_s_path_minimum_is_the_shard_s_own(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the group's lines of code are counted on a shard's tree: its condition is kept
    lint = "path minimum shop/** lint"
    one, two = runs.load(runs.shard_1), runs.load(runs.shard_2)
    for shard in (one, two):
        shard["config"]["path_minimums"].append("shop/** lint>=99")
    one["verdict"]["conditions"].append(
        {"name": lint, "passed": False, "message": "shop/** lint 94.00 < minimum 99.00 (4 files)"}
    )
    out = tmp_path / "merged.json"
    status, _, err = cli(
        capsys, "merge", write(tmp_path / "1.json", one), write(tmp_path / "2.json", two), "-o", out
    )
    assert status == 1, err  # a test failed: pytest's status, as unsharded
    conditions = {c["name"]: c for c in json.loads(out.read_text())["verdict"]["conditions"]}
    assert conditions[lint]["message"] == "shop/** lint 94.00 < minimum 99.00 (4 files)"
    assert conditions["path minimum shop/cart.py coverage"]["passed"]
    # the shards must agree on the lines
    two["config"]["path_minimums"] = ["shop/cart.py coverage>=10"]
    status, _, err = cli(
        capsys, "merge", write(tmp_path / "1.json", one), write(tmp_path / "2.json", two)
    )
    assert status == 2 and "path_minimums" in err and len(err.strip().splitlines()) == 1


def test_exit_status_follows_the_merged_verdict(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # shard 1 alone: its tests passed, its coverage is below the minimum
    status, out, _ = cli(capsys, "merge", runs.shard_1)
    assert status == EXIT_GATE_FAILED == 6
    assert "Quality gate FAILED" in out

    # with no minimums and target 0 the same report passes
    relaxed = runs.load(runs.shard_1)
    relaxed["config"]["min_scores"] = {}
    status, out, _ = cli(
        capsys, "merge", write(tmp_path / "relaxed.json", relaxed), "--target-score", "0", "-qq"
    )
    assert status == 0
    assert out.startswith("Quality gate PASSED")
    assert len(out.splitlines()) == 1  # -qq: the verdict line only


def test_a_file_a_shard_did_not_report_counts_as_not_run(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = runs.load(runs.shard_1)
    for audit in one["audits"]:
        if audit["dimension"] == "coverage":
            audit["coverage"]["files"] = [
                f for f in audit["coverage"]["files"] if f["path"] != "shop/cart.py"
            ]
    out = tmp_path / "merged.json"
    status, _, err = cli(
        capsys, "merge", write(tmp_path / "one.json", one), runs.shard_2, "-o", out
    )
    assert status == 1, err
    # shop/cart.py is covered as far as shard 2 covered it, no further and no less
    assert (
        files_of(json.loads(out.read_text()))["shop/cart.py"]
        == (files_of(runs.load(runs.shard_2))["shop/cart.py"])
    )


def test_reports_without_branch_arcs_give_an_upper_bound_and_say_so(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shards = []
    for number, path in enumerate((runs.shard_1, runs.shard_2), 1):
        data = runs.load(path)
        for f in coverage_of(data)["files"]:
            del f["missing_branch_arcs"]  # as written before the field existed
        shards.append(write(tmp_path / f"old-{number}.json", data))
    out = tmp_path / "merged.json"
    status, _, err = cli(capsys, "merge", *shards, "-o", out)
    assert status == 1, err

    merged, full = json.loads(out.read_text()), runs.load(runs.full)
    cart, full_cart = files_of(merged)["shop/cart.py"], files_of(full)["shop/cart.py"]
    assert cart[2] == full_cart[2] == ""  # lines stay exact
    assert cart[4] == 1 > full_cart[4] == 0  # one branch too many counted missing, never fewer
    assert coverage_of(merged)["percent"] < coverage_of(full)["percent"]
    notes = next(a for a in merged["audits"] if a["dimension"] == "coverage")["notes"]
    assert any("upper bound" in n and "shop/cart.py" in n for n in notes), notes


def test_disagreeing_static_audits_are_united_by_fingerprint(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = runs.load(runs.shard_2)
    lint = next(a for a in two["audits"] if a["dimension"] == "lint")
    extra = copy.deepcopy(lint["findings"][0])
    extra.update(rule_id="F841", line=1, message="local variable unused", fingerprint="f" * 16)
    lint["findings"].append(extra)
    lint["score"] = 94.0  # what ruff's extra P2 finding costs in the 35-line demo
    out = tmp_path / "merged.json"
    status, _, err = cli(
        capsys, "merge", runs.shard_1, write(tmp_path / "two.json", two), "-o", out
    )
    assert status == 1, err

    merged = json.loads(out.read_text())
    merged_lint = next(a for a in merged["audits"] if a["dimension"] == "lint")
    assert findings_of(merged, "lint") == findings_of(runs.load(runs.full), "lint") | {
        ("f" * 16, "P2", "F841")
    }
    assert merged_lint["score"] == 94.0  # rescored by the finding formula: 100 - 2 x 3
    assert round(sum(d["points"] for d in merged_lint["deductions"]), 2) == 6.0
    assert any("disagree" in n for n in merged_lint["notes"]), merged_lint["notes"]
    jsonschema.Draft202012Validator(SCHEMA).validate(merged)


def test_whole_project_audits_may_run_in_one_shard_only(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "merged.json"
    status, _, err = cli(capsys, "merge", runs.lean_2, runs.shard_1, "-o", out)
    assert status == runs.full_status, err
    merged, full = json.loads(out.read_text()), runs.load(runs.full)
    jsonschema.Draft202012Validator(SCHEMA).validate(merged)
    assert [a["dimension"] for a in merged["audits"]] == ["tests", "coverage", "lint", "security"]
    assert merged["score"] == full["score"] and merged["verdict"] == full["verdict"]
    assert files_of(merged) == files_of(full)
    lint = next(a for a in merged["audits"] if a["dimension"] == "lint")
    assert "audited by 1 of the 2 shards (a whole-project audit needs one)" in lint["notes"]

    # but a shard without the tests (or coverage) dimension would leave the counts short
    lean = runs.load(runs.lean_2)
    lean["config"]["dimensions"] = ["coverage"]
    lean["audits"] = [a for a in lean["audits"] if a["dimension"] == "coverage"]
    status, _, err = cli(capsys, "merge", runs.shard_1, write(tmp_path / "lean.json", lean))
    assert status == 2 and err.count("\n") == 1
    assert "lean.json did not audit tests but" in err


def test_sections_and_dimensions_a_shard_could_not_audit(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = runs.load(runs.shard_1), runs.load(runs.shard_2)
    for audit in two["audits"]:
        if audit["dimension"] in ("coverage", "lint"):
            audit.update(status="unavailable", reason="tool missing", score=None, findings=[])
            audit.update(deductions=[], coverage=None)
    call = {"agent": "claude", "purpose": "audit:security", "outcome": "ok", "cost_usd": 0.25}
    remote = {
        "target": "odoo",
        "kind": "compose",
        "prefix": "docker compose exec -T odoo",
        "command": "python -m pytest",
        "tests": 2,
        "round_trips": 1,
    }
    for data in (one, two):
        data["agents"] = {"budget_usd": 1.0, "spent_usd": 0.25, "calls": [call]}
        data["remote"] = remote
    two["score"]["overall"] = 12.5  # not the default weighted mean: a scoring hook's
    out = tmp_path / "merged.json"
    status, _, err = cli(
        capsys, "merge", write(tmp_path / "1.json", one), write(tmp_path / "2.json", two), "-o", out
    )
    assert status == 1, err
    merged = json.loads(out.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(merged)
    audits = {a["dimension"]: a for a in merged["audits"]}
    # coverage: what shard 1 measured, and why no more
    assert files_of(merged) == files_of(one)
    assert any(
        "2.json: coverage unavailable (tool missing)" in n for n in audits["coverage"]["notes"]
    )
    # lint: from the shard where it ran
    assert audits["lint"]["status"] == "ok"
    assert findings_of(merged, "lint") == findings_of(one, "lint")
    assert any("lint unavailable (tool missing)" in n for n in audits["lint"]["notes"])
    assert "not the default weighted mean" in err
    assert merged["agents"]["spent_usd"] == 0.5 and len(merged["agents"]["calls"]) == 2
    assert merged["agents"]["budget_usd"] == 2.0
    assert merged["remote"]["tests"] == 4 and merged["remote"]["round_trips"] == 2

    # a shard that closed gaps changed the code: refused
    two["loop"] = {"session_id": "s", "initial_score": 70.0, "final_score": 80.0}
    status, _, err = cli(capsys, "merge", runs.shard_1, write(tmp_path / "loop.json", two))
    assert status == 2 and err.count("\n") == 1 and "closed gaps with an agent" in err


# -- merge: refusals -------------------------------------------------------------------------


def edited(runs: Runs, tmp_path: Path, change: Any) -> Path:
    data = runs.load(runs.shard_2)
    change(data)
    return write(tmp_path / "edited.json", data)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        pytest.param(
            lambda d: d["config"].update(target_score=80.0),
            "different settings: target_score is 90 in",
            id="target",
        ),
        pytest.param(
            lambda d: d["config"]["weights"].update(lint=5.0),
            "different settings: the weight of lint is 20 in",
            id="weights",
        ),
        pytest.param(
            lambda d: d["project"].update(lines_of_code=36),
            "different projects or code",
            id="code",
        ),
        pytest.param(
            lambda d: coverage_of(d)["files"][1].update(statements=14),
            "shop/cart.py has 13 statements",
            id="coverage-code",
        ),
    ],
)
def test_shards_that_cannot_be_merged_are_refused(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, words: str
) -> None:
    status, out, err = cli(capsys, "merge", runs.shard_1, edited(runs, tmp_path, change))
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1 and words in err, err


def test_a_different_target_is_harmless_when_the_merge_decides_it(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = edited(runs, tmp_path, lambda d: d["config"].update(target_score=80.0))
    status, out, err = cli(capsys, "merge", runs.shard_1, other, "--target-score", "70")
    assert status == 1, err
    assert "(target 70.00)" in out


# -- bad input: one line, exit status 2 ------------------------------------------------------


BAD_INPUTS = {
    "missing": (None, "no such file"),
    "not-json": (b"{not json", "not JSON (line 1, column 2"),
    "not-utf8": (b"\xff\xfe{}", "not JSON (not UTF-8 text)"),
    "not-a-report": (b'{"hello": 1}', "not a pytest-orchestrator report"),
    "a-list": (b"[1, 2]", "not a pytest-orchestrator report"),
    "session": (b'{"session_id": "x", "iterations": []}', "a gap-closure session, not a report"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_status_2(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    content, words = BAD_INPUTS[name]
    path = tmp_path / f"{name}.json"
    if content is not None:
        path.write_bytes(content)
    for command in ("merge", "show"):
        args = [command, path] if command == "show" else [command, runs.shard_1, path]
        if name == "session" and command == "show":
            continue  # show reads sessions
        status, out, err = cli(capsys, *args)
        assert status == 2, (command, err)
        assert out == ""
        assert err.count("\n") == 1 and words in err and str(path) in err, err
        assert "Traceback" not in err


def test_an_invalid_report_is_summarised_in_one_line(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = runs.load(runs.shard_1)
    data["score"]["overall"] = 200
    data["audits"][0]["status"] = "great"
    status, _, err = cli(capsys, "show", write(tmp_path / "bad.json", data))
    assert status == 2
    assert err.count("\n") == 1
    assert "not a valid pytest-orchestrator report: " in err and "(and 1 more problems)" in err


def test_unreadable_files_and_directories(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = cli(capsys, "merge", runs.shard_1, tmp_path)
    assert status == 2 and err.count("\n") == 1 and "is a directory" in err
    status, _, err = cli(capsys, "merge", runs.shard_1, runs.shard_1)
    assert status == 2 and "given twice" in err
    copied = tmp_path / "copy.json"  # e.g. one artifact downloaded under two names
    shutil.copy(runs.shard_1, copied)
    status, _, err = cli(capsys, "merge", runs.shard_1, runs.shard_2, copied)
    assert status == 2 and err.count("\n") == 1 and "are the same run" in err
    # an output that cannot be written (its parent is a file): one line, nothing written
    status, _, err = cli(capsys, "merge", runs.shard_1, "-o", runs.shard_2 / "out.json")
    assert status == 2 and err.count("\n") == 1 and "cannot write" in err
    # checked before anything is written: a good -o is not left behind by a bad --markdown
    good = tmp_path / "good.json"
    status, _, err = cli(
        capsys, "merge", runs.shard_1, "-o", good, "--markdown", runs.shard_2 / "out.md"
    )
    assert status == 2 and err.count("\n") == 1 and "cannot write" in err
    assert not good.exists()
    status, _, err = cli(capsys, "merge", runs.shard_1, "-o", good, "--markdown", good)
    assert status == 2 and "given for both the json and the markdown report" in err
    assert not good.exists()
    status, _, err = cli(capsys, "merge")  # argparse: REPORT.json is required
    assert status == 2 and err.count("\n") == 1 and "required" in err
    for bad in ("120", "abc", "nan"):
        status, _, err = cli(capsys, "merge", runs.shard_1, "--target-score", bad)
        assert status == 2 and err.count("\n") == 1 and "not a target score" in err
    status, _, err = cli(
        capsys, "show", write(tmp_path / "s.json", {"session_id": 1, "iterations": 2})
    )
    assert status == 2 and err.count("\n") == 1 and "not a valid gap-closure session" in err
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.json"
        locked.write_text("{}")
        locked.chmod(0)
        status, _, err = cli(capsys, "show", locked)
        assert status == 2 and "cannot read it" in err


# -- show --------------------------------------------------------------------------------------


def test_show_prints_the_report_and_exits_with_its_verdict(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    full = runs.load(runs.full)
    verdict_line = f"Quality gate FAILED: score {full['score']['overall']:.2f} (target 90.00)"
    status, out, _ = cli(capsys, "show", runs.full, "--color=no")
    assert status == 1  # a test failed
    assert verdict_line in out.splitlines()
    assert "shop-demo: 4 Python files, 35 lines of code in shop" in out
    assert "FAIL coverage 52.63 < minimum 70.00" in out

    status, out, _ = cli(capsys, "show", runs.shard_1, "-qq")
    assert status == EXIT_GATE_FAILED  # every test passed, the gate failed
    shard = runs.load(runs.shard_1)
    assert out.splitlines() == [
        f"Quality gate FAILED: score {shard['score']['overall']:.2f} (target 90.00)",
        *(f"  FAIL {c['message']}" for c in shard["verdict"]["conditions"] if not c["passed"]),
    ]
    assert len(out.splitlines()) > 1  # the verdict line says why

    status, out, _ = cli(capsys, "show", runs.full, "--format=json")
    assert status == 1
    assert Report.model_validate_json(out) == Report.model_validate(full)

    status, out, _ = cli(capsys, "show", runs.full, "--format=markdown")
    assert status == 1
    assert out.startswith("# Quality gate FAILED :x:")


def test_show_a_passing_report_exits_0(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    merged = tmp_path / "merged.json"
    relaxed = runs.load(runs.shard_1)
    relaxed["config"]["min_scores"] = {}
    cli(capsys, "merge", write(tmp_path / "r.json", relaxed), "--target-score=0", "-o", merged)
    status, out, _ = cli(capsys, "show", merged)
    assert status == 0
    assert "Quality gate PASSED: score" in out


def save_session(directory: Path, session_id: str, stop: str | None, mtime: float) -> None:
    from pytest_orchestrator.loop.engine import LoopState, save

    state = LoopState(
        session_id=session_id,
        created=mtime,
        rootdir=str(directory),
        args=["--orchestrate"],
        target_score=90.0,
        initial_score=70.0,
        current_score=92.5 if stop and stop.startswith("target") else 80.0,
        iterations=[
            Iteration(
                number=1,
                agent="command:ruff check --fix",
                score_before=70.0,
                score_after=80.0,
                accepted=True,
                reason="score rose",
                files=["shop/cart.py"],
                lines_removed=1,
                cost_usd=0.0,
            )
        ],
        calls=[AgentCall(agent="command:ruff check --fix", purpose="close gaps", outcome="ok")],
        stop_reason=stop,
    )
    path = save(state, directory)
    os.utime(path, (mtime, mtime))


def test_show_last_session_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = tmp_path / ".pytest_cache" / "d" / "orchestrator-sessions"
    sessions.mkdir(parents=True)
    now = time.time()
    save_session(sessions, "20260101-000000-aaaaaa", "target reached (92.50 >= 90.00)", now - 60)
    save_session(sessions, "20260101-000100-bbbbbb", "max iterations (1)", now)
    (tmp_path / "pkg").mkdir()
    monkeypatch.chdir(tmp_path / "pkg")

    status, out, _ = cli(capsys, "show", "last")
    assert status == EXIT_GATE_FAILED  # the newest session stopped below the target
    assert "gap-closure session 20260101-000100-bbbbbb" in out
    assert "stopped: max iterations (1)" in out
    assert "#1 command:ruff check --fix: 70.00 -> 80.00 accepted (score rose)" in out
    assert out.splitlines()[-1] == "Session FAILED: score 80.00 (target 90.00)"

    assert "agents: 1 call, $0.0000" in out

    status, out, _ = cli(capsys, "show", "20260101-000000-aaaaaa")
    assert status == 0
    assert out.splitlines()[-1] == "Session PASSED: score 92.50 (target 90.00)"
    status, out, _ = cli(capsys, "show", "20260101-000000-aaaaaa", "-qq")
    assert (status, out) == (0, "Session PASSED: score 92.50 (target 90.00)\n")
    status, out, _ = cli(capsys, "show", "last", "--format=markdown")
    assert status == EXIT_GATE_FAILED
    assert out.startswith("# Session FAILED: score 80.00 (target 90.00)\n")
    assert "- #1 command:ruff check --fix: 70.00 -> 80.00 accepted" in out

    status, out, _ = cli(
        capsys, "show", str(sessions / "20260101-000000-aaaaaa.json"), "--format=json"
    )
    assert status == 0 and json.loads(out)["session_id"] == "20260101-000000-aaaaaa"

    status, _, err = cli(capsys, "show", "nosuchid")
    assert status == 2 and err.count("\n") == 1 and "no such session" in err
    monkeypatch.chdir(tmp_path.parent)
    status, _, err = cli(capsys, "show", "last")
    assert status == 2 and err.count("\n") == 1 and "no sessions directory" in err


def test_console_script_is_installed_and_documented() -> None:
    script = Path(sys.executable).with_name("pytest-orchestrator")
    assert script.is_file(), "pip install -e . installs the pytest-orchestrator script"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "merge" in proc.stdout and "show" in proc.stdout
    proc = subprocess.run(
        [str(script), "merge", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert "--target-score" in proc.stdout and "--markdown" in proc.stdout
