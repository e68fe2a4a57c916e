"""The event view's pull and resume (issue 14, point 3), in both modes: a socket in the
event view (/ws?events=1) that reconnects with its cursor gets everything it missed -
its user's own sends, messages from others, group changes - exactly once, then live
events; a cursor older than what the log retains answers 410 cursor_expired on
GET /api/v1/events and closes the socket with 4410, as for messages
(tests/e2e/test_pull_resume.py; production: tests/production/test_trimmed_inbox.py)."""
from __future__ import annotations

import asyncio

import pytest

from tests.e2e.support import assert_error, with_settings

MESSAGE_TYPES = ("private", "group")


def describe(event: dict) -> tuple:
    """What an event says, without its ids and cursor."""
    if event["type"] in MESSAGE_TYPES:
        return event["type"], event["from_user_id"], event["content"], event.get("client_msg_id")
    detail = event["name"] if event["type"] == "group_updated" else event["user_id"]
    return event["type"], event["group_id"], detail, event["by_user_id"]


async def change(api, actor, method: str, path: str, body=None) -> None:
    r = await api.call(method, f"/api/v1{path}", body, actor.token)
    assert r.status in (200, 204), r


@pytest.mark.gen_test(timeout=60)
async def test_the_event_view_resumes_after_a_reconnect_exactly_once_group_changes_included(api):
    owner, bob, carol = await api.register(), await api.register(), await api.register()
    ws = await api.connect(bob, events=True)
    original = await api.connect(bob)
    gid = (await api.create_group(owner, "team", [bob]))["group_id"]
    seen = await ws.next()
    assert seen["type"] == "group_updated"
    ws.close()
    await ws.closed()
    # Missed while away: own sends (with client_msg_id), messages from others, every kind
    # of group change, the group's messages.
    missed = [
        (await api.send(bob, owner, "mine", client_msg_id="m-1")).body["id"],
        (await api.send(owner, bob, "theirs")).body["id"],
    ]
    await change(api, owner, "POST", f"/groups/{gid}/members", {"user_id": carol.user_id})
    missed.append((await api.send_group(carol, gid, "hello all")).body["id"])
    await change(api, owner, "PATCH", f"/groups/{gid}", {"name": "the team"})
    missed.append((await api.send_group(bob, gid, "mine in the group", client_msg_id="m-2")).body["id"])
    await change(api, carol, "DELETE", f"/groups/{gid}/members/{carol.user_id}")
    pulled, _ = await api.events_all(bob, seen["cursor"])
    assert [describe(e) for e in pulled] == [
        ("private", bob.user_id, "mine", "m-1"),
        ("private", owner.user_id, "theirs", None),
        ("member_added", gid, carol.user_id, owner.user_id),
        ("group", carol.user_id, "hello all", None),
        ("group_updated", gid, "the team", owner.user_id),
        ("group", bob.user_id, "mine in the group", "m-2"),
        ("member_removed", gid, carol.user_id, carol.user_id),
    ]
    assert [e["id"] for e in pulled if e["type"] in MESSAGE_TYPES] == missed

    # Reconnect from the last cursor seen: the very frames of the pull, once, then live.
    ws = await api.connect(bob, cursor=seen["cursor"], events=True)
    assert await ws.take(len(pulled)) == pulled
    await change(api, owner, "PATCH", f"/groups/{gid}", {"name": "live"})
    live = await ws.next()
    assert describe(live) == ("group_updated", gid, "live", owner.user_id)
    assert await ws.nothing()
    # A second reconnect, from the middle of the replay, goes on from there.
    again = await api.connect(bob, cursor=pulled[3]["cursor"], events=True)
    assert await again.take(len(pulled) - 4 + 1) == pulled[4:] + [live]
    assert await again.nothing()
    # The original-view socket, open all along, had the messages from others only.
    frames = await original.take(2)
    assert [describe(f) for f in frames] == [("private", owner.user_id, "theirs", None),
                                             ("group", carol.user_id, "hello all", None)]
    assert [f["cursor"] for f in frames] == [pulled[1]["cursor"], pulled[3]["cursor"]]
    assert await original.nothing()


@pytest.mark.gen_test(timeout=60)
async def test_event_view_resumes_under_load_have_no_gap_and_no_duplicate(api):
    """Several sockets resume from one cursor while own sends, messages from others and
    group changes land during their replay: each gets the log after the cursor exactly
    once, in the pull's order and with its cursors."""
    a, b, c = await api.register(), await api.register(), await api.register()
    gid = (await api.create_group(a, "busy", [b]))["group_id"]
    start = (await api.events(b)).body["next_cursor"]
    for i in range(150):
        await (api.send(b, a, f"mine {i}", client_msg_id=f"k{i}") if i % 3 == 0 else
               api.send_group(a, gid, f"g {i}") if i % 3 == 1 else api.send(a, b, f"p {i}"))

    async def churn(wave: int) -> None:
        await change(api, a, "POST", f"/groups/{gid}/members", {"user_id": c.user_id})
        await change(api, a, "PATCH", f"/groups/{gid}", {"name": f"busy {wave}"})
        await change(api, a, "DELETE", f"/groups/{gid}/members/{c.user_id}")

    sockets = []
    for wave in range(4):
        sending = asyncio.gather(*(api.send(a, b, f"during {wave}.{i}") for i in range(10)),
                                 *(api.send(b, a, f"mine during {wave}.{i}") for i in range(5)), churn(wave))
        sockets.append(await api.connect(b, cursor=start, events=True))
        await sending
    pulled, _ = await api.events_all(b, start)
    assert len(pulled) == 150 + 4 * (10 + 5 + 3)
    assert len({e["id"] for e in pulled}) == len(pulled)
    for ws in sockets:
        frames = await ws.take(len(pulled), timeout=15)
        assert await ws.nothing(0.05)
        assert frames == pulled


# Embedded only: Redis trims whole macro nodes (100 entries by default), so a log of
# maxlen 5 is never trimmed there; tests/production/test_trimmed_inbox.py covers production.
@pytest.mark.embedded_only
@with_settings(inbox_maxlen=5, group_changes=0)
@pytest.mark.gen_test(timeout=30)
async def test_an_event_cursor_older_than_what_the_log_retains_is_410_and_4410(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    ws = await api.connect(b, events=True)
    gid = (await api.create_group(a, "team", [b]))["group_id"]
    first = await ws.next()  # the group's creation: the oldest event of b's log
    # Group changes and own sends push it out of what the log retains.
    for i in range(4):
        await change(api, a, "POST", f"/groups/{gid}/members", {"user_id": c.user_id})
        await change(api, a, "DELETE", f"/groups/{gid}/members/{c.user_id}")
        await api.send(b, a, f"mine {i}", client_msg_id=f"k{i}")
    await ws.take(12)
    assert_error(await api.events(b, first["cursor"]), 410, "cursor_expired")
    assert_error(await api.pull(b, first["cursor"]), 410, "cursor_expired")  # one log, one retention
    for events in (True, False):
        old = await api.connect(b, cursor=first["cursor"], events=events)
        code, _ = await old.closed()
        assert code == 4410
    # Without a cursor: what is retained, the newest events, and on from inside it.
    retained, _ = await api.events_all(b)
    assert 5 <= len(retained) <= 10
    assert describe(retained[-1]) == ("private", b.user_id, "mine 3", "k3")
    r = await api.events(b, retained[0]["cursor"])
    assert r.status == 200 and r.body["events"] == retained[1:], r
    resumed = await api.connect(b, cursor=retained[0]["cursor"], events=True)
    assert await resumed.take(len(retained) - 1) == retained[1:]
    # A cursor after the newest event (made up) is refused the same way.
    major, minor = (int(part) for part in retained[-1]["cursor"].split("-"))
    ahead = f"{major + 1_000_000}-{minor}"
    assert_error(await api.events(b, ahead), 410, "cursor_expired")
    code, _ = await (await api.connect(b, cursor=ahead, events=True)).closed()
    assert code == 4410


@pytest.mark.gen_test(timeout=30)
async def test_an_event_cursor_after_the_newest_event_is_refused(api):
    a, b = await api.register(), await api.register()
    await api.send(b, a, "mine")  # b's log holds an own send only
    [event] = (await api.events(b)).body["events"]
    major, minor = (int(part) for part in event["cursor"].split("-"))
    ahead = f"{major + 1_000_000}-{minor}"
    assert_error(await api.events(b, ahead), 410, "cursor_expired")
    code, _ = await (await api.connect(b, cursor=ahead, events=True)).closed()
    assert code == 4410
    # The newest event's cursor itself is fine: nothing after it, then live.
    assert (await api.events(b, event["cursor"])).body == {"events": [], "next_cursor": event["cursor"],
                                                           "has_more": False}
    ws = await api.connect(b, cursor=event["cursor"], events=True)
    later = (await api.send(a, b, "later")).body
    assert (await ws.next())["id"] == later["id"]
