"""Errors -> HTTP answers, in one place: the status of each domain error, the
contract's error body, and what is logged and counted when a request fails (for
every handler, and for the fast send path that bypasses RequestHandler)."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from http import HTTPStatus

import orjson
import tornado.web

from domain import errors

log = logging.getLogger("courier.http")

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


# Tornado's own errors (unknown route, wrong method, malformed HTTP) get codes too.
CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    431: "headers_too_large",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(status: int, code: str | None = None, message: str | None = None) -> bytes:
    """The contract's error body {"error": {"code", "message"}}; the code and message
    default to those of the status itself."""
    body = {"code": code or CODE_BY_STATUS.get(status, "error"), "message": message or HTTPStatus(status).phrase}
    return orjson.dumps({"error": body})


def error_headers(error: errors.CourierError) -> list[tuple[str, str]]:
    """Headers an error answer carries: Retry-After on a 429, and on a 503 that knows
    when to come back (whole seconds, at least 1)."""
    if isinstance(error, errors.RateLimited | errors.Overloaded):
        return [("Retry-After", str(max(1, math.ceil(error.retry_after))))]
    return []


def finish_with_error(handler, status: int, code: str | None = None, message: str | None = None) -> None:
    """End a RequestHandler's request with the contract's error body."""
    handler.set_status(status)
    handler.set_header("Content-Type", "application/json; charset=UTF-8")
    handler.finish(error_body(status, code, message))


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    status: int
    code: str
    message: str
    headers: list[tuple[str, str]]


def answer_to(error: BaseException | None, status: int = 500) -> ErrorAnswer:
    """What the client is told when serving raised `error`: a domain error its own
    status, code, message and headers; a Tornado HTTPError (or no exception) the
    `status` Tornado chose; anything else a 500 that tells nothing of the fault."""
    if isinstance(error, errors.CourierError):
        return ErrorAnswer(status_of(error), error.code, error.message, error_headers(error))
    if isinstance(error, tornado.web.HTTPError) or (error is None and status < 500):
        shown = getattr(error, "log_message", None)
        message = shown if shown and status < 500 else HTTPStatus(status).phrase
        return ErrorAnswer(status, CODE_BY_STATUS.get(status, "error"), message, [])
    return ErrorAnswer(500, "internal_error", "internal server error", [])


def log_failure(method: str, path: str, error: BaseException) -> None:
    """A domain error or HTTPError is an answer to the client, not a fault of ours
    (the access log has it); an outage is a warning; anything else an error with
    its traceback."""
    if isinstance(error, errors.ServiceUnavailable):
        log.warning("%s %s: %s (%s)", method, path, error.message, error.__cause__)
    elif not isinstance(error, errors.CourierError | tornado.web.HTTPError):
        log.error("unexpected error on %s %s", method, path, exc_info=error)


def count_failure(metrics, answer: ErrorAnswer) -> None:
    if metrics is not None:
        metrics.errors.labels(answer.code).inc()
