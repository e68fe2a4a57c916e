"""What one group message of 1,000 recipients costs Redis in deliver.lua (docs/perf-notes.md,
fourth round): 50 deliveries to warm up, then 300 through RedisInbox, one at a time;
prints Redis's own time per EVALSHA and for the appends in it (INFO commandstats).

    .venv/bin/python scripts/bench/deliver_micro.py [redis://127.0.0.1:6379/13]

Uses (and empties) the given database: never point it at one that holds data.
scripts/bench/deliver_callgrind.sh runs it against a redis-server under callgrind,
which counts instructions: the same figure on a busy machine as on a quiet one.
"""
import asyncio
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from adapters.redis.inbox import RedisInbox  # noqa: E402
from domain.model import GROUP, Message  # noqa: E402

MEMBERS = 1000


async def main(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    try:
        inbox = RedisInbox(client)
        members = [str(uuid.uuid4()) for _ in range(MEMBERS)]
        group_id = str(uuid.uuid4())

        def message(n: int) -> Message:
            return Message(type=GROUP, id=str(uuid.uuid4()), from_user_id=members[0], group_id=group_id,
                           content=f"bench|g1000r50x1|{n}|123456.789", created_at=1_700_000_000)

        for n in range(50):
            await inbox.deliver(message(n), members[1:])
        await client.config_resetstat()
        started = time.perf_counter()
        for n in range(300):
            await inbox.deliver(message(n), members[1:])
        wall = (time.perf_counter() - started) / 300
        stats = await client.info("commandstats")
        script = stats["cmdstat_evalsha"]["usec_per_call"]
        appends = stats.get("cmdstat_xadd", {}).get("usec", 0) / 300
        print(f"per message: script {script:.0f} us in Redis, of which appends {appends:.0f} us; "
              f"deliver() {wall * 1e6:.0f} us from the client")
    finally:
        await client.flushdb()
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/13"))
