"""The testbed guest's side: run ``scaler`` commands inside the two-socket guest, send back
what each printed and the files it wrote.

Started by the guest's init (see ``scaler.testbed``) as ``python -m scaler.testbed_guest
JSON``, where JSON is a list of argument lists; ``{out}`` in an argument becomes a fresh
output folder of that command. Its stdout is the virtio-serial port the host reads: one JSON
line per command (``type: command``: argv, exit code, seconds, stdout, the end of stderr,
and every file under its output folder, base64), then ``type: done``; it then waits for the
host's line saying it has read them all. Every command has a deadline; the guest root
outside the read-only shares is the initramfs (writable), so run folders are written under
:data:`OUT_ROOT` and sent back rather than shared.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

OUT_ROOT = "/run/tmp/testbed"
COMMAND_TIMEOUT_S = 3600.0
MAX_FILE_BYTES = 16 << 20  # a run folder's files are small (raw samples compressed)
STDERR_TAIL = 8000
ACK_TIMEOUT_S = 120.0
PORT_CHUNK = 32 << 10


def run_command(k: int, argv: list[str], timeout_s: float) -> dict[str, Any]:
    out = os.path.join(OUT_ROOT, str(k))
    args = [a.replace("{out}", out) for a in argv]
    os.makedirs(out, exist_ok=True)
    t0 = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "scaler", *args], capture_output=True,
                              text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
        rc, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout = None, _text(exc.stdout)
        stderr = _text(exc.stderr) + f"\ntestbed: no exit within {timeout_s:g} s"
    files = {}
    for folder, _, names in os.walk(out):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.getsize(path) <= MAX_FILE_BYTES:
                with open(path, "rb") as f:
                    files[os.path.relpath(path, out)] = base64.b64encode(f.read()).decode()
    return {"type": "command", "index": k, "argv": args, "rc": rc,
            "seconds": round(time.monotonic() - t0, 1), "stdout": stdout,
            "stderr": stderr[-STDERR_TAIL:], "files": files}


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def send(message: dict[str, Any]) -> None:
    """One JSON line on the port, in raw writes of at most 32 KiB (what a virtio-serial
    port takes a call; a larger buffered write lost the line's end here)."""
    data = memoryview((json.dumps(message) + "\n").encode())
    while data:
        data = data[os.write(1, data[:PORT_CHUNK]):]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = json.loads(args[0])
    timeout_s = float(args[1]) if len(args) > 1 else COMMAND_TIMEOUT_S
    for k, command in enumerate(commands):
        print(f"testbed: running scaler {' '.join(command)}", file=sys.stderr, flush=True)
        send(run_command(k, command, timeout_s))
    send({"type": "done"})
    # the port's last bytes may still be in flight when init powers off: wait for the
    # host's word that it has read everything (or ACK_TIMEOUT_S)
    ready, _, _ = select.select([sys.stdin], [], [], ACK_TIMEOUT_S)
    if ready:
        sys.stdin.readline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
