"""Courier's domain: users, groups, messages and inbox cursors, with their rules.

Standard library only (and, in domain/lookalikes.py, the regex package for Unicode's
script properties). Ids are UUID strings made by an IdGenerator port, times are Unix
seconds from a Clock port, so everything here is deterministic."""
from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any

from domain import errors, lookalikes

USERNAME_PATTERN = re.compile(r"[\w.-]{3,32}")
USERNAME_KEY_MAX = 128  # characters: the key columns' length (adapters/sql/tables.py)
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
DEFAULT_MAX_CONTENT_LENGTH = 4000
GROUP_NAME_MAX = 100


# Usernames ----------------------------------------------------------------
# A name is registered as typed and shown as registered; two keys find it:
# - username_key (case-folded): the spelling regardless of case. Unique.
# - normalised_username_key (NFKC and case-folded): what the name looks like.
#   Unique too, since look-alike names were refused: "ａｌｉｃｅ" (fullwidth) and
#   "𝐚𝐥𝐢𝐜𝐞" (mathematical bold) can no longer be registered beside "alice".
# Accounts registered before that rule keep their spelling; those that now look
# like an older one are found by username_key alone (alembic revision 0002).


def username_key(username: str) -> str:
    """The spelling of a name regardless of case: "Alice" and "ALICE" are one name."""
    return username.casefold()


def normalised_username_key(username: str) -> str:
    """What a name looks like: "ＡＬＩＣＥ", "𝐚𝐥𝐢𝐜𝐞" and "Alice" are one name."""
    return lookalikes.lookalike_key(username)


def could_be_username(value: str) -> bool:
    """Whether some user could have registered this name, under today's rule or an
    older one. Look nobody up by any other string: MySQL's comparison ignores trailing
    spaces, and "alice " would find alice there (logging in, with a failure throttle of
    its own for every spelling). No such string has an NFKC form ending in a space."""
    return USERNAME_PATTERN.fullmatch(value) is not None


def validate_username(username: Any) -> str:
    """A new name: 3 to 32 letters, digits, '_', '.' and '-', and still so once
    normalised (NFKC: fullwidth and styled letters become plain ones), of one script
    (domain/lookalikes.py says which mixes pass), with digits of one numbering system
    and no invisible characters."""
    if not isinstance(username, str) or not could_be_username(username):
        raise errors.InvalidUsername()
    normalised = unicodedata.normalize("NFKC", username)
    if USERNAME_PATTERN.fullmatch(normalised) is None:
        raise errors.InvalidUsername(
            "a username must still be 3 to 32 letters, digits, '_', '.' and '-' once normalised"
            f" (NFKC makes {normalised!r} of it)")
    if hidden := lookalikes.invisible(username) or lookalikes.invisible(normalised):
        raise errors.InvalidUsername(
            "a username may not contain invisible characters ("
            + ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '')}".rstrip() for c in hidden) + ")")
    if scripts := lookalikes.mixed_scripts(normalised):
        raise errors.InvalidUsername(
            f"a username may not mix scripts ({' and '.join(scripts)}): its letters are of one script,"
            " or Japanese (Han, Hiragana, Katakana), Chinese (Han, Bopomofo) or Korean (Han, Hangul),"
            " each also with Latin; digits, '_', '.' and '-' go with any script")
    if lookalikes.mixed_digits(normalised):
        raise errors.InvalidUsername("a username may not mix digits of different numbering systems")
    if len(normalised_username_key(username)) > USERNAME_KEY_MAX:
        raise errors.InvalidUsername("a username is too long once normalised")
    return username


def validate_password(password: Any) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise errors.InvalidPassword()
    _require_utf8(password, errors.InvalidPassword)
    return password


def validate_content(content: Any, max_length: int) -> str:
    """Content is non-empty text, kept byte for byte: no trimming, no escaping."""
    if not isinstance(content, str) or content == "":
        raise errors.InvalidContent("content must be a non-empty string")
    if len(content) > max_length:
        raise errors.ContentTooLong(f"content is longer than {max_length} characters")
    _require_utf8(content, errors.InvalidContent)
    return content


def validate_group_name(name: Any) -> str:
    if not isinstance(name, str) or name == "" or len(name) > GROUP_NAME_MAX:
        raise errors.InvalidInput(f"name must be a non-empty string of at most {GROUP_NAME_MAX} characters")
    _require_utf8(name, errors.InvalidInput)
    return name


def validate_id(value: Any, what: str = "id") -> str:
    """Ids are UUID strings; anything else cannot name a user, group or message."""
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{what} must be a UUID string")
    try:
        uuid.UUID(value)
    except ValueError:
        raise errors.InvalidInput(f"{what} must be a UUID string") from None
    return value


def validate_client_msg_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise errors.InvalidInput("client_msg_id must be a string of 1 to 128 characters")
    _require_utf8(value, errors.InvalidInput)
    return value


def _require_utf8(text: str, error: type[errors.CourierError]) -> None:
    # JSON can carry lone surrogates ("\ud800") that no UTF-8 store accepts.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error("text must be valid Unicode") from None


@dataclass(slots=True)
class User:
    id: str
    username: str
    password_hash: str

    def public(self) -> dict:
        return {"user_id": self.id, "username": self.username}


KIND_GROUP, KIND_CHANNEL = "group", "channel"  # a channel: only the owner posts (large from creation)
KINDS = (KIND_GROUP, KIND_CHANNEL)


def validate_kind(kind: Any) -> str:
    """POST /groups' `kind`: "group" (also when absent) or "channel"."""
    if kind is None:
        return KIND_GROUP
    for known in KINDS:
        if kind == known:
            return known
    raise errors.InvalidInput('kind must be "group" or "channel"')


@dataclass(slots=True)
class Group:
    """A group and, when members_loaded, its members in join order. The large-group
    fields (docs/design/large-groups.md, section 4.1) have defaults, so a group made
    without them is a small one whose count is its member list's."""

    id: str
    name: str
    owner_id: str
    member_ids: list[str] = field(default_factory=list)
    kind: str = KIND_GROUP
    stream: int | None = None  # the stream number (sno) once the group is large; None while small
    member_count: int = -1  # -1: len(member_ids), filled in below
    member_version: int = 0  # one more with every add and remove (orders the streams' changes)
    members_loaded: bool = True  # False: member_ids is not given (a large group read without them)

    def __post_init__(self) -> None:
        if self.member_count < 0:
            self.member_count = len(self.member_ids)

    @property
    def large(self) -> bool:
        return self.stream is not None

    def is_member(self, user_id: str) -> bool:
        return user_id in self.member_ids

    def require_member(self, user_id: str) -> None:
        if not self.is_member(user_id):
            raise errors.NotAMember()

    def require_poster(self, user_id: str) -> None:
        """A member may post; in a channel, only the owner. (The stream's script checks
        again, atomically with the append: this is what a send by the small path, before a
        channel's switch is applied, or with large groups off, has.)"""
        self.require_member(user_id)
        if self.kind == KIND_CHANNEL and user_id != self.owner_id:
            raise errors.NotAllowed()

    def may_remove(self, actor_id: str, target_id: str) -> bool:
        """A member may leave; the owner may remove anyone."""
        return actor_id == target_id or actor_id == self.owner_id

    def successor_owner(self, leaving_id: str) -> str | None:
        """When the owner leaves, the longest-standing remaining member takes over."""
        for member in self.member_ids:
            if member != leaving_id:
                return member
        return None

    def public(self) -> dict:
        return {
            "group_id": self.id,
            "name": self.name,
            "owner_id": self.owner_id,
            "member_ids": list(self.member_ids),
            "kind": self.kind,
            "member_count": self.member_count,
        }


PRIVATE, GROUP = "private", "group"


@dataclass(frozen=True, init=False)
class Message:
    type: str  # PRIVATE or GROUP
    id: str
    from_user_id: str
    content: str
    created_at: int
    to_user_id: str | None = None
    group_id: str | None = None
    client_msg_id: str | None = None
    # Its place in its conversation (a private pair, or a group): 1, 2, 3... in the
    # order the server accepted the conversation's messages, the same for everyone.
    # None until the inbox accepts the message (Inbox.deliver gives it one).
    seq: int | None = None
    # When its sender last edited it, and when it was deleted (Unix seconds; None: never).
    # A deleted message has no content left: its public object is a tombstone.
    edited_at: int | None = None
    deleted_at: int | None = None

    def __init__(self, type: str, id: str, from_user_id: str, content: str, created_at: int,
                 to_user_id: str | None = None, group_id: str | None = None, client_msg_id: str | None = None,
                 seq: int | None = None, edited_at: int | None = None, deleted_at: int | None = None) -> None:
        # The fields go straight into the instance's dict (so no __slots__): the __init__
        # a frozen dataclass generates calls object.__setattr__ once per field, eleven
        # calls for each of the few Messages every send builds, which cost more than all
        # the rest of building one (docs/perf-notes.md, twenty-fifth round). The fields
        # are listed above and here: a test keeps the two lists the same.
        fields = self.__dict__
        fields["type"] = type
        fields["id"] = id
        fields["from_user_id"] = from_user_id
        fields["content"] = content
        fields["created_at"] = created_at
        fields["to_user_id"] = to_user_id
        fields["group_id"] = group_id
        fields["client_msg_id"] = client_msg_id
        fields["seq"] = seq
        fields["edited_at"] = edited_at
        fields["deleted_at"] = deleted_at

    def with_seq(self, seq: int) -> Message:
        """This message as accepted, at its place in its conversation. (What
        dataclasses.replace does, without its generic walk over the fields: once per send.)"""
        return Message(self.type, self.id, self.from_user_id, self.content, self.created_at, self.to_user_id,
                       self.group_id, self.client_msg_id, seq, self.edited_at, self.deleted_at)

    def with_change(self, content: str, edited_at: int | None, deleted_at: int | None) -> Message:
        """This message as an edit or deletion left it: the content and the times change,
        everything else (seq, client_msg_id, created_at) stays as it was sent."""
        return Message(self.type, self.id, self.from_user_id, content, self.created_at, self.to_user_id,
                       self.group_id, self.client_msg_id, self.seq, edited_at, deleted_at)

    @property
    def conversation(self) -> str:
        """The conversation the message belongs to: "g:<group id>", or "p:<lower user
        id>:<higher user id>" for a private pair (whichever way the message went)."""
        if self.type == GROUP:
            return "g:" + str(self.group_id)
        low, high = sorted((self.from_user_id, str(self.to_user_id)))
        return f"p:{low}:{high}"

    def public(self, cursor: str | None = None) -> dict:
        """The message object of the contract (section 4)."""
        body: dict[str, Any] = {"type": self.type, "id": self.id}
        if self.type == GROUP:
            body["group_id"] = self.group_id
        body["from_user_id"] = self.from_user_id
        if self.type == PRIVATE:
            body["to_user_id"] = self.to_user_id
        if self.deleted_at is not None:
            # A tombstone: where the message was, without its content (gone from the store).
            body["created_at"] = self.created_at
            body["seq"] = self.seq
            body["deleted"] = True
            if cursor is not None:
                body["cursor"] = cursor
            return body
        body["content"] = self.content
        body["created_at"] = self.created_at
        if self.seq is not None:
            body["seq"] = self.seq
        if self.edited_at is not None:
            body["edited_at"] = self.edited_at
        if cursor is not None:
            body["cursor"] = cursor
        return body

    def to_record(self) -> dict:
        """Everything needed to rebuild the message (streams, notifications)."""
        record = self.public()
        if self.client_msg_id is not None:
            record["client_msg_id"] = self.client_msg_id
        if self.deleted_at is not None:
            record["deleted_at"] = self.deleted_at
        return record

    @property
    def record_is_public(self) -> bool:
        """to_record() holds nothing more than public() (so one encoding serves both)."""
        return self.client_msg_id is None and self.deleted_at is None

    @classmethod
    def from_record(cls, record: dict) -> Message:
        # Every notification a gateway reads is made a Message here: the arguments by
        # position and the optional ints converted inline, cheaper than by keyword and a
        # call each (docs/perf-notes.md, twenty-fifth round).
        seq, edited_at, deleted_at = record.get("seq"), record.get("edited_at"), record.get("deleted_at")
        return cls(
            record["type"],
            record["id"],
            record["from_user_id"],
            record.get("content", ""),
            int(record["created_at"]),
            record.get("to_user_id"),
            record.get("group_id"),
            record.get("client_msg_id"),
            None if seq is None else int(seq),
            None if edited_at is None else int(edited_at),
            None if deleted_at is None else int(deleted_at),
        )


# Cursors ----------------------------------------------------------------
# A cursor is "<major>-<minor>" with two non-negative integers (a Redis stream
# entry id has exactly this form; the SQLite inbox uses "<seq>-0"). Clients
# treat it as opaque; the server orders cursors by the integer pair.
# ASCII digits only: \d would also take "\u0665-\u0660", which int() reads but no
# inbox ever handed out (and Redis rejects as a stream id).
_CURSOR_PATTERN = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def cursor_position(cursor: str) -> tuple[int, int]:
    match = _CURSOR_PATTERN.fullmatch(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise errors.InvalidCursor()
    return int(match.group(1)), int(match.group(2))


def validate_cursor(cursor: Any) -> str | None:
    if cursor is None or cursor == "":
        return None
    cursor_position(cursor)  # InvalidCursor for anything but a cursor
    return str(cursor)


def is_after(cursor: str, other: str | None) -> bool:
    return other is None or cursor_position(cursor) > cursor_position(other)
