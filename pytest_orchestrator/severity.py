"""How tool results map to severities P0-P4 (documented in the README, overridable).

Overrides come from ``orchestrate_severity_map`` as ``TOOL:RULE-PREFIX=SEVERITY``; the
longest matching prefix wins, then these defaults:

- pytest: a failing test or an error P0 (``test-failed``, ``test-error``,
  ``collection-error``);
- ruff: syntax errors (``invalid-syntax``, ``E999``) P0; undefined names (F821, F822,
  F823) P1; other pyflakes (F), bugbear (B) and security (S) rules P2; every other rule P3;
  docstring rules (D) P4;
- bandit: from its severity and confidence, each LOW 1, MEDIUM 2, HIGH 3, summed:
  6 (HIGH/HIGH) P0, 5 P1, 4 P2, 3 P3, 2 (LOW/LOW) P4;
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


def tool_severity(
    tool: str, rule: str, default: Severity, overrides: Mapping[str, Severity]
) -> Severity:
    """Severity of any other tool's rule: an override, or ``default``."""
    return _override(overrides, tool, rule) or default
