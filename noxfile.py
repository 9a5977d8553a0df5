"""The fast subset of the suite on every Python the package claims besides CI's own.

``.ci/run`` runs the whole suite on one interpreter (the one of its virtual environment)
and this file's ``fast`` session on the others: ``nox --error-on-missing-interpreters``
fails when one of them cannot be found, so a claimed version is never silently skipped.
The interpreters are looked up on ``PATH`` as ``python3.X``; ``.ci/run`` puts pyenv's
(``$(pyenv root)/versions/3.X.*/bin``) there.

The subset is what differs between Python versions: real gated sessions (coverage's
``sysmon`` core on 3.12+, ``tomli`` on 3.10), the auditors against the real tools, the
models, scores and reports, the parsers. The loop, the sandbox, containers, the real agent
CLIs and the real projects run on CI's interpreter only.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["fast"]

#: Python versions the package claims (pyproject's classifiers) besides CI's own 3.11.
PYTHONS = ["3.10", "3.12", "3.13"]

#: The fast subset (see the module docstring).
FAST = [
    "tests/test_gate.py",
    "tests/test_auditors.py",
    "tests/test_lint_flake8.py",
    "tests/test_security_engine.py",
    "tests/test_measures.py",
    "tests/test_audit_cache.py",
    "tests/test_options.py",
    "tests/test_scoring.py",
    "tests/test_reports.py",
    "tests/test_markdown.py",
    "tests/test_sarif.py",
    "tests/test_github_report.py",
    "tests/test_remote_junit.py",
    "tests/test_remote_units.py",
    "tests/test_agents_parse.py",
    "tests/test_agents_pricing.py",
    "tests/test_agents_templates.py",
    "tests/test_codeclimate.py",
    "tests/test_measures_paths.py",
    "tests/test_reruns.py",
    "tests/test_types.py",
]


@nox.session(python=PYTHONS)
def fast(session: nox.Session) -> None:
    """The fast subset of the suite, on two xdist workers."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-n", "auto", "-p", "no:randomly", *FAST, *session.posargs)
