"""The conversation list and read markers."""
from __future__ import annotations

from application.conversations import ReadResult, format_position
from application.ports import ConversationState
from entrypoints.http.base import BaseHandler


def conversation_public(state: ConversationState) -> dict:
    if state.group_id is not None:
        body: dict = {"type": "group", "group_id": state.group_id, "name": state.name}
    else:
        body = {"type": "private", "user_id": state.peer_id, "username": state.name}
    body.update(
        last_message=state.last_message.public() if state.last_message is not None else None,
        last_seq=state.last_seq,
        read_seq=state.read_seq,
        unread_count=state.unread_count,
        updated_at=state.activity // 1_000_000,
    )
    return body


class ConversationsHandler(BaseHandler):
    async def get(self) -> None:
        page = await self.list_conversations(
            self.user_id, self.get_query_argument("before", None), self.get_query_argument("limit", None)
        )
        self.reply(200, {"conversations": [conversation_public(s) for s in page.conversations],
                         "next_before": format_position(page.next_before)})


def read_public(result: ReadResult) -> dict:
    return {"read_seq": result.read_seq, "unread_count": result.unread_count}


class PrivateReadHandler(BaseHandler):
    async def post(self, peer_id: str) -> None:
        self.reply(200, read_public(await self.mark_read.private(self.user_id, peer_id, self.json_body())))


class GroupReadHandler(BaseHandler):
    async def post(self, group_id: str) -> None:
        self.reply(200, read_public(await self.mark_read.group(self.user_id, group_id, self.json_body())))


class GroupReadsHandler(BaseHandler):
    """GET /groups/{id}/reads: {"reads": [{"user_id", "read_seq"}]} (read_seq null for a
    member who turned read receipts off)."""

    async def get(self, group_id: str) -> None:
        reads = await self.group_reads(self.user_id, group_id)
        self.reply(200, {"reads": [{"user_id": r.user_id, "read_seq": r.read_seq} for r in reads]})
