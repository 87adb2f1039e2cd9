"""The folder of one run's VM files (initramfs images, QMP sockets) and the sweep of those a
dead coordinator left: ``scaler-vm-PID-*`` in the temporary folder, locked (``flock`` on
``.owner``) while its coordinator lives."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
import time

VM_DIR_PREFIX = "scaler-vm-"  # + coordinator pid: the run's VM files in the temporary folder
OWNER_FILE = ".owner"  # flocked by the coordinator while it lives


class VmFiles:
    """The folder of one run's VM files (initramfs images, QMP sockets): named
    ``scaler-vm-PID-*`` in the temporary folder, and locked (``flock`` on ``.owner``) while
    its coordinator lives, so a later run can tell it from a dead coordinator's and sweep it."""

    def __init__(self, parent: str | None = None) -> None:
        self.path = tempfile.mkdtemp(prefix=f"{VM_DIR_PREFIX}{os.getpid()}-", dir=parent)
        self._owner = os.open(os.path.join(self.path, OWNER_FILE),
                              os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._owner, fcntl.LOCK_EX)

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._owner)


def sweep_stale_dirs(parent: str | None = None) -> list[str]:
    """Remove VM folders whose coordinator is gone (its ``.owner`` lock is free); folders of
    an older scaler without an owner file once a day old. Returns what was removed."""
    parent = parent or tempfile.gettempdir()
    removed = []
    for folder in glob.glob(os.path.join(glob.escape(parent), f"{VM_DIR_PREFIX}*")):
        if os.path.islink(folder) or not os.path.isdir(folder):
            continue
        owner = os.path.join(folder, OWNER_FILE)
        try:
            fd = os.open(owner, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - os.stat(folder).st_mtime > 86400:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its coordinator is alive
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
