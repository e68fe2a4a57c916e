"""Cursors of a user in many large groups (issue 18 point 2; docs/design/large-groups.md,
sections 3.3, 3.4, 6.4 and 22), in both modes, with COURIER_LARGE_GROUP=3: a user in 40
large groups, each with a message, gets cursors that stay URL-safe and at most 320
characters (past 16 moved groups they name a checkpoint); a pull resumed from any cursor
handed out, by a pull of either view or by a socket, gives exactly the rest; a socket
connected with a cursor replays exactly the rest and then gets the live messages of all
40 groups once each; a cursor whose checkpoint is no longer kept answers 410
cursor_expired and 4410."""
from __future__ import annotations

import re

import pytest

from tests.e2e.support import assert_error, with_settings

pytestmark = with_settings(large_group=3)

GROUPS = 40
URL_SAFE = re.compile(r"[A-Za-z0-9_.~-]{1,320}")
CLOSE_TRY_AGAIN = 1013
RING = 64  # checkpoints kept per user (adapters/*/checkpoints.py)


def assert_cursor(cursor: str) -> None:
    assert URL_SAFE.fullmatch(cursor), (len(cursor), cursor)


async def forty_groups(api):
    """`me` and three others in 40 large groups (4 members each: large at once), a
    message in each, sent by the others in turn."""
    me, *others = [await api.register() for _ in range(4)]
    groups = []
    for i in range(GROUPS):
        owner = others[i % 3]
        members = [me] + [other for other in others if other is not owner]
        groups.append((await api.create_group(owner, f"g{i}", members))["group_id"])
    sent = []
    for i, gid in enumerate(groups):
        r = await api.send_group(others[(i + 1) % 3], gid, f"first {i}")
        assert r.status == 201, r
        sent.append(r.body)
    return me, others, groups, sent


async def pages(api, account, *, events: bool, limit: int) -> tuple[list, list[str]]:
    """Every entry of a full pull of one view in pages of `limit`, and every cursor handed
    out on the way (each entry's, each next_cursor)."""
    key = "events" if events else "messages"
    entries, cursors, cursor = [], [], None
    while True:
        r = await (api.events if events else api.pull)(account, cursor, limit)
        assert r.status == 200, r
        entries += r.body[key]
        cursors += [entry["cursor"] for entry in r.body[key]]
        cursor = r.body["next_cursor"]
        cursors.append(cursor)
        if not r.body["has_more"]:
            return entries, cursors


async def rest(api, account, cursor: str, *, events: bool) -> list[str]:
    """The ids of a whole pull of one view from `cursor`."""
    if events:
        got, _ = await api.events_all(account, cursor)
    else:
        got, _ = await api.pull_all(account, cursor)
    return [entry["id"] for entry in got]


@pytest.mark.gen_test(timeout=240)
async def test_cursors_of_a_user_in_forty_large_groups_stay_short_and_resume_exactly(api):
    me, others, groups, sent = await forty_groups(api)
    for events in (False, True):
        entries, cursors = await pages(api, me, events=events, limit=7)
        ids = [entry["id"] for entry in entries]
        assert len(ids) == len(set(ids))
        messages = [entry for entry in entries if entry["type"] == "group"]
        assert sorted(m["id"] for m in messages) == sorted(body["id"] for body in sent)
        for cursor in cursors:
            assert_cursor(cursor)
        assert any(".k" in cursor for cursor in cursors), "40 moved groups: some cursor names a checkpoint"
        # (b) A pull from each cursor an entry came with gives exactly what followed it.
        for index, entry in enumerate(entries):
            assert await rest(api, me, entry["cursor"], events=events) == ids[index + 1:], index
    # Both views end at the same place: the last cursor of one resumes the other with nothing.
    _, last = await api.pull_all(me)
    assert (await api.events(me, last)).body["events"] == []


@pytest.mark.gen_test(timeout=240)
async def test_a_socket_in_forty_large_groups_replays_the_rest_then_gets_every_live_message_once(api):
    me, others, groups, sent = await forty_groups(api)
    pulled, _ = await pages(api, me, events=False, limit=5)
    start = pulled[4]["cursor"]  # after five of the 40 messages
    expected = [m["id"] for m in pulled[5:]]
    ws = await api.connect(me, cursor=start)
    replayed = await ws.take(len(expected))
    assert [m["id"] for m in replayed] == expected  # the replay is the pull's order
    for message in replayed:
        assert_cursor(message["cursor"])
    # Live: one more message in each of the 40 groups. A socket whose cursor would need
    # one more group than it can list inline is checkpointed (section 6.4); a client
    # whose socket closes for resume reconnects with its last cursor, as a real one does.
    live = []
    for i, gid in enumerate(groups):
        r = await api.send_group(others[i % 3], gid, f"live {i}")
        assert r.status == 201, r
        live.append(r.body["id"])
    got, closes, last = [], [], replayed[-1]["cursor"]
    while len(got) < len(live):
        frame = await ws.next(timeout=10)
        if frame is None:
            closes.append(ws.ws.close_code)
            assert len(closes) <= GROUPS, closes
            ws = await api.connect(me, cursor=last)
            continue
        assert_cursor(frame["cursor"])
        got.append(frame)
        last = frame["cursor"]
    assert sorted(m["id"] for m in got) == sorted(live)  # every live message, none twice
    assert await ws.nothing()
    assert all(code == CLOSE_TRY_AGAIN for code in closes), closes
    assert closes == [], f"a live socket was closed for resume {len(closes)} times"  # checkpointed instead
    # (b) for the socket's cursors: a pull from each gives exactly what the socket got after it.
    pushed = replayed + got
    for index, frame in enumerate(pushed):
        assert sorted(await rest(api, me, frame["cursor"], events=False)) == sorted(
            m["id"] for m in pushed[index + 1:]), index
    # The socket's last cursor resumes a socket with nothing, then live.
    again = await api.connect(me, cursor=last)
    assert await again.nothing()
    r = await api.send_group(others[0], groups[7], "after")
    assert r.status == 201, r
    frame = await again.next()
    assert frame["id"] == r.body["id"]
    assert_cursor(frame["cursor"])


@pytest.mark.gen_test(timeout=120)
async def test_a_cursor_whose_checkpoint_is_no_longer_kept_is_410_and_4410(api):
    me, others, groups, sent = await forty_groups(api)
    entries, _ = await api.events_all(me)
    named = [entry["cursor"] for entry in entries if ".k" in entry["cursor"]]
    assert named, "40 moved groups: some cursor names a checkpoint"
    cursor = named[0]
    assert (await api.events(me, cursor)).status == 200
    # A checkpoint never handed out.
    checkpoint = re.search(r"\.k([A-Za-z0-9_-]+)", cursor).group(1)
    unknown = cursor.replace(f".k{checkpoint}", ".kA")
    assert_error(await api.events(me, unknown), 410, "cursor_expired")
    # The user's later checkpoints take its place in the ring of 64.
    checkpoints = api.running.server.container.cursor_checkpoints()
    for i in range(RING):
        await checkpoints.save(me.user_id, {1: (i, 0)})
    assert_error(await api.events(me, cursor), 410, "cursor_expired")
    assert_error(await api.pull(me, cursor), 410, "cursor_expired")
    for events in (True, False):
        code, _ = await (await api.connect(me, cursor=cursor, events=events)).closed()
        assert code == 4410
    # History fills in; a pull without a cursor starts again from what is kept.
    assert (await api.events(me)).status == 200
