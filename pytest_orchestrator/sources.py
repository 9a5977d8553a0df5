"""Where the project's code is: the audited sources (standard library only).

The audited sources are the importable packages under the rootdir (and under ``src/``):
top-level directories with an ``__init__.py``, plus top-level modules, leaving out tests,
virtual environments, build output and hidden directories. When the rootdir is itself a
package (an Odoo module), the rootdir is the source. Imported before coverage starts,
so it stays light.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

SKIP_DIRS = {
    "tests",
    "test",
    "testing",
    "build",
    "dist",
    "site-packages",
    "node_modules",
    "__pycache__",
    "venv",
    "env",
}
SKIP_MODULES = {"conftest.py", "setup.py", "noxfile.py", "fabfile.py", "tasks.py", "manage.py"}


def skipped(path: Path) -> bool:
    """True for directories that never hold audited code (tests, venvs, hidden, build)."""
    name = path.name
    return (
        name.startswith(".")
        or name in SKIP_DIRS
        or name.endswith(".egg-info")
        or (path / "pyvenv.cfg").exists()
    )


def is_test_file(rel: str) -> bool:
    """Whether the POSIX path ``rel`` is test code: under a ``tests``, ``test`` or
    ``testing`` directory, or named ``test_*.py``, ``*_test.py`` or ``conftest.py``."""
    parts = rel.split("/")
    name = parts[-1]
    return (
        any(part in ("tests", "test", "testing") for part in parts[:-1])
        or name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
    )


#: Top-level packages that hold a project's examples, documentation or scripts, not the
#: code it ships (pyparsing 3.3.3 has an ``examples`` package of 78 scripts): not sources,
#: unless nothing else is.
NOT_SHIPPED = {"examples", "example", "docs", "doc", "benchmarks", "benchmark", "bench", "scripts"}


def find_sources(rootdir: Path) -> list[Path]:
    """Importable packages and top-level modules under ``rootdir`` (absolute paths); a
    top-level package named in :data:`NOT_SHIPPED` only when nothing else is found."""
    if (rootdir / "__init__.py").exists():
        return [rootdir]
    sources = _importable(rootdir)
    shipped = [s for s in sources if not (s.is_dir() and s.name in NOT_SHIPPED)]
    return shipped or sources


def _importable(rootdir: Path) -> list[Path]:
    sources: list[Path] = []
    for base in (rootdir, rootdir / "src"):
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            if (child.is_dir() and not skipped(child) and (child / "__init__.py").exists()) or (
                child.is_file()
                and child.suffix == ".py"
                and child.name not in SKIP_MODULES
                and not child.name.startswith("test_")
                and not child.name.endswith("_test.py")
            ):
                sources.append(child)
    return sources


def iter_python_files(sources: list[Path]) -> Iterator[Path]:
    """Every ``.py`` file in ``sources``, skipping tests and hidden or virtual-env dirs."""
    for source in sources:
        if source.is_file():
            yield source
            continue
        stack = [source]
        while stack:
            folder = stack.pop()
            for child in sorted(folder.iterdir()):
                if child.is_dir():
                    if not skipped(child):
                        stack.append(child)
                elif child.suffix == ".py":
                    yield child
