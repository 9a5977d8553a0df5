"""One gap-closure loop per repository.

Two loops in one working tree would undo each other: the second's rollback restores a
snapshot taken before the first's accepted change. :class:`LoopLock` is an exclusive,
non-blocking ``flock`` (``fcntl.flock``; ``msvcrt.locking`` on Windows) on
``<git common directory>/pytest-orchestrator.lock``, held by the pytest session that runs
the loop from configuration to exit. The file says who holds it (process id, start time,
rootdir); it is removed when the loop ends. The operating system releases the lock when
its holder dies, however it dies, so a lock file left by a dead process is stale: the next
loop takes it over.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import IO, Any

#: The lock file's name in git's common directory.
LOCK_NAME = "pytest-orchestrator.lock"


class LockHeld(Exception):
    """Another loop holds the repository's lock; the message names its process."""


def _lock(handle: IO[Any]) -> bool:
    """Take the lock on ``handle`` without waiting; False when another process has it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)  # every process locks the same byte: the first
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class LoopLock:
    """The lock of one repository's gap-closure loop (see the module docstring)."""

    def __init__(self, path: Path, handle: IO[Any]) -> None:
        self.path = path
        self._handle: IO[Any] | None = handle

    @classmethod
    def acquire(cls, git_dir: Path, rootdir: Path) -> LoopLock:
        """Take the lock in ``git_dir`` (git's common directory) for this process.

        :raises LockHeld: another live process holds it (its id in the message).
        :raises OSError: the lock file cannot be opened.
        """
        path = git_dir / LOCK_NAME
        while True:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the session
            if not _lock(handle):
                handle.seek(0)
                try:
                    holder = json.loads(handle.read() or "{}")
                except ValueError:
                    holder = {}
                handle.close()
                holder = holder if isinstance(holder, dict) else {}
                pid = holder.get("pid", "unknown")
                since = holder.get("started")
                when = f", running since {since}" if isinstance(since, str) else ""
                raise LockHeld(
                    f"another gap-closure loop (pid {pid}{when}) is running in this "
                    f"repository; wait for it to end, or stop it (kill {pid}): two loops "
                    f"would undo each other's changes ({path})"
                )
            try:
                same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()  # its holder removed it as we took it: take the new one
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "rootdir": str(rootdir),
                }
            )
        )
        handle.flush()
        return cls(path, handle)

    def release(self) -> None:
        """Remove the lock file and let go of the lock (idempotent)."""
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still holding it: see acquire's inode check
        self._handle.close()  # closing drops the lock
        self._handle = None
