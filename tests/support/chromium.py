"""Real headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol, for the browser tier.

The protocol runs over a pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out, NUL-separated JSON), so
no port is opened and no client library or browser download is needed. The page's console messages,
uncaught exceptions, browser log entries (CSP violations, failed loads) and every network request are
recorded while it loads.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-pipe",
]  # fmt: skip


def available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


@dataclass
class Observed:
    console: list[str] = field(default_factory=list)  # console errors and warnings, exceptions, log errors
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class Chromium:
    def __init__(self, user_data_dir: Path, width: int = 1280, height: int = 900) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # fds the shell maps to 3 and 4 for chromium; high numbers so the mapping cannot clobber itself
        a, b = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 50), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 50)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        cmd = [CHROMIUM if Path(CHROMIUM).exists() else "chromium", *FLAGS, f"--user-data-dir={user_data_dir}",
               f"--window-size={width},{height}", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', "bash", *cmd],
            pass_fds=(a, b), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(a)
        os.close(b)
        self.width, self.height = width, height
        self._id = 0
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.session = ""

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for raw in messages:
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._replies.get(msg["id"])
                    if q is not None:
                        q.put(msg)
                else:
                    self._events.put(msg)

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0) -> dict[str, Any]:
        with self._lock:
            self._id += 1
            n = self._id
            self._replies[n] = queue.Queue()
        msg: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        try:
            reply = self._replies[n].get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no reply to {method} in {timeout} s") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def open(self, url: str, observed: Observed, *, timeout: float = 60.0) -> None:
        """A fresh tab with the console, log and network watched; returns once the load event fired."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while True:
            ev = self._next_event(deadline)
            self._note(ev, observed)
            if ev.get("method") == "Page.loadEventFired":
                return

    def _next_event(self, deadline: float) -> dict[str, Any]:
        try:
            return self._events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("the page did not finish loading") from None

    def drain(self, observed: Observed) -> None:
        while True:
            try:
                self._note(self._events.get_nowait(), observed)
            except queue.Empty:
                return

    @staticmethod
    def _note(ev: dict[str, Any], observed: Observed) -> None:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning", "assert"):
            observed.console.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description")))
                                                                       for a in p.get("args", [])))  # fmt: skip
        elif method == "Runtime.exceptionThrown":
            observed.console.append("exception: " + json.dumps(p["exceptionDetails"])[:500])
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            observed.console.append(f"log {p['entry']['level']}: {p['entry']['text']}")
        elif method == "Page.javascriptDialogOpening":
            observed.console.append(f"dialog: {p.get('message')}")
        elif method == "Network.requestWillBeSent":
            observed.requests.append(p["request"]["url"])

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"never true: {expression}")

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the viewport) as a PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, OSError):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
