"""The static audit cache: cached findings equal uncached ones; what runs, what invalidates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_orchestrator.auditors import cache, tools

PYPROJECT = """\
[tool.ruff]
extend-exclude = ["pkg/vendor"]

[tool.ruff.lint]
select = ["E", "F", "S"]

[tool.bandit]
exclude_dirs = ["pkg/vendor"]
skips = ["B101"]
"""

MODULE = """\
import os
import subprocess


def run_{n}(cmd):
    unused = 1
    subprocess.call(cmd, shell=True)
    return eval(cmd)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A package of modules with ruff and bandit findings, and a vendored (excluded) dir."""
    monkeypatch.delenv(cache.ENV_SWITCH, raising=False)
    (pytester.path / "pyproject.toml").write_text(PYPROJECT)
    pkg = pytester.path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "vendor").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    for n in range(6):
        (pkg / f"mod{n}.py").write_text(MODULE.format(n=n))
    (pkg / "sub" / "deep.py").write_text(MODULE.format(n=9))
    (pkg / "vendor" / "lib.py").write_text(MODULE.format(n=7))
    (pytester.path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    return pytester


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every tool command run (the runs are in-process); the bandit worker
    started with pytest counts when it is given its arguments."""
    started: list[list[str]] = []
    real_start, real_run = tools.BackgroundCommand.start, tools.BanditWorker.run

    def record(self: tools.BackgroundCommand) -> None:
        if not isinstance(self, tools.BanditWorker):
            started.append(list(self.argv))
        real_start(self)

    def record_run(self: tools.BanditWorker, args: list[str]) -> None:
        real_run(self, args)
        started.append(list(self.argv))

    monkeypatch.setattr(tools.BackgroundCommand, "start", record)
    monkeypatch.setattr(tools.BanditWorker, "run", record_run)
    return started


def audits(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    pytester.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=lint,security",
        "--orchestrate-report=json:r.json",
    )
    report = json.loads((pytester.path / "r.json").read_text())
    return {
        a["dimension"]: {k: a.get(k) for k in ("status", "findings", "notes", "score", "reason")}
        for a in report["audits"]
    }


def uncached(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    for folder in pytester.path.glob("**/orchestrator-audit-cache"):
        shutil.rmtree(folder)
    return audits(pytester)


def checked_files(argv: list[str]) -> list[str]:
    return sorted(Path(a).name for a in argv if a.endswith(".py"))


def by_tool(commands: list[list[str]]) -> dict[str, list[str]]:
    """The commands by tool (the tools start in threads, in no fixed order)."""
    return {("bandit" if "bandit" in argv else "ruff"): argv for argv in commands}


def test_cached_findings_equal_uncached_after_edit_delete_add(
    project: pytest.Pytester, commands: list[list[str]]
) -> None:
    first = audits(project)
    assert first["lint"]["status"] == first["security"]["status"] == "ok"
    assert first["lint"]["findings"] and first["security"]["findings"]
    assert len(commands) == 2

    commands.clear()
    assert audits(project) == first
    assert commands == []  # nothing changed: neither tool runs

    pkg = project.path / "pkg"
    (pkg / "mod1.py").write_text(MODULE.format(n=1) + "\nx = 1;  y = eval('2')\n")
    (pkg / "vendor" / "lib.py").write_text("import pickle\n")  # excluded by both tools
    commands.clear()
    edited = audits(project)
    started = by_tool(commands)
    assert checked_files(started["ruff"]) == ["mod1.py"]
    assert checked_files(started["bandit"]) == ["lib.py", "mod1.py"]
    assert edited != first
    commands.clear()
    assert uncached(project) == edited
    assert len(commands) == 2

    (pkg / "mod2.py").unlink()
    (pkg / "sub" / "new.py").write_text("import os\nassert os\nexec('1')\n")
    (pkg / "mod3.py").write_text("syntax error here (\n")
    commands.clear()
    changed = audits(project)
    assert checked_files(by_tool(commands)["bandit"]) == ["mod3.py", "new.py"]  # per file
    commands.clear()
    assert uncached(project) == changed
    assert any(f["path"] == "pkg/sub/new.py" for f in changed["security"]["findings"])
    assert changed["security"]["notes"]  # bandit could not parse mod3.py


def test_lint_and_security_both_on_ruff_keep_their_own_cache(
    project: pytest.Pytester, commands: list[list[str]]
) -> None:
    """Without a bandit configuration security runs ruff too: an unchanged tree runs no
    tool on the second session (the two ruff auditors once shared one cache file, and each
    session found the other's key there: one of them ran in full every time)."""
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.split("[tool.bandit]")[0])
    first = audits(project)
    assert first["lint"]["findings"] and first["security"]["findings"]
    assert len(commands) == 2
    assert not [argv for argv in commands if "bandit" in " ".join(argv)]
    for _ in range(2):
        commands.clear()
        assert audits(project) == first
        assert commands == []
    stores = {p.name for p in project.path.glob("**/orchestrator-audit-cache/ruff*.json")}
    assert stores == {"ruff-security.json", "ruff.json"}


def test_a_configuration_change_invalidates(
    project: pytest.Pytester, commands: list[list[str]]
) -> None:
    audits(project)
    pyproject = project.path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.replace('"E", "F", "S"', '"F"').replace('"B101"', '"B602"'))
    commands.clear()
    changed = audits(project)
    assert by_tool(commands)["ruff"][-1] == "."  # ruff over the whole project
    assert all(f["rule_id"].startswith("F") for f in changed["lint"]["findings"])
    assert not any(f["rule_id"] == "B602" for f in changed["security"]["findings"])
    assert uncached(project) == changed


def test_the_cache_can_be_turned_off(
    project: pytest.Pytester, commands: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.ENV_SWITCH, "0")
    first = audits(project)
    commands.clear()
    assert audits(project) == first
    assert len(commands) == 2
    assert not list(project.path.glob("**/orchestrator-audit-cache/*.json"))


def test_the_cache_holds_only_current_files(project: pytest.Pytester) -> None:
    audits(project)
    (project.path / "pkg" / "mod0.py").unlink()
    audits(project)
    store = next(project.path.glob("**/orchestrator-audit-cache/ruff.json"))
    files = json.loads(store.read_text())["files"]
    assert "pkg/mod0.py" not in files
    assert "pkg/mod1.py" in files
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".tmp-")]
