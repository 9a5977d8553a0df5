"""Discovery (seed phase 1): what the project is, where its code is, how big it is."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pytest_orchestrator.models import Discovery
from pytest_orchestrator.sources import find_sources, iter_python_files, skipped

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

FRAMEWORK_IMPORTS = {
    "django": "Django",
    "fastapi": "FastAPI",
    "flask": "Flask",
    "odoo": "Odoo",
}
_IMPORT = re.compile(r"^\s*(?:from|import)\s+(django|fastapi|flask|odoo)\b", re.MULTILINE)
_REQUIREMENT = re.compile(r"^\s*(django|fastapi|flask)\b", re.IGNORECASE | re.MULTILINE)


def count_lines(text: str) -> int:
    """Lines of code: non-blank lines that are not only a ``#`` comment."""
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def _declared_name(rootdir: Path) -> str | None:
    """The distribution name in ``setup.cfg`` (``[metadata] name``), ``setup.py`` (a
    literal ``name=`` of the ``setup()`` call) or ``PKG-INFO`` (an sdist's ``Name:``)."""
    import ast
    import configparser

    setup_cfg = rootdir / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(setup_cfg.read_text(encoding="utf-8", errors="replace"))
            name = parser.get("metadata", "name", fallback="").strip()
        except (configparser.Error, OSError):
            name = ""
        if name:
            return name
    setup_py = rootdir / "setup.py"
    if setup_py.is_file():
        try:
            tree = ast.parse(setup_py.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            tree = None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
                for keyword in node.keywords:
                    value = keyword.value
                    if keyword.arg == "name" and isinstance(value, ast.Constant):
                        return str(value.value)
    pkg_info = rootdir / "PKG-INFO"
    if pkg_info.is_file():
        try:
            for line in pkg_info.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Name:"):
                    return line.split(":", 1)[1].strip() or None
                if not line.strip():
                    break
        except OSError:
            pass
    return None


def _project_name(rootdir: Path) -> tuple[str, str]:
    """(name, dependency text) from pyproject.toml (``[project]``, poetry), else
    ``setup.cfg``, ``setup.py`` or ``PKG-INFO``, else the directory's name; the
    dependencies from pyproject.toml and requirements files."""
    name = ""
    deps = ""
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        project = data.get("project", {})
        name = str(project.get("name") or data.get("tool", {}).get("poetry", {}).get("name") or "")
        deps = "\n".join(str(d) for d in project.get("dependencies", []))
        deps += "\n" + "\n".join(data.get("tool", {}).get("poetry", {}).get("dependencies", {}))
    for req in sorted(rootdir.glob("requirements*.txt")):
        try:
            deps += "\n" + req.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return name or _declared_name(rootdir) or rootdir.name, deps


def _has_manifest(rootdir: Path, depth: int = 3) -> bool:
    level = [rootdir]
    for _ in range(depth):
        nxt: list[Path] = []
        for folder in level:
            if (folder / "__manifest__.py").is_file():
                return True
            try:
                nxt.extend(c for c in folder.iterdir() if c.is_dir() and not skipped(c))
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
        sources=[(p.relative_to(rootdir).as_posix() if p != rootdir else ".") for p in sources],
        files=files,
        lines_of_code=lines,
        frameworks=sorted(frameworks),
    )
