"""Path mapping between the repository on this machine and the same files in a container.

``--orchestrate-path-map=REMOTE=LOCAL`` says that the directory REMOTE inside the
container holds the files of LOCAL here (a bind mount, or a copy baked into the image).
REMOTE is an absolute POSIX path; LOCAL is relative to the rootdir or absolute. The
longest matching prefix wins in both directions. With no map given, the container's
working directory is taken to be the rootdir (``working_dir`` of a compose service that
mounts the repository).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class PathMapping:
    """One REMOTE=LOCAL pair: ``remote`` is an absolute POSIX path, ``local`` absolute."""

    remote: str
    local: Path

    @classmethod
    def parse(cls, text: str, rootdir: Path) -> PathMapping:
        """Parse ``REMOTE=LOCAL``; a relative LOCAL is relative to ``rootdir``.

        :raises ValueError: not REMOTE=LOCAL, or REMOTE is not absolute.
        """
        remote, sep, local = text.partition("=")
        if not sep or not remote or not local:
            raise ValueError(
                f"{text!r} is not REMOTE=LOCAL; write it like /mnt/extra-addons=addons"
            )
        if not remote.startswith("/"):
            raise ValueError(
                f"{text!r}: the container path {remote!r} must be absolute, like /srv/app"
            )
        return cls(posixpath.normpath(remote), (rootdir / local).resolve())


def _under(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ('' for root itself), or None when outside it."""
    if root == "/":
        return path.lstrip("/")
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return None


class PathMap:
    """Translate paths between here (``Path``) and the container (POSIX ``str``)."""

    def __init__(self, mappings: list[PathMapping] | tuple[PathMapping, ...]) -> None:
        self.mappings = list(mappings)

    def with_default(self, remote_cwd: str, rootdir: Path) -> PathMap:
        """This map, or ``remote_cwd=rootdir`` when no mapping was given."""
        if self.mappings:
            return self
        return PathMap([PathMapping(posixpath.normpath(remote_cwd), rootdir.resolve())])

    def to_local(self, remote: str) -> Path | None:
        """The local path of an absolute container path, or None when no mapping covers it."""
        remote = posixpath.normpath(remote)
        best: tuple[int, Path] | None = None
        for mapping in self.mappings:
            rest = _under(remote, mapping.remote)
            if rest is not None and (best is None or len(mapping.remote) > best[0]):
                best = (len(mapping.remote), mapping.local / rest if rest else mapping.local)
        return best[1] if best else None

    def to_remote(self, local: Path) -> str | None:
        """The container path of a local path, or None when no mapping covers it."""
        resolved = local.resolve()
        best: tuple[int, str] | None = None
        for mapping in self.mappings:
            try:
                rest = resolved.relative_to(mapping.local)
            except ValueError:
                continue
            depth = len(mapping.local.parts)
            if best is None or depth > best[0]:
                remote = PurePosixPath(mapping.remote, *rest.parts).as_posix()
                best = (depth, remote)
        return best[1] if best else None
