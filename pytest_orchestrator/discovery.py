"""Discovery (seed phase 1): what the project is, where its code is, how big it is.

The audited sources are the importable packages under the rootdir (and under ``src/``):
top-level directories with an ``__init__.py``, plus top-level modules, leaving out tests,
virtual environments, build output and hidden directories. When the rootdir is itself a
package (an Odoo module), the rootdir is the source.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

from pytest_orchestrator.models import Discovery

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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
FRAMEWORK_IMPORTS = {
    "django": "Django",
    "fastapi": "FastAPI",
    "flask": "Flask",
    "odoo": "Odoo",
}
_IMPORT = re.compile(r"^\s*(?:from|import)\s+(django|fastapi|flask|odoo)\b", re.MULTILINE)
_REQUIREMENT = re.compile(r"^\s*(django|fastapi|flask)\b", re.IGNORECASE | re.MULTILINE)


def _skipped(path: Path) -> bool:
    name = path.name
    return (
        name.startswith(".")
        or name in SKIP_DIRS
        or name.endswith(".egg-info")
        or (path / "pyvenv.cfg").exists()
    )


def find_sources(rootdir: Path) -> list[Path]:
    """Importable packages and top-level modules under ``rootdir`` (absolute paths)."""
    if (rootdir / "__init__.py").exists():
        return [rootdir]
    sources: list[Path] = []
    for base in (rootdir, rootdir / "src"):
        if not base.is_dir():
            continue
        for child in sorted(base.iterdir()):
            if child.is_dir() and not _skipped(child) and (child / "__init__.py").exists():
                sources.append(child)
            elif (
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
                    if not _skipped(child):
                        stack.append(child)
                elif child.suffix == ".py":
                    yield child


def count_lines(text: str) -> int:
    """Lines of code: non-blank lines that are not only a ``#`` comment."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def _project_name(rootdir: Path) -> tuple[str, str]:
    """(name, dependency text) from pyproject.toml / requirements files."""
    name = rootdir.name
    deps = ""
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        project = data.get("project", {})
        name = str(project.get("name") or data.get("tool", {}).get("poetry", {}).get("name") or name)
        deps = "\n".join(str(d) for d in project.get("dependencies", []))
        deps += "\n" + "\n".join(data.get("tool", {}).get("poetry", {}).get("dependencies", {}))
    for req in sorted(rootdir.glob("requirements*.txt")):
        try:
            deps += "\n" + req.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return name, deps


def _has_manifest(rootdir: Path, depth: int = 3) -> bool:
    level = [rootdir]
    for _ in range(depth):
        nxt: list[Path] = []
        for folder in level:
            if (folder / "__manifest__.py").is_file():
                return True
            try:
                nxt.extend(c for c in folder.iterdir() if c.is_dir() and not _skipped(c))
            except OSError:
                continue
        level = nxt
    return False


def discover(rootdir: Path) -> Discovery:
    """Discover the project at ``rootdir``: name, sources, files, lines of code, frameworks.

    Frameworks: Odoo (a ``__manifest__.py``), Django (``manage.py``, a dependency or an
    import), FastAPI and Flask (a dependency or an import in the sources).
    """
    rootdir = rootdir.resolve()
    sources = find_sources(rootdir)
    files = 0
    lines = 0
    frameworks: set[str] = set()
    for path in iter_python_files(sources):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        files += 1
        lines += count_lines(text)
        frameworks.update(FRAMEWORK_IMPORTS[m.lower()] for m in _IMPORT.findall(text))
    name, deps = _project_name(rootdir)
    frameworks.update(FRAMEWORK_IMPORTS[m.lower()] for m in _REQUIREMENT.findall(deps))
    if (rootdir / "manage.py").is_file():
        frameworks.add("Django")
    if _has_manifest(rootdir):
        frameworks.add("Odoo")
    return Discovery(
        name=name,
        rootdir=str(rootdir),
        sources=[
            (p.relative_to(rootdir).as_posix() if p != rootdir else ".") for p in sources
        ],
        files=files,
        lines_of_code=lines,
        frameworks=sorted(frameworks),
    )
