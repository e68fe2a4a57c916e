"""The cursor's text form (docs/design/large-groups.md, section 3.2).

A cursor is a vector: the user's position in its own log, plus a position in the stream
of each large group where something was delivered since the user's join, plus perhaps
the id of a checkpoint (a vector kept by the server, for users in many busy groups).
Clients treat the text as opaque. Two forms:

    legacy   <ms>-<n>                      own position only: today's form, kept exactly
    v2       "2" *( "." part )             part: o<pos> | k<n64> | g<n64>~<pos>
             pos = <n64>~<n64>             n64: base64url digits, most significant first

A vector with no checkpoint and no group is always written in the legacy form, so that a
user in no large group (or only in quiet ones) sees no change at all. Every text this
module writes is at most MAX_CURSOR_LENGTH characters of [A-Za-z0-9_.~-] (RFC 3986
unreserved: safe in a URL unescaped); a vector that would not fit is folded into a
checkpoint by its caller (fits_inline says when)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain import errors

# A stream entry id: (milliseconds, sequence), two unsigned 64-bit integers.
Position = tuple[int, int]

VERSION = "2"
MAX_CURSOR_LENGTH = 320
INLINE_GROUPS = 16
MAX_N64 = 2**64 - 1

_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"  # base64url's order
_VALUE = {digit: value for value, digit in enumerate(_DIGITS)}
_N64 = "([A-Za-z0-9_-]{1,11})"  # 11 digits hold 66 bits: the range is checked after decoding
_OWN_PART = re.compile(f"o{_N64}~{_N64}")
_CHECKPOINT_PART = re.compile(f"k{_N64}")
_GROUP_PART = re.compile(f"g{_N64}~{_N64}~{_N64}")
# As domain.model.cursor_position reads it: ASCII digits only.
_LEGACY = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


@dataclass(frozen=True, slots=True)
class Cursor:
    """A cursor as its text says it. `own` None: from the start of what the own log
    retains (a client that had no cursor and was given only group entries so far).
    `groups`: stream number (sno) -> position, only the groups the text lists; every
    other group is at the checkpoint's position, else at the user's join."""

    own: Position | None
    groups: Mapping[int, Position] = field(default_factory=dict)
    checkpoint: int | None = None

    @property
    def is_legacy(self) -> bool:
        return self.checkpoint is None and not self.groups


def parse_cursor(text: Any) -> Cursor:
    """The cursor a text names; InvalidCursor (400 invalid_cursor) for anything that is
    not one: too long, malformed, an unknown part, a stream (or the checkpoint) listed
    twice, more than INLINE_GROUPS groups, or a number outside 64 bits."""
    if not isinstance(text, str):
        raise errors.InvalidCursor()
    if len(text) > MAX_CURSOR_LENGTH:
        raise errors.InvalidCursor(f"a cursor is at most {MAX_CURSOR_LENGTH} characters")
    if text.startswith(VERSION + "."):
        return _parse_v2(text.split(".")[1:])
    match = _LEGACY.fullmatch(text)
    if match is None:
        raise errors.InvalidCursor()
    return Cursor(own=(_decimal(match.group(1)), _decimal(match.group(2))))


def format_cursor(cursor: Cursor) -> str:
    """The text of a cursor: the legacy form exactly when it lists no checkpoint and no
    group. ValueError for a cursor with no text (nothing in it) or one that does not fit
    (check fits_inline first: the caller folds such a vector into a checkpoint)."""
    text = _text(cursor)
    if len(cursor.groups) > INLINE_GROUPS or len(text) > MAX_CURSOR_LENGTH:
        raise ValueError(f"a cursor of {len(cursor.groups)} groups and {len(text)} characters does not fit")
    return text


def fits_inline(cursor: Cursor) -> bool:
    """Whether format_cursor can write this cursor as it is."""
    return len(cursor.groups) <= INLINE_GROUPS and len(_text(cursor)) <= MAX_CURSOR_LENGTH


def own_part(position: Position) -> str:
    """The own position's part of a v2 text, with its leading "." (for spliced_around)."""
    return ".o" + _position(position)


def group_part(stream: int, position: Position) -> str:
    """A group's part of a v2 text, with its leading "." (for spliced_around)."""
    return f".g{_n64(stream)}~{_position(position)}"


def spliced_around(cursor: Cursor, stream: int | None) -> tuple[str, str] | None:
    """The text of `cursor` around the part of `stream` (None: the own position), which
    the caller adds: before + own_part(p) (or group_part(stream, p)) + after is exactly
    format_cursor of `cursor` with that stream at p, whatever `cursor` says of it. None
    when that cursor is written in the legacy form (the own log, with no checkpoint and
    no group). A gateway keeps the two per connection, so that a push to many sockets
    formats only the one part that moved (docs/design/large-groups.md, section 6.3).
    The caller checks the length (MAX_CURSOR_LENGTH, INLINE_GROUPS) itself."""
    groups = cursor.groups
    if stream is None and cursor.checkpoint is None and not groups:
        return None
    parts = [VERSION]  # every part but the stream's, in _text's order
    at = 1  # where the stream's part goes: the own position comes first
    if stream is not None and cursor.own is not None:
        parts.append("o" + _position(cursor.own))
    if cursor.checkpoint is not None:
        parts.append("k" + _n64(cursor.checkpoint))
    if stream is not None:
        at = len(parts) + sum(1 for other in groups if other < stream)
    parts.extend(f"g{_n64(other)}~{_position(groups[other])}" for other in sorted(groups) if other != stream)
    return ".".join(parts[:at]), "".join("." + part for part in parts[at:])


def stream_id(position: Position) -> str:
    """A position as a stream id and legacy cursor: "<ms>-<n>"."""
    return f"{position[0]}-{position[1]}"


def _text(cursor: Cursor) -> str:
    if cursor.is_legacy:
        if cursor.own is None:
            raise ValueError("a cursor with no position at all has no text: it is no cursor")
        return stream_id(cursor.own)
    parts = [VERSION]
    if cursor.own is not None:
        parts.append("o" + _position(cursor.own))
    if cursor.checkpoint is not None:
        parts.append("k" + _n64(cursor.checkpoint))
    # Any order parses; ascending streams make the text of one vector always the same.
    parts.extend(f"g{_n64(stream)}~{_position(cursor.groups[stream])}" for stream in sorted(cursor.groups))
    return ".".join(parts)


def _parse_v2(parts: list[str]) -> Cursor:
    own: Position | None = None
    checkpoint: int | None = None
    groups: dict[int, Position] = {}
    for part in parts:
        if (match := _OWN_PART.fullmatch(part)) is not None:
            if own is not None:
                raise errors.InvalidCursor("a cursor lists its own position once")
            own = (_decode(match.group(1)), _decode(match.group(2)))
        elif (match := _CHECKPOINT_PART.fullmatch(part)) is not None:
            if checkpoint is not None:
                raise errors.InvalidCursor("a cursor names one checkpoint at most")
            checkpoint = _decode(match.group(1))
        elif (match := _GROUP_PART.fullmatch(part)) is not None:
            stream = _decode(match.group(1))
            if stream in groups:
                raise errors.InvalidCursor("a cursor lists each group once")
            groups[stream] = (_decode(match.group(2)), _decode(match.group(3)))
            if len(groups) > INLINE_GROUPS:
                raise errors.InvalidCursor(f"a cursor lists at most {INLINE_GROUPS} groups")
        else:
            raise errors.InvalidCursor()
    return Cursor(own=own, groups=groups, checkpoint=checkpoint)


def _position(position: Position) -> str:
    return f"{_n64(position[0])}~{_n64(position[1])}"


def _n64(value: int) -> str:
    if not 0 <= value <= MAX_N64:
        raise ValueError(f"{value} is not an unsigned 64-bit integer")
    digits = []
    while True:
        value, digit = divmod(value, 64)
        digits.append(_DIGITS[digit])
        if value == 0:
            return "".join(reversed(digits))


def _decode(digits: str) -> int:
    value = 0
    for digit in digits:
        value = value * 64 + _VALUE[digit]
    return _in_range(value)


def _decimal(digits: str) -> int:
    return _in_range(int(digits))


def _in_range(value: int) -> int:
    # Stream ids are two unsigned 64-bit integers: a larger number names no entry.
    if value > MAX_N64:
        raise errors.InvalidCursor("a cursor's numbers are 64-bit")
    return value
