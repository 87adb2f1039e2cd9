"""Ctrl-C at every moment of a command: one line, exit code 130, never a traceback.

Until a measurement starts nothing needs undoing (imports, option checks, reading runs):
:func:`quiet_until_main` makes Ctrl-C end the process at once with one line and exit code
130, wherever Python is (a KeyboardInterrupt raised inside an import or a finaliser can end
in a traceback, "Exception ignored ...", or the process killed by SIGINT). Once a
measurement is about to start (``scaler.cli.run``), :func:`once` makes the first Ctrl-C a
``KeyboardInterrupt`` (the scenario turns it into a stop that keeps what was measured) and
any further one wait for that stop instead of interrupting it half-way.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

MESSAGE = b"scaler: interrupted\n"
REDELIVER_S = 0.05  # after the unraisable hook has returned
_seen = 0


def quiet_until_main() -> None:
    """Ctrl-C before ``main`` runs: one line and exit 130 (nothing has started yet)."""
    def handler(signum: int, frame: Any) -> None:
        try:
            os.write(2, MESSAGE)
        finally:
            os._exit(130)

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (imported by a test): leave it
        pass


def once() -> None:
    """From here on: the first Ctrl-C raises KeyboardInterrupt, later ones are ignored."""
    try:
        signal.signal(signal.SIGINT, _handler)
    except ValueError:
        return
    sys.unraisablehook = _unraisable


def after_measurement() -> None:
    """Once every measurement has stopped and what it measured is saved: a Ctrl-C ends the
    process at once with one line and exit 130, as before ``main``. Nothing is left to stop,
    and a ``KeyboardInterrupt`` raised while Python exits (a second Ctrl-C half a second
    after the first, once the run was quick to finish) killed it by SIGINT: exit -2."""
    quiet_until_main()


def exiting() -> None:
    """The command is done: Ctrl-C is ignored while Python exits (Python leaves an ignored
    signal ignored through its finalisation; any handler of its own becomes SIG_DFL there)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def _unraisable(info: Any) -> None:
    """A KeyboardInterrupt raised where Python cannot raise it (a finaliser, a weakref
    callback) would print "Exception ignored ..." and be lost: deliver the Ctrl-C again, so
    that it lands where it can stop the run. Not from inside this hook: the handler would run
    at once, here, and raise where nothing can catch it; a thread sends it a moment later,
    when the hook has returned (should it land in a finaliser again, the same happens again).
    Anything else is reported as Python does."""
    global _seen
    if isinstance(info.exc_value, KeyboardInterrupt):
        _seen = 0
        timer = threading.Timer(REDELIVER_S, os.kill, (os.getpid(), signal.SIGINT))
        timer.daemon = True
        timer.start()
        return
    sys.__unraisablehook__(info)


def interrupted() -> bool:
    return _seen > 0


def count() -> None:
    """A Ctrl-C taken by someone else (the event loop's own SIGINT handler while a group
    measures): counted, so that the next one, once :func:`once`'s handler is back, waits for
    the stop instead of interrupting it half-way."""
    global _seen
    _seen += 1


def _handler(signum: int, frame: Any) -> None:
    global _seen
    _seen += 1
    if _seen == 1:
        raise KeyboardInterrupt
