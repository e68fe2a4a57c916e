"""The WebSocket takes its token as a subprotocol too ("bearer.<token>" beside
"courier", which the server selects), so a browser need not put it in the URL: a
browser prints the URL of every socket that fails in its console (the chat page's
token was there), and proxies log URLs. ?token= works as before."""
from __future__ import annotations

import json

import pytest
import tornado.httpclient
import tornado.websocket

from tests.e2e.support import assert_error


async def connect(courier, subprotocols, query: str = ""):
    request = tornado.httpclient.HTTPRequest(courier.ws_url + query)
    return await tornado.websocket.websocket_connect(request, subprotocols=subprotocols)


@pytest.mark.gen_test(timeout=30)
async def test_a_token_offered_as_a_subprotocol_opens_the_socket(api, courier):
    a, b = await api.register(), await api.register()
    ws = await connect(courier, ["courier", "bearer." + b.token])
    try:
        assert ws.selected_subprotocol == "courier"
        sent = await api.send(a, b, "no token in any URL")
        frame = json.loads(await ws.read_message())
        assert frame["id"] == sent.body["id"] and frame["content"] == "no token in any URL"
    finally:
        ws.close()
    # Resuming with a cursor in the URL, the token still in the subprotocol.
    ws = await connect(courier, ["courier", "bearer." + b.token], "?cursor=" + frame["cursor"])
    try:
        second = await api.send(a, b, "after the cursor")
        assert json.loads(await ws.read_message())["id"] == second.body["id"]
    finally:
        ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_bad_token_in_the_subprotocol_is_refused_401(api, courier):
    account = await api.register()
    for protocols in (["courier", "bearer.not-a-token"], ["courier", "bearer." + account.token[:-2]], ["courier"]):
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await connect(courier, protocols)
        response = refused.value.response
        body = json.loads(response.body)
        assert refused.value.code == 401 and set(body) == {"error"}, body


@pytest.mark.gen_test(timeout=30)
async def test_a_socket_with_the_token_in_the_url_selects_no_subprotocol(api, courier):
    account = await api.register()
    ws = (await api.connect(account)).ws
    assert ws.selected_subprotocol is None
    assert_error(await api.refused(token="nope"), 401)
