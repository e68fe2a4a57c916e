"""courier_client: an async client of the Courier chat backend.

    from courier_client import Client, CourierError

    async with Client("http://127.0.0.1:8080") as client:
        await client.login("alice", "correct horse")
        await client.send_private(bob_id, "hi")          # retried safely, delivered once
        async with client.events() as stream:             # resumes after any drop
            async for event in stream:
                ...

See README.md beside this package for the whole API."""
from courier_client.client import Client
from courier_client.errors import CourierConnectionError, CourierError
from courier_client.events import RESYNC, EventStream, cursor_order
from courier_client.retry import backoff_delay, is_retryable

__all__ = ["Client", "CourierError", "CourierConnectionError", "EventStream", "RESYNC", "cursor_order",
           "backoff_delay", "is_retryable"]
__version__ = "0.1.0"
