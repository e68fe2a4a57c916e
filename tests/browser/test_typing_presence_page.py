"""Typing and presence on the chat page (issue 16 point 3): "bob is typing…" under the
header (private and group), gone on stop, on send and when the typer's window closes;
the composer's frames kept to one a second; green dots and "last seen" for the people
listed, after a reconnect too; a hidden user shown offline."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Account, ServerProcess
from tests.browser.test_chat_page import conv_item, expect_shown, log_in
from tests.browser.test_chat_state_page import create_group

pytestmark = pytest.mark.browser

TYPING = "#typing-line"


def open_chat(page, account: Account, peer_or_group_id: str) -> None:
    log_in(page, account)
    conv_item(page, peer_or_group_id).click()


def type_in(page, text: str) -> None:
    """Keys in the composer, as a person types them (an input event each)."""
    page.locator("#composer-input").press_sequentially(text)


def leave_composer(page) -> None:
    page.locator("#new-chat-username").focus()


# Keeps every typing frame the page sends, with the page's time of sending (an init
# script, run before the page's own: its Content-Security-Policy does not apply).
RECORD_TYPING = """
window.courierTyping = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  const frame = JSON.parse(data);
  if (frame.type === "typing") window.courierTyping.push([performance.now(), frame]);
  return send.call(this, data);
};
"""


# --- typing ---------------------------------------------------------------------------

def test_a_private_chat_shows_the_other_typing_until_stop_send_or_close(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    server.send(alice, bob, "hi")
    a, b = pages.open(server.base_url), pages.open(server.base_url)
    open_chat(a, alice, bob.user_id)
    open_chat(b, bob, alice.user_id)
    expect(b.locator(TYPING)).to_be_hidden()

    type_in(a, "are you")
    expect(b.locator(TYPING)).to_have_text(f"{alice.username} is typing…")
    expect(conv_item(b, alice.user_id).locator(".conv-preview")).to_have_text("typing…")
    expect(a.locator(TYPING)).to_be_hidden()  # never one's own
    leave_composer(a)  # blur: stop
    expect(b.locator(TYPING)).to_be_hidden()
    expect(conv_item(b, alice.user_id).locator(".conv-preview")).to_have_text("hi")

    type_in(a, " there?")
    expect(b.locator(TYPING)).to_have_text(f"{alice.username} is typing…")
    a.press("#composer-input", "Enter")  # sent: the message replaces the indicator
    expect_shown(b, ["hi", "are you there?"])
    expect(b.locator(TYPING)).to_be_hidden()

    type_in(a, "hello?")
    expect(b.locator(TYPING)).to_have_text(f"{alice.username} is typing…")
    expect(b.locator(TYPING)).to_be_hidden()  # 3 s without a key: stop

    # The watcher's socket is lost: a stop pushed meanwhile would be lost too.
    type_in(a, "wait")
    expect(b.locator(TYPING)).to_have_text(f"{alice.username} is typing…")
    b.evaluate("window.courier.dropSocket({hold: true})")
    expect(b.locator(TYPING)).to_be_hidden()
    b.evaluate("window.courier.resumeSocket()")
    expect(b.locator("#conn-state")).to_have_attribute("data-state", "online")
    # (The server pushes a start only when none is shown: the new socket learns of Alice's
    # typing from her next start after a stop.)
    leave_composer(a)

    type_in(a, "bye")
    expect(b.locator(TYPING)).to_have_text(f"{alice.username} is typing…")
    a.close()  # the typer's window goes: the server ends its typing
    expect(b.locator(TYPING)).to_be_hidden()


def test_a_group_names_who_is_typing(server, pages):
    alice, bob, carol, dan = (server.account(n) for n in ("alice", "bob", "carol", "dan"))
    group_id = create_group(server, alice, "Typists", [bob, carol, dan])
    a, b, c, d = (pages.open(server.base_url) for _ in range(4))
    for page, account in ((a, alice), (b, bob), (c, carol), (d, dan)):
        open_chat(page, account, group_id)

    def keep_typing(*typers):
        for page in typers:
            type_in(page, "x")  # within the idle time: still typing

    type_in(b, "so")
    expect(a.locator(TYPING)).to_have_text(f"{bob.username} is typing…")
    expect(conv_item(a, group_id).locator(".conv-preview")).to_have_text(f"{bob.username} is typing…")
    keep_typing(b)
    type_in(c, "well")
    expect(a.locator(TYPING)).to_have_text(f"{bob.username} and {carol.username} are typing…")
    keep_typing(b, c)
    type_in(d, "hm")
    expect(a.locator(TYPING)).to_have_text(f"{bob.username} and 2 others are typing…")
    # Everyone sees the others, never themselves.
    expect(b.locator(TYPING)).to_have_text(f"{carol.username} and {dan.username} are typing…")

    keep_typing(c, d)
    b.press("#composer-input", "Enter")
    expect_shown(a, ["soxx"])
    expect(a.locator(TYPING)).to_have_text(f"{carol.username} and {dan.username} are typing…")
    keep_typing(d)
    leave_composer(c)
    expect(a.locator(TYPING)).to_have_text(f"{dan.username} is typing…")
    d.close()
    expect(a.locator(TYPING)).to_be_hidden()


def test_typing_on_and_on_keeps_the_indicator(server, pages):
    """Past the server's 6 s expiry: the composer repeats its start while keys come."""
    alice, bob = server.account("alice"), server.account("bob")
    server.send(alice, bob, "hi")
    a, b = pages.open(server.base_url), pages.open(server.base_url)
    open_chat(a, alice, bob.user_id)
    open_chat(b, bob, alice.user_id)
    type_in(a, "a")
    expect(b.locator(TYPING)).to_be_visible()
    for _ in range(9):
        a.wait_for_timeout(1000)
        type_in(a, "a")
        expect(b.locator(TYPING)).to_have_text(f"{alice.username} is typing…")


def test_the_composer_sends_a_frame_a_second_at_most_and_only_where_one_may_write(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    server.send(alice, bob, "hi")
    group_id = create_group(server, bob, "Soon left", [alice])
    a = pages.open(server.base_url)
    a.context.add_init_script(RECORD_TYPING)
    a.reload()
    open_chat(a, alice, bob.user_id)
    # Start, send (a stop) and a start again at once: three frames, a second apart at least.
    type_in(a, "one")
    a.press("#composer-input", "Enter")
    type_in(a, "two")
    a.wait_for_function("() => window.courierTyping.length >= 3")
    leave_composer(a)
    a.wait_for_function("() => window.courierTyping.length >= 4")
    sent = a.evaluate("window.courierTyping")
    assert [frame for _, frame in sent] == [
        {"type": "typing", "to_user_id": bob.user_id, "state": state} for state in ("start", "stop", "start", "stop")]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 990, gaps

    # Notes to oneself, and a group one was removed from: nothing is sent.
    a.fill("#new-chat-username", alice.username)
    a.press("#new-chat-username", "Enter")
    expect(a.locator("#conv-title")).to_have_text(f"{alice.username} (you)")
    type_in(a, "note")
    a.press("#composer-input", "Enter")
    expect(a.locator("#message-list li.msg.pending")).to_have_count(0)
    status, _ = server.call("DELETE", f"/groups/{group_id}/members/{alice.user_id}", token=bob.token)
    assert status in (200, 204)
    conv_item(a, group_id).click()
    expect(a.locator("#left-notice")).to_be_visible()
    expect(a.locator("#composer")).to_be_hidden()
    # The last of the frames above would have left by now.
    a.wait_for_timeout(1100)
    assert len(a.evaluate("window.courierTyping")) == 4


# --- presence -------------------------------------------------------------------------

def online_dot(page, user_id: str):
    return conv_item(page, user_id).locator(".avatar.online")


def test_coming_online_and_going_offline_show_in_the_list_and_the_header(tmp_path, pages):
    own = ServerProcess(tmp_path, COURIER_PRESENCE_GRACE="1")  # offline a second after the last socket
    own.start()
    try:
        alice, bob, eve = own.account("alice"), own.account("bob"), own.account("eve")
        own.send(bob, alice, "hi")
        a = pages.open(own.base_url)
        open_chat(a, alice, bob.user_id)
        expect(a.locator("#conv-sub")).to_have_text("offline")  # never seen
        expect(online_dot(a, bob.user_id)).to_have_count(0)
        expect(a.locator("#conv-avatar")).not_to_have_class(re.compile(r"\bonline\b"))

        b = pages.open(own.base_url)
        log_in(b, bob)
        expect(online_dot(a, bob.user_id)).to_have_count(1)
        expect(a.locator("#conv-avatar")).to_have_class(re.compile(r"\bonline\b"))
        expect(a.locator("#conv-sub")).to_have_text("online")
        expect(online_dot(b, alice.user_id)).to_have_count(1)  # and Bob sees Alice

        b.close()
        expect(a.locator("#conv-sub")).to_have_text("last seen just now")
        expect(online_dot(a, bob.user_id)).to_have_count(0)
        expect(a.locator("#conv-avatar")).not_to_have_class(re.compile(r"\bonline\b"))

        # The subscription belongs to the socket: a new one asks again.
        a.evaluate("window.courier.dropSocket()")
        expect(a.locator("#conn-state")).to_have_attribute("data-state", "online")
        b = pages.open(own.base_url)
        log_in(b, bob)
        expect(online_dot(a, bob.user_id)).to_have_count(1)
        expect(a.locator("#conv-sub")).to_have_text("online")

        # A new chat in the list: its user is watched too.
        e = pages.open(own.base_url)
        log_in(e, eve)
        a.fill("#new-chat-username", eve.username)
        a.press("#new-chat-username", "Enter")
        expect(a.locator("#conv-sub")).to_have_text("online")
        expect(online_dot(a, eve.user_id)).to_have_count(1)
    finally:
        own.stop()


def test_a_hidden_user_shows_offline(server, pages):
    alice, bob, carol = server.account("alice"), server.account("bob"), server.account("carol")
    status, _ = server.call("PATCH", "/users/me", {"show_presence": False}, carol.token)
    assert status == 200
    server.send(carol, alice, "I am here, quietly")
    server.send(bob, alice, "I am here")
    b, c = pages.open(server.base_url), pages.open(server.base_url)
    log_in(b, bob)
    log_in(c, carol)
    a = pages.open(server.base_url)
    log_in(a, alice)
    expect(online_dot(a, bob.user_id)).to_have_count(1)  # both answers came in one go
    expect(online_dot(a, carol.user_id)).to_have_count(0)
    conv_item(a, carol.user_id).click()
    expect(a.locator("#conv-sub")).to_have_text("offline")
    expect(a.locator("#conv-avatar")).not_to_have_class(re.compile(r"\bonline\b"))


def test_the_settings_hide_ones_presence_and_turn_receipts_off(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    server.send(bob, alice, "hi")
    a, b = pages.open(server.base_url), pages.open(server.base_url)
    log_in(a, alice)
    log_in(b, bob)
    expect(online_dot(a, bob.user_id)).to_have_count(1)
    b.click("#settings-button")
    expect(b.locator("#settings-panel")).to_be_visible()
    expect(b.locator("#setting-show-presence")).to_be_checked()
    expect(b.locator("#setting-read-receipts")).to_be_checked()
    b.locator("#setting-show-presence").uncheck()
    expect(online_dot(a, bob.user_id)).to_have_count(0)  # hidden: offline to others
    b.locator("#setting-read-receipts").uncheck()
    expect(b.locator("#settings-panel")).not_to_have_attribute("aria-busy", "true")  # the answer came
    status, settings = server.call("GET", "/users/me/settings", token=bob.token)
    assert status == 200 and settings == {"send_read_receipts": False, "show_presence": False}
    b.keyboard.press("Escape")
    expect(b.locator("#settings-panel")).to_be_hidden()
    # Another window reads them from the server.
    other = pages.open(server.base_url)
    log_in(other, bob)
    other.click("#settings-button")
    expect(other.locator("#setting-show-presence")).not_to_be_checked()
    expect(other.locator("#setting-read-receipts")).not_to_be_checked()
    other.locator("#setting-show-presence").check()
    expect(online_dot(a, bob.user_id)).to_have_count(1)
