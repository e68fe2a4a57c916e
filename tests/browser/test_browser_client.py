"""The browser client (entrypoints/web/courier.js, docs/browser-client.md) in headless
Chromium against a live Courier, in both modes (tests/services/deployment.py): its calls,
its sends' retries (503, 429 with Retry-After, 409 send_in_progress, a lost answer, each
answered by Playwright in place of the server) and its event stream (a server restarted
mid-stream, an expired cursor, where a stream starts, a revoked token), each checked as
"nothing lost, nothing twice".

The module is imported into a bare document of the server's origin (its /healthz), as
anyone's page would import it."""
from __future__ import annotations

import json
import time

import pytest

from tests.browser.conftest import Account, Http
from tests.services.deployment import deployments, mode, mysql_url, secret  # noqa: F401 - fixtures

# Loaded into the test page: the module, and a few helpers the tests drive it with.
HARNESS = """async (baseUrl) => {
  const courier = await import("/static/courier.js");
  const T = { courier, baseUrl, clients: {}, streams: {} };
  T.client = (name, token, options = {}) => {
    T.clients[name] = new courier.CourierClient({ baseUrl, token, backoffBase: 50, backoffMax: 500, ...options });
    return T.clients[name];
  };
  // Iterates a stream of the named client, keeping what it yields (and how it ended).
  T.listen = (name, key, options = {}) => {
    const stream = T.clients[name].events({ backoffBase: 100, backoffMax: 1000, ...options });
    const record = { stream, events: [], error: null, done: false };
    T.streams[key] = record;
    (async () => {
      try {
        for await (const event of stream) record.events.push(event);
      } catch (error) {
        record.error = { name: error.name, status: error.status, code: error.code };
      }
      record.done = true;
    })();
    return record;
  };
  T.ids = (key) => T.streams[key].events.filter((e) => e.type === "private" || e.type === "group").map((e) => e.id);
  T.types = (key) => T.streams[key].events.map((e) => e.type);
  T.error = async (call) => {
    try {
      await call();
    } catch (error) {
      return { name: error.name, status: error.status, code: error.code };
    }
    return null;
  };
  window.T = T;
}"""


@pytest.fixture
def courier(deployments):  # noqa: F811 - the fixture imported above
    return deployments().start_sync()


def open_client_page(pages, base_url: str):
    page = pages.open(base_url)  # the chat page first: a context that records errors
    # A document of the server's origin with no script of its own. (Not one Playwright
    # answers: Chromium would take it for a public page and refuse its sockets to the
    # loopback server, net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS.)
    page.goto(base_url + "/healthz")
    page.evaluate(HARNESS, base_url)
    return page


def users(http: Http, n: int) -> list[Account]:
    return [http.account("bc") for _ in range(n)]


def wait_for(page, condition: str, arg=None, timeout: float = 30.0) -> None:
    page.wait_for_function(condition, arg=arg, timeout=timeout * 1000)


def connected(page, key: str) -> None:
    wait_for(page, "(key) => T.streams[key].stream.state === 'online'", key)


def test_every_call_of_the_api(pages, courier):
    http = Http(courier.port)
    bob, carol = users(http, 2)
    page = open_client_page(pages, courier.base_url)
    alice = "a" + str(int(time.time() * 1000))[-9:]
    me = page.evaluate("""async (username) => {
      const client = T.client("alice");
      await client.register(username, "correct horse battery");
      return await client.login(username, "correct horse battery");
    }""", alice)
    assert me["username"] == alice and page.evaluate("T.clients.alice.token") == me["token"]
    assert page.evaluate("async (name) => (await T.clients.alice.findUser(name)).user_id", bob.username) == bob.user_id
    assert page.evaluate("async (id) => T.clients.alice.getUser(id)", bob.user_id) == \
        {"user_id": bob.user_id, "username": bob.username}
    refusals = page.evaluate("""async ([taken, bobId]) => ({
      taken: await T.error(() => T.clients.alice.register(taken, "correct horse battery")),
      wrong: await T.error(() => T.client("x").login(taken, "wrong password")),
      missing: await T.error(() => T.clients.alice.findUser("nobody-" + bobId.slice(0, 8))),
    })""", [bob.username, bob.user_id])
    assert refusals == {
        "taken": {"name": "CourierError", "status": 409, "code": "username_taken"},
        "wrong": {"name": "CourierError", "status": 401, "code": "invalid_credentials"},
        "missing": {"name": "CourierError", "status": 404, "code": "user_not_found"},
    }

    page.evaluate("(token) => { T.client('bob', token); T.listen('bob', 'bob'); }", bob.token)
    connected(page, "bob")
    done = page.evaluate("""async ([bobId, carolId]) => {
      const a = T.clients.alice;
      const sent = [];
      for (let i = 0; i < 12; i += 1) sent.push(await a.sendPrivate(bobId, `private ${i}`));
      const group = await a.createGroup("team", [bobId]);
      const inGroup = await a.sendGroup(group.group_id, "standup in 5");
      await a.addMember(group.group_id, carolId);
      const renamed = await a.renameGroup(group.group_id, "the team");
      await a.removeMember(group.group_id, carolId);
      const edited = await a.editMessage(sent[0].id, "private 0, edited");
      await a.deleteMessage(sent[1].id);
      const notMine = await T.error(() => T.clients.bob.editMessage(sent[2].id, "not mine"));
      return { sent, group, inGroup, renamed, edited, notMine };
    }""", [bob.user_id, carol.user_id])
    sent, group = done["sent"], done["group"]
    assert [m["seq"] for m in sent] == list(range(1, 13))
    assert group["member_ids"] == [me["user_id"], bob.user_id] and done["renamed"]["name"] == "the team"
    assert done["edited"]["content"] == "private 0, edited" and done["edited"]["edited_at"]
    assert done["notMine"]["status"] == 403

    # The stream: every message, the group's changes, the edit and the deletion, once.
    wait_for(page, "() => T.types('bob').includes('message_deleted')")
    events = page.evaluate("T.streams.bob.events")
    assert page.evaluate("T.ids('bob')") == [m["id"] for m in sent] + [done["inGroup"]["id"]]
    assert [e["name"] for e in events if e["type"] == "group_updated"] == ["team", "the team"]
    assert [e["user_id"] for e in events if e["type"] in ("member_added", "member_removed")] == [carol.user_id] * 2
    assert [e["id"] for e in events if e["type"] == "message_updated"] == [sent[0]["id"]]
    cursors = [e["cursor"] for e in events]
    assert len(set(cursors)) == len(cursors)

    # History, the conversation list and read markers, once the worker stored them (production).
    read = page.evaluate("""async ([aliceId, groupId]) => {
      const b = T.clients.bob;
      const eventually = async (get, ok) => {
        for (let i = 0; i < 200; i += 1) {
          const value = await get();
          if (ok(value)) return value;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error("not met in 20 s");
      };
      const full = await eventually(() => b.privateHistory(aliceId, { limit: 100 }), (p) => p.messages.length === 12);
      const page = await b.privateHistory(aliceId, { limit: 5 });
      const older = await b.privateHistory(aliceId, { before: page.next_before, limit: 5 });
      const groupPage = await b.groupHistory(groupId);
      const chats = await eventually(() => b.conversations({ limit: 10 }), (p) => p.conversations.length === 2
        && p.conversations.every((c) => c.last_seq === (c.type === "private" ? 12 : 1)));
      return {
        ids: full.messages.map((m) => m.id),
        pageSeqs: page.messages.map((m) => m.seq), olderSeqs: older.messages.map((m) => m.seq),
        groupIds: groupPage.messages.map((m) => m.id),
        unread: chats.conversations.find((c) => c.type === "private").unread_count,
        groups: (await b.groups()).groups.map((g) => g.group_id),
        groupName: (await b.getGroup(groupId)).name,
        private: await b.markReadPrivate(aliceId, 12),
        inGroup: await b.markReadGroup(groupId, 1),
        reads: await T.clients.alice.groupReads(groupId),
      };
    }""", [me["user_id"], group["group_id"]])
    assert read["ids"] == [m["id"] for m in reversed(sent)]
    assert read["pageSeqs"] == [12, 11, 10, 9, 8] and read["olderSeqs"] == [7, 6, 5, 4, 3]
    assert read["groupIds"] == [done["inGroup"]["id"]] and read["groups"] == [group["group_id"]]
    assert read["groupName"] == "the team" and read["unread"] > 0
    assert read["private"] == {"read_seq": 12, "unread_count": 0} and read["inGroup"]["read_seq"] == 1
    assert {r["user_id"]: r["read_seq"] for r in read["reads"]}[bob.user_id] == 1
    wait_for(page, "() => T.types('bob').filter((t) => t === 'read').length === 2")

    # Settings, presence and typing on the stream, leaving, logging out.
    last = page.evaluate("""async ([aliceId, bobId, groupId]) => {
      const b = T.clients.bob;
      const settings = await b.updateSettings({ send_read_receipts: false });
      const presence = await T.clients.alice.presence(bobId);
      T.listen("alice", "alice");
      while (T.streams.alice.stream.state !== "online") await new Promise((r) => setTimeout(r, 20));
      T.streams.alice.stream.subscribePresence([bobId]);
      return { settings, again: await b.settings(), presence: presence.status };
    }""", [me["user_id"], bob.user_id, group["group_id"]])
    assert last["settings"]["send_read_receipts"] is False and last["again"]["send_read_receipts"] is False
    assert last["presence"] == "online"
    wait_for(page, "(id) => T.streams.alice.events.some((e) => e.type === 'presence' && e.user_id === id)",
             bob.user_id)
    assert page.evaluate("(id) => T.streams.bob.stream.typing('start', { toUserId: id })", me["user_id"])
    wait_for(page, "() => T.types('alice').includes('typing')")
    ended = page.evaluate("""async (groupId) => {
      const b = T.clients.bob;
      await b.leaveGroup(groupId);
      await b.logout();
      return await T.error(() => b.me());
    }""", group["group_id"])
    assert ended["status"] == 401  # no token any more: refused before any request
    status, _ = http.call("GET", "/users/me", token=bob.token)
    assert status == 401  # and the server ended it


def test_a_send_is_retried_with_its_client_msg_id_and_delivered_once(pages, courier):
    http = Http(courier.port)
    alice, bob = users(http, 2)
    page = open_client_page(pages, courier.base_url)
    page.evaluate("(token) => { T.client('alice', token); }", alice.token)
    # Each attempt at the send, as the client made it; the first four are answered in
    # place of the server: 503, 429 with Retry-After, 409 send_in_progress, then one
    # that reaches the server and whose answer is lost.
    attempts: list[dict] = []

    def answer(route):
        attempts.append(json.loads(route.request.post_data or "{}"))
        n = len(attempts)
        error = {1: (503, "service_unavailable", {}), 2: (429, "rate_limited", {"Retry-After": "1"}),
                 3: (409, "send_in_progress", {})}
        if n in error:
            status, code, headers = error[n]
            route.fulfill(status=status, headers=headers, content_type="application/json",
                          body=json.dumps({"error": {"code": code, "message": code}}))
        elif n == 4:
            route.fetch()  # taken by the server ...
            route.abort()  # ... and its answer lost on the way back
        else:
            route.continue_()

    page.route(courier.base_url + "/api/v1/messages", answer)
    started = time.monotonic()
    message = page.evaluate("(id) => T.clients.alice.sendPrivate(id, 'once, whatever it takes')", bob.user_id)
    assert time.monotonic() - started >= 1.0  # the Retry-After was waited for
    assert len(attempts) == 5
    assert len({a["client_msg_id"] for a in attempts}) == 1 and attempts[0]["client_msg_id"]
    assert message["seq"] == 1
    status, pulled = http.call("GET", "/events", token=bob.token)
    assert [e["id"] for e in pulled["events"]] == [message["id"]]
    _, own = http.call("GET", "/events", token=alice.token)  # the sender's log: its sends, with their ids
    assert [(e["id"], e["client_msg_id"]) for e in own["events"]] == [(message["id"], attempts[0]["client_msg_id"])]

    # A refusal that retrying cannot change is not retried.
    attempts.clear()
    page.unroute(courier.base_url + "/api/v1/messages")
    page.route(courier.base_url + "/api/v1/messages", lambda route: (attempts.append({}), route.continue_()))
    refused = page.evaluate("(id) => T.error(() => T.clients.alice.sendPrivate(id, 'to nobody'))", "0" * 32)
    assert refused["status"] in (400, 404) and len(attempts) == 1

    # A group send whose answer is lost: sent again, delivered once.
    status, group = http.call("POST", "/groups", {"name": "g", "member_ids": [bob.user_id]}, alice.token)
    lost: list[str] = []

    def lose_first(route):
        lost.append(json.loads(route.request.post_data or "{}")["client_msg_id"])
        if len(lost) == 1:
            route.fetch()
            route.abort()
        else:
            route.continue_()

    page.route(f"{courier.base_url}/api/v1/groups/{group['group_id']}/messages", lose_first)
    in_group = page.evaluate("(id) => T.clients.alice.sendGroup(id, 'to the group, once')", group["group_id"])
    assert len(lost) == 2 and lost[0] == lost[1]
    status, pulled = http.call("GET", f"/events?cursor={pulled['next_cursor']}", token=bob.token)
    messages = [e["id"] for e in pulled["events"] if e["type"] == "group"]
    assert messages == [in_group["id"]]


def test_the_stream_resumes_across_a_server_restart_nothing_lost_nothing_twice(pages, courier):
    http = Http(courier.port)
    alice, bob = users(http, 2)
    page = open_client_page(pages, courier.base_url)
    page.evaluate("""([alice, bob]) => {
      T.client("alice", alice);
      T.client("bob", bob);
      T.listen("bob", "bob");
    }""", [alice.token, bob.token])
    connected(page, "bob")
    n = 40
    # Alice sends while the server restarts: her sends wait for it (retried, same ids).
    page.evaluate("""([bobId, n]) => {
      T.sending = (async () => {
        const ids = [];
        for (let i = 0; i < n; i += 1) {
          ids.push((await T.clients.alice.sendPrivate(bobId, `message ${i}`)).id);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        return ids;
      })();
    }""", [bob.user_id, n])
    wait_for(page, "() => T.ids('bob').length >= 10")
    courier.restart_gateway_sync()  # while alice keeps sending, and bob's stream is open
    sent = page.evaluate("T.sending")
    wait_for(page, "(n) => T.ids('bob').length >= n", n, timeout=60)
    page.wait_for_timeout(500)  # room for a late duplicate
    assert page.evaluate("T.ids('bob')") == sent  # every one, once, in order
    stream = page.evaluate("({ connects: T.streams.bob.stream.connects, cursor: T.streams.bob.stream.cursor,"
                           " last: T.streams.bob.events.at(-1).cursor, error: T.streams.bob.error })")
    assert stream["connects"] >= 2 and stream["error"] is None
    assert stream["cursor"] == stream["last"]


def test_dropped_sockets_resume_from_their_cursor(pages, courier):
    """A socket lost (as a network drop would lose it) while messages come: the next one
    resumes from the stream's cursor, and the server replays what was missed."""
    http = Http(courier.port)
    alice, bob = users(http, 2)
    page = open_client_page(pages, courier.base_url)
    page.evaluate("(token) => { T.client('bob', token); T.listen('bob', 'bob'); }", bob.token)
    connected(page, "bob")
    sent = []
    for round_ in range(3):
        page.evaluate("T.streams.bob.stream.drop({ hold: true })")
        sent += [http.send(alice, bob, f"while away {round_}.{i}")["id"] for i in range(3)]
        page.evaluate("T.streams.bob.stream.resume()")
        wait_for(page, "(n) => T.ids('bob').length >= n", len(sent))
    page.wait_for_timeout(300)
    assert page.evaluate("T.ids('bob')") == sent
    assert page.evaluate("T.streams.bob.stream.connects") == 4


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_an_expired_cursor_falls_back_to_the_retained_log_and_says_so(pages, deployments):  # noqa: F811
    courier = deployments(COURIER_INBOX_MAXLEN=5).start_sync()
    http = Http(courier.port)
    alice, bob = users(http, 2)
    page = open_client_page(pages, courier.base_url)
    page.evaluate("(token) => { T.client('bob', token); T.listen('bob', 'bob'); }", bob.token)
    connected(page, "bob")
    first = [http.send(alice, bob, f"first {i}")["id"] for i in range(2)]
    wait_for(page, "() => T.ids('bob').length === 2")
    last_seen = page.evaluate("T.streams.bob.stream.cursor")
    page.evaluate("T.streams.bob.stream.drop({ hold: true })")  # bob is away while 10 more come
    missed = [http.send(alice, bob, f"missed {i}")["id"] for i in range(10)]
    _, pulled = http.call("GET", "/events", token=bob.token)
    retained = [e["id"] for e in pulled["events"]]
    assert retained == missed[-5:]  # the inbox keeps 5
    page.evaluate("T.streams.bob.stream.resume()")
    wait_for(page, "() => T.types('bob').includes('resync')")
    later = http.send(alice, bob, "after the gap")["id"]
    wait_for(page, "(id) => T.ids('bob').includes(id)", later)
    page.wait_for_timeout(300)
    events = page.evaluate("T.streams.bob.events")
    assert [e for e in events if e["type"] == "resync"] == [{"type": "resync", "expired_cursor": last_seen}]
    assert [e["type"] for e in events].index("resync") == 2  # after the two it had, before anything else
    assert page.evaluate("T.ids('bob')") == first + retained + [later]
    assert page.evaluate("T.streams.bob.stream.resyncs") == 1


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_where_a_stream_starts(pages, courier):
    http = Http(courier.port)
    alice, bob = users(http, 2)
    old = [http.send(alice, bob, f"old {i}")["id"] for i in range(3)]
    page = open_client_page(pages, courier.base_url)
    page.evaluate("""(token) => {
      T.client("bob", token);
      T.listen("bob", "live"); // from the end of the log as it is now
      T.listen("bob", "start", { fromStart: true });
    }""", bob.token)
    connected(page, "live")
    connected(page, "start")
    assert page.evaluate("T.streams.live.stream.cursor") is not None  # the end was found before the socket
    new = [http.send(alice, bob, f"new {i}")["id"] for i in range(2)]
    wait_for(page, "() => T.ids('start').length === 5 && T.ids('live').length === 2")
    assert page.evaluate("T.ids('live')") == new
    assert page.evaluate("T.ids('start')") == old + new
    page.evaluate("T.listen('bob', 'after', { cursor: T.streams.start.events[0].cursor })")
    wait_for(page, "() => T.ids('after').length === 4")
    page.wait_for_timeout(300)
    assert page.evaluate("T.ids('after')") == old[1:] + new


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_revoked_token_ends_the_stream_with_401(pages, courier):
    http = Http(courier.port)
    (bob,) = users(http, 1)
    page = open_client_page(pages, courier.base_url)
    page.evaluate("(token) => { T.client('bob', token); T.listen('bob', 'bob'); }", bob.token)
    connected(page, "bob")
    status, _ = http.call("POST", "/users/logout", token=bob.token)
    assert status == 204
    wait_for(page, "() => T.streams.bob.done")
    assert page.evaluate("T.streams.bob.error") == {"name": "CourierError", "status": 401, "code": "invalid_token"}
    assert page.evaluate("T.streams.bob.stream.state") == "offline"


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_socket_opened_without_a_cursor_meets_the_log_without_a_gap_or_a_double(pages, courier):
    """An empty log gives no cursor: the socket starts live, and the log is read from its
    start to meet it. Here m1 comes between the first read and the socket, and m2 is
    pushed while the second read is under way (held back by the test): m1 comes from the
    read, m2 from both, and each is handed out once, in order."""
    http = Http(courier.port)
    alice, bob = users(http, 2)
    page = open_client_page(pages, courier.base_url)
    reads: list = []
    page.route(courier.base_url + "/api/v1/events*", lambda route: reads.append(route))
    page.evaluate("(token) => { T.client('bob', token); T.listen('bob', 'bob', { fromStart: true }); }", bob.token)
    wait_for(page, "() => T.streams.bob.stream.catchingUp !== null")
    first_read = reads.pop(0)
    answer = first_read.fetch()  # the log as it is now: empty
    m1 = http.send(alice, bob, "between the read and the socket")["id"]
    first_read.fulfill(response=answer)
    connected(page, "bob")
    while not reads:
        page.wait_for_timeout(20)
    m2 = http.send(alice, bob, "pushed while the log is read")["id"]
    wait_for(page, "() => T.streams.bob.stream.heldFrames && T.streams.bob.stream.heldFrames.length === 1")
    reads.pop(0).continue_()
    wait_for(page, "() => T.ids('bob').length >= 2")
    page.wait_for_timeout(300)
    assert page.evaluate("T.ids('bob')") == [m1, m2]


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_a_page_of_another_origin_imports_the_module_from_the_server_and_uses_it(pages, courier):
    http = Http(courier.port)
    alice, bob = users(http, 2)
    page = pages.open(courier.base_url)
    other_origin = courier.base_url.replace("127.0.0.1", "localhost")  # another host: another origin
    page.goto(other_origin + "/healthz")
    # A module script from another origin is fetched with CORS: this import fails unless
    # the server answers it with Access-Control-Allow-Origin.
    got = page.evaluate("""async ([baseUrl, token, bobId]) => {
      const courier = await import(baseUrl + "/static/courier.js");
      const client = new courier.CourierClient({ baseUrl, token });
      const sent = await client.sendPrivate(bobId, "from another origin");
      // A refusal that says when to try again: its Retry-After is readable from here.
      let retryAfter = null;
      for (let i = 0; i < 30 && retryAfter === null; i++) {
        const answer = await fetch(baseUrl + "/api/v1/users/login", {
          method: "POST", body: JSON.stringify({ username: "nobody-here", password: "wrong password" }),
        });
        if (answer.status === 429) retryAfter = answer.headers.get("Retry-After");
      }
      return { origin: location.origin, content: sent.content, retryAfter };
    }""", [courier.base_url, alice.token, bob.user_id])
    assert got["origin"] == other_origin and got["content"] == "from another origin"
    assert got["retryAfter"] is not None and int(got["retryAfter"]) >= 1


@pytest.mark.parametrize("mode", ["embedded"], indirect=True)
def test_the_every_helpers_page_through_a_whole_listing(pages, courier):
    http = Http(courier.port)
    alice, bob, carol = users(http, 3)
    sent = [http.send(alice, bob, f"m {i}")["id"] for i in range(7)]
    http.send(alice, carol, "hi carol")
    groups = [http.call("POST", "/groups", {"name": f"g{i}", "member_ids": [bob.user_id]}, alice.token)[1]
              for i in range(3)]
    page = open_client_page(pages, courier.base_url)
    got = page.evaluate("""async ([token, bobId]) => {
      const client = T.client("alice", token);
      const all = async (iterable) => {
        const items = [];
        for await (const item of iterable) items.push(item);
        return items;
      };
      return {
        messages: (await all(client.everyPrivateMessage(bobId, { pageSize: 3 }))).map((m) => m.id),
        chats: (await all(client.everyConversation({ pageSize: 2 }))).length,
        groups: (await all(client.everyGroup({ pageSize: 1 }))).map((g) => g.group_id),
      };
    }""", [alice.token, bob.user_id])
    assert got["messages"] == sent[::-1]  # newest first, each once across three pages
    assert got["chats"] == 2 + 3  # two private chats and three groups
    assert sorted(got["groups"]) == sorted(g["group_id"] for g in groups)
