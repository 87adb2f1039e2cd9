"""A real headless Chromium driven over the DevTools protocol on a pipe (no extra package):
load a page, collect console errors, exceptions, log entries and network requests, evaluate
JavaScript in it and take a full-page screenshot.

Chromium reads protocol messages on fd 3 and writes them on fd 4 (``--remote-debugging-pipe``),
each a JSON object ended by a NUL byte. Every wait has a deadline; the browser is killed on
any error and never outlives ``with Browser(...)``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BINARIES = ("chromium-headless-shell", "chromium", "chromium-browser")
# the flags that work here (/work/.library/env/machines/python.md): no sandbox as root, no
# GPU, and no background networking on a machine whose network is closed
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe")


def find_chromium() -> str | None:
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, binary: str, timeout_s: float = 60.0) -> None:
        self.binary, self.timeout_s = binary, timeout_s
        self.events: list[dict[str, Any]] = []
        self._id = 0
        self._buffer = b""

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="scaler-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # in the child: the protocol on fds 3 and 4, kept across exec
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child_r, from_child_w)]
            for target, fd in zip((3, 4), high):
                os.dup2(fd, target, inheritable=True)

        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            close_fds=False, preexec_fn=fds)
        os.close(to_child_r)
        os.close(from_child_w)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self._send("Browser.close")
                    self.proc.wait(timeout=10)
                except Exception:
                    pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol ---------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None = None,
              session: str | None = None) -> int:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        return self._id

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                self.stderr.seek(0)
                tail = self.stderr.read().decode(errors="replace")[-2000:]
                raise BrowserError(f"chromium closed the pipe: {tail}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._read(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, name: str, session: str | None = None) -> dict[str, Any]:
        for e in self.events:
            if e["method"] == name and e.get("sessionId") == session:
                return e
        deadline = time.monotonic() + self.timeout_s
        while True:
            message = self._read(deadline)
            if "method" in message:
                self.events.append(message)
                if message["method"] == name and message.get("sessionId") == session:
                    return message

    # -- what a test wants ----------------------------------------------------------------

    def load(self, url: str, width: int = 1280) -> str:
        """Open ``url`` in a new page and wait for its load event; returns the session."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True, "awaitPromise": True},
                           session=session)
        if "exceptionDetails" in result:
            raise BrowserError(f"evaluate: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path, width: int = 1280,
                   max_height: int = 16000) -> tuple[int, int]:
        """A PNG of the whole page (up to ``max_height`` CSS pixels); returns its size."""
        size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = min(int(size["height"]) + 1, max_height)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        data = self.call("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True}, session=session)
        path.write_bytes(base64.b64decode(data["data"]))
        return width, height

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                   "warning"):
                out.append(f"console {p['type']}: {p.get('args')}")
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") in (
                    "error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')}")
        return out

    def requests(self) -> list[str]:
        """URLs the pages asked for over the network (not data: or file: URLs)."""
        return [e["params"]["request"]["url"] for e in self.events
                if e["method"] == "Network.requestWillBeSent"
                and not e["params"]["request"]["url"].startswith(("data:", "file:", "about:"))]
