"""The security dimension's two engines: ruff's flake8-bandit port (the default) and bandit
(when the project configures it or asks for it), real tools in real sessions."""

from __future__ import annotations

import json
import textwrap

import pytest

#: One module with findings of several bandit tests, some with a severity that depends on
#: the code (B602, B103), and suppressions of each kind.
RISKY = textwrap.dedent(
    """\
    import os
    import pickle
    import random
    import subprocess


    def run(cmd):
        return subprocess.call(cmd, shell=True)


    def literal():
        return subprocess.call("ls -l", shell=True)


    def token():
        return random.random()


    def load(blob):
        return pickle.loads(blob)


    def modes(path):
        os.chmod(path, 0o777)
        os.chmod(path, 0o775)


    def hushed(cmd):
        subprocess.call(cmd, shell=True)  # nosec
        subprocess.call(cmd, shell=True)  # nosec B602
        subprocess.call(cmd, shell=True)  # nosec B101
        subprocess.call(cmd, shell=True)  # noqa: S602
    """
)


def gate(pytester: pytest.Pytester, ini: str = "") -> dict:
    pytester.makepyfile(**{"pkg/__init__": "", "pkg/risky": RISKY})
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    if ini:
        pytester.makeini("[pytest]\n" + ini)
    result = pytester.runpytest(
        "--orchestrate",
        "--orchestrate-dimensions=tests,security",
        "--orchestrate-report=json:r.json",
    )
    assert (pytester.path / "r.json").is_file(), result.stdout.str()
    report = json.loads((pytester.path / "r.json").read_text())
    [security] = [a for a in report["audits"] if a["dimension"] == "security"]
    return security


def graded(audit: dict) -> set[tuple[str, int, str]]:
    return {(f["rule_id"], f["line"], f["severity"]) for f in audit["findings"]}


def test_without_bandit_configuration_ruff_audits_security(pytester: pytest.Pytester) -> None:
    audit = gate(pytester)

    assert audit["tool"] == "ruff" and audit["status"] == "ok"
    found = graded(audit)
    # bandit's ids, and bandit's grading of the same test: shell=True with a variable is
    # HIGH/HIGH (P0), with a literal LOW/HIGH (P2); a world-writable mask HIGH, another MEDIUM
    assert ("B602", 8, "P0") in found
    assert ("B602", 12, "P2") in found
    assert ("B311", 16, "P2") in found
    assert ("B301", 20, "P1") in found
    assert ("B103", 24, "P0") in found
    assert ("B103", 25, "P1") in found
    # bare nosec and nosec naming the test silence it; nosec naming another test does not;
    # ruff's own noqa works too
    assert {line for rule, line, _ in found if rule == "B602"} == {8, 12, 31}
    [b602] = [f for f in audit["findings"] if f["line"] == 8]
    assert b602["tool"] == "ruff" and b602["message"].endswith("(ruff S602)")
    assert (
        b602["url"] == "https://docs.astral.sh/ruff/rules/subprocess-popen-with-shell-equals-true"
    )


def test_both_engines_agree_on_the_rules_they_share(pytester: pytest.Pytester) -> None:
    by_ruff = graded(gate(pytester, "orchestrate_security_engine = ruff\n"))
    by_bandit = graded(gate(pytester, "orchestrate_security_engine = bandit\n"))

    # bandit also reports the imports of pickle and subprocess (B403/B404, in ruff's
    # preview, selected) at the same lines: the sets are equal, severities included, but
    # for the call under ruff's own noqa comment for S602, which bandit does not read
    assert by_bandit - by_ruff == {("B602", 32, "P0")}
    assert by_ruff <= by_bandit
    assert len(by_ruff) >= 9


@pytest.mark.parametrize(
    ("files", "ini", "tool"),
    [
        ({}, "", "ruff"),
        ({"pyproject.toml": "[tool.bandit]\nskips = []\n"}, "", "bandit"),
        ({".bandit": "[bandit]\nskips = B101\n"}, "", "bandit"),
        (
            {"pyproject.toml": "[tool.bandit]\nskips = []\n"},
            "orchestrate_security_engine = ruff\n",
            "ruff",
        ),
        ({}, "orchestrate_security_engine = bandit\n", "bandit"),
        ({}, "orchestrate_security_engine = AUTO\n", "ruff"),
    ],
    ids=["no-config", "tool-bandit", "dot-bandit", "asked-ruff", "asked-bandit", "auto"],
)
def test_the_engine_follows_the_projects_configuration(
    pytester: pytest.Pytester, files: dict[str, str], ini: str, tool: str
) -> None:
    for name, text in files.items():
        (pytester.path / name).write_text(text)
    audit = gate(pytester, ini)

    assert audit["tool"] == tool and audit["status"] == "ok"
    assert ("B602", 8, "P0") in graded(audit)


@pytest.mark.parametrize("engine", ["ruff", "bandit"])
def test_findings_in_test_code_inside_a_package_are_left_out(
    pytester: pytest.Pytester, engine: str
) -> None:
    # h11 and many others ship their tests inside the package: their asserts are no weakness,
    # and test code is not in the size the score divides by (4: two asserts, an import of
    # subprocess and a shell=True call)
    pytester.makepyfile(
        **{
            "pkg/tests/__init__": "",
            "pkg/tests/test_risky": "def test_a():\n    assert 1\n    assert 2\n",
            "pkg/test_helpers": "import subprocess\n\n\ndef go(c):\n"
            "    subprocess.call(c, shell=True)\n",
            "pkg/checks": "def positive(x):\n    assert x > 0\n    return x\n",
        }
    )
    audit = gate(pytester, f"orchestrate_security_engine = {engine}\n")

    paths = {f["path"] for f in audit["findings"]}
    assert "pkg/checks.py" in paths  # an assert in the package's own code stays
    assert "pkg/risky.py" in paths
    assert not {"pkg/tests/test_risky.py", "pkg/test_helpers.py"} & paths
    assert audit["notes"] == [
        "4 findings in test code inside the sources left out (test code is not in the size "
        "the score divides by)"
    ]


def test_a_dot_bandit_file_is_applied(pytester: pytest.Pytester) -> None:
    (pytester.path / ".bandit").write_text("[bandit]\nskips = B602,B311\n")
    audit = gate(pytester)

    assert audit["tool"] == "bandit"
    rules = {f["rule_id"] for f in audit["findings"]}
    assert "B301" in rules and not rules & {"B602", "B311"}


def test_the_projects_lint_configuration_does_not_narrow_the_security_audit(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "pyproject.toml").write_text(
        '[tool.ruff]\nexclude = ["pkg"]\n\n[tool.ruff.lint]\nignore = ["S"]\n'
    )
    audit = gate(pytester)

    assert audit["tool"] == "ruff"
    assert ("B602", 8, "P0") in graded(audit)


def test_a_file_ruff_cannot_parse_is_a_note_not_a_finding(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{"pkg/broken": "def f(:\n    pass\n"})
    audit = gate(pytester)

    assert audit["tool"] == "ruff"
    assert not [f for f in audit["findings"] if f["path"] == "pkg/broken.py"]
    assert any(n.startswith("ruff could not scan pkg/broken.py: ") for n in audit["notes"])


def test_an_invalid_engine_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    pytester.makeini("[pytest]\norchestrate_security_engine = semgrep\n")
    result = pytester.runpytest("--orchestrate")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'semgrep' is not auto, ruff or bandit*"])
    assert "Traceback" not in result.stderr.str()


def test_every_rule_of_ruffs_bandit_port_has_bandits_grading() -> None:
    """The installed ruff's flake8-bandit rules each have bandit's (severity, confidence):
    a rule ruff adds later fails here instead of being graded by a guess."""
    import shutil
    import subprocess

    from pytest_orchestrator.severity import BANDIT_LEVELS

    listing = subprocess.run(
        [shutil.which("ruff") or "ruff", "rule", "--all", "--output-format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    codes = {r["code"] for r in json.loads(listing) if r["linter"] == "flake8-bandit"}
    assert len(codes) > 60
    assert {"B" + c.removeprefix("S") for c in codes} <= set(BANDIT_LEVELS)


def test_a_changed_dot_bandit_file_is_not_answered_from_the_audit_cache(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / ".bandit").write_text("[bandit]\nskips = B311\n")
    args = ["--orchestrate", "--orchestrate-dimensions=tests,security", "-p", "cacheprovider"]
    pytester.makepyfile(**{"pkg/__init__": "", "pkg/risky": RISKY})
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    pytester.runpytest(*args, "--orchestrate-report=json:first.json")
    (pytester.path / ".bandit").write_text("[bandit]\nskips = B602\n")
    pytester.runpytest(*args, "--orchestrate-report=json:second.json")

    first, second = (
        {
            f["rule_id"]
            for a in json.loads((pytester.path / name).read_text())["audits"]
            if a["dimension"] == "security"
            for f in a["findings"]
        }
        for name in ("first.json", "second.json")
    )
    assert "B602" in first and "B311" not in first
    assert "B311" in second and "B602" not in second
