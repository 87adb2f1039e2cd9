import os
import sys

from scaler.worker.main import main

code = main()
# os._exit, not sys.exit: the protocol reader is a daemon thread blocked in a read of stdin,
# and finalizing the interpreter under it aborts ("could not acquire lock for <stdin>", 134).
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
