"""POST /users/register, POST /users/login, POST /users/logout, POST /users/logout-all,
GET /users/me, PATCH /users/me, GET /users/me/settings, GET /users?username=, GET /users/{id},
GET /users/{id}/presence"""
from __future__ import annotations

from entrypoints.http.base import BaseHandler


class RegisterHandler(BaseHandler):
    requires_auth = False

    async def post(self) -> None:
        body = self.json_body()
        user = await self.register(body.get("username"), body.get("password"), self.client_address)
        self.reply(201, user.public())


class LoginHandler(BaseHandler):
    requires_auth = False

    async def post(self) -> None:
        body = self.json_body()
        result = await self.log_in(body.get("username"), body.get("password"), self.client_address)
        self.reply(200, {**result.user.public(), "token": result.token.token, "expires_at": result.token.expires_at})


class LogoutHandler(BaseHandler):
    """POST /users/logout: the token it is called with is refused from now on, by every
    gateway, and the sockets opened with it close with 4001 (entrypoints/session_watch.py)."""

    async def post(self) -> None:
        await self.log_out.this_token(self.claims)
        self.reply(204, None)


class LogoutAllHandler(BaseHandler):
    """POST /users/logout-all: every token of the caller issued until now is refused."""

    async def post(self) -> None:
        await self.log_out.everywhere(self.user_id)
        self.reply(204, None)


class MeHandler(BaseHandler):
    """GET /users/me (the contract's {"user_id", "username"}, exactly), and PATCH
    /users/me {"send_read_receipts"?, "show_presence"?}: the caller, with its settings."""

    async def get(self) -> None:
        user = await self.get_user.by_id(self.user_id)
        self.reply(200, user.public())

    async def patch(self) -> None:
        body = self.json_body()
        user = await self.get_user.by_id(self.user_id)
        self.reply(200, {**user.public(), **await self.user_settings.update(self.user_id, body)})


class SettingsHandler(BaseHandler):
    """GET /users/me/settings: {"send_read_receipts", "show_presence"}."""

    async def get(self) -> None:
        self.reply(200, await self.user_settings.get(self.user_id))


class PresenceHandler(BaseHandler):
    """GET /users/{user_id}/presence: {"type": "presence", "user_id", "status", "last_seen"}."""

    async def get(self, user_id: str) -> None:
        self.reply(200, await self.get_presence(user_id))


class FindUserHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.get_user.by_username(self.get_query_argument("username", None))
        self.reply(200, user.public())


class UserHandler(BaseHandler):
    """GET /users/{user_id}: a name for an id seen in a message or a group
    (beyond the contract's table; clients need it to show who wrote)."""

    async def get(self, user_id: str) -> None:
        user = await self.get_user.require(user_id)
        self.reply(200, user.public())
