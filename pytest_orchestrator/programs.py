"""Programs pinned by path for gap closure's re-audits (standard library only).

The re-audit runs in a tree an agent changed, with the user's ``PATH``; a directory of the
tree on ``PATH`` (a project's ``bin/``) could hold a ``git`` or ``ruff`` the agent planted.
So the loop resolves them itself, before any agent runs, and hands the paths to its child
pytest in :data:`PROGRAMS_ENV`; :func:`pinned` is what our code asks first.
"""

from __future__ import annotations

import json
import os

#: ``{"git": "/usr/bin/git", "ruff": "/venv/bin/ruff"}`` for a re-audit.
PROGRAMS_ENV = "PYTEST_ORCHESTRATOR_PROGRAMS"


def pinned(name: str) -> str | None:
    """The path the loop pinned for ``name``, or None (not a re-audit, or not pinned)."""
    raw = os.environ.get(PROGRAMS_ENV)
    if not raw:
        return None
    try:
        found = json.loads(raw).get(name)
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) and os.path.isabs(found) else None
