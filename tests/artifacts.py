"""Expensive real artifacts built once per test session, however many xdist workers ask.

A session fixture is built once per process, and under pytest-xdist each worker is a process
of its own: two workers running tests of one module would each convert the same model or
measure the same suite. :class:`Artifacts` builds each named artifact once, in a folder
shared by the session's workers (the base temporary folder's parent under xdist), behind an
``flock`` so that a worker asking while another builds waits for it, and hands every asker
the JSON value the build returned.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Artifacts:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_session(cls, basetemp: Path) -> Artifacts:
        """The session's cache: shared by xdist's workers (their base folders are
        ``<session>/popen-gwN``), this base folder without xdist."""
        shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
        return cls(shared / "artifacts")

    def get(self, name: str, build: Callable[[Path], Any]) -> Any:
        """The artifact ``name``: ``build(folder)``'s value, built in ``folder`` by the first
        asker of the session; a failed build is tried again by the next asker."""
        done = self.root / f"{name}.json"
        with open(self.root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if done.is_file():
                return json.loads(done.read_text())["value"]
            folder = self.root / name
            folder.mkdir(exist_ok=True)
            value = build(folder)
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps({"value": value}))
            os.replace(tmp, done)
            return json.loads(done.read_text())["value"]  # the same JSON shape for everyone
