"""The base of every HTTP handler: JSON in and out, auth, CORS, errors."""
from __future__ import annotations

import orjson
import tornado.web

from application.ports import TokenClaims
from domain import errors
from entrypoints.http.errors import answer_to, count_failure, finish_with_error, log_failure

# The Server header of every answer: the product, without the framework or any version
# (which would tell an attacker which known flaws to try).
SERVER = "Courier"


class ServerHeader:
    """For every RequestHandler (first among its bases): `Server: Courier` instead of
    Tornado's `TornadoServer/<version>`. set_default_headers() is Tornado's hook, called
    each time the headers are (re)set, error answers included."""

    def set_default_headers(self) -> None:
        self.set_header("Server", SERVER)


def bearer_token(request) -> str | None:
    return bearer_token_in(request.headers)


def bearer_token_in(headers) -> str | None:
    header = headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


# A page on another origin reads Retry-After too (a 429 or 503 says when to try again):
# CORS lets a script see only the simple headers unless it is named here.
EXPOSED = ("Access-Control-Expose-Headers", "Retry-After")


def cors_headers(origin: str | None, allowed: frozenset | set | None) -> list[tuple[str, str]]:
    """The CORS headers of an answer to a request from `origin` (none without one).
    Any origin when no list is set: auth is by bearer token, never by cookie, so a
    foreign page cannot act as a user by merely being opened."""
    if origin is None:
        return []
    if allowed is None:
        return [("Access-Control-Allow-Origin", "*"), EXPOSED]
    if origin.rstrip("/") in allowed:
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"), EXPOSED]
    return []


def parse_json_object(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        raise errors.InvalidInput("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise errors.InvalidInput("the body must be a JSON object")
    return body


class BaseHandler(ServerHeader, tornado.web.RequestHandler):
    """Handlers get their use cases through initialize(); this class turns
    what they return or raise into the contract's JSON answers.

    Every request is authenticated before its method runs (401 first), except on the
    handlers that say `requires_auth = False` and for CORS preflights."""

    requires_auth = True
    claims: TokenClaims

    def initialize(self, **deps) -> None:
        for name, value in deps.items():
            setattr(self, name, value)

    async def prepare(self) -> None:
        if self.requires_auth and self.request.method != "OPTIONS":
            self.claims = await self.application.settings["courier_authenticate"](self.bearer_token())

    # --- CORS ---------------------------------------------------------------
    def set_default_headers(self) -> None:
        super().set_default_headers()
        for name, value in cors_headers(self.request.headers.get("Origin"), self.settings.get("courier_origins")):
            self.set_header(name, value)

    def options(self, *args) -> None:
        """CORS preflight."""
        origin = self.request.headers.get("Origin")
        allowed = self.settings.get("courier_origins")
        if origin is not None and allowed is not None and origin.rstrip("/") not in allowed:
            raise errors.Forbidden("this origin is not allowed")
        self.set_header("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    def check_xsrf_cookie(self) -> None:
        pass  # bearer tokens, no cookies: nothing for XSRF to ride on

    # --- input --------------------------------------------------------------
    def json_body(self) -> dict:
        return parse_json_object(self.request.body)

    def bearer_token(self) -> str | None:
        return bearer_token(self.request)

    @property
    def user_id(self) -> str:
        """The caller, from the bearer token (checked in prepare())."""
        return self.claims.user_id

    @property
    def client_address(self) -> str:
        """The client's address (past the trusted proxies: see client_address.py)."""
        return self.request.remote_ip

    # --- output -------------------------------------------------------------
    def reply(self, status: int, body) -> None:
        self.set_status(status)
        if body is None:
            self.finish()
            return
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs) -> None:
        answer = answer_to(kwargs.get("exc_info", (None, None, None))[1], status_code)
        count_failure(self.settings.get("courier_metrics"), answer)
        self.clear_header("Content-Type")
        for name, value in answer.headers:
            self.set_header(name, value)
        finish_with_error(self, answer.status, answer.code, answer.message)

    def log_exception(self, typ, value, tb) -> None:
        log_failure(self.request.method, self.request.path, value)


class NotFoundHandler(BaseHandler):
    requires_auth = False

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404, "no such endpoint")
