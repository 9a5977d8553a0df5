"""Fake agent CLIs (``claude``, ``codex``, ``gemini``, ``copilot``, ``aider``) for tests.

:func:`install_fakes` writes one small executable per CLI into a directory (put it first on
``PATH``); each runs ``fake_agent.py NAME ARGS...`` with the Python running the tests. The
scripts named after the CLIs in this directory do the same with ``python3`` from ``PATH``.
See ``fake_agent.py`` for the ``FAKE_AGENT_*`` variables that control them.
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

FAKE_AGENT = Path(__file__).with_name("fake_agent.py")
NAMES = ("claude", "codex", "gemini", "copilot", "aider")


def install_fakes(bin_dir: Path, names: tuple[str, ...] = NAMES) -> Path:
    """Write the fake CLIs ``names`` into ``bin_dir`` (created); returns ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        script = bin_dir / name
        command = shlex.join([sys.executable, str(FAKE_AGENT), name])
        script.write_text(f'#!/bin/sh\nexec {command} "$@"\n', encoding="utf-8")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


#: The seeds' example of an LLM audit report (seed 001, "Output esperado"): what a
#: fake audit agent answers in the tests.
SEEDS_REPORT = """\
# Auditoría Backend - ai_service

**Score:** 75/100
**Fecha:** 2025-11-13
**Auditor:** Copilot GPT-4o

## Hallazgos Críticos (P0)

[P0] Missing error handling in FastAPI endpoints (addons/ai_service/controllers/api.py:45)
[P0] SQL injection vulnerability in query builder (addons/ai_service/models/query.py:128)

## Hallazgos Altos (P1)

[P1] No rate limiting on API endpoints (addons/ai_service/controllers/api.py:67)
[P1] Missing input validation for user data (addons/ai_service/models/user.py:34)

## Recomendaciones

1. Implement try-except blocks in all API endpoints
2. Use parameterized queries to prevent SQL injection
3. Add rate limiting middleware with Redis
4. Implement Pydantic models for input validation
"""
