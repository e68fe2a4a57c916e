"""The chat page at /, used as a person would: log in, chat, lose the network."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Account, ServerProcess

pytestmark = pytest.mark.browser

MESSAGES = "#message-list li.msg:not(.pending) .content"


# --- what a person does on the page ------------------------------------------

def register(page, prefix: str = "u") -> str:
    username = f"{prefix}{uuid.uuid4().hex[:8]}"
    page.fill("#login-username", username)
    page.fill("#login-password", "correct horse battery")
    page.click("#register-button")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
    return username


def log_in(page, account: Account) -> None:
    page.fill("#login-username", account.username)
    page.fill("#login-password", account.password)
    page.click("#login-button")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")


def start_chat(page, username: str) -> None:
    page.fill("#new-chat-username", username)
    page.press("#new-chat-username", "Enter")
    expect(page.locator("#conv-title")).to_have_text(username)


def write(page, text: str) -> None:
    """Type and send, then wait for the 201 (the bubble is no longer pending)."""
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")
    expect(page.locator("#message-list li.msg.pending")).to_have_count(0)


def conv_item(page, user_or_group_id: str):
    return page.locator(f'#conv-list li.conv[data-id="{user_or_group_id}"]')


def my_id(page) -> str:
    return page.evaluate("window.courier.session.user_id")


def shown(page) -> list[str]:
    return page.locator(MESSAGES).all_text_contents()


def expect_shown(page, texts: list[str]) -> None:
    expect(page.locator(MESSAGES)).to_have_text(texts)


# --- the tests -----------------------------------------------------------------

def test_two_people_chat_live(server, pages):
    alice, bob = pages.open(server.base_url), pages.open(server.base_url)
    alice_name = register(alice, "alice")
    bob_name = register(bob, "bob")
    start_chat(alice, bob_name)

    write(alice, "hello Bob")
    expect_shown(alice, ["hello Bob"])  # from the 201 answer, at once

    # Bob is not in that conversation: it appears with an unread badge.
    item = conv_item(bob, my_id(alice))
    expect(item.locator(".badge")).to_have_text("1")
    expect(item.locator(".conv-preview")).to_have_text("hello Bob")
    item.click()
    expect_shown(bob, ["hello Bob"])
    expect(item.locator(".badge")).to_have_count(0)
    # Bob never looked Alice up: the page asks the server for her name by id.
    expect(bob.locator("#conv-title")).to_have_text(alice_name)

    # Shift+Enter is a new line, Enter sends.
    bob.fill("#composer-input", "hi Alice")
    bob.press("#composer-input", "Shift+Enter")
    bob.keyboard.type("two lines")
    expect(bob.locator("#composer-input")).to_have_value("hi Alice\ntwo lines")
    bob.press("#composer-input", "Enter")
    expect_shown(alice, ["hello Bob", "hi Alice\ntwo lines"])
    expect_shown(bob, ["hello Bob", "hi Alice\ntwo lines"])
    expect(bob.locator("#composer-input")).to_have_value("")


def test_own_message_keeps_its_place_when_its_answer_is_slow(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, alice)
    start_chat(page, bob.username)

    def slow_answer(route):
        if route.request.method != "POST":
            return route.continue_()
        response = route.fetch()  # Alice's message exists on the server now
        server.send(bob, alice, "a reply that overtakes the answer")
        time.sleep(0.3)  # the push reaches the page before the 201 does
        route.fulfill(response=response)

    page.route("**/api/v1/messages", slow_answer)
    for first in ("sent first", "sent second"):
        write(page, first)
    page.unroute("**/api/v1/messages")
    overtaking = "a reply that overtakes the answer"
    expect_shown(page, ["sent first", overtaking, "sent second", overtaking])


def test_own_message_keeps_its_place_when_sent_before_the_history_arrives(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, alice)
    held_history = []
    page.route("**/api/v1/conversations/*/messages*", lambda route: held_history.append(route))
    start_chat(page, bob.username)
    expect(page.locator("#history-status")).to_have_text("Loading…")

    overtaking = "a reply that overtakes the answer"

    def slow_answer(route):
        if route.request.method != "POST":
            return route.continue_()
        response = route.fetch()
        server.send(bob, alice, overtaking)
        time.sleep(0.3)  # the push reaches the page before the 201 does
        route.fulfill(response=response)

    page.route("**/api/v1/messages", slow_answer)
    write(page, "sent first")
    # The history answer was taken before anything was sent: an empty page.
    held_history[0].fulfill(json={"messages": [], "next_before": None})
    expect_shown(page, ["sent first", overtaking])


FUTURE = 2_000_000_000  # created_at of a server whose clock was ahead, then stepped back


def test_a_conversation_is_in_seq_order_whatever_created_at_says(server, pages):
    """seq is the server's order; created_at only a clock's reading (whole seconds, and
    clocks step back): a message shown before the history arrives goes after it when its
    seq says so, though its created_at is earlier."""
    alice, bob = server.account("alice"), server.account("bob")
    for text in ("one", "two"):
        server.send(bob, alice, text)
    page = pages.open(server.base_url)
    log_in(page, alice)
    held = []

    def fetched_then_held(route):
        body = route.fetch().json()
        for message in body["messages"]:
            message["created_at"] = FUTURE
        held.append((route, body))

    page.route("**/api/v1/conversations/*/messages*", fetched_then_held)
    conv_item(page, bob.user_id).click()
    expect(page.locator("#history-status")).to_have_text("Loading…")
    server.send(bob, alice, "three")  # pushed while the history (one, two) is held
    expect(page.locator(MESSAGES)).to_contain_text(["three"])
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:  # the handler's fetch may still be under way
        page.wait_for_timeout(50)
    route, body = held[0]
    assert [m["seq"] for m in body["messages"]] == [2, 1]
    route.fulfill(json=body)
    expect_shown(page, ["one", "two", "three"])


def test_own_message_takes_its_seq_place_whatever_its_created_at(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, alice)
    start_chat(page, bob.username)
    overtaking = "a reply that overtakes the answer"

    def slow_answer_from_a_clock_ahead(route):
        if route.request.method != "POST":
            return route.continue_()
        response = route.fetch()
        body = response.json()
        server.send(bob, alice, overtaking)
        time.sleep(0.3)  # the push reaches the page before the 201 does
        route.fulfill(response=response, json={**body, "created_at": FUTURE})

    page.route("**/api/v1/messages", slow_answer_from_a_clock_ahead)
    write(page, "sent first")
    expect_shown(page, ["sent first", overtaking])


def test_a_send_that_meets_a_passing_failure_is_sent_again_by_itself_once(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    page = pages.open(server.base_url)
    log_in(page, alice)
    start_chat(page, bob.username)
    seen = []

    def failing_twice(route):
        if route.request.method != "POST":
            return route.continue_()
        seen.append(json.loads(route.request.post_data)["client_msg_id"])
        if len(seen) == 1:
            return route.fulfill(status=503, content_type="application/json",
                                 body='{"error": {"code": "service_unavailable", "message": "redis is down"}}')
        if len(seen) == 2:  # the server took it, but the answer never came back
            route.fetch()
            return route.abort()
        return route.continue_()  # the idempotent retry: the original comes back

    page.route("**/api/v1/messages", failing_twice)
    write(page, "through the storm")
    page.unroute("**/api/v1/messages")
    expect_shown(page, ["through the storm"])
    # The second attempt was taken: its echo in the event view (with the client_msg_id)
    # most often makes the third unnecessary; either way one client_msg_id for every attempt.
    assert len(seen) in (2, 3) and len(set(seen)) == 1
    status, history = server.call("GET", f"/conversations/{bob.user_id}/messages", token=alice.token)
    assert status == 200 and [m["content"] for m in history["messages"]] == ["through the storm"]


def test_group_of_three(server, pages):
    a, b, c = (pages.open(server.base_url) for _ in range(3))
    register(a, "ann")
    b_name, c_name = register(b, "ben"), register(c, "cat")

    a.fill("#new-group-name", "Trio")
    a.press("#new-group-name", "Enter")
    expect(a.locator("#conv-title")).to_have_text("# Trio")
    for name in (b_name, c_name):
        a.fill("#add-member-username", name)
        a.press("#add-member-username", "Enter")
        expect(a.locator("#conv-sub")).to_contain_text(name)
    expect(a.locator("#conv-sub")).to_contain_text("3 members")
    group_id = a.locator("#conv-list li.conv.active").get_attribute("data-id")

    write(a, "hi both")
    for other in (b, c):
        item = conv_item(other, group_id)
        expect(item.locator(".conv-title")).to_have_text("# Trio")
        expect(item.locator(".badge")).to_have_text("1")
        item.click()
        expect_shown(other, ["hi both"])
    b_to_c = "from Ben to the group"
    write(b, b_to_c)
    expect_shown(c, ["hi both", b_to_c])
    expect_shown(a, ["hi both", b_to_c])
    # C never looked Ben up: the page asks the server for his name by id.
    expect(c.locator("#message-list li.msg.theirs .author").last).to_have_text(b_name)
    expect(a.locator("#message-list li.msg.theirs .author").last).to_have_text(b_name)  # A added Ben by name
    # The sender's own page shows each message once, and still does a moment later.
    a.wait_for_timeout(300)
    assert shown(a) == ["hi both", b_to_c]
    assert shown(b) == ["hi both", b_to_c]

    # Leaving: the group goes from the list; the others no longer count Cat.
    c.click("#leave-button")
    c.click("#leave-button")  # the second click confirms
    expect(conv_item(c, group_id)).to_have_count(0)
    expect(c.locator("#empty-pane")).to_be_visible()
    status, group = server.call("GET", f"/groups/{group_id}", token=a.evaluate(
        "JSON.parse(localStorage.getItem('courier.session')).token"))
    assert status == 200 and len(group["member_ids"]) == 2


def test_every_group_is_listed_however_many_pages_it_takes(server, pages):
    """GET /groups answers 200 groups at most a page: the page follows next_before
    (and a group not listed would be dropped as one the user left)."""
    me = server.account("many")
    expected = set()
    for creator in [server.account("maker") for _ in range(8)]:
        for number in range(26):  # within each maker's allowance of group changes
            status, group = server.call("POST", "/groups", {"name": f"g{number}", "member_ids": [me.user_id]},
                                        creator.token)
            assert status == 201, group
            expected.add(group["group_id"])
    page = pages.open(server.base_url)
    log_in(page, me)
    groups = page.locator('#conv-list li.conv[data-kind="group"]')
    expect(groups).to_have_count(len(expected))
    assert set(groups.evaluate_all("items => items.map((item) => item.dataset.id)")) == expected


def test_missed_messages_arrive_once_in_order_after_a_drop(server, pages):
    alice = server.account("alice")
    bob_page = pages.open(server.base_url)
    bob_name = register(bob_page, "bob")
    _, bob_user = server.call("GET", f"/users?username={bob_name}", token=alice.token)
    bob = Account(bob_user["user_id"], bob_name, "", "")
    start_chat(bob_page, alice.username)

    server.send(alice, bob, "before the drop")
    expect_shown(bob_page, ["before the drop"])

    bob_page.evaluate("window.courier.dropSocket({hold: true})")
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "offline")
    missed = [f"missed {i}" for i in range(1, 6)]
    for text in missed:
        server.send(alice, bob, text)
    bob_page.wait_for_timeout(200)
    assert shown(bob_page) == ["before the drop"]  # really offline

    bob_page.evaluate("window.courier.resumeSocket()")
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "online")
    expect_shown(bob_page, ["before the drop", *missed])
    server.send(alice, bob, "live again")
    expect_shown(bob_page, ["before the drop", *missed, "live again"])

    # A plain drop (no hold) reconnects by itself, with backoff.
    bob_page.evaluate("window.courier.dropSocket()")
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "online")
    server.send(alice, bob, "after a plain drop")
    expect_shown(bob_page, ["before the drop", *missed, "live again", "after a plain drop"])

    # A reload keeps the session and the cursor: history, nothing twice.
    cursor = bob_page.evaluate("window.courier.cursor")
    assert cursor
    bob_page.reload()
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "online")
    expect_shown(bob_page, ["before the drop", *missed, "live again", "after a plain drop"])
    assert bob_page.evaluate("window.courier.cursor") == cursor


def test_json_ping_every_30_seconds(server, pages):
    page = pages.open(server.base_url)
    page.clock.install()  # the page's timers run on a clock the test moves
    sent, received = [], []

    def watch(ws):
        ws.on("framesent", lambda payload: sent.append(payload))
        ws.on("framereceived", lambda payload: received.append(payload))

    page.on("websocket", watch)
    page.reload()
    register(page)
    page.clock.run_for(29_000)
    assert sent == []
    page.clock.run_for(2_000)
    deadline = time.monotonic() + 5
    while {"type": "pong"} not in [json.loads(r) for r in received] and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert [json.loads(frame) for frame in sent] == [{"type": "ping"}]
    assert {"type": "pong"} in [json.loads(r) for r in received]
    # The pong came back: no timeout closes the socket.
    page.clock.run_for(15_000)
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
    assert page.evaluate("window.courier.state") == "online"


def test_a_socket_whose_pong_never_comes_is_replaced(server, pages):
    page = pages.open(server.base_url)
    page.clock.install()
    opened = []

    def swallow_pings(ws):
        upstream = ws.connect_to_server()  # server -> page frames pass as they are
        opened.append(ws.url)

        def page_to_server(message):
            if json.loads(message) != {"type": "ping"}:
                upstream.send(message)

        ws.on_message(page_to_server)

    page.route_web_socket("**/ws*", swallow_pings)  # /ws, or /ws?cursor=...
    page.reload()
    register(page)
    assert len(opened) == 1
    page.clock.run_for(30_500)  # ping, and no pong comes back
    page.clock.run_for(10_000)  # the pong timeout: the socket is given up
    page.clock.run_for(2_000)  # the first retry comes within a second
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
    assert len(opened) == 2


def test_server_restart_loses_nothing(tmp_path, browser, pages):
    own = ServerProcess(tmp_path)
    own.start()
    try:
        alice = own.account("alice")
        bob_page = pages.open(own.base_url)
        log_in(bob_page, bob := own.account("bob"))
        start_chat(bob_page, alice.username)
        own.send(alice, bob, "one")
        expect_shown(bob_page, ["one"])

        own.stop()
        expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "offline")
        own.start()
        own.send(alice, bob, "two")  # most likely before Bob's page is back
        own.send(alice, bob, "three")
        expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "online", timeout=20_000)
        expect_shown(bob_page, ["one", "two", "three"])
        own.send(alice, bob, "four")
        expect_shown(bob_page, ["one", "two", "three", "four"])
    finally:
        own.stop()


def test_content_is_text_never_html(server, pages):
    alice = server.account("alice")
    bob_page = pages.open(server.base_url)
    bob_name = register(bob_page, "bob")
    _, bob_user = server.call("GET", f"/users?username={bob_name}", token=alice.token)
    bob = Account(bob_user["user_id"], bob_name, "", "")
    nasty = ["<script>alert(1)</script>", '<img src=x onerror="alert(2)">', "<b>not bold</b>"]
    for text in nasty:
        server.send(alice, bob, text)
    conv_item(bob_page, alice.user_id).click()
    expect_shown(bob_page, nasty)
    assert bob_page.locator("#message-list script, #message-list img, #message-list b").count() == 0
    write(bob_page, "<script>alert(3)</script>")
    expect_shown(bob_page, [*nasty, "<script>alert(3)</script>"])
    bob_page.wait_for_timeout(200)
    # The pages fixture fails the test on any dialog.


def test_older_history_loads_when_scrolling_up(server, pages):
    alice, bob = server.account("alice"), server.account("bob")
    texts = [f"message {i:03d}" for i in range(1, 76)]
    for text in texts[:-1]:
        server.send(bob, alice, text)
    server.send(alice, bob, texts[-1])
    page = pages.open(server.base_url)
    log_in(page, bob)
    item = conv_item(page, alice.user_id)
    expect(item.locator(".conv-preview")).to_have_text(texts[-1])
    expect(item.locator(".badge")).to_have_text("1")  # the server's count: Alice's last is unread
    # The first pull (the event view: Bob's own sends too) brought them all; after a
    # reload the page keeps the cursor and the list, not the contents: only the
    # history calls have them.
    page.reload()
    expect(page.locator("#conn-state")).to_have_attribute("data-state", "online")
    item = conv_item(page, alice.user_id)
    expect(item.locator(".conv-preview")).to_have_text(texts[-1])
    item.click()
    expect(page.locator(MESSAGES)).to_have_count(50)
    assert shown(page) == texts[-50:]
    page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    expect(page.locator(MESSAGES)).to_have_count(75)
    assert shown(page) == texts
    expect(page.locator("#history-status")).to_have_text("Beginning of the conversation")


def test_bad_token_goes_back_to_login(server, pages):
    page = pages.open(server.base_url)
    register(page)
    page.evaluate("""() => {
        const s = JSON.parse(localStorage.getItem('courier.session'));
        s.token = 'not-a-token';
        localStorage.setItem('courier.session', JSON.stringify(s));
    }""")
    page.reload()
    expect(page.locator("#login-view")).to_be_visible()
    expect(page.locator("#login-notice")).to_contain_text("log in again")


def test_log_out_ends_the_session_on_the_server(server, pages):
    page = pages.open(server.base_url)
    register(page)
    token = page.evaluate("JSON.parse(localStorage.getItem('courier.session')).token")
    me = page.request.get(server.base_url + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200
    page.click("#logout-button")
    expect(page.locator("#login-view")).to_be_visible()
    assert page.evaluate("localStorage.getItem('courier.session')") is None
    # The token is refused by the server now, not only forgotten by the page.
    me = page.request.get(server.base_url + "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 401


def test_token_expiry_closes_4001_and_asks_to_log_in(tmp_path, pages):
    own = ServerProcess(tmp_path, COURIER_TOKEN_TTL=2)
    own.start()
    try:
        page = pages.open(own.base_url)
        name = register(page)
        expect(page.locator("#login-view")).to_be_visible(timeout=8_000)
        expect(page.locator("#login-notice")).to_contain_text("log in again")
        expect(page.locator("#login-username")).to_have_value(name)
    finally:
        own.stop()


def test_screenshot_mid_conversation(server, pages, tmp_path):
    # Plain names read better in docs/screenshot.png; no other test uses these.
    alice = server.account(username="li.wei")
    page = pages.open(server.base_url)
    log_in(page, me := server.account(username="mei"))
    bob = server.account(username="bob_martin")
    start_chat(page, bob.username)
    start_chat(page, alice.username)
    server.send(alice, me, "你好！周末一起去爬山吗？🏔️")
    expect_shown(page, ["你好！周末一起去爬山吗？🏔️"])
    write(page, "好啊！Saturday morning works for me 😀🎉")
    server.send(alice, me, "Great — I'll bring snacks 🍙 and tea 🍵\nMeet at 8:00 by the station?")
    write(page, "See you there 👍")
    status, group = server.call("POST", "/groups", {"name": "Weekend hikers", "member_ids": [me.user_id]},
                                alice.token)
    assert status == 201
    status, _ = server.call("POST", f"/groups/{group['group_id']}/messages", {"content": "路线图在这里 🗺️"},
                            alice.token)
    assert status == 201
    server.send(bob, me, "Are you coming to the demo on Monday?")
    expect(page.locator(MESSAGES)).to_have_count(4)
    # The list: most recent activity first, unread badges on the others, previews.
    expect(page.locator("#conv-list li.conv .conv-title")).to_have_text(
        [bob.username, "# Weekend hikers", alice.username])
    expect(conv_item(page, bob.user_id).locator(".badge")).to_have_text("1")
    expect(conv_item(page, group["group_id"]).locator(".badge")).to_have_text("1")
    expect(conv_item(page, alice.user_id).locator(".conv-preview")).to_have_text("You: See you there 👍")
    expect(page).to_have_title("(2) Courier")
    path = os.environ.get("COURIER_SCREENSHOT") or str(tmp_path / "screenshot.png")
    page.screenshot(path=path)
    assert os.path.getsize(path) > 10_000
