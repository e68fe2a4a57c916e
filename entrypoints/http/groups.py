"""Groups: create, list, get, rename, add a member, invite, leave or remove."""
from __future__ import annotations

from entrypoints.http.base import BaseHandler


class GroupsHandler(BaseHandler):
    async def post(self) -> None:
        body = self.json_body()
        group = await self.groups.create(self.user_id, body.get("name"), body.get("member_ids"), body.get("kind"))
        self.reply(201, group.public())

    async def get(self) -> None:
        page = await self.groups.list_mine(
            self.user_id, self.get_query_argument("before", None), self.get_query_argument("limit", None)
        )
        self.reply(200, {"groups": [g.public() for g in page.groups], "next_before": page.next_before})


class GroupHandler(BaseHandler):
    async def get(self, group_id: str) -> None:
        self.reply(200, (await self.groups.get(self.user_id, group_id)).public())

    async def patch(self, group_id: str) -> None:
        group = await self.groups.rename(self.user_id, group_id, self.json_body().get("name"))
        self.reply(200, group.public())


class GroupMembersHandler(BaseHandler):
    async def post(self, group_id: str) -> None:
        group = await self.groups.add_member(self.user_id, group_id, self.json_body().get("user_id"))
        self.reply(200, group.public())


class GroupInvitationsHandler(BaseHandler):
    async def post(self, group_id: str) -> None:
        invitation = await self.groups.invite(self.user_id, group_id, self.json_body().get("user_id"))
        self.reply(201 if invitation.new else 200, invitation.public())


class GroupMemberHandler(BaseHandler):
    async def delete(self, group_id: str, member_id: str) -> None:
        await self.groups.remove_member(self.user_id, group_id, member_id)
        self.reply(204, None)
