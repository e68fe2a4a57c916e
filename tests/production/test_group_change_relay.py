"""A gateway that made a group change (issue 14), or moved a read marker (issue 15), and
died before appending its event: the change's announcement, stored with it in MySQL,
is relayed by `courier worker`, and appended once however often it is relayed."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from sqlalchemy import create_engine, pool, text

from application.conversations import private_conversation
from domain.events import ReadMarker, read_marker_id
from domain.model import PRIVATE
from tests.production.support import production_settings, until_announced

pytestmark = [pytest.mark.redis, pytest.mark.mysql]


def store_announcement(database_url: str, event: dict, recipients: list[str], age: int) -> None:
    """What a gateway's change transaction leaves when the gateway dies right after it."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO group_announcements (event_id, record, recipient_ids, created_at)"
                " VALUES (:id, :record, :recipients, :at)"),
                {"id": event["id"], "record": json.dumps(event), "recipients": json.dumps(recipients),
                 "at": int(time.time()) - age})
    finally:
        engine.dispose()


@pytest.mark.gen_test(timeout=90)
async def test_the_worker_relays_an_unannounced_change_once(redis_url, mysql_url, secret, commands, gateways, api):
    settings = production_settings(redis_url, mysql_url, secret)
    gateway = await gateways(settings).start()
    client = api(gateway)
    owner, bob = await client.register(), await client.register()
    group = await client.create_group(owner, "team", [bob])
    socket = await client.connect(bob, events=True)
    renamed = {"type": "group_updated", "id": str(uuid.uuid4()), "group_id": group["group_id"],
               "name": "renamed by a gateway that died", "by_user_id": owner.user_id,
               "created_at": int(time.time()) - 60}
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, store_announcement, mysql_url, renamed, [owner.user_id, bob.user_id], 60)
    worker = commands("worker", settings, name="relay-worker").start()
    await worker.ready()
    frame = await socket.next(timeout=20)
    assert {k: frame[k] for k in renamed} == renamed and frame["cursor"]
    await until_announced(mysql_url)
    # Relayed again (the worker died after the append, before it marked it done): the
    # log's marker keeps it from being appended twice.
    await loop.run_in_executor(None, store_announcement, mysql_url, renamed, [owner.user_id, bob.user_id], 60)
    await until_announced(mysql_url)
    assert await socket.nothing(within=1.0)
    events = (await client.events(bob)).body["events"]
    assert [e["id"] for e in events if e["id"] == renamed["id"]] == [renamed["id"]]
    assert "relayed 1 event" in worker.output()


@pytest.mark.gen_test(timeout=90)
async def test_the_worker_relays_a_read_marker_left_behind_once(redis_url, mysql_url, secret, commands, gateways,
                                                               api):
    settings = production_settings(redis_url, mysql_url, secret)
    gateway = await gateways(settings).start()
    client = api(gateway)
    a, b = await client.register(), await client.register()
    r = await client.send(a, b, "read me")
    assert r.status == 201, r
    sender, reader_device = await client.connect(a, events=True), await client.connect(b, events=True)
    conversation = private_conversation(a.user_id, b.user_id)
    marker = ReadMarker(id=read_marker_id(b.user_id, conversation, 1), user_id=b.user_id,
                        conversation_type=PRIVATE, conversation_id=a.user_id, seq=1)
    loop = asyncio.get_running_loop()
    # b's gateway moved the marker and stored its announcement (reader, then the receipt's
    # recipient), then died before appending it.
    await loop.run_in_executor(None, store_announcement, mysql_url, marker.to_record(), [b.user_id, a.user_id], 60)
    worker = commands("worker", settings, name="relay-read-worker").start()
    await worker.ready()
    for socket in (reader_device, sender):
        frame = await socket.next(timeout=20)
        assert {k: frame[k] for k in ("type", "id", "user_id", "seq")} == {
            "type": "read", "id": marker.id, "user_id": b.user_id, "seq": 1}, frame
    await until_announced(mysql_url)
    # The worker died after the append and before the mark: relayed again, appended once.
    await loop.run_in_executor(None, store_announcement, mysql_url, marker.to_record(), [b.user_id, a.user_id], 60)
    await until_announced(mysql_url)
    assert await sender.nothing(within=1.0) and await reader_device.nothing()
    for account in (a, b):
        events = (await client.events(account)).body["events"]
        assert [e["id"] for e in events if e["type"] == "read"] == [marker.id]
