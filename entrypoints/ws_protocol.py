"""The token of a WebSocket upgrade offered as a subprotocol.

A browser cannot put an Authorization header on a WebSocket, so the contract takes
the token in the URL (/ws?token=...). But a browser prints the URL of every socket
that fails to connect in its console (Chromium: "WebSocket connection to
'ws://host/ws?token=eyJ...' failed"), and proxies and load balancers log URLs: the
token went with it. So a client may instead offer two subprotocols,

    new WebSocket("wss://host/ws", ["courier", "bearer." + token])

and the server, taking the token from the second, selects the first ("courier"),
as RFC 6455 wants a server to answer one of the protocols offered. The chat page
does this; ?token= and the Authorization header still work as before."""
from __future__ import annotations

COURIER_PROTOCOL = "courier"
TOKEN_PREFIX = "bearer."


def offered(headers) -> list[str]:
    return [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]


def protocol_token(headers) -> str | None:
    """The token offered as "bearer.<token>", if any."""
    for protocol in offered(headers):
        if protocol.startswith(TOKEN_PREFIX) and len(protocol) > len(TOKEN_PREFIX):
            return protocol[len(TOKEN_PREFIX):]
    return None


def selected_protocol(headers) -> str | None:
    """The subprotocol the upgrade answers: "courier" when offered, else none."""
    return COURIER_PROTOCOL if COURIER_PROTOCOL in offered(headers) else None
