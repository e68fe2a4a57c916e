"""The `before` of GET /groups: a GroupPosition as an opaque string.

Clients pass back the previous page's `next_before` and never read it; base64 keeps
them from coming to depend on what is inside (a time and a group id today)."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from application.ports import GroupPosition
from domain import errors
from domain.model import validate_id

_POSITION = re.compile(r"([0-9]{1,20}):(.{1,64})")
_MAX_TOKEN = 128


def position_token(position: GroupPosition) -> str:
    raw = f"{position.joined}:{position.group_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_position(raw: Any) -> GroupPosition | None:
    """A `before` from the query string: None when absent or empty, else the position
    it stands for; anything that is not a next_before this server gave out is a 400."""
    if raw is None or raw == "":
        return None
    bad = errors.InvalidInput("before must be a next_before value from the previous page")
    if not isinstance(raw, str) or not raw.isascii() or len(raw) > _MAX_TOKEN:
        raise bad
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, ValueError):  # not base64, or not ASCII inside
        raise bad from None
    match = _POSITION.fullmatch(text)
    if match is None:
        raise bad
    try:
        group_id = validate_id(match.group(2))
    except errors.InvalidInput:
        raise bad from None
    return GroupPosition(int(match.group(1)), group_id)
