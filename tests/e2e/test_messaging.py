"""Private sends over HTTP: the 201 answer, validation, auth, idempotency, the rate
limit, and contents kept byte for byte on every way out (201, push, pull, history)."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.support import assert_error, eventually, is_uuid, with_settings

MESSAGES = "/api/v1/messages"
PRIVATE_FIELDS = {"type", "id", "from_user_id", "to_user_id", "content", "created_at", "seq"}


@pytest.mark.gen_test(timeout=30)
async def test_send_answers_201_with_the_message_object_without_cursor(api):
    a, b = await api.register(), await api.register()
    before = int(time.time())
    r = await api.send(a, b, "hello")
    assert r.status == 201, r
    assert set(r.body) == PRIVATE_FIELDS
    assert r.body["type"] == "private"
    assert is_uuid(r.body["id"])
    assert r.body["from_user_id"] == a.user_id
    assert r.body["to_user_id"] == b.user_id
    assert r.body["content"] == "hello"
    assert isinstance(r.body["created_at"], int) and before <= r.body["created_at"] <= int(time.time())
    second = await api.send(a, b, "hello")
    assert second.status == 201 and second.body["id"] != r.body["id"]


@pytest.mark.gen_test(timeout=30)
async def test_send_to_an_unknown_user_is_404(api):
    a = await api.register()
    r = await api.call("POST", MESSAGES, {"to_user_id": str(uuid.uuid4()), "content": "hi"}, a.token)
    assert_error(r, 404, "user_not_found")


@pytest.mark.gen_test(timeout=30)
async def test_malformed_to_user_id_is_400(api):
    a = await api.register()
    for to in ("not-a-uuid", "", 42, None, [a.user_id], {"id": a.user_id}, a.user_id + "x"):
        r = await api.call("POST", MESSAGES, {"to_user_id": to, "content": "hi"}, a.token)
        assert_error(r, 400)
    assert_error(await api.call("POST", MESSAGES, {"content": "hi"}, a.token), 400)


@pytest.mark.gen_test(timeout=30)
async def test_content_must_be_non_empty_text(api):
    a, b = await api.register(), await api.register()
    for content in ("", None, 42, 4.2, True, ["hi"], {"text": "hi"}):
        r = await api.call("POST", MESSAGES, {"to_user_id": b.user_id, "content": content}, a.token)
        assert_error(r, 400, "invalid_content")
    r = await api.call("POST", MESSAGES, {"to_user_id": b.user_id}, a.token)
    assert_error(r, 400, "invalid_content")
    # A lone surrogate is valid JSON but not text any store can keep.
    raw = b'{"to_user_id": "' + b.user_id.encode() + b'", "content": "bad \\ud800 half"}'
    assert_error(await api.call("POST", MESSAGES, raw=raw, token=a.token), 400)
    # Nothing of that was delivered.
    pulled, _ = await api.pull_all(b)
    assert pulled == []


@pytest.mark.gen_test(timeout=30)
async def test_content_of_the_default_maximum_is_accepted(api):
    a, b = await api.register(), await api.register()
    r = await api.send(a, b, "é" * 4000)
    assert r.status == 201 and r.body["content"] == "é" * 4000
    assert_error(await api.send(a, b, "é" * 4001), 413, "content_too_long")


@with_settings(max_content_length=10)
@pytest.mark.gen_test(timeout=30)
async def test_content_longer_than_the_limit_is_413(api):
    a, b = await api.register(), await api.register()
    assert (await api.send(a, b, "0123456789")).status == 201
    assert (await api.send(a, b, "😀" * 10)).status == 201  # characters, not bytes
    assert_error(await api.send(a, b, "01234567890"), 413, "content_too_long")
    assert_error(await api.send(a, b, "😀" * 11), 413, "content_too_long")
    pulled, _ = await api.pull_all(b)
    assert [m["content"] for m in pulled] == ["0123456789", "😀" * 10]


@pytest.mark.gen_test(timeout=30)
async def test_the_body_must_be_a_json_object(api):
    a = await api.register()
    for raw in (b"", b"{", b"not json", b"{'single': 'quotes'}", b"\xff\xfe\x00", b'{"content": "x"} trailing'):
        assert_error(await api.call("POST", MESSAGES, raw=raw, token=a.token), 400)
    for raw in (b"[]", b'"a string"', b"42", b"null", b"true", b'[{"to_user_id": "x", "content": "y"}]'):
        assert_error(await api.call("POST", MESSAGES, raw=raw, token=a.token), 400)


@pytest.mark.gen_test(timeout=30)
async def test_sending_needs_a_valid_token(api):
    a, b = await api.register(), await api.register()
    body = {"to_user_id": b.user_id, "content": "hi"}
    assert_error(await api.call("POST", MESSAGES, body), 401, "invalid_token")
    assert_error(await api.call("POST", MESSAGES, body, token="garbage"), 401, "invalid_token")
    assert_error(await api.call("POST", MESSAGES, body, headers={"Authorization": "Bearer"}), 401)
    assert_error(await api.call("POST", MESSAGES, body, headers={"Authorization": a.token}), 401)
    # The auth check comes before the body is looked at.
    assert_error(await api.call("POST", MESSAGES, raw=b"{bad json"), 401)
    pulled, _ = await api.pull_all(b)
    assert pulled == []


@pytest.mark.gen_test(timeout=30)
async def test_a_repeated_client_msg_id_returns_the_original_and_delivers_once(api):
    a, b = await api.register(), await api.register()
    ws_b = await api.connect(b)
    first = await api.send(a, b, "once", client_msg_id="c-1")
    assert first.status == 201, first
    again = await api.send(a, b, "once", client_msg_id="c-1")
    assert again.status == 201, again
    assert again.body == first.body
    # Same id with another content: still the original message, not a new one.
    third = await api.send(a, b, "changed my mind", client_msg_id="c-1")
    assert third.status == 201 and third.body == first.body, third
    pushed = await ws_b.next()
    assert pushed["id"] == first.body["id"] and pushed["content"] == "once"
    assert await ws_b.nothing(0.3)
    pulled, _ = await api.pull_all(b)
    assert [m["id"] for m in pulled] == [first.body["id"]]
    # Another client_msg_id, or another sender with the same one, is a new message.
    other = await api.send(a, b, "twice", client_msg_id="c-2")
    assert other.status == 201 and other.body["id"] != first.body["id"]
    c = await api.register()
    by_c = await api.send(c, b, "from c", client_msg_id="c-1")
    assert by_c.status == 201 and by_c.body["id"] != first.body["id"] and by_c.body["from_user_id"] == c.user_id
    assert [f["id"] for f in await ws_b.take(2)] == [other.body["id"], by_c.body["id"]]


@pytest.mark.gen_test(timeout=30)
async def test_a_malformed_client_msg_id_is_400(api):
    a, b = await api.register(), await api.register()
    for value in ("", "x" * 129, 42, ["id"]):
        assert_error(await api.send(a, b, "hi", client_msg_id=value), 400)


@with_settings(send_rate=1)
@pytest.mark.gen_test(timeout=30)
async def test_sending_faster_than_the_rate_is_429_with_retry_after(api):
    a, b, c = await api.register(), await api.register(), await api.register()
    # A rate of 1 a second allows bursts of 2.
    assert (await api.send(a, b, "1")).status == 201
    assert (await api.send(a, b, "2")).status == 201
    r = await api.send(a, b, "3")
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    # The limit is per sender.
    assert (await api.send(c, b, "from c")).status == 201
    pulled, _ = await api.pull_all(b)
    assert [m["content"] for m in pulled] == ["1", "2", "from c"]


TRICKY_CONTENTS = [
    "你好，世界！这是一条中文消息。",
    "emoji 😀👍🏽👨‍👩‍👧‍👦 🇫🇷 and a ZWJ",
    "'; DROP TABLE messages; --",
    "Robert'); DELETE FROM users WHERE ('1'='1",
    "<script>alert('x')</script> &amp; &lt;b&gt; <b>bold</b>",
    "   leading and trailing spaces   ",
    "\n\nnewlines\r\nCRLF\n\ttab\n",
    'double "quotes" and \'single\' and `back` ticks',
    "back\\slash \\n not a newline \\u0041 \\\\",
    "%s %d {0} {} ${HOME} $(id)",
    "null \u0000 byte and \u0007 bell",
    "\u202e right-to-left override, \u00a0 nbsp, \ufeff bom",
    " ",
]


@pytest.mark.gen_test(timeout=30)
async def test_contents_come_back_byte_for_byte_everywhere(api):
    a, b = await api.register(), await api.register()
    ws_b = await api.connect(b)
    sent = []
    for content in TRICKY_CONTENTS:
        r = await api.send(a, b, content)
        assert r.status == 201, (content, r)
        assert r.body["content"] == content
        sent.append(r.body["id"])
    pushed = await ws_b.take(len(TRICKY_CONTENTS))
    assert [m["content"] for m in pushed] == TRICKY_CONTENTS
    assert [m["id"] for m in pushed] == sent
    pulled, _ = await api.pull_all(b)
    assert [m["content"] for m in pulled] == TRICKY_CONTENTS

    async def history():
        messages = await api.history_all(a, f"/conversations/{b.user_id}")
        return messages if len(messages) == len(TRICKY_CONTENTS) else None

    messages = await eventually(history)
    assert [m["content"] for m in messages] == TRICKY_CONTENTS[::-1]
    # B's view of the same conversation.
    assert [m["content"] for m in await api.history_all(b, f"/conversations/{a.user_id}")] == TRICKY_CONTENTS[::-1]


@pytest.mark.gen_test(timeout=30)
async def test_a_note_to_self_is_kept_but_not_pushed_to_the_sender(api):
    a = await api.register()
    ws_a = await api.connect(a)
    r = await api.send(a, a, "note to self")
    assert r.status == 201, r
    assert await ws_a.nothing(0.3)
