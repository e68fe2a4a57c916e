"""Sends, the pull, and the history calls."""
from __future__ import annotations

from entrypoints.http.base import BaseHandler


class MessagesHandler(BaseHandler):
    """GET /messages is the pull. (POST /messages, a private send, is answered before
    the application: entrypoints/http/fast_send.py.)"""

    async def get(self) -> None:
        result = await self.pull(
            self.user_id, self.get_query_argument("cursor", None), self.get_query_argument("limit", None)
        )
        self.reply(200, {
            "messages": [d.public() for d in result.deliveries],
            "next_cursor": result.next_cursor,
            "has_more": result.has_more,
        })


class EventsHandler(BaseHandler):
    """GET /api/v1/events: the caller's whole log after a cursor (the event view)."""

    async def get(self) -> None:
        user_id = self.user_id
        result = await self.pull_events(
            user_id, self.get_query_argument("cursor", None), self.get_query_argument("limit", None)
        )
        self.reply(200, {
            "events": [d.public_for(user_id) for d in result.deliveries],
            "next_cursor": result.next_cursor,
            "has_more": result.has_more,
        })


class GroupMessagesHandler(BaseHandler):
    async def post(self, group_id: str) -> None:
        message = await self.send_group(self.user_id, group_id, self.json_body())
        self.settings["courier_metrics"].accepted.inc()
        self.reply(201, message.public())

    async def get(self, group_id: str) -> None:
        page = await self.history.group(self.user_id, group_id, *paging(self))
        self.reply(200, {"messages": [m.public() for m in page.messages], "next_before": page.next_before})


def paging(handler: BaseHandler):
    return handler.get_query_argument("before", None), handler.get_query_argument("limit", None)


class ConversationHandler(BaseHandler):
    """GET only (it used to inherit GroupMessagesHandler.post: a POST was a 500)."""

    async def get(self, peer_id: str) -> None:
        page = await self.history.private(self.user_id, peer_id, *paging(self))
        self.reply(200, {"messages": [m.public() for m in page.messages], "next_before": page.next_before})


class MessageHandler(BaseHandler):
    """PATCH /api/v1/messages/{id} {"content"}: its sender edits it (within the edit
    window); DELETE: its sender, or the group's owner, deletes it (application/edits.py)."""

    async def patch(self, message_id: str) -> None:
        message = await self.change_messages.edit(self.user_id, message_id, self.json_body())
        self.reply(200, message.public())

    async def delete(self, message_id: str) -> None:
        await self.change_messages.delete(self.user_id, message_id)
        self.reply(204, None)
