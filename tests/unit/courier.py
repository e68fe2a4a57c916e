"""Courier's use cases as the unit tests see them: built by the real container
(entrypoints/container.py) in the embedded mode, with the ports that touch the
outside world overridden by fakes (tests/fakes/). The wiring lives in the
container alone; `build()` only chooses settings and fakes."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dependency_injector import providers

from adapters.memory.bus import InProcessBus
from adapters.memory.connection_counter import MemoryConnectionCounter
from adapters.memory.limits import MemoryFailureThrottle, MemoryRateLimiter
from adapters.security import JwtTokenService
from application.accounts import Authenticate, GetUser, LogIn, LogOut, RegisterUser
from application.announcements import RelayAnnouncements
from application.conversations import ListConversations, MarkRead
from application.gateway import Gateway
from application.group_events import GroupEvents
from application.groups import ManageGroups
from application.messaging import PullMessages, ReadHistory, SendGroupMessage, SendPrivateMessage
from application.ports import Inbox
from application.sockets import AdmitSocket
from domain.model import Message, User
from entrypoints.container import Container
from entrypoints.settings import EMBEDDED, Settings
from tests.fakes.clock import FakeClock
from tests.fakes.conversations import MemoryConversationStore, MemoryReceiptPreferences
from tests.fakes.hasher import FakePasswordHasher
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox, YieldingInbox
from tests.fakes.outbox import MemoryOutbox
from tests.fakes.presence import MemoryPresencePreferences
from tests.fakes.repositories import MemoryGroupRepository, MemoryMessageStore, MemoryUserRepository
from tests.fakes.revocations import MemoryTokenRevocations

PASSWORD = "correct horse"
ADDRESS = "192.0.2.1"  # where the tests' shorthands register from
SECRET = "unit-test-secret-of-at-least-32-bytes"
TOKEN_TTL = 3600


@dataclass
class Courier:
    """Every use case from the container, with the fakes kept for tests to look at."""

    container: Container
    clock: FakeClock
    users: MemoryUserRepository
    groups_repo: MemoryGroupRepository
    store: MemoryMessageStore
    bus: InProcessBus
    inbox: Inbox
    idempotency: MemoryIdempotencyKeys
    rate_limiter: MemoryRateLimiter
    failures: MemoryFailureThrottle
    address_failures: MemoryFailureThrottle
    registrations: MemoryRateLimiter
    hasher: FakePasswordHasher
    tokens: JwtTokenService
    revocations: MemoryTokenRevocations
    slept: list[float]
    sockets_per_user: MemoryConnectionCounter
    sockets_per_address: MemoryConnectionCounter
    register: RegisterUser
    login: LogIn
    authenticate: Authenticate
    log_out: LogOut
    admit_socket: AdmitSocket
    get_user: GetUser
    send_private: SendPrivateMessage
    send_group: SendGroupMessage
    pull: PullMessages
    history: ReadHistory
    groups: ManageGroups
    group_events: GroupEvents
    outbox: MemoryOutbox
    relay: RelayAnnouncements
    gateway: Gateway
    conversations: MemoryConversationStore
    list_conversations: ListConversations
    mark_read: MarkRead

    async def user(self, username: str, password: str = PASSWORD) -> User:
        """Register a user (the tests' shorthand)."""
        return await self.register(username, password, ADDRESS)

    async def users_named(self, *names: str) -> list[User]:
        return [await self.user(name) for name in names]

    async def persist_all(self) -> None:
        """What the persister does: hand every accepted message to the store."""
        await self.store.save(list(self.inbox.persisted))

    def subscribe_gateway(self) -> None:
        """Wire the gateway to the in-process bus (what InProcessBus.run does, without a task)."""
        self.bus._subscribers.append(self.gateway.on_notification)

    async def relay_due(self) -> int:
        """What the relay appends once the announcements left behind are due (it leaves
        younger ones to their use case): the clock moved past its wait, one round."""
        self.clock.advance(self.relay.after)
        return await self.relay.once()

    def unsubscribe_gateway(self) -> None:
        """The gateway loses the bus: notifications published now never reach it."""
        self.bus._subscribers.remove(self.gateway.on_notification)


def build(
    *,
    max_content_length: int = 4000,
    send_rate: float = 0,
    send_burst: float | None = None,
    login_failures: int = 10,
    address_login_failures: int = 100,
    registrations: int = 0,
    sockets_per_user: int = 20,
    sockets_per_address: int = 2000,
    group_changes_per_minute: int = 0,
    inbox_max_length: int = 10_000,
    wrap_inbox: Callable[[Inbox], Inbox] | None = None,
    yielding_inbox: bool = False,
    pending_wait: float = 2.0,
    resync_retry_seconds: float = 0.3,  # the default (5 s) would make the tests of a store that stays down slow
    receipts_max_group: int = 100,
    large_group: int = 0,
) -> Courier:
    settings = Settings(
        jwt_secret=SECRET,
        token_ttl=TOKEN_TTL,
        max_content_length=max_content_length,
        send_rate=send_rate,
        login_failures=login_failures,
        login_address_failures=address_login_failures,
        registrations=registrations,
        ws_max_per_user=sockets_per_user,
        ws_max_per_address=sockets_per_address,
        group_changes=group_changes_per_minute,
        inbox_maxlen=inbox_max_length,
        account_check=30.0,
        receipts_max_group=receipts_max_group,
        # Off here: this harness's fakes are the small path's (inbox, bus, stores); large
        # groups have unit tests of their own over MemoryGroupStreams (test_gateway_large_groups,
        # test_timeline, ...) and run on by default in the e2e and production suites.
        large_group=large_group,
    )
    assert settings.mode == EMBEDDED
    container = Container(settings=settings)

    # The ports that touch the outside world (files, threads, the time): fakes.
    clock = FakeClock()
    container.clock.override(providers.Object(clock))
    now = container.clock.provided.now
    bus = InProcessBus()
    bus.keep_published = True
    container.bus.override(providers.Object(bus))
    users = MemoryUserRepository()
    groups = MemoryGroupRepository()
    store = MemoryMessageStore()
    container.users.override(providers.Object(users))
    container.groups.override(providers.Object(groups))
    container.messages.override(providers.Object(store))
    # One outbox, as the SQL stores share one table: what each store writes with its change.
    outbox = MemoryOutbox(clock.now)
    groups.outbox = store.outbox = outbox
    container.outbox.override(providers.Object(outbox))

    async def names(peer_id: str | None, group_id: str | None) -> str | None:
        if group_id is not None:
            group = await groups.get(group_id)
            return None if group is None else group.name
        user = await users.get(peer_id) if peer_id is not None else None
        return None if user is None else user.username

    def stored(message: Message) -> Message:  # edits and tombstones, once the persister stored it
        return next((row for row in store.rows if row.id == message.id), message)

    conversations = MemoryConversationStore(names, stored)
    groups.conversations = conversations
    conversations.outbox = outbox
    container.conversations.override(providers.Object(conversations))
    container.receipt_preferences.override(providers.Object(MemoryReceiptPreferences(conversations)))
    container.presence_preferences.override(providers.Object(MemoryPresencePreferences()))
    container.idempotency.override(providers.Singleton(MemoryIdempotencyKeys, now=now))
    memory_inbox = MemoryInbox(bus, container.idempotency(), max_length=inbox_max_length)
    inbox: Inbox = memory_inbox
    if yielding_inbox:
        inbox = YieldingInbox(inbox)
    if wrap_inbox is not None:
        inbox = wrap_inbox(inbox)
    memory_inbox.conversations = conversations
    container.inbox.override(providers.Object(inbox))
    container.hasher.override(providers.Object(FakePasswordHasher()))
    container.revocations.override(providers.Singleton(MemoryTokenRevocations, container.clock))
    if send_burst is not None:
        container.send_limiter.override(
            providers.Singleton(MemoryRateLimiter, container.clock, send_rate, send_burst)
        )

    # Time-keeping arguments the production wiring leaves at their defaults.
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the login slow-down, recorded instead of waited
        slept.append(seconds)

    container.tokens.add_kwargs(now=now)
    container.accounts.add_kwargs(now=now)
    container.log_in.add_kwargs(sleep=providers.Object(sleep))
    container.dispatcher.add_kwargs(pending_wait=pending_wait, pending_poll=0.01)
    container.gateway.add_kwargs(resync_retry_seconds=resync_retry_seconds)

    return Courier(
        container=container,
        clock=container.clock(),
        users=container.users(),
        groups_repo=container.groups(),
        store=container.messages(),
        bus=container.bus(),
        inbox=container.inbox(),
        idempotency=container.idempotency(),
        rate_limiter=container.send_limiter(),
        failures=container.login_failures(),
        address_failures=container.address_login_failures(),
        registrations=container.registration_limiter(),
        hasher=container.hasher(),
        tokens=container.tokens(),
        revocations=container.revocations(),
        slept=slept,
        sockets_per_user=container.sockets_per_user(),
        sockets_per_address=container.sockets_per_address(),
        register=container.register(),
        login=container.log_in(),
        authenticate=container.authenticate(),
        log_out=container.log_out(),
        admit_socket=container.admit_socket(),
        get_user=container.get_user(),
        send_private=container.send_private(),
        send_group=container.send_group(),
        pull=container.pull(),
        history=container.history(),
        groups=container.manage_groups(),
        group_events=container.group_events(),
        outbox=outbox,
        relay=container.relay_announcements(),
        gateway=container.gateway(),
        conversations=conversations,
        list_conversations=container.list_conversations(),
        mark_read=container.mark_read(),
    )


__all__ = ["ADDRESS", "PASSWORD", "SECRET", "TOKEN_TTL", "Courier", "build"]
