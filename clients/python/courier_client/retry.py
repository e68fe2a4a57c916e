"""When and how long to wait before trying again."""
from __future__ import annotations

import random

from courier_client.errors import CourierConnectionError, CourierError

# A send that got one of these was not taken yet, or the server cannot say whether it
# was: the same request (same client_msg_id) may be sent again and is delivered once.
RETRIED_STATUSES = frozenset({503, 429})


def backoff_delay(attempt: int, base: float, ceiling: float) -> float:
    """Exponential backoff with "equal jitter": attempt 0 waits base/2 to base, each next
    attempt up to twice as long, never more than `ceiling`; the random half keeps many
    clients cut off together from coming back all at once."""
    top = min(ceiling, base * 2.0 ** min(attempt, 30))
    return top / 2 + random.random() * top / 2


def is_retryable(error: CourierError) -> bool:
    """Network errors, 503, 429, and 409 send_in_progress (another attempt with the same
    client_msg_id is still under way) are passing failures."""
    return (isinstance(error, CourierConnectionError) or error.status in RETRIED_STATUSES
            or (error.status == 409 and error.code == "send_in_progress"))
