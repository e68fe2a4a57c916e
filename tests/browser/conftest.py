"""Browser tests of the chat page: the real `courier serve` as a subprocess,
driven by headless Chromium through Playwright's sync API.

The system's Chromium is used (Debian's `chromium` package, installed by
scripts/ensure-services.sh); Playwright never downloads a browser here."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services.courier_command import free_port
from tests.services.urls import LoopbackUrls

COURIER = Path(sys.executable).with_name("courier")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
FAST_ENV = {
    "COURIER_ARGON2_TIME_COST": "1",
    "COURIER_ARGON2_MEMORY_KIB": "8192",
    "COURIER_ARGON2_PARALLELISM": "1",
    "COURIER_SEND_RATE": "0",
    "COURIER_LOG_LEVEL": "warning",
    # One server for the whole session, every page signing up from 127.0.0.1.
    "COURIER_REGISTRATIONS": "0",
}


class Http(LoopbackUrls):
    """The HTTP API of the server on 127.0.0.1 at `port`, for setting things up and
    sending from "elsewhere" (urllib: no event loop needed beside Playwright's)."""

    def __init__(self, port: int):
        self.port = port

    def call(self, method: str, path: str, body=None, token: str | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + "/api/v1" + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                raw = answer.read()
                return answer.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
            return error.code, (json.loads(raw) if raw else None)

    def account(self, prefix: str = "u", username: str | None = None) -> Account:
        username = username or f"{prefix}{uuid.uuid4().hex[:8]}"
        password = "correct horse battery"
        status, _ = self.call("POST", "/users/register", {"username": username, "password": password})
        assert status == 201
        status, body = self.call("POST", "/users/login", {"username": username, "password": password})
        assert status == 200
        return Account(body["user_id"], username, password, body["token"])

    def send(self, sender: Account, to: Account, content: str) -> dict:
        status, body = self.call("POST", "/messages", {"to_user_id": to.user_id, "content": content}, sender.token)
        assert status == 201, body
        return body


class ServerProcess(Http, LoopbackUrls):
    """`courier serve` in a directory of its own; restart() keeps port and data."""

    def __init__(self, workdir: Path, **env):
        self.workdir = workdir
        self.port = free_port()
        self.env = {
            **os.environ,
            **FAST_ENV,
            "COURIER_DATABASE_URL": f"sqlite:///{workdir / 'courier.db'}",
            **{k: str(v) for k, v in env.items()},
        }
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def start(self, timeout: float = 30) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(COURIER), "serve", "--port", str(self.port)],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"courier serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.base_url + "/", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"courier serve did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Account:
    user_id: str
    username: str
    password: str
    token: str


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no system Chromium (scripts/ensure-services.sh installs it)")
    return path


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server for the tests that do not stop it; every test makes its own users."""
    running = ServerProcess(tmp_path_factory.mktemp("courier-server"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


# Reports every Content-Security-Policy violation of a page to the test (an init
# script runs before the page's own, through DevTools: the policy does not apply to it).
WATCH_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.courierCspViolation(`${event.effectiveDirective} blocked ${event.blockedURI || "inline"}`
    + ` (${event.sourceFile || "?"}:${event.lineNumber})`);
});
"""


class Pages:
    """Opens pages, each in a browser context of its own (its own localStorage:
    a different person), and records any dialog, uncaught error, violation of the
    Content-Security-Policy, and every console message on them."""

    def __init__(self, browser):
        self.browser = browser
        self.contexts = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.csp_violations: list[str] = []
        self.console: list[str] = []

    def open(self, base_url: str, width: int = 1280, height: int = 800):
        context = self.browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
        context.set_default_timeout(10_000)
        context.expose_function("courierCspViolation", lambda text: self.csp_violations.append(text))
        context.add_init_script(WATCH_CSP)
        self.contexts.append(context)
        page = context.new_page()
        page.on("dialog", self._on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.goto(base_url + "/")
        return page

    def _on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def pages(browser):
    opened = Pages(browser)
    try:
        yield opened
    finally:
        opened.close()
    assert opened.dialogs == [], "a dialog opened: something ran that should not have"
    assert opened.errors == [], "the page threw"
    # Every test also checks that the page works within its Content-Security-Policy.
    assert opened.csp_violations == [], "the page did something its Content-Security-Policy forbids"
