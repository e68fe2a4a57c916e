"""The chat page's defence in depth: it is served with a Content-Security-Policy
(scripts and styles from its own origin only, no framing), nosniff and no-referrer,
and works within that policy (the pages fixture fails any test that violates it);
no token ever reaches the browser console."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ServerProcess
from tests.browser.test_chat_page import MESSAGES, conv_item, log_in, my_id, register, start_chat, write

pytestmark = pytest.mark.browser


def headers_of(url: str) -> dict[str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as error:
        with error:
            return {k.lower(): v for k, v in error.headers.items()}


def directives(policy: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in policy.split(";") if part.strip())
    return {part[0]: (part[1] if len(part) > 1 else "") for part in parts}


def test_the_page_and_its_files_carry_the_security_headers(server):
    for path in ("/", "/static/app.js", "/static/courier.js", "/static/style.css", "/static/no-such-file.js"):
        headers = headers_of(server.base_url + path)
        policy = directives(headers.get("content-security-policy", ""))
        assert policy.get("script-src") == "'self'", (path, headers)
        assert policy.get("style-src") == "'self'", (path, headers)
        assert policy.get("frame-ancestors") == "'none'", (path, headers)
        assert policy.get("default-src") == "'none'", (path, headers)
        assert headers.get("x-content-type-options") == "nosniff", (path, headers)
        assert headers.get("referrer-policy") == "no-referrer", (path, headers)


def test_the_page_works_within_its_policy_which_blocks_inline_script_and_style(server, pages):
    """Everything a person does (log in, chat, a group, the live socket) raises no
    violation (the pages fixture checks); a script or style slipped into the page is
    refused, and the refusal is seen: the check above can fail."""
    alice, bob = pages.open(server.base_url), pages.open(server.base_url)
    register(alice, "alice")
    bob_name = register(bob, "bob")  # the socket opens: connect-src 'self' covers ws:
    start_chat(alice, bob_name)
    write(alice, "under a policy")
    conv_item(bob, my_id(alice)).click()
    expect(bob.locator(MESSAGES)).to_have_text(["under a policy"])
    alice.fill("#new-group-name", "policy group")
    alice.press("#new-group-name", "Enter")
    alice.fill("#add-member-username", bob_name)
    alice.press("#add-member-username", "Enter")
    expect(alice.locator("#conv-sub")).to_contain_text("2 members")
    alice.fill("#composer-input", "a long message\nthat grows the composer\n\n\n")  # its height is set by script
    alice.reload()
    expect(alice.locator("#conn-state")).to_have_attribute("data-state", "online")
    assert pages.csp_violations == []

    ran = alice.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injectedScriptRan = true";
        document.body.append(script);
        const styled = document.createElement("div");
        styled.setAttribute("style", "color: rgb(1, 2, 3)");
        document.body.append(styled);
        return [window.injectedScriptRan === true, getComputedStyle(styled).color === "rgb(1, 2, 3)"];
    }""")
    assert ran == [False, False]
    for directive in ("script-src-elem", "style-src-attr"):  # reported a moment later
        seen = lambda: any(v.startswith(directive + " blocked inline") for v in pages.csp_violations)  # noqa: E731, B023
        for _ in range(100):
            if seen():
                break
            alice.wait_for_timeout(20)
        assert seen(), pages.csp_violations
    pages.csp_violations.clear()  # these two were the test's own


def test_no_token_reaches_the_console(tmp_path, pages):
    """The page writes no console line with a token, and neither does the browser on
    its behalf: Chromium prints the URL of every WebSocket that fails to connect, so
    the token must not be in the socket's URL."""
    own = ServerProcess(tmp_path)
    own.start()
    try:
        friend = own.account("friend")
        page = pages.open(own.base_url)
        log_in(page, me := own.account("me"))
        start_chat(page, friend.username)
        write(page, "hello")
        page.evaluate("window.courier.dropSocket()")
        expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
        page.reload()  # the session from localStorage
        expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
        tokens = {me.token, page.evaluate("JSON.parse(localStorage.getItem('courier.session')).token")}
        own.stop()  # every reconnection fails now, and the browser says so in the console
        expect(page.locator("#conn-state")).to_have_attribute("data-state", "offline")
        page.wait_for_timeout(2_500)
        own.start()
        expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=20_000)
    finally:
        own.stop()
    assert any("WebSocket" in line for line in pages.console), pages.console  # the failures were seen
    signatures = {token.rsplit(".", 1)[-1] for token in tokens}
    leaked = [line for line in pages.console if any(part in line for part in tokens | signatures)]
    assert leaked == []
