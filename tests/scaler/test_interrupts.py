"""Ctrl-C that Python cannot raise where it lands (a finaliser): delivered again where the run
can stop, never "Exception ignored" with a traceback. Real processes, real SIGINTs."""

from __future__ import annotations

import subprocess
import sys

from tests.scaler.helpers import ROOT

CHILD = r'''
import gc, os, signal, sys, time
from scaler import interrupts

interrupts.once()


class Finalised:
    def __del__(self):
        raise KeyboardInterrupt  # what a Ctrl-C landing in a finaliser becomes


try:
    Finalised()  # gone at once: the interrupt is unraisable
    gc.collect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("never interrupted")
except KeyboardInterrupt:
    print("interrupted where the run can stop it")
'''


def test_an_interrupt_lost_in_a_finaliser_is_delivered_again_without_a_traceback():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={"PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "interrupted where the run can stop it", done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


EXITING = """
import signal, sys, time
from scaler import interrupts
interrupts.once()  # scaler's own handler, as during a run
if sys.argv[1] == "exiting":
    interrupts.exiting()  # what scaler.cli.main does as it returns


class Slow:  # torn down with this module, after Python has put back the default action of
    def __del__(self):  # each handler of its own: a Ctrl-C there kills it by SIGINT
        print("exiting", flush=True)
        time.sleep(2)


slow = Slow()
"""


def test_a_ctrl_c_while_python_exits_is_ignored_once_the_command_is_done():
    """A child that returns as ``main`` does: SIGINT during its exit (a finaliser that
    waits) leaves its exit status alone; without ``exiting`` the same SIGINT kills it (-2):
    the order of events decides, not a speed."""
    import signal
    import time

    codes = {}
    for how in ("exiting", "plain"):
        proc = subprocess.Popen([sys.executable, "-c", EXITING, how], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "exiting"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        codes[how] = proc.returncode
    assert codes["exiting"] == 0
    assert codes["plain"] == -signal.SIGINT
