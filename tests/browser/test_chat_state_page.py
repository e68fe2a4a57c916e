"""The chat page on the server's chat state (issue 15 point 6): the list from the server
on a new device, a read in one window clearing the badge in the user's others, ✓ sent /
✓✓ read and "read by N", and edit and delete seen live on every side."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Account, ServerProcess
from tests.browser.test_chat_page import MESSAGES, conv_item, expect_shown, log_in, start_chat, write

pytestmark = pytest.mark.browser

LIST = "#conv-list li.conv"


def create_group(server, owner: Account, name: str, members: list[Account]) -> str:
    status, group = server.call("POST", "/groups", {"name": name, "member_ids": [m.user_id for m in members]},
                                owner.token)
    assert status == 201, group
    return group["group_id"]


def send_to_group(server, sender: Account, group_id: str, content: str) -> dict:
    status, body = server.call("POST", f"/groups/{group_id}/messages", {"content": content}, sender.token)
    assert status == 201, body
    return body


def read_private(server, reader: Account, peer: Account, seq: int) -> dict:
    status, body = server.call("POST", f"/conversations/{peer.user_id}/read", {"seq": seq}, reader.token)
    assert status == 200, body
    return body


def read_group(server, reader: Account, group_id: str, seq: int) -> dict:
    status, body = server.call("POST", f"/groups/{group_id}/read", {"seq": seq}, reader.token)
    assert status == 200, body
    return body


def bubble(page, text: str):
    """The message shown with this text (its li)."""
    return page.locator("#message-list li.msg:not(.pending)").filter(
        has=page.locator(".content", has_text=text))


def open_menu(page, text: str):
    item = bubble(page, text)
    item.locator(".msg-menu-button").click()
    return item


# --- the list from the server ----------------------------------------------------------

def test_a_new_device_lists_every_chat_with_its_preview_and_unread_count(server, pages):
    alice, bob, carol, dan = (server.account(n) for n in ("alice", "bob", "carol", "dan"))
    for text in ("one", "two", "three"):
        server.send(alice, bob, text)
    server.send(bob, alice, "my reply")  # read up to here: what came before is not unread
    server.send(alice, bob, "four")
    server.send(alice, bob, "five")
    server.send(bob, carol, "only I wrote here")
    group_id = create_group(server, dan, "Quiet group", [bob])  # no message yet
    page = pages.open(server.base_url)  # a device that never saw any of it
    log_in(page, bob)
    expect(page.locator(LIST)).to_have_count(3)
    # Most recent activity first: the group (created last), Carol, Alice.
    ids = [page.locator(LIST).nth(i).get_attribute("data-id") for i in range(3)]
    assert ids == [group_id, carol.user_id, alice.user_id]
    expect(conv_item(page, alice.user_id).locator(".conv-preview")).to_have_text("five")
    expect(conv_item(page, alice.user_id).locator(".badge")).to_have_text("2")
    expect(conv_item(page, alice.user_id).locator(".conv-title")).to_have_text(alice.username)
    expect(conv_item(page, carol.user_id).locator(".conv-preview")).to_have_text("You: only I wrote here")
    expect(conv_item(page, carol.user_id).locator(".badge")).to_have_count(0)
    expect(conv_item(page, group_id).locator(".conv-title")).to_have_text("# Quiet group")
    expect(conv_item(page, group_id).locator(".badge")).to_have_count(0)
    expect(page).to_have_title("(2) Courier")
    # Opened: the divider stands before the first unread, and the read goes to the server.
    conv_item(page, alice.user_id).click()
    expect_shown(page, ["one", "two", "three", "my reply", "four", "five"])
    expect(page.locator("#message-list li.divider + li.msg .content")).to_have_text("four")
    expect(conv_item(page, alice.user_id).locator(".badge")).to_have_count(0)
    page.wait_for_function(
        "() => window.courier.store.convs.get('u:" + alice.user_id + "').readSeq === 6")
    status, listed = server.call("GET", "/conversations", token=bob.token)
    assert status == 200
    [with_alice] = [c for c in listed["conversations"] if c.get("user_id") == alice.user_id]
    assert with_alice["read_seq"] == 6 and with_alice["unread_count"] == 0


def test_reading_in_one_window_clears_the_badge_in_the_others(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    laptop, phone = pages.open(server.base_url), pages.open(server.base_url)
    log_in(laptop, bob)
    log_in(phone, bob)
    server.send(alice, bob, "are you there?")
    server.send(alice, bob, "hello?")
    for page in (laptop, phone):
        expect(conv_item(page, alice.user_id).locator(".badge")).to_have_text("2")
    conv_item(laptop, alice.user_id).click()
    expect_shown(laptop, ["are you there?", "hello?"])
    # The read event reaches the phone over its socket: the badge goes, nothing reloads.
    expect(conv_item(phone, alice.user_id).locator(".badge")).to_have_count(0)
    expect(phone).to_have_title("Courier")
    # A message that comes after is unread again, on the phone (not looking at it).
    server.send(alice, bob, "still there?")
    expect(conv_item(phone, alice.user_id).locator(".badge")).to_have_text("1")
    expect_shown(laptop, ["are you there?", "hello?", "still there?"])  # the laptop looks: read
    expect(conv_item(phone, alice.user_id).locator(".badge")).to_have_count(0)
    # The phone, reloaded, agrees with the server.
    phone.reload()
    expect(phone.locator("#conn-state")).to_have_attribute("data-state", "online")
    expect(conv_item(phone, alice.user_id).locator(".badge")).to_have_count(0)


# --- receipts ----------------------------------------------------------------------------

def test_private_messages_show_sent_then_read(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    a = pages.open(server.base_url)
    log_in(a, alice)
    start_chat(a, bob.username)
    write(a, "first")
    write(a, "second")
    expect(bubble(a, "first").locator(".receipt")).to_have_text("✓")
    expect(bubble(a, "second").locator(".receipt")).to_have_text("✓")
    read_private(server, bob, alice, 1)  # Bob read the first only
    expect(bubble(a, "first").locator(".receipt")).to_have_text("✓✓")
    expect(bubble(a, "second").locator(".receipt")).to_have_text("✓")
    b = pages.open(server.base_url)  # Bob opens the chat: the rest is read
    log_in(b, bob)
    conv_item(b, alice.user_id).click()
    expect_shown(b, ["first", "second"])
    expect(bubble(a, "second").locator(".receipt")).to_have_text("✓✓")
    expect(bubble(b, "first").locator(".receipt")).to_have_count(0)  # only on one's own messages


def test_receipts_off_are_never_shown(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    status, _ = server.call("PATCH", "/users/me", {"send_read_receipts": False}, bob.token)
    assert status == 200
    a = pages.open(server.base_url)
    log_in(a, alice)
    start_chat(a, bob.username)
    write(a, "you will read this")
    read_private(server, bob, alice, 1)
    write(a, "marker")  # whatever came before it has reached the page by now
    a.wait_for_timeout(300)
    expect(bubble(a, "you will read this").locator(".receipt")).to_have_text("✓")


def test_a_group_shows_read_by_n_live(server, pages):
    alice, bob, carol = server.account("alice"), server.account("bob"), server.account("carol")
    group_id = create_group(server, alice, "Readers", [bob, carol])
    a = pages.open(server.base_url)
    log_in(a, alice)
    conv_item(a, group_id).click()
    write(a, "please read")
    expect(bubble(a, "please read").locator(".receipt")).to_have_text("✓")
    read_group(server, bob, group_id, 1)
    expect(bubble(a, "please read").locator(".receipt")).to_have_text("✓ read by 1")
    read_group(server, carol, group_id, 1)
    expect(bubble(a, "please read").locator(".receipt")).to_have_text("✓ read by 2")
    # Only reads count: a reply moves its sender's marker, but receipts decide who is counted.
    write(a, "thanks")
    expect(bubble(a, "thanks").locator(".receipt")).to_have_text("✓")
    read_group(server, carol, group_id, 2)
    expect(bubble(a, "thanks").locator(".receipt")).to_have_text("✓ read by 1")


def test_a_group_over_the_receipts_limit_asks_for_its_reads_when_opened(tmp_path, pages):
    own = ServerProcess(tmp_path, COURIER_RECEIPTS_MAX_GROUP="2")
    own.start()
    try:
        alice, bob, carol = own.account("alice"), own.account("bob"), own.account("carol")
        group_id = create_group(own, alice, "Big enough", [bob, carol])
        a = pages.open(own.base_url)
        log_in(a, alice)
        conv_item(a, group_id).click()
        write(a, "anyone?")
        read_group(own, bob, group_id, 1)
        read_group(own, carol, group_id, 1)
        # No receipt comes for a group over the limit: the count is as of the opening.
        a.wait_for_timeout(500)
        expect(bubble(a, "anyone?").locator(".receipt")).to_have_text("✓")
        a.reload()
        expect(a.locator("#conn-state")).to_have_attribute("data-state", "online")
        expect(bubble(a, "anyone?").locator(".receipt")).to_have_text("✓ read by 2")
    finally:
        own.stop()


# --- edit and delete ------------------------------------------------------------------------

def test_an_edit_and_a_delete_show_live_on_both_sides(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    a, b = pages.open(server.base_url), pages.open(server.base_url)
    log_in(a, alice)
    log_in(b, bob)
    start_chat(a, bob.username)
    write(a, "helo")
    write(a, "wrong chat, sorry")
    conv_item(b, alice.user_id).click()
    expect_shown(b, ["helo", "wrong chat, sorry"])
    # Bob may neither edit nor delete Alice's messages: no menu on them.
    expect(bubble(b, "helo").locator(".msg-menu-button")).to_have_count(0)

    open_menu(a, "helo").locator(".edit-action").click()
    a.fill("#edit-input", "hello")
    a.press("#edit-input", "Enter")
    expect_shown(a, ["hello", "wrong chat, sorry"])
    for page in (a, b):
        expect(bubble(page, "hello").locator(".edited")).to_have_text("edited")
    expect_shown(b, ["hello", "wrong chat, sorry"])

    item = open_menu(a, "wrong chat, sorry")
    item.locator(".delete-action").click()
    expect(item.locator(".delete-action")).to_have_text("Really delete?")
    item.locator(".delete-action").click()
    for page in (a, b):
        expect(page.locator("#message-list li.msg.deleted .content")).to_have_text("message deleted")
        expect(page.locator(MESSAGES)).to_have_text(["hello", "message deleted"])
    expect(conv_item(b, alice.user_id).locator(".conv-preview")).to_have_text("message deleted")
    # History agrees after a reload: the edit and the tombstone come from the server.
    b.reload()
    expect(b.locator("#conn-state")).to_have_attribute("data-state", "online")
    conv_item(b, alice.user_id).click()
    expect(b.locator(MESSAGES)).to_have_text(["hello", "message deleted"])
    expect(bubble(b, "hello").locator(".edited")).to_have_text("edited")


def test_the_group_owner_deletes_a_members_message(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    group_id = create_group(server, alice, "Moderated", [bob])
    send_to_group(server, bob, group_id, "spam spam")
    a, b = pages.open(server.base_url), pages.open(server.base_url)
    log_in(a, alice)
    log_in(b, bob)
    conv_item(a, group_id).click()
    conv_item(b, group_id).click()
    expect_shown(a, ["spam spam"])
    item = open_menu(a, "spam spam")
    expect(item.locator(".edit-action")).to_have_count(0)  # the owner may delete, not edit
    item.locator(".delete-action").click()
    item.locator(".delete-action").click()
    for page in (a, b):
        expect(page.locator(MESSAGES)).to_have_text(["message deleted"])


def test_on_a_phone_the_list_after_back_counts_new_messages_unread(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    a = pages.open(server.base_url, width=390, height=800)
    log_in(a, alice)
    start_chat(a, bob.username)
    write(a, "back in a minute")
    a.click("#back-button")
    expect(a.locator("#conv-list")).to_be_visible()
    server.send(bob, alice, "are you there?")
    expect(conv_item(a, bob.user_id).locator(".badge")).to_have_text("1")
    a.wait_for_timeout(500)
    status, listed = server.call("GET", "/conversations", token=alice.token)
    [with_bob] = [c for c in listed["conversations"] if c.get("user_id") == bob.user_id]
    assert with_bob["unread_count"] == 1  # no read went to the server
    conv_item(a, bob.user_id).click()
    expect(conv_item(a, bob.user_id).locator(".badge")).to_have_count(0)


def test_the_message_menu_from_the_keyboard_and_the_edit_box_keeps_its_caret(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    a = pages.open(server.base_url)
    log_in(a, alice)
    start_chat(a, bob.username)
    write(a, "hello world")
    bubble(a, "hello world").locator(".msg-menu-button").focus()
    a.keyboard.press("Enter")
    expect(a.locator(".msg-menu-items .edit-action")).to_be_focused()
    a.keyboard.press("Escape")
    expect(a.locator(".msg-menu-items")).to_have_count(0)
    expect(bubble(a, "hello world").locator(".msg-menu-button")).to_be_focused()
    a.keyboard.press("Enter")
    a.keyboard.press("Enter")  # Edit
    edit = a.locator("#edit-input")
    expect(edit).to_be_focused()
    assert edit.evaluate("e => getComputedStyle(e).color") != edit.evaluate("e => getComputedStyle(e).backgroundColor")
    edit.evaluate("e => e.setSelectionRange(5, 5)")
    server.send(bob, alice, "meanwhile")  # the list is drawn again while editing
    expect(bubble(a, "meanwhile")).to_have_count(1)
    expect(edit).to_be_focused()
    a.keyboard.type(",")
    a.keyboard.press("Enter")
    expect_shown(a, ["hello, world", "meanwhile"])


def test_a_group_one_was_removed_from_offers_no_message_menu(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    group_id = create_group(server, alice, "Leaving", [bob])
    b = pages.open(server.base_url)
    log_in(b, bob)
    conv_item(b, group_id).click()
    write(b, "mine")
    expect(bubble(b, "mine").locator(".msg-menu-button")).to_have_count(1)
    status, _ = server.call("DELETE", f"/groups/{group_id}/members/{bob.user_id}", token=alice.token)
    assert status in (200, 204)
    expect(b.locator("#left-notice")).to_be_visible()
    expect(bubble(b, "mine").locator(".msg-menu-button")).to_have_count(0)


def test_what_was_seen_is_read_for_the_divider_before_the_server_answers_the_read(server, pages):
    """The read's POST is held: messages that came while the chat was on screen are still
    above the "new messages" divider when it is opened again."""
    alice, bob, carol = server.account("alice"), server.account("bob"), server.account("carol")
    page = pages.open(server.base_url)
    log_in(page, bob)
    held = []
    page.route("**/read", lambda route: held.append(route))
    start_chat(page, alice.username)
    server.send(alice, bob, "seen")
    expect_shown(page, ["seen"])
    page.wait_for_function("() => document.querySelectorAll('li.msg').length === 1")
    start_chat(page, carol.username)
    for text in ("new 1", "new 2"):
        server.send(alice, bob, text)
    item = conv_item(page, alice.user_id)
    expect(item.locator(".badge")).to_have_text("2")
    item.click()
    expect(page.locator("#message-list li.divider + li.msg .content")).to_have_text("new 1")
    for route in held:  # answered before the route goes (unroute hands on what it holds)
        route.continue_()
    page.unroute("**/read")
