"""Malformed HTTP is answered with the contract's JSON error, then the connection is
closed (a request that cannot be parsed cannot be trusted to end where it says):
400 bad_request, 413 too_large for a chunked body over the limit, 431 headers_too_large
for headers over 64 KiB. Tornado answered a bare "400 Bad Request" with no body, and
nothing at all to headers over its limit (entrypoints/http/tornado_overrides.py).

Embedded only: this is the HTTP layer below every route, the same code in both modes."""
from __future__ import annotations

import logging
import re

import pytest

from entrypoints.http.body_limit import MAX_BODY_BYTES
from tests.e2e.raw_http import assert_json_error, exchange

pytestmark = pytest.mark.embedded_only

MALFORMED = {
    "header line without a colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "folded header line": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "NUL in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-\x00A: a\r\n\r\n",
    "bad request line": b"GARBAGE\r\nHost: x\r\n\r\n",
    "request line without a version": b"GET /healthz\r\nHost: x\r\n\r\n",
    "request line of HTTP/2": b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
    "NUL in the request line": b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n",
    "both Transfer-Encoding and Content-Length": (
        b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"),
    "both, on the fast send path": (
        b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"),
    "two different Content-Lengths": b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\n{}",
    "unsupported Transfer-Encoding": b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad chunk size": b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk size line over 64 bytes": (
        b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 100 + b"\r\n"),
    "chunk without its CRLF": (
        b"POST /api/v1/groups HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n"),
    "no Host header": b"GET /healthz HTTP/1.1\r\n\r\n",
    "two Host headers": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "a query string of too many fields": b"GET /healthz?" + b"a=1&" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.gen_test(timeout=60)
async def test_malformed_http_is_a_json_400_and_the_connection_closes(courier, api, request_bytes):
    assert_json_error(await exchange(courier.port, request_bytes), 400, "bad_request")
    assert (await api.call("GET", "/healthz")).status == 200


def chunked(total: int, size: int = 65536) -> list[bytes]:
    """A chunked body of `total` bytes, in chunks of `size`."""
    pieces = []
    while total > 0:
        n = min(size, total)
        pieces.append(b"%x\r\n" % n + b"x" * n + b"\r\n")
        total -= n
    return pieces + [b"0\r\n\r\n"]


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/groups"])
@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_body_over_the_limit_is_a_json_413_and_the_connection_closes(courier, api, path):
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
    answer = await exchange(courier.port, head + b"Transfer-Encoding: chunked\r\n\r\n",
                            *chunked(MAX_BODY_BYTES + 100_000))
    assert_json_error(answer, 413, "too_large")
    assert (await api.call("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_a_chunked_body_within_the_limit_is_read(courier, api):
    """The chunked reader still serves (here: a JSON body the route refuses as invalid)."""
    answer = await exchange(courier.port, b"POST /api/v1/users/register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                          b"Transfer-Encoding: chunked\r\n\r\n", *chunked(1000, 100))
    assert answer.status == 400 and answer.json()["error"]["code"] == "invalid_input", answer


@pytest.mark.gen_test(timeout=60)
async def test_headers_over_64_kib_are_a_json_431_and_the_connection_closes(courier, api):
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    assert_json_error(await exchange(courier.port, big), 431, "headers_too_large")
    # Many headers, each small, count the same way.
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(2000))
    assert_json_error(await exchange(courier.port, many + b"\r\n"), 431, "headers_too_large")
    # Just under the limit, the request is served.
    fits = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * (60 * 1024) + b"\r\n\r\n"
    assert (await exchange(courier.port, fits)).status == 200
    assert (await api.call("GET", "/healthz")).status == 200


@pytest.mark.gen_test(timeout=60)
async def test_refusals_are_logged_and_counted_like_any_other_answer(courier, api, caplog):
    caplog.set_level(logging.INFO)
    await exchange(courier.port, MALFORMED["header line without a colon"])
    await exchange(courier.port, MALFORMED["both Transfer-Encoding and Content-Length"])
    await exchange(courier.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
    access = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert any(re.match(r"400 - - \(127\.0\.0\.1\) ", line) for line in access), access
    assert any(re.match(r"400 POST /api/v1/groups \(127\.0\.0\.1\) ", line) for line in access), access
    assert any(re.match(r"431 - - \(127\.0\.0\.1\) ", line) for line in access), access
    metrics = (await api.call("GET", "/metrics")).body
    assert 'courier_errors_total{code="bad_request"} 2.0' in metrics, metrics
    assert 'courier_errors_total{code="headers_too_large"} 1.0' in metrics, metrics
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text

