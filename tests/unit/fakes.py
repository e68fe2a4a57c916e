"""The use cases wired to in-memory fakes, for the unit tests.

`build()` is the one place where the wiring lives: to swap a fake, change the
one line that makes it (or pass it in: `build(inbox=MyInbox(...))`)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass

from adapters.clock import UuidGenerator
from adapters.memory.bus import InProcessBus
from adapters.memory.checked_accounts import RecentlyCheckedAccounts
from adapters.memory.connection_counter import MemoryConnectionCounter
from adapters.memory.limits import MemoryFailureThrottle, MemoryRateLimiter
from adapters.security import JwtTokenService
from application.accounts import Authenticate, GetUser, LogIn, LogOut, RegisterUser
from application.gateway import Gateway
from application.group_changes import GroupChangeAllowance
from application.groups import ManageGroups
from application.messaging import (
    Dispatcher,
    PullMessages,
    ReadHistory,
    SendGroupMessage,
    SendPrivateMessage,
)
from application.ports import Inbox, PasswordHasher
from application.sockets import AdmitSocket
from domain.model import Delivery, Message, User
from tests.fakes.clock import FakeClock
from tests.fakes.idempotency import MemoryIdempotencyKeys
from tests.fakes.inbox import MemoryInbox
from tests.fakes.repositories import MemoryGroupRepository, MemoryMessageStore, MemoryUserRepository
from tests.fakes.revocations import MemoryTokenRevocations

PASSWORD = "correct horse"
ADDRESS = "192.0.2.1"  # where the tests' shorthands register from
SECRET = "unit-test-secret-of-at-least-32-bytes"
TOKEN_TTL = 3600


class FakePasswordHasher(PasswordHasher):
    """'hashed:' + password; `rehash` makes needs_rehash() say yes for every
    hash that does not carry the current `version`."""

    def __init__(self) -> None:
        self.version = "v1"
        self.verified: list[tuple[str, str]] = []  # (hash, password) of every verify call

    async def hash(self, password: str) -> str:
        return f"hashed:{self.version}:{password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append((password_hash, password))
        return password_hash.split(":", 2)[2:] == [password]

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"hashed:{self.version}:")


class RecordingChannel:
    """A client socket as the gateway sees it: keeps every payload it accepts.
    After `accept` frames it reports the connection gone (a slow or closed client)."""

    def __init__(self, accept: int | None = None) -> None:
        self.accept = accept
        self.payloads: list[bytes] = []
        self.refused = 0
        self.drains = 0
        self.closed_for_resume: list[str] = []

    def send(self, payload: bytes) -> bool:
        if self.accept is not None and len(self.payloads) >= self.accept:
            self.refused += 1
            return False
        self.payloads.append(payload)
        return True

    async def drain(self) -> None:
        self.drains += 1

    def resume_later(self, cursor_expired: bool) -> None:
        self.closed_for_resume.append("cursor_expired" if cursor_expired else "try_again")

    @property
    def messages(self) -> list[dict]:
        return [json.loads(p) for p in self.payloads]

    @property
    def ids(self) -> list[str]:
        return [m["id"] for m in self.messages]

    @property
    def cursors(self) -> list[str]:
        return [m["cursor"] for m in self.messages]


class YieldingInbox(Inbox):
    """Wraps an inbox so that read() really yields to the event loop, as a
    networked inbox does. Tests hook into a read: each callable in
    `before_read` runs (once) after read() started and before the entries are
    read, each in `after_read` after they are read and before they are
    returned; a callable may return a coroutine, which is awaited."""

    def __init__(self, inner: Inbox) -> None:
        self.inner = inner
        self.before_read: list[Callable[[], object]] = []
        self.after_read: list[Callable[[], object]] = []
        self.reads: list[tuple[str, str | None, int]] = []

    @property
    def persisted(self) -> list[Message]:
        return self.inner.persisted

    async def deliver(self, message, recipient_ids):
        return await self.inner.deliver(message, recipient_ids)

    async def read(self, user_id, after, limit):
        self.reads.append((user_id, after, limit))
        await self._run(self.before_read)
        page = await self.inner.read(user_id, after, limit)
        await self._run(self.after_read)
        return page

    async def last_cursor(self, user_id):
        return await self.inner.last_cursor(user_id)

    @staticmethod
    async def _run(hooks: list[Callable[[], object]]) -> None:
        await asyncio.sleep(0)
        while hooks:
            result = hooks.pop(0)()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0)


class GatedInbox(Inbox):
    """Wraps an inbox so that deliver() waits until the test opens the gate:
    `await inbox.entered.wait()` then `inbox.open()` (deliver) or
    `inbox.open(error)` (the delivery fails with it). Each deliver() waits for
    its own opening; `hold` False lets deliveries through at once again."""

    def __init__(self, inner: Inbox) -> None:
        self.inner = inner
        self.hold = True
        self.entered = asyncio.Event()  # a deliver() is waiting at the gate
        self._gates: list[asyncio.Future] = []

    @property
    def persisted(self) -> list[Message]:
        return self.inner.persisted

    @property
    def _streams(self):
        return self.inner._streams

    def open(self, error: Exception | None = None) -> None:
        gate = self._gates.pop(0)
        if error is None:
            gate.set_result(None)
        else:
            gate.set_exception(error)
        if not self._gates:
            self.entered.clear()

    async def deliver(self, message, recipient_ids):
        if self.hold:
            gate = asyncio.get_running_loop().create_future()
            self._gates.append(gate)
            self.entered.set()
            await gate
        return await self.inner.deliver(message, recipient_ids)

    async def read(self, user_id, after, limit):
        return await self.inner.read(user_id, after, limit)

    async def last_cursor(self, user_id):
        return await self.inner.last_cursor(user_id)


def encode(delivery: Delivery) -> bytes:
    return json.dumps(delivery.public()).encode()


@dataclass
class Courier:
    """Every use case, wired to fakes, with the fakes kept for tests to look at."""

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
    gateway: Gateway

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
) -> Courier:
    clock = FakeClock()
    ids = UuidGenerator()
    users = MemoryUserRepository()
    groups_repo = MemoryGroupRepository()
    store = MemoryMessageStore()
    bus = InProcessBus()
    bus.keep_published = True
    idempotency = MemoryIdempotencyKeys(now=clock.now)
    inbox: Inbox = MemoryInbox(bus, idempotency, max_length=inbox_max_length)
    if yielding_inbox:
        inbox = YieldingInbox(inbox)
    if wrap_inbox is not None:
        inbox = wrap_inbox(inbox)
    burst = send_burst if send_burst is not None else 2 * send_rate
    rate_limiter = MemoryRateLimiter(clock, rate=send_rate, burst=burst)
    failures = MemoryFailureThrottle(clock, limit=login_failures, window=60.0)
    address_failures = MemoryFailureThrottle(clock, limit=address_login_failures, window=60.0)
    registration_limiter = MemoryRateLimiter(clock, rate=registrations / 3600, burst=registrations)
    group_changes = MemoryRateLimiter(clock, rate=group_changes_per_minute / 60, burst=group_changes_per_minute)
    hasher = FakePasswordHasher()
    tokens = JwtTokenService(SECRET, TOKEN_TTL, now=clock.now)
    revocations = MemoryTokenRevocations(clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the login slow-down, recorded instead of waited
        slept.append(seconds)

    per_user = MemoryConnectionCounter(sockets_per_user)
    per_address = MemoryConnectionCounter(sockets_per_address)

    dispatcher = Dispatcher(
        inbox=inbox,
        idempotency=idempotency,
        rate_limiter=rate_limiter,
        clock=clock,
        ids=ids,
        max_content_length=max_content_length,
        pending_wait=pending_wait,
        pending_poll=0.01,
    )
    return Courier(
        clock=clock,
        users=users,
        groups_repo=groups_repo,
        store=store,
        bus=bus,
        inbox=inbox,
        idempotency=idempotency,
        rate_limiter=rate_limiter,
        failures=failures,
        address_failures=address_failures,
        registrations=registration_limiter,
        hasher=hasher,
        tokens=tokens,
        revocations=revocations,
        slept=slept,
        sockets_per_user=per_user,
        sockets_per_address=per_address,
        register=RegisterUser(users=users, hasher=hasher, ids=ids, limiter=registration_limiter),
        login=LogIn(users=users, hasher=hasher, tokens=tokens, failures=failures, address_failures=address_failures,
                    sleep=sleep),
        authenticate=Authenticate(
            tokens=tokens, revocations=revocations,
            accounts=RecentlyCheckedAccounts(users, recheck=30.0, now=clock.now),
        ),
        log_out=LogOut(revocations=revocations, clock=clock, token_ttl=TOKEN_TTL),
        admit_socket=AdmitSocket(per_user=per_user, per_address=per_address),
        get_user=GetUser(users=users),
        send_private=SendPrivateMessage(dispatcher=dispatcher, users=users),
        send_group=SendGroupMessage(dispatcher=dispatcher, groups=groups_repo),
        pull=PullMessages(inbox=inbox),
        history=ReadHistory(messages=store, groups=groups_repo, users=users),
        groups=ManageGroups(groups=groups_repo, users=users, ids=ids, changes=GroupChangeAllowance(group_changes)),
        gateway=Gateway(inbox, encode, resync_retry_seconds=resync_retry_seconds),
    )


__all__ = [
    "Courier", "FakePasswordHasher", "GatedInbox", "Message", "RecordingChannel", "YieldingInbox", "build", "encode",
]
