"""The errors a Courier client raises."""
from __future__ import annotations

import email.utils
import json
import time


class CourierError(Exception):
    """An error answer of the Courier API: its HTTP `status`, the `code` of its JSON body
    (`{"error": {"code", "message"}}`, e.g. "user_not_found", "rate_limited") and its
    `message`. `retry_after` is the answer's Retry-After in seconds (429, some 503), or None.

    A failure to reach the server at all is a CourierConnectionError (status 0)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.code!r}, {self.message!r})"


class CourierConnectionError(CourierError):
    """The server could not be reached, or the connection failed before an answer came
    (refused, reset, timed out). For a send this does not say the message was not taken:
    the client retries it with the same client_msg_id, so it is delivered once."""

    def __init__(self, message: str):
        super().__init__(0, "network_error", message)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_answer(status: int, body: bytes | None, retry_after: str | None = None) -> CourierError:
    """The CourierError of an error answer: the code and message of its JSON body, or,
    for a body that is not the API's (a proxy's page), a code made from the status."""
    code, message = f"http_{status}", f"HTTP {status}"
    try:
        error = json.loads(body or b"")["error"]
        code, message = str(error["code"]), str(error.get("message", message))
    except (ValueError, TypeError, KeyError):
        pass
    return CourierError(status, code, message, parse_retry_after(retry_after))
