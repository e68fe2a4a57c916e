"""entrypoints/http/errors.answer_to: what the client is told for each kind of failure."""
from __future__ import annotations

import tornado.web

from domain import errors
from entrypoints.http.errors import ErrorAnswer, answer_to


def test_a_domain_error_has_its_own_status_code_message_and_headers():
    assert answer_to(errors.RateLimited(1.2, "slow down")) == ErrorAnswer(
        429, "rate_limited", "slow down", [("Retry-After", "2")])
    answer = answer_to(errors.GroupNotFound())
    assert (answer.status, answer.code, answer.headers) == (404, errors.GroupNotFound.code, [])


def test_a_tornado_error_keeps_its_status_and_shows_its_message_below_500_only():
    assert answer_to(tornado.web.HTTPError(404, "no such endpoint"), 404) == ErrorAnswer(
        404, "not_found", "no such endpoint", [])
    assert answer_to(tornado.web.HTTPError(503, "pool of x exhausted"), 503) == ErrorAnswer(
        503, "service_unavailable", "Service Unavailable", [])
    assert answer_to(None, 405) == ErrorAnswer(405, "method_not_allowed", "Method Not Allowed", [])


def test_anything_else_is_a_500_that_tells_nothing():
    for error in (RuntimeError("secret detail"), KeyError("x"), None):
        assert answer_to(error) == ErrorAnswer(500, "internal_error", "internal server error", [])
