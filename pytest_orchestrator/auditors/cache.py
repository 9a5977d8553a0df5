"""Cache of static audit results (ruff, bandit) by file content hash.

A gap-closure iteration re-runs pytest in the same repository after an agent edited a few
files; the static audits would otherwise run over every file again. With the cache, a
session runs ruff and bandit only on the files whose content changed since a cached run,
and not at all when nothing changed. The findings are the same as an uncached run's: the
cache stores each tool's raw JSON output per file, and both a full and a partial run go
through the same split-and-merge (files in path order, each file's results in the tool's
order), so a cached and an uncached session build their findings from identical input.

**Where.** One JSON file per tool under the pytest cache directory
(``config.cache.mkdir("orchestrator-audit-cache")``; with ``-p no:cacheprovider``:
``<rootdir>/.pytest_cache/d/orchestrator-audit-cache``), written atomically (temporary
file, then rename). It holds entries of the current files only, so it never grows past the
project. Set ``PYTEST_ORCHESTRATOR_AUDIT_CACHE=0`` to turn it off.

**Key.** A cache file is used only when its key matches: the tool, the executable's path,
size and modification time, the tool's distribution version, the rootdir, the argv options
we pass (``--select``, ``-c``, ...), the content of every configuration file the tool may
read, and the tool's environment variables (``RUFF_*``, but ``RUFF_CACHE_DIR``). Per file,
the entry holds the SHA-256 of the file's content and the tool's results for it.

- **ruff**: the files are what ``ruff check --show-files`` lists with the same options
  (ruff's own includes, excludes and ``.gitignore`` handling); changed files are passed
  explicitly with ``--force-exclude``. The configuration inputs are every
  ``pyproject.toml``, ``ruff.toml`` and ``.ruff.toml`` in the rootdir, its ancestors and
  every directory holding a listed file, plus ruff's user configuration. The sorted file
  list is part of the key too, because a few rules look at other files (implicit
  namespace packages, first-party import detection): adding or deleting a file makes the
  next ruff run a full one. A configuration that uses ``extend = "other.toml"`` turns the
  ruff cache off (the extended file could be anywhere).
- **bandit**: bandit checks files one at a time. The candidate files are every ``*.py``
  under the targets, named the way bandit's own directory walk names them, so its
  exclusions (defaults and ``exclude_dirs``) apply to the explicit paths exactly as they
  do to the walk; a file bandit excludes simply has no results. The configuration input
  is ``pyproject.toml``. A ``[tool.bandit]`` table that sets ``include`` turns the bandit
  cache off.

Known limit: ruff rules that look at files it does not lint (an excluded
``__init__.py``, a directory without Python files) are not covered by the key.

When listing, hashing or reading the cache fails, the tool runs over the whole project as
before and the cache is left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_orchestrator.auditors.base import AuditContext
from pytest_orchestrator.auditors.tools import tool_environment

if TYPE_CHECKING:
    import pytest

CACHE_DIR = "orchestrator-audit-cache"
ENV_SWITCH = "PYTEST_ORCHESTRATOR_AUDIT_CACHE"
#: A directory to keep the cache in instead of the pytest cache: gap closure gives its
#: re-audits a private copy, out of the agent's reach (an agent could forge entries).
ENV_DIR = "PYTEST_ORCHESTRATOR_AUDIT_CACHE_DIR"
FORMAT = 1
# Above this share of changed files, a full run is as cheap as a partial one.
FULL_RUN_SHARE = 0.5
RUFF_CONFIGS = ("pyproject.toml", "ruff.toml", ".ruff.toml")
_EXTEND = re.compile(r"^\s*extend\s*=", re.MULTILINE)

Payload = dict[str, list[Any]]


def enabled() -> bool:
    """False when ``PYTEST_ORCHESTRATOR_AUDIT_CACHE`` is 0, false, no or off."""
    value = os.environ.get(ENV_SWITCH, "1").strip().lower()
    return value not in {"0", "false", "no", "off"}


def cache_dir(context: AuditContext) -> Path:
    """The cache directory, created if needed."""
    return session_cache_dir(context.config, context.rootdir)


def session_cache_dir(config: pytest.Config, rootdir: Path) -> Path:
    """The cache directory of a session: ``$PYTEST_ORCHESTRATOR_AUDIT_CACHE_DIR``, else the
    pytest cache's ``d/orchestrator-audit-cache`` (``<rootdir>/.pytest_cache/...`` with
    ``-p no:cacheprovider``); created if needed."""
    chosen = os.environ.get(ENV_DIR)
    if chosen:
        path = Path(chosen)
    else:
        cache = getattr(config, "cache", None)
        if cache is not None:
            return Path(cache.mkdir(CACHE_DIR))
        path = rootdir / ".pytest_cache" / "d" / CACHE_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``'s content."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(context: AuditContext, rootdir: Path, rel: str) -> str:
    """:func:`file_digest` of ``rootdir / rel``, once per session (``context.digests``)."""
    found = context.digests.get(rel)
    if found is None:
        found = context.digests[rel] = file_digest(rootdir / rel)
    return found


def text_digest(parts: list[str]) -> str:
    """SHA-256 of ``parts`` (JSON-encoded, so boundaries count)."""
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def executable_identity(executable: str) -> str:
    """Path, size and modification time of ``executable`` (or just its name)."""
    try:
        stat = Path(executable).stat()
    except OSError:
        return executable
    return f"{executable}:{stat.st_size}:{stat.st_mtime_ns}"


def installed_packages() -> str:
    """A digest of the distributions installed on ``sys.path``: the names of their
    ``.dist-info``/``.egg-info`` directories (which carry the versions) and ``.pth`` files.
    A type checker's answer depends on the packages (and stubs) it can import."""
    names = []
    for entry in sys.path:
        try:
            found = os.listdir(entry or ".")
        except OSError:
            continue
        names += [n for n in found if n.endswith((".dist-info", ".egg-info", ".pth"))]
    return text_digest(sorted(names))


def config_parts(paths: list[Path]) -> list[str]:
    """``path=content-digest`` of each existing file in ``paths`` (sorted, unique)."""
    parts = []
    for path in sorted(set(paths)):
        if path.is_file():
            parts.append(f"{path}={file_digest(path)}")
    return parts


@dataclass
class CachePlan:
    """What one session does for one tool: which files come from the cache, which run.

    :param store: the tool's cache file.
    :param key: digest of everything besides file content that the results depend on.
    :param files: every file of the project for this tool: relative path -> SHA-256.
    :param hits: cached payloads of the unchanged files.
    :param run: the relative paths to run the tool on; None: run over the whole project.
    :param stale: the cache file differs from what this session would write.
    """

    store: Path
    key: str
    files: dict[str, str]
    hits: dict[str, Payload] = field(default_factory=dict)
    run: list[str] | None = None
    stale: bool = True

    @property
    def complete(self) -> bool:
        """True when every file comes from the cache: the tool need not run."""
        return self.run == []

    def merge(self, fresh: dict[str, Payload]) -> list[tuple[str, Payload]]:
        """Payloads of every file in path order (fresh first, else cached), and save.

        ``fresh`` holds the files the tool just checked (any file without results must
        be given an empty payload by the caller).
        """
        merged = {**self.hits, **fresh}
        if fresh or self.stale:
            self.save({rel: merged[rel] for rel in self.files if rel in merged})
        return sorted(merged.items())

    def save(self, payloads: dict[str, Payload]) -> None:
        """Write the cache file atomically; errors are ignored (the cache is optional)."""
        data = {
            "format": FORMAT,
            "key": self.key,
            "files": {
                rel: {"sha256": self.files[rel], "payload": payload}
                for rel, payload in sorted(payloads.items())
            },
        }
        try:
            handle, name = tempfile.mkstemp(dir=self.store.parent, prefix=".tmp-", text=True)
        except OSError:
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(json.dumps(data, separators=(",", ":")))
            os.replace(name, self.store)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(name)


def make_plan(store: Path, key: str, files: dict[str, str]) -> CachePlan:
    """Compare ``files`` with the cache file ``store``: what is cached, what must run."""
    plan = CachePlan(store=store, key=key, files=files)
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
        entries = data["files"] if data["format"] == FORMAT and data["key"] == key else {}
    except (OSError, ValueError, KeyError, TypeError):
        entries = {}
    for rel, digest in files.items():
        entry = entries.get(rel)
        if isinstance(entry, dict) and entry.get("sha256") == digest:
            payload = entry.get("payload")
            if isinstance(payload, dict):
                plan.hits[rel] = payload
    misses = sorted(set(files) - set(plan.hits))
    plan.stale = bool(misses) or set(entries) != set(files)
    if len(misses) <= FULL_RUN_SHARE * len(files):
        plan.run = misses
    return plan


def relative(rootdir: Path, filename: str) -> str | None:
    """``filename`` (absolute, or relative to the rootdir) as a POSIX path in the rootdir
    (``rootdir`` has its symbolic links resolved); None when outside it."""
    path = os.path.normpath(os.path.join(rootdir, filename))
    prefix = os.path.join(rootdir, "")
    if not path.startswith(prefix):  # e.g. the rootdir through a symbolic link
        path = os.path.realpath(path)
        if not path.startswith(prefix):
            return None
    return Path(path[len(prefix) :]).as_posix()


def ordered(rootdir: Path, items: list[Any], key: str) -> list[Any]:
    """``items`` (dicts with a file name under ``key``) stably sorted by relative path."""
    return sorted(items, key=lambda item: relative(rootdir, str(item.get(key) or "")) or "")


def split(
    rootdir: Path, checked: list[str], items: list[Any], key: str, field: str
) -> dict[str, Payload] | None:
    """``items`` grouped by file into payloads ``{field: [...]}``, one per ``checked`` file.

    None when an item names a file outside ``checked`` (its results cannot be cached).
    """
    fresh: dict[str, Payload] = {rel: {field: []} for rel in checked}
    for item in items:
        rel = relative(rootdir, str(item.get(key) or "")) if isinstance(item, dict) else None
        if rel is None or rel not in fresh:
            return None
        fresh[rel][field].append(item)
    return fresh


def real_rootdir(context: AuditContext) -> Path:
    """The rootdir with symbolic links resolved, as the cache compares paths."""
    return Path(os.path.realpath(context.rootdir))


def ruff_files(
    context: AuditContext, ruff: str, options: list[str], targets: Sequence[str] = (".",)
) -> list[str] | None:
    """The files ``ruff check OPTIONS TARGETS`` checks (``--show-files``: ruff's own
    includes, excludes and ``.gitignore``), relative to the rootdir; None when ruff cannot
    list them or lists one outside the rootdir."""
    rootdir = real_rootdir(context)
    try:
        listing = subprocess.run(
            [ruff, "check", *options, "--show-files", *targets],
            cwd=rootdir,
            capture_output=True,
            text=True,
            timeout=context.settings.tool_timeout,
            check=False,
            env=tool_environment(),
        )
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    if listing.returncode != 0:
        return None
    files: list[str] = []
    for line in listing.stdout.splitlines():
        if not line.strip():
            continue
        rel = relative(rootdir, line.strip())
        if rel is None:
            return None
        files.append(rel)
    return files


def ruff_plan(
    context: AuditContext,
    ruff: str,
    options: list[str],
    listed: list[str] | None,
    store: str = "ruff.json",
) -> CachePlan | None:
    """The cache plan of ``ruff check OPTIONS .`` over the files it checks (``listed``:
    :func:`ruff_files`), or None (no cache this session). ``store`` names the cache file:
    one per auditor running ruff (a file holds one key, so two auditors sharing one would
    each find the other's key there and miss on every other run)."""
    if not enabled() or listed is None:
        return None
    rootdir = real_rootdir(context)
    try:
        files = {rel: _digest(context, rootdir, rel) for rel in listed}
        folders = {rootdir, *rootdir.parents}
        for rel in files:
            folders.update((rootdir / rel).parents)
        configs = [folder / name for folder in folders for name in RUFF_CONFIGS]
        user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ruff"
        configs += [user / "ruff.toml", user / ".ruff.toml", user / "pyproject.toml"]
        parts = config_parts(configs)
        for path in configs:
            if path.is_file() and _EXTEND.search(path.read_text(encoding="utf-8")):
                return None
        env = sorted(
            f"{k}={v}"
            for k, v in os.environ.items()
            if k.startswith("RUFF_") and k != "RUFF_CACHE_DIR"  # where, not what, it finds
        )
        key = text_digest(
            [
                "ruff",
                executable_identity(ruff),
                _version("ruff"),
                str(rootdir),
                *options,
                *parts,
                *env,
                *sorted(files),
            ]
        )
        return make_plan(cache_dir(context) / store, key, files)
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None


def bandit_candidates(rootdir: Path, targets: list[str]) -> list[str]:
    """Every ``*.py`` under ``targets``, named exactly as bandit's walk (run in the rootdir)
    names it, so bandit's exclusions match an explicit path as they match the walk's."""
    names: list[str] = []
    for target in targets:
        top = os.path.join(str(rootdir), target)
        if not os.path.isdir(top):
            names.append(target)
            continue
        for root, _, filenames in os.walk(top):
            base = target + root[len(top) :]
            names.extend(os.path.join(base, name) for name in filenames if name.endswith(".py"))
    return names


def bandit_plan(
    context: AuditContext, python: str, targets: list[str], options: list[str]
) -> tuple[CachePlan, dict[str, str]] | None:
    """The cache plan of ``bandit -r TARGETS OPTIONS`` and each file's name for bandit."""
    if not enabled():
        return None
    rootdir = real_rootdir(context)
    pyproject = rootdir / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
        table = text.partition("[tool.bandit")[2].split("\n[", 1)[0]
        if re.search(r"^\s*include\s*=", table, re.MULTILINE):
            return None
        names: dict[str, str] = {}
        files: dict[str, str] = {}
        for name in bandit_candidates(rootdir, targets):
            rel = relative(rootdir, name)
            if rel is None or rel in names:
                return None
            names[rel] = name
            files[rel] = _digest(context, rootdir, rel)
        key = text_digest(
            [
                "bandit",
                executable_identity(python),
                _version("bandit"),
                str(rootdir),
                *targets,
                *options,
                *config_parts([pyproject, rootdir / ".bandit"]),
            ]
        )
        return make_plan(cache_dir(context) / "bandit.json", key, files), names
    except (OSError, UnicodeDecodeError):
        return None


def _version(name: str) -> str:
    from pytest_orchestrator.auditors.tools import distribution_version

    return distribution_version(name) or "?"
