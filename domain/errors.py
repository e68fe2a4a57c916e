"""Domain errors. Each carries a stable machine code; the HTTP layer maps the
class to a status once (entrypoints/http/errors.py)."""
from __future__ import annotations

from typing import Any


class CourierError(Exception):
    code = "error"

    def __init__(self, message: str = "", **details: Any):
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        self.details = details


# 400 ---------------------------------------------------------------------
class InvalidInput(CourierError):
    """The request is malformed or invalid."""

    code = "invalid_input"


class InvalidUsername(InvalidInput):
    """A username is 3 to 32 characters from letters, digits, '_', '.' and '-'."""

    code = "invalid_username"


class InvalidPassword(InvalidInput):
    """A password is 8 to 1024 characters."""

    code = "invalid_password"


class InvalidContent(InvalidInput):
    """Content must be non-empty text."""

    code = "invalid_content"


class InvalidCursor(InvalidInput):
    """The cursor is not one this server handed out."""

    code = "invalid_cursor"


# 401 ---------------------------------------------------------------------
class InvalidCredentials(CourierError):
    """Wrong username or password."""

    code = "invalid_credentials"


class InvalidToken(CourierError):
    """The token is missing, malformed or expired."""

    code = "invalid_token"


# 403 ---------------------------------------------------------------------
class Forbidden(CourierError):
    """You are not allowed to do this."""

    code = "forbidden"


class NotYourMessage(Forbidden):
    """Only a message's sender may edit it; only its sender, or the group's owner, delete it."""

    code = "not_your_message"


class EditWindowClosed(Forbidden):
    """This message is too old to edit."""

    code = "edit_window_closed"


class NotAMember(Forbidden):
    """You are not a member of this group."""

    code = "not_a_member"


class NotAllowed(Forbidden):
    """Only the channel's owner may post in it."""

    code = "not_allowed"


# 404 ---------------------------------------------------------------------
class NotFound(CourierError):
    """Not found."""

    code = "not_found"


class UserNotFound(NotFound):
    """No such user."""

    code = "user_not_found"


class GroupNotFound(NotFound):
    """No such group."""

    code = "group_not_found"


class MessageNotFound(NotFound):
    """No such message (or not one the caller may change)."""

    code = "message_not_found"


# 409 ---------------------------------------------------------------------
class Conflict(CourierError):
    """Conflict."""

    code = "conflict"


class UsernameTaken(Conflict):
    """This username is taken."""

    code = "username_taken"


class AlreadyAMember(Conflict):
    """The user is already a member of this group."""

    code = "already_a_member"


class SendInProgress(Conflict):
    """A send with this client_msg_id is still being delivered; retry it shortly."""

    code = "send_in_progress"


class ClientMsgIdReused(Conflict):
    """This client_msg_id went with a message to another conversation: a client_msg_id retries one message."""

    code = "client_msg_id_reused"


class ChangedMeanwhile(Conflict):
    """The message was changed by another request at the same moment; send yours again."""

    code = "changed_meanwhile"


class SendSuperseded(SendInProgress):
    """A retry with this client_msg_id sends the message now; retry shortly for its outcome."""


# 410 ---------------------------------------------------------------------
class CursorExpired(CourierError):
    """The cursor is older than what is retained; use the history calls."""

    code = "cursor_expired"


class CursorUnknown(CursorExpired):
    """The cursor is after your inbox's newest message: not one given out here; use the history calls."""


# 413 ---------------------------------------------------------------------
class ContentTooLong(CourierError):
    """The content is longer than the limit."""

    code = "content_too_long"


# 429 ---------------------------------------------------------------------
class RateLimited(CourierError):
    """Too many requests; retry later."""

    code = "rate_limited"

    def __init__(self, retry_after: float, message: str = ""):
        super().__init__(message)
        self.retry_after = retry_after


# 503 ---------------------------------------------------------------------
class ServiceUnavailable(CourierError):
    """A backing service is unavailable; retry later."""

    code = "service_unavailable"


class GroupIsLarge(ServiceUnavailable):
    """The group became large: its messages go to its own stream now; send again."""

    # Raised by Inbox.deliver for a group whose small-era counter was switched off
    # (docs/design/large-groups.md, section 4.2): nothing was written, and the caller sends
    # the message again by the large path. A caller that does not know large groups lets it
    # through as the 503 it is (a gateway of the previous version answers 503 there too).


class NoGroupStream(ServiceUnavailable):
    """The group's stream is not set up yet; send by the small path."""

    # Raised by GroupStreams.deliver when the group's switch is not applied yet (its
    # announcement is in flight, or waiting for the relay): the small path is still the
    # right one then, as the old counter is not switched off yet.


class Overloaded(ServiceUnavailable):
    """The server is busy with this kind of work right now; retry in a moment."""

    code = "overloaded"

    def __init__(self, retry_after: float, message: str = ""):
        super().__init__(message)
        self.retry_after = retry_after
