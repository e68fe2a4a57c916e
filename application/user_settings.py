"""A user's settings: GET /api/v1/users/me/settings and PATCH /api/v1/users/me.

GET /users/me stays the contract's {"user_id", "username"}; the settings are their own
object, and PATCH answers the user with every setting as it now stands."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from application.ports import PresencePreferences, ReceiptPreferences
from application.presence import PresenceTracker
from domain import errors

SEND_READ_RECEIPTS, SHOW_PRESENCE = "send_read_receipts", "show_presence"
SETTINGS = (SEND_READ_RECEIPTS, SHOW_PRESENCE)


@dataclass
class UserSettings:
    receipts: ReceiptPreferences
    presence: PresencePreferences
    tracker: PresenceTracker

    async def get(self, user_id: str) -> dict:
        return {
            SEND_READ_RECEIPTS: await self.receipts.sends_receipts(user_id),
            SHOW_PRESENCE: user_id not in await self.presence.hidden_among([user_id]),
        }

    async def update(self, user_id: str, body: Any) -> dict:
        """{"send_read_receipts"?: bool, "show_presence"?: bool}, at least one."""
        if (not isinstance(body, dict) or not body or not set(body) <= set(SETTINGS)
                or not all(isinstance(value, bool) for value in body.values())):
            raise errors.InvalidInput(
                'the body must set one or both of {"send_read_receipts": true | false, "show_presence": true | false}')
        if SEND_READ_RECEIPTS in body:
            await self.receipts.set_sends_receipts(user_id, body[SEND_READ_RECEIPTS])
        if SHOW_PRESENCE in body:
            await self.presence.set_shows_presence(user_id, body[SHOW_PRESENCE])
            await self.tracker.preference_changed(user_id)  # its watchers see the change at once
        return await self.get(user_id)
