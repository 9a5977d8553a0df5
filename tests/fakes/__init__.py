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
