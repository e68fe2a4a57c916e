"""What the use cases need from the outside world.

Every adapter (adapters/) and every fake names the port it implements by
subclassing it, so a missing method fails at once. All I/O methods are
coroutines: an adapter whose driver blocks (pymysql, sqlite3, argon2) runs it
in an executor of its own so the event loop never stalls.

Errors: an adapter turns a failure of its backing service into
domain.errors.ServiceUnavailable; use cases never see driver exceptions."""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from domain.cursor import Position
from domain.events import Appended, Delivery, Event, GroupChange, MessageChange
from domain.model import Group, Message, User
from domain.presence import PresenceStatus, Typing
from domain.vector import Interval


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Store a new user; raise UsernameTaken if the username, regardless of case, or
        a name that looks like it (the same domain.model.normalised_username_key) exists."""

    async def get(self, user_id: str) -> User | None: ...

    async def get_by_username(self, username: str) -> User | None:
        """Look a user up by username: the one of that spelling regardless of case
        (username_key), else the one whose name looks like it (normalised_username_key;
        accounts that looked like an older one when that rule came have no such key)."""

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        """Those of `user_ids` that exist now, asked of the store that holds the users
        (a cache in front of it passes the question on: it is asked to learn of users
        removed since they were cached)."""


@dataclass(frozen=True, slots=True)
class GroupPosition:
    """Where a group stands in one member's list of groups, which is newest joined
    first: when the member joined it (an integer that grows with time, of the
    repository's choosing: SQL has microseconds), then the group's id for a tie."""

    joined: int
    group_id: str


@dataclass(frozen=True, slots=True)
class GroupPage:
    groups: list[Group]  # the most recently joined first
    next_before: GroupPosition | None  # pass back as `before` for the next page; None at the end


@dataclass(frozen=True, slots=True)
class Announcement:
    """An event to append to its recipients' logs, written by a store in the same
    transaction as the change it tells of (an outbox), so that no change is made
    without its event: a group change (GroupRepository), a message's edit or deletion
    (MessageStore.change), a moved read marker (ConversationStore.mark_read). The Outbox
    lists it until it is announced()."""

    event: Appended
    recipient_ids: list[str]
    created_at: int  # Unix seconds: when the change was made (the relay leaves it alone for a while)
    # What the change does to a large group's stream, as the store decided it in the same
    # transaction (GroupRepository): the announcer (or the relay) applies it to the
    # GroupStreams before it appends the event. None for every other change.
    stream_change: GroupSwitch | MemberChange | LoggedChange | None = None


@dataclass(frozen=True, slots=True)
class TimelinePage:
    deliveries: list[Delivery]
    next_cursor: str | None  # the last delivery's cursor; the one asked with when there is none
    has_more: bool


class LogReader(Protocol):
    """What a user's pulls read: its own log (application/inbox_reader.py), or its own
    log merged with its large groups' streams (application/timeline.py)."""

    @abstractmethod
    async def read(self, user_id: str, cursor: Any, limit: int, *, events: bool = True) -> TimelinePage:
        """Up to `limit` deliveries after `cursor` (None or "": from the start of what is
        kept), oldest first, each with the cursor that resumes right after it. `events`
        False: the original view (domain.events.in_original_view), which passes over the
        rest. InvalidCursor for a text that is no cursor this reader knows;
        CursorExpired / CursorUnknown as Inbox.read."""


class Outbox(Protocol):
    """The announcements stored with their changes and not yet appended: the use case
    that made a change appends its event and marks it announced(); one left behind (the
    process died, or the log's store failed, in between) is for RelayAnnouncements.
    Storing is the changing store's job (in its own transaction), so the port only
    lists and forgets."""

    @abstractmethod
    async def announcements(self, older_than: float, limit: int) -> list[Announcement]:
        """Announcements made at least `older_than` seconds ago (Announcement.created_at)
        and not yet announced, oldest first (in the order they were stored)."""

    @abstractmethod
    async def announced(self, event_id: str) -> None:
        """The announcement's event is in its recipients' logs: forget it (an id not
        stored, or forgotten before, is no error)."""


class GroupRepository(Protocol):
    """Every change takes its Announcement, stored with the change in one transaction
    (the Outbox lists it until it is announced).

    Every add and remove moves the group's member_count and member_version under the
    group's row lock. A group that is not large and passes the repository's threshold
    becomes large in the same transaction (docs/design/large-groups.md, section 4.2): the
    change then answers the GroupSwitch to apply to the GroupStreams; a change of a group
    that is large already answers its MemberChange; a small group's answers None. (A
    repository that knows no large groups always answers None.)"""

    async def add(self, group: Group, announce: Announcement | None = None) -> GroupSwitch | None: ...

    async def get(self, group_id: str) -> Group | None:
        """The group with its members in the order they joined."""

    async def list_for_member(self, user_id: str, before: GroupPosition | None, limit: int) -> GroupPage:
        """Up to `limit` groups of `user_id`, newest joined first, all after `before`
        (None: from the newest). The order never changes for groups already listed:
        a group joined while a client pages comes before its first page, not inside
        it. In O(limit), however many groups the user is in."""

    async def add_member(self, group_id: str, user_id: str, announce: Announcement | None = None,
                         invited: bool = False) -> GroupSwitch | MemberChange | None:
        """Add a member; raise AlreadyAMember if they are one. The user's invitation to
        the group, if any, goes in the same transaction; `invited`: the join is by that
        invitation, so NotAMember when there is none (and nothing changes)."""

    async def add_members(self, group_id: str, user_ids: Sequence[str],
                          announce: Announcement | None = None) -> GroupSwitch | MemberChange | None:
        """Add many users at once (a bulk join: tests and seeding), in one transaction:
        one member version, one announcement, and for a large group one MemberChange of
        them all, with no record (no one else is told). Their invitations are spent.
        AlreadyAMember if any is one, UserNotFound if any does not exist: nothing changes."""

    async def invite(self, group_id: str, user_id: str, invited_by: str,
                     announce: Announcement | None = None) -> bool:
        """Store the owner's invitation of a user who is not a member, with its announcement,
        in one transaction: True. An invitation stored before is kept as it is, and
        nothing is stored: False. AlreadyAMember, UserNotFound, GroupNotFound."""

    async def rename(self, group_id: str, name: str, announce: Announcement | None = None) -> None:
        """Give the group a new name (GroupNotFound when there is no such group)."""

    async def remove_member(self, group_id: str, user_id: str, new_owner_id: str | None,
                            announce: Announcement | None = None) -> MemberChange | None:
        """Remove a member; when new_owner_id is given the group's owner becomes that member."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[Message]  # newest first
    next_before: str | None  # pass back as `before` for the next, older page; None at the end


class MessageStore(Protocol):
    """The durable message table that the history calls read."""

    async def save(self, messages: Sequence[Message], order: Sequence[int] | None = None, *,
                   with_list: bool = True) -> None:
        """Insert messages idempotently by id (a message already stored is not doubled).
        Used by the persister; raise on any other failure, never drop a row silently.
        `order` gives each message its place in the order messages were accepted
        (PersistQueue.acceptance_order): history is newest first by it, whatever order
        the persisters store them in (a batch a dead persister left is stored late).
        Without it, the order of insertion stands for it. `with_list`: the conversation
        list's state after the messages inserted is written in the same transaction;
        False leaves it to record_list."""

    async def record_list(self, messages: Sequence[Message], order: Sequence[int]) -> None:
        """The conversation list's state after these stored messages (each with its seq,
        and its acceptance order as its activity), in one transaction. It only ever moves
        forward, so writing it again, or late, or for messages of several batches at once
        (one row per conversation), changes nothing more."""

    async def private_history(self, user_id: str, peer_id: str, before: str | None, limit: int) -> HistoryPage: ...

    async def get(self, message_id: str, recent: Message | None = None) -> Message | None:
        """The stored message as it is now (edited, or a tombstone). One not stored yet is
        None, unless it is given as `recent` (found in a log: RecentMessages): then that,
        with the change stored for it, if any."""

    async def change(self, message: Message, announce: Announcement) -> None:
        """Store a message's edit (its content and edited_at) or deletion (deleted_at, the
        content emptied) with its announcement (the Outbox lists it until announced()),
        in one transaction. A message not stored yet (the persister lags behind) is
        inserted as changed: the persister's own insert, idempotent by id, then leaves it
        so. Raises ChangedMeanwhile, having stored nothing, when another change of the
        message was stored in between (two requests at once: the same change takes the
        same event id, whose announcement is stored once only)."""

    async def group_history(self, group_id: str, before: str | None, limit: int) -> HistoryPage: ...

    async def last_seq(self, conversation: str) -> int:
        """The highest Message.seq stored for a conversation (Message.conversation); 0 when
        it has none. An inbox whose seq counter was lost (Redis restarted) goes on from it."""

    async def highest_seqs(self, after: str | None, limit: int) -> list[tuple[str, int]]:
        """Every conversation with stored messages and its highest seq, in pages of at most
        `limit`, in a fixed order: those after the conversation `after` (None: from the
        first). A page shorter than `limit` is the last."""


@dataclass(frozen=True, slots=True)
class ConversationPosition:
    """Where a conversation stands in a user's list (most recent activity first): its
    activity (microseconds), then its key (Message.conversation) for a tie."""

    activity: int
    conversation: str


@dataclass(frozen=True, slots=True)
class ConversationState:
    """One conversation as one of its members sees it."""

    conversation: str  # Message.conversation
    peer_id: str | None  # private: the other user
    group_id: str | None  # group: the group
    name: str | None  # the peer's username, or the group's name
    last_message: Message | None  # None: a group with no message yet
    last_seq: int
    read_seq: int
    activity: int  # microseconds since the epoch

    @property
    def unread_count(self) -> int:
        """Messages from others above the marker: one's own sends move it to themselves."""
        return max(0, self.last_seq - self.read_seq)


@dataclass(frozen=True, slots=True)
class ConversationPage:
    conversations: list[ConversationState]  # most recent activity first
    next_before: ConversationPosition | None  # None at the end


class MarkedRead(NamedTuple):
    """ConversationStore.mark_read's answer."""

    read_seq: int
    unread_count: int
    # The announcement given is still to be appended: stored now with the move, or stored
    # by an earlier call's move of the same marker (a retry) and not announced yet. False
    # when the marker did not move for it and nothing of it is pending: among others, a
    # marker already there because the user sent that message (a send's implicit move has
    # no event of its own).
    pending: bool = False


class ConversationStore(Protocol):
    """Each user's conversations and read markers, kept as messages are stored (in the
    transaction that stores them: SqliteInbox, SqlMessageStore.save) and as groups
    change (GroupRepository's transactions), exactly once per message."""

    @abstractmethod
    async def list(self, user_id: str, before: ConversationPosition | None, limit: int) -> ConversationPage:
        """Up to `limit` of the user's conversations after `before`, most recent first; O(limit)."""

    @abstractmethod
    async def last_seq(self, conversation: str) -> int:
        """The highest seq stored for the conversation (0: none)."""

    @abstractmethod
    async def mark_read(self, user_id: str, conversation: str, seq: int, *, peer_id: str | None = None,
                        group_id: str | None = None, announce: Announcement | None = None) -> MarkedRead:
        """Move the user's marker forward to `seq` (a lower one changes nothing); the
        marker and the unread count after it. The caller checked `seq` and membership.
        When the marker moves, `announce` (its read event) is stored with the move, in
        the same transaction (the Outbox lists it until announced()); when it does not,
        nothing is stored, and `pending` says whether an earlier move stored it and it is
        still to be appended."""

    @abstractmethod
    async def group_reads(self, conversation: str, member_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """Each of `member_ids` that is a user: its read_seq in the conversation (0: no
        marker yet) and whether it sends read receipts. O(members)."""


class ReceiptPreferences(Protocol):
    """Whether a user's read markers go to the other participants as receipts
    (PATCH /users/me {"send_read_receipts"}); read from the store each time (no cache),
    so that turning them off holds for the very next marker."""

    @abstractmethod
    async def sends_receipts(self, user_id: str) -> bool: ...

    @abstractmethod
    async def set_sends_receipts(self, user_id: str, value: bool) -> None: ...


class ConversationSeqs(Protocol):
    """The conversations' last seqs as the inbox hands them out, ahead of what is
    stored (production: deliver.lua's counters in Redis)."""

    @abstractmethod
    async def last_seq(self, conversation: str) -> int | None:
        """The conversation's last seq handed out; None when not known here."""


class Accepted(dict[str, str]):
    """What Inbox.deliver() answers: each recipient's cursor (recipient user id -> cursor),
    and the message as accepted, with its seq (its place in its conversation)."""

    __slots__ = ("message",)

    def __init__(self, message: Message, cursors: dict[str, str]):
        super().__init__(cursors)
        self.message = message

    @property
    def cursors(self) -> dict[str, str]:
        return self


@dataclass(frozen=True, slots=True)
class Notification:
    """One stored event (a message, a group change) and its cursor in each
    recipient's log: what goes from the inbox to every gateway."""

    event: Event
    cursors: dict[str, str]  # recipient user id -> cursor


class Inbox(Protocol):
    """Per-user event logs ("inboxes") plus the notification that follows each append.

    deliver() appends a message to every recipient's log (and to the persistence
    stream, where the mode has one), append() a group change; then - only once that
    succeeded - a Notification is published to every gateway. For one recipient,
    notifications are published in cursor order, so a gateway that has pushed
    cursor C may drop any later notification at or before C as a duplicate."""

    async def deliver(self, message: Message, recipient_ids: Sequence[str]) -> Accepted:
        """Returns each recipient's cursor, and the message with its seq (Accepted).
        After it returns the message is accepted: it survives a crash of this process.

        The seq is taken in the same atomic step as the appends: 1 + the last one of the
        message's conversation, so a conversation's seqs have no gap and follow the
        order of acceptance, whichever gateway sent each message. The notification,
        the persisted message and a delivered idempotency answer carry it too.

        The inbox owns the confirm step of the sender's idempotency key: it shares its
        store with the IdempotencyKeys, and when the message has a client_msg_id it marks
        the message's answer delivered (what IdempotencyKeys.confirm does: a free key is
        remembered delivered) in the same atomic step as the append. So no crash between
        the append and a confirm can let a retry deliver the message a second time, and
        the use cases never confirm. The inbox also appends nothing when another message
        holds the key now (this attempt was so slow that its pending answer expired and
        a retry took the key): it raises SendSuperseded, and the retry is the one that
        delivers.

        A group that became large (its messages go to its stream: GroupStreams.deliver)
        is refused with GroupIsLarge, before anything is written: no seq, no idempotency
        answer, no entry. The Redis inbox knows it by the poisoned counter, the SQLite inbox
        by the group's group_streams row, read in its transaction."""

    async def append(self, change: Appended, recipient_ids: Sequence[str]) -> dict[str, str]:
        """Append a group change, a message's edit or deletion, or a read marker
        (domain.events.Appended) to every
        recipient's log and publish it, once: a change
        whose id was appended before (a relay after a crash, two relays at once) is not
        appended again ({} then). Returns each recipient's cursor. (No persistence stream:
        the group's state itself is in the GroupRepository.) After a message's change,
        read() shows the message itself as changed (see there)."""

    async def read(self, user_id: str, after: str | None, limit: int) -> list[Delivery]:
        """Up to `limit` deliveries after cursor `after` (None: from the start of what is
        retained), oldest first. Raise CursorExpired when entries after `after` were trimmed,
        and CursorUnknown (a CursorExpired) when `after` is after the inbox's newest entry:
        every cursor handed out is an entry's, and entries are only ever trimmed from the
        old end, so such a cursor was made up or outlived the inbox's data. Taken as given,
        it would skip every message until the inbox caught up with it.

        A message reads as it is now, as history shows it: with the content and edited_at
        of its latest edit, or as a tombstone once deleted (its seq, its cursor and the
        sender's client_msg_id as they were). The SQL inbox reads the message table, which
        MessageStore.change changes; the Redis inbox lays over its entries the state that
        append() of the MessageChange kept (adapters/redis/inbox.py)."""

    async def last_cursor(self, user_id: str) -> str | None:
        """The cursor of the newest entry in the user's inbox; None when it is empty."""


@dataclass(frozen=True, slots=True)
class GroupMembership:
    """A large group a user is or was in, as its stream stands: its stream number (sno,
    what a cursor names it by), the user's intervals in it and the stream's newest id."""

    group_id: str
    stream: int
    intervals: tuple[Interval, ...]  # oldest first, disjoint; () when no record is kept (or not yet)
    newest: Position  # the id of the stream's newest entry (its internal markers count)


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """An event at its id in a group's stream."""

    position: Position
    event: Event


@dataclass(frozen=True, slots=True)
class GroupPosted:
    """A message accepted into a large group's stream: with its seq, at its stream id."""

    message: Message
    position: Position
    duplicate: bool = False  # the message was accepted before under its (sender, client_msg_id): the original


@dataclass(frozen=True, slots=True)
class GroupSwitch:
    """A group becoming large (docs/design/large-groups.md, section 4.2), as SQL decided
    it under the group's row lock: the members at that version, read with it."""

    group_id: str
    event_id: str  # the switch announcement's event id
    version: int  # the group's member version at the switch
    stream: int  # the group's stream number (sno), which SQL hands out
    owner_id: str
    channel: bool  # a broadcast channel: only the owner posts, and joins and leaves are not logged
    member_ids: tuple[str, ...]


JOIN, LEAVE, OWNER = "join", "leave", "owner"


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A change of a large group's membership, at the group's member version that SQL gave
    it (section 4.3). JOIN opens an interval for each of `user_ids` and LEAVE closes it;
    OWNER names a new owner only. `owner_id` sets the owner with any kind (an owner's leave
    names its successor). `record` is what the other members read in the stream
    (member_added / member_removed); a channel logs none, whatever is passed."""

    kind: str  # JOIN, LEAVE or OWNER
    group_id: str
    event_id: str  # the announcement's event id: the change is applied once
    version: int  # the group's member version after this change
    user_ids: tuple[str, ...] = ()
    record: GroupChange | None = None
    owner_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """A message's edit or deletion in a large group (docs/design/large-groups.md, section
    10), or the group's rename: its event, once in the group's stream, which every member
    reads within its intervals, instead of a copy in every member's own log. It changes no
    membership, so it has no member version: it waits for nothing but the group's switch."""

    group_id: str
    record: MessageChange | GroupChange  # the announcement's event

    @property
    def event_id(self) -> str:
        return self.record.id


APPLIED, DONE, WAIT = "applied", "done", "wait"


@dataclass(frozen=True, slots=True)
class Applied:
    """What GroupStreams.apply did: APPLIED, now or before (`position` is the change's
    place in the stream: a join's or a leave's, the switch's floor); DONE, applied so long
    ago that its place is forgotten (position None); WAIT, an earlier change of the group
    is not applied yet (nothing was done: apply it again later)."""

    status: str
    position: Position | None = None


class GroupStreams(Protocol):
    """The streams of the large groups (docs/design/large-groups.md): one log per group,
    read by each member within its membership intervals, instead of a copy in every
    member's own log. Timeline reads it; the large send path delivers into it, and the
    announcer applies the membership changes to it."""

    @abstractmethod
    async def memberships(self, user_id: str, streams: Collection[int]) -> list[GroupMembership]:
        """Every large group the user is or was in (production: lgm:<U>), and the groups
        of `streams` (the stream numbers a cursor names), each once, with the user's
        intervals. A stream number no group has is left out, and so is a group whose
        switch is not applied yet."""

    @abstractmethod
    async def is_member(self, group_id: str, user_id: str) -> bool | None:
        """Whether the user is in the large group now (an open interval), in one lookup,
        without its member list; None when the group has no stream (it is small, or its
        switch is not applied yet)."""

    @abstractmethod
    async def intervals(self, group_id: str, user_ids: Sequence[str]) -> dict[str, tuple[Interval, ...]]:
        """The intervals of each of `user_ids` in the group as they stand now, oldest first;
        a user with none kept (never a member, purged, or a join not applied yet) is left
        out. One read for many members: a gateway whose local members enter a group
        together (its switch) asks once for all of them."""

    @abstractmethod
    async def read(self, group_id: str, user_id: str, after: Position, limit: int) -> list[StreamEntry]:
        """Up to `limit` entries of the group's stream after `after` that are inside the
        user's intervals as they stand at this read (clipped in the same atomic step as
        the read, so a leave applied meanwhile is never read past), oldest first, with the
        internal markers passed over. Fewer than `limit` only when there are no more.

        Raise CursorExpired when entries that the user would read were trimmed: the
        effective start - `after`, or the join of the first interval after it - is
        before what the stream retains. Raise CursorUnknown (a CursorExpired) when
        `after` is after the stream's newest entry."""

    @abstractmethod
    async def deliver(self, message: Message) -> GroupPosted:
        """Accept a group message into its group's stream, in one atomic step: the next
        seq of the group, the check that the sender is a member now (and, in a channel,
        the owner), the append, and its persistence and notification.

        A message with a client_msg_id that its sender had accepted into this group
        before (within a day) is not appended again: the original comes back, marked
        duplicate. Raise NoGroupStream when the group's switch is not applied yet (send by
        the small path), NotAMember when the sender has no open interval, NotAllowed when
        a member who is not a channel's owner posts in it."""

    @abstractmethod
    async def apply(self, change: GroupSwitch | MemberChange | LoggedChange) -> Applied:
        """Apply a switch or a membership change, once (by its event id), in the order of
        the group's member versions: a change whose predecessor is not applied yet WAITs.
        A switch, applied once whatever its version, starts the stream with an internal
        marker (the floor: every present member's join), takes over the group's seq
        counter and switches the small path off (Inbox.deliver raises GroupIsLarge).

        Where a change is placed (docs/design/large-groups.md, section 15, item 5): a
        join is the id of its member_added record, so the joiner does not read it; a
        leave is the id just before its member_removed record; in a channel, which logs
        neither, both are the stream's newest id. Each affected user's set of large groups
        is written before the change is applied, so a resume never misses a group.

        A LoggedChange (a message's edit or deletion) is appended once by its event id,
        whatever the member version, and published on the group's channel like a message;
        WAIT while the group's switch is not applied. Its applied again answers APPLIED
        (at its place) or DONE, and appends and publishes nothing. From then on read()
        shows the message's entry as it is now (edited, or a tombstone), as Inbox.read
        does for own-log entries."""


class CursorCheckpoints(Protocol):
    """Vectors kept by the server for a while, so that a cursor of a user whose
    position moved in many groups names one by its id instead of listing them
    (docs/design/large-groups.md, section 3.4)."""

    @abstractmethod
    async def save(self, user_id: str, groups: Mapping[int, Position]) -> int:
        """Keep the user's positions (sno -> position) and answer their checkpoint's id."""

    @abstractmethod
    async def load(self, user_id: str, checkpoint: int) -> dict[int, Position]:
        """The positions of one of the user's checkpoints; CursorExpired when it is no
        longer kept (its time ran out, or a later checkpoint took its place)."""


class RecentMessages(Protocol):
    """Messages accepted but perhaps not yet in the MessageStore (production: the
    persister lags behind)."""

    async def find(self, user_id: str, message_id: str) -> Message | None:
        """The message, if it was accepted and is not stored yet (looked for first among
        the newest entries of `user_id`'s log; whether the caller may touch it is the
        caller's to check). None when it is not waiting to be stored; ServiceUnavailable
        when that cannot be told now (a backlog too long to read at once)."""


@dataclass(frozen=True, slots=True)
class GroupNotification:
    """An entry of a large group's stream (a message, or a change record the other
    members read), on the group's channel (lg:{G}:n): in stream order per group."""

    event: Event
    group_id: str
    position: Position  # its id in the group's stream


@dataclass(frozen=True, slots=True)
class MembershipNotification:
    """Users joined (JOIN: `position` is the join) or left (LEAVE: the leave) a large
    group, on the group's channel, in stream order with its entries."""

    group_id: str
    user_ids: tuple[str, ...]
    kind: str  # JOIN or LEAVE
    position: Position
    # The change record the other members read (not in a channel), at its own id: a
    # join's is the join itself, a leave's the entry after the leave.
    record: GroupNotification | None = None


@dataclass(frozen=True, slots=True)
class SwitchNotification:
    """A group became large (section 4.2): on the main channel, after every notification
    of its small era. `floor` is the join of every member listed."""

    group_id: str
    stream: int
    floor: Position
    member_ids: tuple[str, ...]


# What a NotificationSubscriber hands over: the own logs' notifications and the large
# groups' (docs/design/large-groups.md, section 6.1).
AnyNotification = Notification | GroupNotification | MembershipNotification | SwitchNotification


class NotificationSubscriber(Protocol):
    async def follow(self, group_ids: Collection[str]) -> None:
        """Receive the notifications of these large groups' channels too; returns once the
        subscription is confirmed (from then on nothing published there is missed). While
        the bus is lost it returns at once: on_resync follows the resubscription."""

    async def unfollow(self, group_ids: Collection[str]) -> None:
        """No longer receive these groups' channels (a message on its way may still come)."""

    async def run(
        self,
        on_notification: Callable[[AnyNotification], None],
        on_resync: Callable[..., Awaitable[None]],
    ) -> None:
        """Deliver every published notification to on_notification until cancelled.
        If notifications may have been missed (a lost connection to the bus), call
        on_resync once the subscription is live again so gateways read the gap - with no
        argument when any user's may have been missed, or with the ids of the only users
        whose may have been (on_resync(user_ids)) - then
        go on delivering at once, without waiting for what it returns to finish (it is
        awaited on its own). on_resync must therefore, before it returns, make sure no
        notification delivered after it can overtake a gap (Gateway.resync_all holds
        every connection until its replay is done)."""


class NotificationAudience(Protocol):
    """Whose notifications a gateway must be sent, where the bus sends each gateway only
    those of the users it serves (a Redis Cluster's buckets: adapters/redis/cluster_subscriber.py).
    The gateway includes a user before it reads the user's log for a new connection, and
    excludes the user once the user's last connection here is gone."""

    async def include(self, user_id: str) -> None:
        """Returns once every notification for the user published from now on reaches this
        gateway (at once while the bus is lost: on_resync follows its resubscription)."""

    def exclude(self, user_id: str) -> None:
        """The user has no connection here any more (a notification on its way may still come)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What IdempotencyKeys.remember() found already remembered for a key."""

    message: Message
    # False: pending - the send that remembered it has not confirmed its delivery
    # (it may still be delivering, or it may yet fail): it must not be answered as sent.
    delivered: bool


class IdempotencyKeys(Protocol):
    """The answer to (sender, client_msg_id), pending then delivered.

    A send remembers its message as pending before delivering it; Inbox.deliver()
    confirms it with the append, and the send forgets it when the delivery failed.
    Only a delivered answer is the original message a retry may be given back;
    a pending one says "being sent right now". A pending answer that is neither
    confirmed nor forgotten (its process died) expires after a short time
    (`pending_ttl`, about 30 seconds), so it cannot block the key for good.

    confirm() and forget() act on one message only (compare and set): a slow
    first attempt whose pending answer expired can never drop or overwrite the
    answer of the retry that took its key."""

    async def remember(self, sender_id: str, client_msg_id: str, message: Message) -> Answer | None:
        """Remember `message` as the pending answer to (sender, client_msg_id) and return
        None, unless an answer is already remembered (and, if pending, not yet expired):
        then change nothing and return that one, with its state."""

    async def confirm(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        """`message` was delivered: its pending answer becomes delivered, kept for at least
        24 hours. When the key is free (the pending answer expired), `message` is
        remembered delivered; an answer of another message is left alone. Idempotent.
        Inbox.deliver() takes this step itself, atomically with the append."""

    async def forget(self, sender_id: str, client_msg_id: str, message: Message) -> None:
        """The delivery of `message` failed: drop its pending answer, so a retry can
        succeed. A delivered answer, or another message's, is left alone (a delivery
        that failed only in its reply may have been marked delivered by the inbox)."""


class PersistQueue(Protocol):
    """Accepted messages on their way to the MessageStore (stream:persist in production),
    shared by any number of persisters. Delivery is at least once: an entry stays
    pending until acked, and one a dead consumer left pending is handed to another."""

    async def take(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Message]]:
        """Up to `count` (entry id, message) pairs for `consumer`: entries left pending too
        long by any consumer first, else new ones, waiting up to `block_ms` for them.
        An entry that cannot be decoded is moved aside by the queue itself, never returned."""

    def acceptance_order(self, entry_id: str) -> int:
        """Where an entry's message stands in the order messages were accepted, as one
        integer that increases with it (the order of the entries in the queue)."""

    async def ack(self, entry_ids: Sequence[str]) -> None:
        """The entries are stored for good: never hand them out again."""

    async def reject(self, entry_ids: Sequence[str], reason: str) -> None:
        """Move entries the store refuses aside (kept for an operator), so they stop
        blocking the queue; like ack, they are not handed out again."""

    async def backlog(self) -> int:
        """Entries not yet acked: pending with a consumer plus not yet delivered (for metrics)."""

    async def leave(self, consumer: str) -> bool:
        """`consumer` stops for good: forget it, unless something is still pending with it
        (then it stays, for another consumer to claim). True when it was forgotten."""


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    expires_at: int
    # Which token this is (revoking one token names it by this) and when it was
    # issued, in Unix seconds with a fraction (logging out everywhere revokes the
    # tokens issued before a moment). Defaults: a token that says neither.
    token_id: str = ""
    issued_at: float = 0.0

    @property
    def issued_ms(self) -> int:
        """When it was issued, in whole milliseconds (tokens carry their iat to the ms)."""
        return round(self.issued_at * 1000)


class TokenService(Protocol):
    def issue(self, user_id: str) -> IssuedToken: ...

    def verify(self, token: str) -> TokenClaims:
        """Raise InvalidToken for a malformed, forged or expired token."""


class TokenRevocations(Protocol):
    """Tokens refused before they expire: logging out ends one token, logging out
    everywhere every token of a user issued before a moment. Shared by every
    gateway of a deployment, and kept across restarts."""

    async def revoke(self, claims: TokenClaims) -> None:
        """Refuse this token from now on (until it expires, when it is refused anyway)."""

    async def revoke_all(self, user_id: str, issued_before: float, until: float) -> None:
        """Refuse every token of `user_id` issued before `issued_before`; `until` is when
        the last of them expires (the revocation may be forgotten after it). A later
        call with an earlier `issued_before` never narrows an earlier one."""

    async def revoked(self, claims: Sequence[TokenClaims]) -> list[bool]:
        """For each token, whether it is revoked (one round trip for many: the open
        sockets are checked together)."""

    def known(self, claims: TokenClaims) -> bool | None:
        """Whether this token is revoked when that is known without I/O (a memory of
        recent answers), else None: then ask revoked()."""
        return None

    async def follow(self, on_revoked: Callable[[str | None], None]) -> None:
        """Until cancelled, call on_revoked(user_id) once a token of that user has been
        revoked, through any gateway (moments after, not before, the revocation is
        stored). on_revoked(None) says revocations may have been missed (a lost
        connection to where they are announced; also once at the start): any user's."""


class AccountCheck(Protocol):
    """Whether users still exist: a signed token outlives its user when the user is
    removed (or when the database it was issued from was reset)."""

    async def existing(self, user_ids: Sequence[str]) -> set[str]:
        """Those of `user_ids` that exist (one round trip for many)."""

    def known_to_exist(self, user_id: str) -> bool:
        """True when `user_id` is known to exist without I/O (a memory of recent
        answers); False says only "ask existing()"."""
        return False


class ConnectionCounter(Protocol):
    """Open WebSockets counted per key (a user, a client address) with a cap, so that
    one user or one address cannot take every socket a gateway can hold."""

    async def acquire(self, key: str) -> bool:
        """Count one more socket for `key`, unless `key` has its cap open already
        (then change nothing and answer False)."""

    async def release(self, key: str) -> None:
        """One socket of `key` closed (once per successful acquire)."""


class PresenceStore(Protocol):
    """Who is online, over every gateway (issue 16). A gateway says when the first of a
    user's sockets opens on it (arrived) and when the last one there closes (left). A
    user is online while a live gateway has one of its sockets, and goes offline `grace`
    seconds after the last one closed - or after its gateway died (production: the
    gateway's lease in the store ran out) - unless one opened again meanwhile: a page
    reload is not a flicker. Every change of a user's status takes a higher version."""

    async def arrived(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        """The first socket of each of these users opened on this gateway. Answers the
        statuses that changed (users who were offline and not within their grace): now
        online, to be published."""

    async def left(self, user_ids: Sequence[str]) -> None:
        """The last socket of each of these users on this gateway closed."""

    async def expire(self) -> list[PresenceStatus]:
        """The changes to publish that no arrival answered: users whose grace ran out,
        now offline (last_seen: when their last socket closed), and - production - users
        back online when a gateway told the store again who is there (its lease had run
        out, or a write had failed). Each change is answered once, to one caller,
        however many gateways ask; the caller publishes every one."""

    async def statuses(self, user_ids: Sequence[str]) -> list[PresenceStatus]:
        """The current status of each (version 0, offline and never seen: a user the
        store never saw), in the order asked."""

    async def touch(self, user_id: str) -> PresenceStatus:
        """The user's status under a new version (its presence preference changed: what
        others see of it changes without the status changing)."""

    async def keep_alive(self) -> None:
        """Until cancelled: keep this gateway counted as alive (production: renew its
        lease; should the lease have run out meanwhile, say again who is here)."""

    async def close(self) -> None:
        """This gateway stops: each of its users leaves (grace, then offline)."""


class PresenceBus(Protocol):
    """Status changes, from whoever changes a status to the gateways whose sockets watch
    that user. A change costs O(gateways watching the user), never O(gateways) or
    O(users), and a gateway receives only the changes of the users it watches."""

    async def watch(self, user_ids: Sequence[str]) -> None:
        """From when this returns, every change published for these users reaches this
        gateway's on_change."""

    async def unwatch(self, user_ids: Sequence[str]) -> None: ...

    async def publish(self, statuses: Sequence[PresenceStatus]) -> None:
        """Each change to the gateways watching its user; several at once cost one trip
        (a gateway's expiry look may publish thousands)."""

    async def watched_among(self, user_ids: Sequence[str]) -> set[str]:
        """The users among these that a gateway watches now. A change stored before
        this call need not be published for the others: a gateway that starts watching
        one later reads the stored statuses once its watch is confirmed."""

    async def run(self, on_change: Callable[[PresenceStatus], None],
                  on_resync: Callable[[], Awaitable[None]]) -> None:
        """Until cancelled. on_resync: the bus was lost and is back (changes may have
        been missed meanwhile: read the watched users' statuses again)."""


class TypingBus(Protocol):
    """Typing events, to every gateway (each pushes them to its own sockets of the
    recipients). Nothing is stored: a gateway that is not listening misses them."""

    async def publish(self, typing: Typing) -> None: ...

    async def run(self, on_typing: Callable[[Typing], None]) -> None:
        """Until cancelled."""


class PresencePreferences(Protocol):
    """Whether others see a user's presence (PATCH /users/me {"show_presence"})."""

    @abstractmethod
    async def hidden_among(self, user_ids: Sequence[str]) -> set[str]:
        """Those of `user_ids` who hide their presence."""

    @abstractmethod
    async def set_shows_presence(self, user_id: str, value: bool) -> None: ...


class RateLimiter(Protocol):
    async def take(self, key: str) -> float:
        """Take one token from the bucket of `key`: 0 when allowed, else seconds to wait."""


class FailureThrottle(Protocol):
    async def blocked_for(self, key: str) -> float:
        """Seconds until `key` may try again (0: not blocked)."""

    async def record_failure(self, key: str) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Unix time in seconds."""


class IdGenerator(Protocol):
    def new_id(self) -> str:
        """A new UUID string."""
