"""Headless Chromium (the Debian `chromium` package) driven over the DevTools protocol with `websockets`.

`Browser` starts one chromium process with its own profile folder and a DevTools port it picks itself
(`--remote-debugging-port=0`, read back from `DevToolsActivePort`), and stops it by pid. `Tab` is one page:
navigate, evaluate JavaScript, click like a person (mouse events, so the click counts as a user gesture), take
screenshots, and record what the page did: console errors and uncaught exceptions, every request and response
(URL, headers, post data, bodies) and every server-sent event message.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets

START_TIMEOUT = 60.0
"""Seconds chromium may take to write its DevTools port."""
COMMAND_TIMEOUT = 60.0
"""Seconds one DevTools command may take (the machine is shared and slow at times)."""
WAIT_TIMEOUT = 60.0
"""Default bound for `Tab.wait_for`."""

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    """The chromium binary; under CI=true a missing one fails the test, locally it skips with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Debian package `chromium` is not installed (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Recorded:
    """What a tab did, collected from DevTools events."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    sse_messages: list[str] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)


class Browser:
    def __init__(self, profile_dir: Path) -> None:
        self.profile_dir = profile_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._listeners: dict[str | None, Recorded] = {}
        self._reader: asyncio.Task[None] | None = None
        self.targets: dict[str, dict[str, Any]] = {}

    async def start(self) -> Browser:
        binary = chromium_path()
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        log = (self.profile_dir.parent / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile_dir}", "--window-size=1280,900", "about:blank"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if port_file.exists() and len(port_file.read_text().splitlines()) >= 2:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start: {(self.profile_dir.parent / 'chromium.log').read_text()}")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = await websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        await self.send("Target.setDiscoverTargets", {"discover": True})
        return self

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self.ws.send(json.dumps(message))
        return await asyncio.wait_for(future, COMMAND_TIMEOUT)

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    if "error" in message:
                        future.set_exception(AssertionError(f"DevTools error: {message['error']}"))
                    else:
                        future.set_result(message.get("result", {}))
                continue
            self._event(message.get("sessionId"), message["method"], message.get("params", {}))

    def _event(self, session: str | None, method: str, params: dict[str, Any]) -> None:
        if method in ("Target.targetCreated", "Target.targetInfoChanged"):
            info = params["targetInfo"]
            self.targets[info["targetId"]] = info
            if method == "Target.targetCreated" and info.get("openerId"):
                for recorded in self._listeners.values():
                    recorded.popups.append(info["targetId"])
            return
        recorded = self._listeners.get(session)
        if recorded is None:
            return
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            recorded.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            recorded.console_errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            recorded.console_errors.append(f"{params['entry'].get('text')} ({params['entry'].get('url', '')})")
        elif method == "Network.requestWillBeSent":
            request = params["request"]
            recorded.requests.append({"id": params["requestId"], "url": request["url"], "method": request["method"],
                                      "headers": request.get("headers", {}), "postData": request.get("postData", "")})
        elif method == "Network.responseReceived":
            response = params["response"]
            recorded.responses[params["requestId"]] = {"url": response["url"], "status": response["status"],
                                                       "headers": response.get("headers", {})}
        elif method == "Network.loadingFinished":
            recorded.finished.add(params["requestId"])
        elif method == "Network.eventSourceMessageReceived":
            recorded.sse_messages.append(params.get("data", ""))

    async def new_tab(self) -> Tab:
        created = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": created["targetId"], "flatten": True})
        session = attached["sessionId"]
        recorded = Recorded()
        self._listeners[session] = recorded
        tab = Tab(self, session, created["targetId"], recorded)
        for domain in ("Page", "Runtime", "Log", "Network"):
            await tab.send(f"{domain}.enable")
        return tab


class Tab:
    def __init__(self, browser: Browser, session: str, target: str, recorded: Recorded) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.recorded = recorded

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                      "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    async def wait_for(self, expression: str, timeout: float = WAIT_TIMEOUT) -> Any:
        """Poll `expression` until it is truthy (bounded); returns its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = await self.evaluate(expression)
            except AssertionError as exc:  # a navigation replaced the context between two polls
                last = exc
            else:
                if last:
                    return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression!r} (last: {last!r})")

    async def text(self) -> str:
        return await self.evaluate("document.body ? document.body.innerText : ''")

    async def html(self) -> str:
        return await self.evaluate("document.documentElement.outerHTML")

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = await self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)}); if (!el) return null;"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        assert box, f"nothing matches {selector}"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"], "button": "left",
                                                         "clickCount": 1})

    async def screenshot(self, path: Path, *, width: int = 1280, height: int = 900) -> None:
        await self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                               "deviceScaleFactor": 1, "mobile": False})
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))

    async def response_bodies(self) -> list[str]:
        """Bodies of every finished response the tab received (text; binary ones decoded as latin-1)."""
        bodies = []
        for request_id in sorted(self.recorded.finished):
            try:
                body = await self.send("Network.getResponseBody", {"requestId": request_id})
            except AssertionError:
                continue  # evicted or never had a body
            data = body.get("body", "")
            bodies.append(base64.b64decode(data).decode("latin-1") if body.get("base64Encoded") else data)
        return bodies
