"""How tool results map to severities P0-P4 (documented in docs/scoring.md, overridable).

Overrides come from ``orchestrate_severity_map`` as ``TOOL:RULE-PREFIX=SEVERITY``; the
longest matching prefix wins, then these defaults:

- pytest: a failing test or an error P0 (``test-failed``, ``test-error``,
  ``collection-error``);
- ruff: syntax errors (``invalid-syntax``, ``E999``) P0; undefined names (F821, F822,
  F823) P1; other pyflakes (F), bugbear (B) and security (S) rules P2; every other rule P3;
  docstring rules (D) P4;
- bandit: from its severity and confidence, each LOW 1, MEDIUM 2, HIGH 3, summed:
  6 (HIGH/HIGH) P0, 5 P1, 4 P2, 3 P3, 2 (LOW/LOW) P4;
- ruff's flake8-bandit port (the ``security`` dimension's ``ruff`` engine): the severity
  and confidence bandit reports for the same test (``S602`` is bandit's ``B602``), summed as
  above (:data:`BANDIT_LEVELS`);
- coverage: a source file no test imports P2, a file with uncovered lines P3.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_orchestrator.models import Severity

#: Codes ruff has given syntax errors: none before 0.5 (we name it ``syntax-error``), ``E999``
#: (caught by the ``E9`` prefix) and, since 0.7, ``invalid-syntax`` (ruff 0.17's).
RUFF_DEFAULTS: dict[str, Severity] = {
    "syntax-error": Severity.P0,
    "invalid-syntax": Severity.P0,
    "E9": Severity.P0,
    "F821": Severity.P1,
    "F822": Severity.P1,
    "F823": Severity.P1,
    "F": Severity.P2,
    "B": Severity.P2,
    "S": Severity.P2,
    "D": Severity.P4,
}
_LEVEL = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}
_L, _M, _H = "LOW", "MEDIUM", "HIGH"
#: (issue_severity, issue_confidence) that bandit 1.8/1.9 reports for each test it shares
#: with ruff's flake8-bandit port (``S``\ NNN is ``B``\ NNN), read from bandit's plugins
#: (``bandit/plugins/*.py``: the ``Issue`` each test returns) and blacklists
#: (``bandit/blacklists/*.py``: a blacklist's ``level``, confidence HIGH). Where a test
#: reports more than one pair, this is the first of ruff's messages in
#: :data:`_BANDIT_VARIANTS` that matches, else the highest (on the safe side).
BANDIT_LEVELS: dict[str, tuple[str, str]] = {
    "B101": (_L, _H), "B102": (_M, _H), "B103": (_H, _H), "B104": (_M, _M),
    "B105": (_L, _M), "B106": (_L, _M), "B107": (_L, _M), "B108": (_M, _M),
    "B110": (_L, _H), "B112": (_L, _H), "B113": (_M, _L), "B201": (_H, _M),
    "B202": (_H, _H), "B301": (_M, _H), "B302": (_M, _H), "B303": (_M, _H),
    "B304": (_H, _H), "B305": (_M, _H), "B306": (_M, _H), "B307": (_M, _H),
    "B308": (_M, _H), "B310": (_M, _H), "B311": (_L, _H), "B312": (_H, _H),
    "B313": (_M, _H), "B314": (_M, _H), "B315": (_M, _H), "B316": (_M, _H),
    "B317": (_M, _H), "B318": (_M, _H), "B319": (_M, _H), "B320": (_M, _H),
    "B321": (_H, _H), "B323": (_M, _H), "B324": (_H, _H), "B401": (_H, _H),
    "B402": (_H, _H), "B403": (_L, _H), "B404": (_L, _H), "B405": (_L, _H),
    "B406": (_L, _H), "B407": (_L, _H), "B408": (_L, _H), "B409": (_L, _H),
    "B410": (_L, _H), "B411": (_H, _H), "B412": (_H, _H), "B413": (_H, _H),
    "B415": (_H, _H), "B501": (_H, _H), "B502": (_H, _H), "B503": (_M, _M),
    "B504": (_L, _M), "B505": (_H, _H), "B506": (_M, _H), "B507": (_H, _M),
    "B508": (_M, _H), "B509": (_M, _H), "B601": (_M, _M), "B602": (_H, _H),
    "B603": (_L, _H), "B604": (_M, _L), "B605": (_H, _H), "B606": (_L, _M),
    "B607": (_L, _H), "B608": (_M, _M), "B609": (_H, _M), "B610": (_M, _M),
    "B611": (_M, _M), "B612": (_M, _H), "B701": (_H, _H), "B702": (_M, _H),
    "B704": (_M, _H),
}  # fmt: skip
#: Tests whose bandit severity depends on the code, told apart by ruff's message:
#: (test, a regular expression searched in ruff's message, (severity, confidence)).
_BANDIT_VARIANTS: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("B602", "seems safe", (_L, _H)),  # shell=True with a literal command
    ("B605", "seems safe", (_L, _H)),
    ("B103", r"0o[0-7]*[0145]\b", (_M, _H)),  # a mask that others cannot write
)
_BANDIT_SUM = {6: Severity.P0, 5: Severity.P1, 4: Severity.P2, 3: Severity.P3, 2: Severity.P4}


def rule_has_prefix(rule: str, prefix: str) -> bool:
    """Whether ``prefix`` names ``rule``'s family: ``S`` matches ``S608`` but not ``SIM102``
    (ruff's codes are a linter's letters then digits, so a prefix ending in a letter must
    not be followed by another letter); ``uncovered`` matches ``uncovered-file``."""
    if not rule.startswith(prefix):
        return False
    rest = rule[len(prefix) :]
    return not (prefix and rest and prefix[-1].isalpha() and rest[0].isalpha())


def _lookup(table: Mapping[str, Severity], rule: str) -> Severity | None:
    best = max((p for p in table if rule_has_prefix(rule, p)), key=len, default=None)
    return table[best] if best is not None else None


def _override(overrides: Mapping[str, Severity], tool: str, rule: str) -> Severity | None:
    prefix = f"{tool}:"
    table = {k[len(prefix) :]: v for k, v in overrides.items() if k.startswith(prefix)}
    return _lookup(table, rule)


def ruff_severity(rule: str, overrides: Mapping[str, Severity]) -> Severity:
    """Severity of a ruff rule code such as ``F401`` (``syntax-error`` for syntax errors)."""
    return _override(overrides, "ruff", rule) or _lookup(RUFF_DEFAULTS, rule) or Severity.P3


def bandit_severity(
    test_id: str, severity: str, confidence: str, overrides: Mapping[str, Severity]
) -> Severity:
    """Severity of a bandit result from its test id, issue_severity and issue_confidence."""
    found = _override(overrides, "bandit", test_id)
    if found is not None:
        return found
    total = _LEVEL.get(severity.upper(), 1) + _LEVEL.get(confidence.upper(), 1)
    return _BANDIT_SUM[total]


def bandit_levels(code: str, message: str) -> tuple[str, str]:
    """(issue_severity, issue_confidence) that bandit would report for ruff's flake8-bandit
    finding ``code`` (``S602``) with ``message``; unknown codes ``(MEDIUM, MEDIUM)``."""
    import re

    test_id = "B" + code.removeprefix("S")
    for variant, pattern, levels in _BANDIT_VARIANTS:
        if variant == test_id and re.search(pattern, message):
            return levels
    return BANDIT_LEVELS.get(test_id, (_M, _M))


def tool_severity(
    tool: str, rule: str, default: Severity, overrides: Mapping[str, Severity]
) -> Severity:
    """Severity of any other tool's rule: an override, or ``default``."""
    return _override(overrides, tool, rule) or default
