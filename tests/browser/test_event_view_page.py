"""The chat page on the event view (issue 14 point 6): one user's windows in step, long
backlogs and bursts in seq order, group changes live, the "new messages" divider, the
content limit, sends resent when the connection is back, the phone layout."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_chat_page import MESSAGES, conv_item, expect_shown, log_in, shown, start_chat, write

pytestmark = pytest.mark.browser

PENDING = "#message-list li.msg.pending"


def at_bottom(page) -> None:
    """The conversation is scrolled to its end: the newest message is the one in view."""
    page.wait_for_function(
        "() => { const b = document.getElementById('messages');"
        " return b.scrollHeight - b.scrollTop - b.clientHeight < 4; }"
    )
    expect(page.locator(MESSAGES).last).to_be_in_viewport()


def open_group(page, group_id: str) -> None:
    conv_item(page, group_id).click()
    expect(page.locator("#conv-pane")).to_be_visible()


def history(server, account, peer) -> list[dict]:
    status, body = server.call("GET", f"/conversations/{peer.user_id}/messages?limit=200", token=account.token)
    assert status == 200, body
    return list(reversed(body["messages"]))


# --- two windows of one user ------------------------------------------------------

def test_a_send_shows_at_once_exactly_once_in_the_same_users_other_window(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    laptop, phone = pages.open(server.base_url), pages.open(server.base_url)
    log_in(laptop, alice)
    log_in(phone, alice)
    start_chat(laptop, bob.username)
    start_chat(phone, bob.username)

    # The laptop's 201 is held: its pending bubble gives way to the message's echo in
    # the event view (matched by client_msg_id), and the 201 that follows adds nothing.
    held = []

    def hold_the_answer(route):
        if route.request.method != "POST":
            return route.continue_()
        held.append((route, route.fetch()))

    laptop.route("**/api/v1/messages", hold_the_answer)
    laptop.fill("#composer-input", "from the laptop")
    laptop.press("#composer-input", "Enter")
    expect_shown(phone, ["from the laptop"])  # the other window, at once
    expect_shown(laptop, ["from the laptop"])  # the echo, while the 201 is held
    expect(laptop.locator(PENDING)).to_have_count(0)
    assert len(held) == 1
    route, response = held[0]
    route.fulfill(response=response)
    laptop.unroute("**/api/v1/messages")

    write(phone, "from the phone")
    expect_shown(laptop, ["from the laptop", "from the phone"])
    server.send(bob, alice, "from Bob")
    for window in (laptop, phone):
        expect_shown(window, ["from the laptop", "from the phone", "from Bob"])
    laptop.wait_for_timeout(300)
    for window in (laptop, phone):
        assert shown(window) == ["from the laptop", "from the phone", "from Bob"]
        assert window.locator(PENDING).count() == 0
        item = conv_item(window, bob.user_id)
        expect(item.locator(".conv-preview")).to_have_text("from Bob")
        expect(item.locator(".badge")).to_have_count(0)  # one's own sends are never unread
    assert [m["content"] for m in history(server, alice, bob)] == ["from the laptop", "from the phone", "from Bob"]


def test_a_send_from_another_window_shows_in_a_conversation_not_yet_open(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    laptop, phone = pages.open(server.base_url), pages.open(server.base_url)
    log_in(laptop, alice)
    log_in(phone, alice)
    start_chat(laptop, bob.username)
    write(laptop, "a new chat")
    item = conv_item(phone, bob.user_id)
    expect(item.locator(".conv-preview")).to_have_text("You: a new chat")
    expect(item.locator(".badge")).to_have_count(0)
    item.click()
    expect_shown(phone, ["a new chat"])


# --- long backlogs and bursts ------------------------------------------------------

BACKLOG = [f"{i:03d}" for i in range(1, 81)]


def test_a_backlog_of_80_shows_001_to_080_newest_at_the_bottom(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    for text in BACKLOG:  # while Bob's page is not open
        server.send(alice, bob, text)
    page = pages.open(server.base_url)
    log_in(page, bob)
    item = conv_item(page, alice.user_id)
    expect(item.locator(".conv-preview")).to_have_text("080")
    item.click()
    expect_shown(page, BACKLOG)
    at_bottom(page)
    expect(item.locator(".conv-preview")).to_have_text("080")


def test_a_backlog_of_80_while_away_comes_under_a_new_messages_divider(server, pages):
    """A returning page with the conversation open: the 80 sent while it was closed show
    in order, the newest at the bottom, with the divider before the first of them."""
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, bob)
    start_chat(page, alice.username)
    write(page, "see you later")
    page.goto("about:blank")  # the page is closed
    for text in BACKLOG:
        server.send(alice, bob, text)
    page.goto(server.base_url + "/")
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
    expect_shown(page, BACKLOG)  # the pull's; the history call brings older ones on scrolling up
    at_bottom(page)
    expect(conv_item(page, alice.user_id).locator(".conv-preview")).to_have_text("080")
    expect(conv_item(page, alice.user_id).locator(".badge")).to_have_count(0)
    divider = page.locator("#message-list li.divider")
    expect(divider).to_have_count(1)
    expect(divider).to_have_text("New messages")
    # The divider stands right before 001, after what was there before.
    assert page.locator("#message-list li.divider + li.msg .content").text_content() == "001"
    page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    expect_shown(page, ["see you later", *BACKLOG])
    expect(page.locator("#message-list li.divider + li.msg .content")).to_have_text("001")


def test_new_messages_in_another_conversation_get_the_divider_when_opened(server, pages):
    alice, bob, carol = server.account("alice"), server.account("bob"), server.account("carol")
    page = pages.open(server.base_url)
    log_in(page, bob)
    start_chat(page, alice.username)
    server.send(alice, bob, "seen")
    expect_shown(page, ["seen"])
    start_chat(page, carol.username)  # looking elsewhere
    for text in ("new 1", "new 2", "new 3"):
        server.send(alice, bob, text)
    item = conv_item(page, alice.user_id)
    expect(item.locator(".badge")).to_have_text("3")
    item.click()
    expect_shown(page, ["seen", "new 1", "new 2", "new 3"])
    expect(item.locator(".badge")).to_have_count(0)
    expect(page.locator("#message-list li.divider + li.msg .content")).to_have_text("new 1")
    # Read: opening another conversation and coming back shows no divider.
    conv_item(page, carol.user_id).click()
    item.click()
    expect_shown(page, ["seen", "new 1", "new 2", "new 3"])
    expect(page.locator("#message-list li.divider")).to_have_count(0)


def test_a_burst_of_120_typed_with_enter_shows_in_order_once(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    sender, receiver = pages.open(server.base_url), pages.open(server.base_url)
    log_in(sender, alice)
    log_in(receiver, bob)
    start_chat(sender, bob.username)
    start_chat(receiver, alice.username)
    texts = [f"burst {i:03d}" for i in range(1, 121)]
    for text in texts:
        sender.fill("#composer-input", text)
        sender.press("#composer-input", "Enter")
    expect(sender.locator(PENDING)).to_have_count(0, timeout=30_000)
    expect_shown(sender, texts)
    expect(receiver.locator(MESSAGES)).to_have_count(120, timeout=30_000)
    expect_shown(receiver, texts)
    sender.wait_for_timeout(300)
    assert shown(sender) == texts and shown(receiver) == texts
    # The server numbered them as typed.
    sent = history(server, alice, bob)
    assert [m["content"] for m in sent] == texts
    assert [m["seq"] for m in sent] == list(range(1, 121))
    expect(conv_item(receiver, alice.user_id).locator(".conv-preview")).to_have_text("burst 120")


# --- group changes, live -------------------------------------------------------------

def group_sub(page):
    return page.locator("#conv-sub")


def test_membership_and_rename_are_live_for_everyone_concerned(server, pages):
    ann, ben, cat = server.account("ann"), server.account("ben"), server.account("cat")
    a, b, c = (pages.open(server.base_url) for _ in range(3))
    log_in(a, ann)
    log_in(b, ben)
    log_in(c, cat)

    a.fill("#new-group-name", "Crew")
    a.press("#new-group-name", "Enter")
    expect(a.locator("#conv-title")).to_have_text("# Crew")
    group_id = a.locator("#conv-list li.conv.active").get_attribute("data-id")

    # Added: Ben sees the group appear, before any message.
    a.fill("#add-member-username", ben.username)
    a.press("#add-member-username", "Enter")
    item_b = conv_item(b, group_id)
    expect(item_b.locator(".conv-title")).to_have_text("# Crew")
    open_group(b, group_id)
    expect(group_sub(b)).to_contain_text("2 members")
    write(a, "welcome Ben")
    expect_shown(b, ["welcome Ben"])

    # Cat is added: Ben's header follows, Cat sees the group.
    a.fill("#add-member-username", cat.username)
    a.press("#add-member-username", "Enter")
    expect(group_sub(b)).to_contain_text("3 members")
    expect(group_sub(b)).to_contain_text(cat.username)
    item_c = conv_item(c, group_id)
    expect(item_c.locator(".conv-title")).to_have_text("# Crew")
    open_group(c, group_id)
    expect(group_sub(c)).to_contain_text("3 members")

    # Renamed by the owner (only the owner has the form): header and list everywhere.
    expect(b.locator("#rename-form")).to_be_hidden()
    a.fill("#rename-input", "Crew 2")
    a.press("#rename-input", "Enter")
    for page in (a, b, c):
        expect(page.locator("#conv-title")).to_have_text("# Crew 2")
        expect(conv_item(page, group_id).locator(".conv-title")).to_have_text("# Crew 2")

    # Cat leaves (from the page): it goes from Cat's list; the others count two.
    c.click("#leave-button")
    c.click("#leave-button")
    expect(conv_item(c, group_id)).to_have_count(0)
    for page in (a, b):
        expect(group_sub(page)).to_contain_text("2 members")
        expect(group_sub(page)).not_to_contain_text(cat.username)

    # Ben is removed by Ann: his copy stays, read-only, marked as left.
    status, _ = server.call("DELETE", f"/groups/{group_id}/members/{ben.user_id}", token=ann.token)
    assert status == 204
    expect(group_sub(a)).to_contain_text("1 member")
    expect(item_b).to_have_class(re.compile(r"\bleft\b"))
    expect(item_b.locator(".conv-preview")).to_have_text("You are no longer in this group")
    expect(group_sub(b)).to_have_text(f"{ann.username} removed you from this group")
    expect(b.locator("#composer")).to_be_hidden()
    expect(b.locator("#group-tools")).to_be_hidden()
    expect(b.locator("#left-notice")).to_be_visible()
    expect_shown(b, ["welcome Ben"])  # the history is kept
    # Renames after that no longer reach Ben.
    status, _ = server.call("PATCH", f"/groups/{group_id}", {"name": "Crew 3"}, ann.token)
    assert status == 200
    expect(a.locator("#conv-title")).to_have_text("# Crew 3")
    b.wait_for_timeout(300)
    expect(b.locator("#conv-title")).to_have_text("# Crew 2")
    # Closed, it goes.
    b.click("#close-left-button")
    expect(item_b).to_have_count(0)
    expect(b.locator("#empty-pane")).to_be_visible()


def test_a_group_made_elsewhere_appears_and_a_leave_elsewhere_removes_it(server, pages):
    """Group changes made by the API (another device) reach the page too, for the user
    who made them: creation (group_updated), and leaving from another device."""
    ann, ben = server.account("ann"), server.account("ben")
    page = pages.open(server.base_url)
    log_in(page, ben)
    status, group = server.call("POST", "/groups", {"name": "Elsewhere", "member_ids": [ben.user_id]}, ann.token)
    assert status == 201
    item = conv_item(page, group["group_id"])
    expect(item.locator(".conv-title")).to_have_text("# Elsewhere")
    open_group(page, group["group_id"])
    expect(group_sub(page)).to_contain_text("2 members")
    status, _ = server.call("DELETE", f"/groups/{group['group_id']}/members/{ben.user_id}", token=ben.token)
    assert status == 204
    expect(item).to_have_count(0)
    expect(page.locator("#empty-pane")).to_be_visible()


# --- the content limit ---------------------------------------------------------------

def test_a_counter_shows_near_the_limit_and_an_over_long_message_is_not_sent(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, alice)
    start_chat(page, bob.username)
    counter = page.locator("#char-counter")
    page.fill("#composer-input", "x" * 3000)
    expect(counter).to_be_hidden()
    page.fill("#composer-input", "x" * 3600)
    expect(counter).to_be_visible()
    expect(counter).to_have_text("3600 / 4000")
    page.fill("#composer-input", "x" * 4001)
    expect(counter).to_have_class(re.compile(r"\bover\b"))
    expect(counter).to_contain_text("1 too many")
    expect(page.locator("#send-button")).to_be_disabled()
    page.press("#composer-input", "Enter")
    page.wait_for_timeout(200)
    expect(page.locator("#composer-input")).to_have_value("x" * 4001)  # kept, to be shortened
    assert page.locator(PENDING).count() == 0 and shown(page) == []
    # Characters as the server counts them: 4000 emoji (8000 UTF-16 units) are allowed.
    page.fill("#composer-input", "😀" * 4000)
    expect(counter).to_have_text("4000 / 4000")
    expect(page.locator("#send-button")).to_be_enabled()
    page.press("#composer-input", "Enter")
    expect(page.locator(PENDING)).to_have_count(0)
    expect_shown(page, ["😀" * 4000])
    expect(counter).to_be_hidden()


# --- offline ---------------------------------------------------------------------------

def test_a_message_written_offline_is_sent_by_itself_when_the_socket_is_back(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    page, other = pages.open(server.base_url), pages.open(server.base_url)
    log_in(page, alice)
    log_in(other, bob)
    start_chat(page, bob.username)
    start_chat(other, alice.username)
    attempts: list[str] = []

    def watch(request):
        if request.method == "POST" and request.url.endswith("/api/v1/messages"):
            attempts.append(json.loads(request.post_data)["client_msg_id"])

    page.on("request", watch)
    page.context.set_offline(True)
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "offline")
    page.fill("#composer-input", "written offline")
    page.press("#composer-input", "Enter")
    waiting = page.locator(f"{PENDING}.waiting")
    expect(waiting).to_have_count(1)
    expect(waiting.locator(".time")).to_have_text("waiting for the connection…")
    page.wait_for_timeout(500)
    assert history(server, alice, bob) == []

    page.context.set_offline(False)
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=20_000)
    expect(page.locator(PENDING)).to_have_count(0)
    expect_shown(page, ["written offline"])
    expect_shown(other, ["written offline"])
    page.wait_for_timeout(300)
    assert shown(page) == ["written offline"] and shown(other) == ["written offline"]
    assert [m["content"] for m in history(server, alice, bob)] == ["written offline"]
    assert attempts and len(set(attempts)) == 1  # every attempt with one client_msg_id


def test_a_send_that_failed_while_the_socket_was_up_goes_again_when_it_comes_back(server, pages):
    """The network failed for the send only: after its retries it shows "not sent"; when
    the socket next comes back, it is sent again by itself, with the same client_msg_id."""
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, alice)
    start_chat(page, bob.username)
    page.clock.install()
    attempts: list[str] = []

    def unreachable(route):
        if route.request.method != "POST":
            return route.continue_()
        attempts.append(json.loads(route.request.post_data)["client_msg_id"])
        route.abort()

    page.route("**/api/v1/messages", unreachable)
    page.fill("#composer-input", "through a flaky network")
    page.press("#composer-input", "Enter")
    for _ in range(5):
        page.clock.run_for(5_000)
    failed = page.locator(f"{PENDING}.failed")
    expect(failed).to_have_count(1)
    assert len(attempts) == 5
    page.unroute("**/api/v1/messages")
    page.evaluate("window.courier.dropSocket()")
    page.clock.run_for(2_000)
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
    expect(page.locator(PENDING)).to_have_count(0)
    expect_shown(page, ["through a flaky network"])
    assert [m["content"] for m in history(server, alice, bob)] == ["through a flaky network"]
    assert len(set(attempts)) == 1


# --- the phone layout ----------------------------------------------------------------

def test_on_a_phone_the_group_name_and_member_count_stay_readable(server, pages):
    ann, ben, cat = server.account("ann"), server.account("ben"), server.account("cat")
    status, group = server.call("POST", "/groups", {"name": "Weekend hikers club",
                                                    "member_ids": [ben.user_id, cat.user_id]}, ann.token)
    assert status == 201
    page = pages.open(server.base_url, width=390, height=844)
    log_in(page, ann)
    open_group(page, group["group_id"])
    title, sub = page.locator("#conv-title"), page.locator("#conv-sub")
    expect(title).to_have_text("# Weekend hikers club")
    expect(sub).to_contain_text("3 members")
    # Not cut: the whole name fits, within the screen, clear of the menu button.
    assert title.evaluate("node => node.scrollWidth <= node.clientWidth")
    menu = page.locator("#menu-button")
    expect(menu).to_be_visible()
    title_box, menu_box = title.bounding_box(), menu.bounding_box()
    assert title_box["x"] >= 0 and title_box["x"] + title_box["width"] <= menu_box["x"] + 1
    assert menu_box["x"] + menu_box["width"] <= 390
    count = sub.evaluate("""node => {
        const range = document.createRange();
        range.setStart(node.firstChild, 0);
        range.setEnd(node.firstChild, "3 members".length);
        const r = range.getBoundingClientRect(), box = node.getBoundingClientRect();
        return r.right <= box.right + 0.5 && r.left >= 0 && r.width > 20;
    }""")
    assert count, "the member count is visible"
    # The controls are in the menu.
    expect(page.locator("#add-member-username")).to_be_hidden()
    expect(page.locator("#leave-button")).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    for control in ("#rename-input", "#add-member-username", "#leave-button"):
        box = page.locator(control).bounding_box()
        expect(page.locator(control)).to_be_visible()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    # Renaming from the menu closes it; the header shows the new name.
    page.fill("#rename-input", "Hikers")
    page.press("#rename-input", "Enter")
    expect(title).to_have_text("# Hikers")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#add-member-username")).to_be_hidden()
    # The composer fits the screen.
    box = page.locator("#send-button").bounding_box()
    assert box["x"] + box["width"] <= 390
