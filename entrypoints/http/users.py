"""POST /users/register, POST /users/login, GET /users/me, GET /users?username=, GET /users/{id}"""
from __future__ import annotations

from entrypoints.http.base import BaseHandler


class RegisterHandler(BaseHandler):
    async def post(self) -> None:
        body = self.json_body()
        user = await self.register(body.get("username"), body.get("password"))
        self.reply(201, user.public())


class LoginHandler(BaseHandler):
    async def post(self) -> None:
        body = self.json_body()
        result = await self.log_in(body.get("username"), body.get("password"), self.request.remote_ip)
        self.reply(200, {**result.user.public(), "token": result.token.token, "expires_at": result.token.expires_at})


class MeHandler(BaseHandler):
    async def get(self) -> None:
        user = await self.get_user.by_id(self.user_id)
        self.reply(200, user.public())


class FindUserHandler(BaseHandler):
    async def get(self) -> None:
        self.user_id  # noqa: B018 - authenticated callers only
        user = await self.get_user.by_username(self.get_query_argument("username", None))
        self.reply(200, user.public())


class UserHandler(BaseHandler):
    """GET /users/{user_id}: a name for an id seen in a message or a group
    (beyond the contract's table; clients need it to show who wrote)."""

    async def get(self, user_id: str) -> None:
        self.user_id  # noqa: B018 - authenticated callers only
        user = await self.get_user.require(user_id)
        self.reply(200, user.public())
