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
