"""Domain errors -> HTTP status, in one place."""
from __future__ import annotations

import math
from http import HTTPStatus

import orjson

from domain import errors

STATUS_BY_ERROR: list[tuple[type[errors.CourierError], int]] = [
    (errors.InvalidInput, 400),
    (errors.InvalidCredentials, 401),
    (errors.InvalidToken, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.CursorExpired, 410),
    (errors.ContentTooLong, 413),
    (errors.RateLimited, 429),
    (errors.ServiceUnavailable, 503),
]


def status_of(error: errors.CourierError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


# Tornado's own errors (unknown route, wrong method, bad request line) get codes too.
CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(status: int, code: str | None = None, message: str | None = None) -> bytes:
    """The contract's error body {"error": {"code", "message"}}; the code and message
    default to those of the status itself."""
    body = {"code": code or CODE_BY_STATUS.get(status, "error"), "message": message or HTTPStatus(status).phrase}
    return orjson.dumps({"error": body})


def error_headers(error: errors.CourierError) -> list[tuple[str, str]]:
    """Headers an error answer carries: Retry-After on a 429 (whole seconds, at least 1)."""
    if isinstance(error, errors.RateLimited):
        return [("Retry-After", str(max(1, math.ceil(error.retry_after))))]
    return []


def finish_with_error(handler, status: int, code: str | None = None, message: str | None = None) -> None:
    """End a RequestHandler's request with the contract's error body."""
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.finish(error_body(status, code, message))
