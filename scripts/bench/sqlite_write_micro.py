"""What one group commit of the embedded inbox costs on its own (docs/perf-notes.md, fifth
round): SqliteInbox._write_batch for batches of N private sends, in one thread, with no
other load; prints the time per batch and per send (after 20 batches to warm up).

    .venv/bin/python scripts/bench/sqlite_write_micro.py [N]     # N: sends per batch, 62

In a closed-loop run (load.js throughput, C=128) the same batches take about four times
as long: the writer thread and the event loop share one GIL.
"""
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from adapters.memory.bus import InProcessBus  # noqa: E402
from adapters.sql import migrate  # noqa: E402
from adapters.sql.database import Database  # noqa: E402
from adapters.sql.inbox import SqliteInbox, _Send  # noqa: E402
from adapters.sql.users import SqlUserRepository  # noqa: E402
from domain.model import PRIVATE, Message, User  # noqa: E402

USERS = 400
BATCHES = 200
WARM_UP = 20


async def main(per_batch: int, db: Database) -> None:
    users = SqlUserRepository(db)
    ids = [str(uuid.uuid4()) for _ in range(USERS)]
    for i, user_id in enumerate(ids):
        await users.add(User(id=user_id, username=f"user{i}", password_hash="h"))
    inbox = SqliteInbox(db, InProcessBus())
    loop = asyncio.get_running_loop()
    times = []
    for batch_number in range(BATCHES):
        batch = []
        for k in range(per_batch):
            n = batch_number * per_batch + k
            sender, recipient = ids[n % USERS], ids[(n + 1) % USERS]
            message = Message(type=PRIVATE, id=str(uuid.uuid4()), from_user_id=sender, to_user_id=recipient,
                              content="hello there", created_at=int(time.time()))
            send = _Send(message, [recipient], loop.create_future())
            send.trim = inbox._due_for_trim(send.recipient_ids)
            batch.append(send)
        started = time.perf_counter()
        db.call(True, inbox._write_batch, batch)  # in this thread: nothing else runs
        times.append(time.perf_counter() - started)
    times = times[WARM_UP:]
    mean = statistics.mean(times)
    print(f"{per_batch} sends per batch: p50 {statistics.median(times) * 1e3:.2f} ms, mean {mean * 1e3:.2f} ms "
          f"per batch; {mean / per_batch * 1e6:.0f} us per send")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/courier.db"
        migrate.upgrade(url)
        database = Database(url, workers=2)
        try:
            asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 62, database))
        finally:
            database.close()
