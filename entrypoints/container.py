"""The dependency-injector container: settings -> adapters -> use cases.

Every adapter is a Singleton, so nothing connects at import time and each is
made on first use. Selectors on the run mode pick the embedded (SQLite +
in-process) or production (MySQL + Redis) adapters; the unselected branch is
never built. A test swaps any piece in one line:

    container.inbox.override(providers.Object(MemoryInbox(bus, keys)))

What holds connections, threads or files (the database, the Redis client, the
inbox, the password hasher, the Redis socket counter) is a Resource, so the
container knows what to close, and in which order: `await shutdown(container)`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis.asyncio as aioredis
from dependency_injector import containers, providers
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url

from adapters.clock import SystemClock, UuidGenerator
from adapters.memory.bus import InProcessBus
from adapters.memory.cached_groups import CachedGroups
from adapters.memory.checked_accounts import RecentlyCheckedAccounts
from adapters.memory.checked_tokens import RecentlyCheckedRevocations
from adapters.memory.connection_counter import MemoryConnectionCounter
from adapters.memory.known_users import KnownUsers
from adapters.memory.limits import MemoryFailureThrottle, MemoryRateLimiter
from adapters.memory.presence import InProcessPresenceBus, InProcessTypingBus, MemoryPresenceStore
from adapters.memory.recent import NoRecentMessages
from adapters.redis import address
from adapters.redis.bucketed_presence import BucketedPresenceStore
from adapters.redis.bucketed_sockets import BucketedConnectionCounter
from adapters.redis.buckets import Buckets
from adapters.redis.cache import RedisCachedGroupRepository, RedisCachedUserRepository
from adapters.redis.checkpoints import RedisCursorCheckpoints
from adapters.redis.cluster_inbox import RedisClusterInbox
from adapters.redis.cluster_keys import ClusterKeys
from adapters.redis.cluster_relay import ClusterSendRelay
from adapters.redis.cluster_subscriber import RedisClusterNotificationSubscriber
from adapters.redis.connection_counter import RedisConnectionCounter
from adapters.redis.conversation_seqs import RedisConversationSeqs
from adapters.redis.deployment import BucketCount
from adapters.redis.group_persist_queue import RedisBucketPersistQueue, RedisGroupPersistQueue
from adapters.redis.group_streams import RedisGroupStreams
from adapters.redis.idempotency import RedisIdempotencyKeys
from adapters.redis.inbox import RedisInbox
from adapters.redis.layout import SINGLE, ClusterLayout
from adapters.redis.limits import RedisFailureThrottle, RedisRateLimiter
from adapters.redis.persist_queue import RedisPersistQueue
from adapters.redis.presence_bus import RedisPresenceBus
from adapters.redis.presence_store import RedisPresenceStore
from adapters.redis.recent import RedisRecentMessages
from adapters.redis.revocations import RedisTokenRevocations
from adapters.redis.seq_counters import SeqCounters
from adapters.redis.subscriber import RedisNotificationSubscriber
from adapters.redis.support import NO_MAINTENANCE_NOTIFICATIONS
from adapters.redis.typing_bus import RedisTypingBus
from adapters.security import Argon2PasswordHasher, JwtTokenService
from adapters.sql.checkpoints import SqliteCursorCheckpoints
from adapters.sql.conversations import SqlConversationStore
from adapters.sql.database import Database
from adapters.sql.group_streams import SqliteGroupStreams
from adapters.sql.groups import SqlGroupRepository
from adapters.sql.idempotency import SqlIdempotencyKeys
from adapters.sql.inbox import SqliteInbox
from adapters.sql.messages import SqlMessageStore
from adapters.sql.outbox import SqlOutbox
from adapters.sql.revocations import SqlTokenRevocations
from adapters.sql.users import SqlPresencePreferences, SqlReceiptPreferences, SqlUserRepository
from application.accounts import Authenticate, GetUser, LogIn, LogOut, RegisterUser
from application.announcements import AnnouncementSteps, Announcer, RelayAnnouncements
from application.conversations import GroupReads, ListConversations, MarkRead
from application.edits import ChangeMessages
from application.frames import split_at_cursor
from application.gateway import Gateway
from application.group_changes import GroupChangeAllowance
from application.group_events import GroupEvents
from application.groups import ManageGroups
from application.inbox_reader import InboxReader
from application.messaging import (
    Dispatcher,
    PullEvents,
    PullMessages,
    ReadHistory,
    SendGroupMessage,
    SendPrivateMessage,
)
from application.persister import Persister
from application.presence import GetPresence, PresencePublisher, PresenceTracker, PresenceWatch
from application.sockets import AdmitSocket
from application.timeline import Timeline
from application.typing_indicators import RelayTyping, TypingIndicators
from application.user_settings import UserSettings
from domain.events import Delivery, Event
from entrypoints.client_frames import ClientFrames, answer_ping
from entrypoints.socket_observers import SocketObservers

LOGIN_WINDOW_SECONDS = 60.0
# Revocations are announced to every gateway (TokenRevocations.follow); this bounds how
# long a missed announcement could go unnoticed without the follower seeing a lost connection.
REVOCATION_RECHECK = 60.0


def encode_delivery(delivery: Delivery, user_id: str | None = None) -> bytes:
    return orjson.dumps(delivery.public() if user_id is None else delivery.public_for(user_id))


def encode_parts(event: Event, user_id: str | None = None) -> tuple[bytes, bytes]:
    """encode_delivery cut around the cursor: (head, close), the public JSON up to
    `,"cursor":"` and the rest, so that head + cursor + close is the frame of the event
    at any cursor (application/frames.py; one encoding per notification for every socket)."""
    return split_at_cursor(encode_delivery(Delivery(event, ""), user_id))


encode_frame = orjson.dumps  # a frame pushed without a cursor (presence, typing, errors)


REDIS_POOL_SIZE = 64


def _redis_client(url: str, cluster: bool = False) -> aioredis.Redis | RedisCluster:
    where = address.parse(url, cluster)
    if where.cluster:
        return _redis_cluster_client(where)
    # health_check_interval: a connection idle that long is PINGed before use, so a
    # Redis restart shows up as a reconnect instead of an error on the next request.
    # A blocking pool: redis-py's default pool refuses a request outright ("Too many
    # connections", a 503, or a socket closed with 1013 during its replay) once 100
    # commands are in flight, as when a thousand sockets connect at once; this one
    # makes a request wait (at most socket_timeout) for one of its connections.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, health_check_interval=15, socket_connect_timeout=2, socket_timeout=5,
        max_connections=REDIS_POOL_SIZE, timeout=5, maint_notifications_config=NO_MAINTENANCE_NOTIFICATIONS,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def _redis_cluster_client(where: address.RedisAddress) -> RedisCluster:
    """redis-py's cluster client, with the timeouts and health checks of one Redis's above.

    The difference: its connections are per node and it has no blocking pool, so past
    REDIS_POOL_SIZE commands in flight on one node it refuses one (MaxConnectionsError,
    a 503) instead of making it wait. The nodes it finds itself (CLUSTER SLOTS) get the
    same options as the startup nodes; the URL's query options win, as from_url's do."""
    options = parse_url(where.url)
    for name in ("host", "port", "db"):  # the nodes come from the address; a cluster has db 0 only
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in where.nodes],
        **{"health_check_interval": 15, "socket_connect_timeout": 2, "socket_timeout": 5,
           "max_connections": REDIS_POOL_SIZE, "maint_notifications_config": NO_MAINTENANCE_NOTIFICATIONS,
           **options},
    )


log = logging.getLogger("courier.container")


def _closed_at_shutdown(make: Callable[..., Any], *args: Any, closing: list, **kwargs: Any) -> Iterator[Any]:
    """A Resource's initializer: makes the adapter; at shutdown_resources() hands it
    to `closing`, to be closed by shutdown() below.

    Why not close it here, or make it an async Resource: several adapters close
    asynchronously (the inbox writes what is queued, the Redis client says goodbye),
    and an async Resource makes every provider that depends on it answer with an
    awaitable. shutdown_resources() still decides what is closed and in which order
    (an adapter before the ones it depends on: the inbox before the database); the
    adapters are closed in the order it handed them over."""
    adapter = make(*args, **kwargs)
    yield adapter
    closing.append(adapter)


async def shutdown(container: Container) -> None:
    """Close every adapter the container made that holds connections, threads or files."""
    closing: list = container.closing()
    container.shutdown_resources()  # synchronous: the resources are all made synchronously
    while closing:
        adapter = closing.pop(0)
        close = getattr(adapter, "aclose", None) or adapter.close
        try:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.warning("closing %s failed", type(adapter).__name__, exc_info=True)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency()
    mode = settings.provided.mode

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidGenerator)

    # What shutdown() closes, handed over by the Resources (_closed_at_shutdown).
    closing = providers.Singleton(list)

    # --- stores -------------------------------------------------------------
    database = providers.Resource(
        _closed_at_shutdown, Database, settings.provided.resolved_database_url.call(),
        workers=settings.provided.db_pool_size, closing=closing,
    )
    redis = providers.Resource(_closed_at_shutdown, _redis_client, settings.provided.redis_url,
                               cluster=settings.provided.redis_cluster, closing=closing)
    # Users' buckets (adapters/redis/buckets.py), and the guard that every process of a
    # deployment counts them alike (checked at the start of `courier serve` and `worker`).
    buckets = providers.Singleton(Buckets, settings.provided.redis_buckets)
    cluster_keys = providers.Singleton(ClusterKeys, buckets)
    redis_topology = settings.provided.redis_topology
    # The key layout the adapters shared by both topologies are given: None keeps one Redis's names.
    cluster_layout = providers.Selector(redis_topology, single=providers.Object(None), cluster=cluster_keys)
    bucket_count = providers.Singleton(BucketCount, redis, settings.provided.redis_buckets)
    # Where the adapters of users' and gateways' state keep their keys (adapters/redis/layout.py):
    # one Redis's names unchanged, or hash tags that keep each script's keys in one slot.
    key_layout = providers.Selector(redis_topology, single=providers.Object(SINGLE),
                                    cluster=providers.Singleton(ClusterLayout, buckets))
    bus = providers.Singleton(InProcessBus)

    messages = providers.Singleton(SqlMessageStore, database)
    # Production reads users and groups through a cache in Redis: a send looks its
    # recipient or group up, and must be accepted while MySQL is down.
    sql_users = providers.Singleton(SqlUserRepository, database)
    # Large groups (docs/design/large-groups.md): one stream per group past
    # COURIER_LARGE_GROUP members. The embedded mode applies each switch and membership
    # change to its SQLite streams inside the membership transaction (section 8);
    # production applies them to Redis afterwards (the announcer, or the relay).
    group_streams = providers.Selector(
        mode,
        embedded=providers.Singleton(SqliteGroupStreams, database, settings.provided.inbox_maxlen,
                                     publish=bus.provided.publish),
        production=providers.Singleton(RedisGroupStreams, redis, settings.provided.inbox_maxlen,
                                       last_seq=messages.provided.last_seq, keys=cluster_layout),
    )
    cursor_checkpoints = providers.Selector(
        mode,
        embedded=providers.Singleton(SqliteCursorCheckpoints, database),
        production=providers.Singleton(RedisCursorCheckpoints, redis, layout=key_layout),
    )
    # The streams while large groups are on, None while they are off (every group fans out).
    large_group_streams = providers.Selector(
        settings.provided.large_groups, on=group_streams, off=providers.Object(None),
    )
    sql_groups = providers.Singleton(
        SqlGroupRepository, database, settings.provided.large_group,
        apply_in_transaction=providers.Selector(
            mode, embedded=providers.Selector(settings.provided.large_groups, on=group_streams.provided.apply_in,
                                              off=providers.Object(None)),
            production=providers.Object(None),
        ),
    )
    # In both modes a user once found is remembered in the process (users are never
    # deleted nor renamed): a send to a known recipient asks neither Redis nor SQL.
    users = providers.Singleton(
        KnownUsers,
        providers.Selector(
            mode,
            embedded=sql_users,
            production=providers.Singleton(RedisCachedUserRepository, sql_users, redis),
        ),
    )
    # Embedded: one process makes every change to the groups, so it can keep them
    # in memory (adapters/memory/cached_groups.py says how a change is never missed).
    groups = providers.Selector(
        mode,
        embedded=providers.Singleton(CachedGroups, sql_groups),
        production=providers.Singleton(RedisCachedGroupRepository, sql_groups, redis),
    )
    # What the stores above (and the conversations') wrote with their changes and is not
    # yet in the logs: one table, whichever store wrote it.
    outbox = providers.Singleton(SqlOutbox, database)
    recent_messages = providers.Selector(
        mode,
        embedded=providers.Singleton(NoRecentMessages),
        # A message not stored yet: in the caller's log, else in what the worker has not stored.
        production=providers.Selector(
            redis_topology,
            single=providers.Singleton(RedisRecentMessages, redis),
            cluster=providers.Singleton(RedisRecentMessages.on_cluster, redis, cluster_keys),
        ),
    )

    redis_idempotency = providers.Singleton(RedisIdempotencyKeys, redis)
    inbox = providers.Selector(
        mode,
        # The embedded inbox writes and publishes what is queued when it is closed.
        embedded=providers.Resource(
            _closed_at_shutdown, SqliteInbox, database, bus, max_length=settings.provided.inbox_maxlen,
            closing=closing,
        ),
        # One Redis runs a send as one script; a cluster as a commit and one append per
        # bucket (docs/design/redis-cluster.md, section 3), confirming the sender's key itself.
        production=providers.Selector(
            redis_topology,
            single=providers.Singleton(
                RedisInbox, redis, max_length=settings.provided.inbox_maxlen, last_seq=messages.provided.last_seq,
                wait_replicas=settings.provided.redis_wait_replicas,
                wait_timeout_ms=settings.provided.redis_wait_timeout_ms,
            ),
            cluster=providers.Singleton(
                RedisClusterInbox, redis, buckets, redis_idempotency, max_length=settings.provided.inbox_maxlen,
                last_seq=messages.provided.last_seq, wait_replicas=settings.provided.redis_wait_replicas,
                wait_timeout_ms=settings.provided.redis_wait_timeout_ms,
            ),
        ),
    )
    subscriber = providers.Selector(
        mode,
        embedded=bus,
        production=providers.Selector(
            redis_topology,
            single=providers.Singleton(RedisNotificationSubscriber, redis),
            cluster=providers.Singleton(RedisClusterNotificationSubscriber, redis, cluster_keys),
        ),
    )
    idempotency = providers.Selector(
        mode,
        embedded=providers.Singleton(SqlIdempotencyKeys, database),
        production=redis_idempotency,
    )
    send_limiter = providers.Selector(
        mode,
        embedded=providers.Singleton(
            MemoryRateLimiter, clock, settings.provided.send_rate, settings.provided.send_burst
        ),
        production=providers.Singleton(
            RedisRateLimiter, redis, settings.provided.send_rate, settings.provided.send_burst
        ),
    )
    group_change_limiter = providers.Selector(
        mode,
        embedded=providers.Singleton(
            MemoryRateLimiter, clock, settings.provided.group_change_rate, settings.provided.group_change_burst
        ),
        production=providers.Singleton(
            RedisRateLimiter, redis, settings.provided.group_change_rate, settings.provided.group_change_burst
        ),
    )
    login_failures = providers.Selector(
        mode,
        embedded=providers.Singleton(
            MemoryFailureThrottle, clock, settings.provided.login_failures, LOGIN_WINDOW_SECONDS
        ),
        production=providers.Singleton(
            RedisFailureThrottle, redis, settings.provided.login_failures, LOGIN_WINDOW_SECONDS
        ),
    )
    address_login_failures = providers.Selector(
        mode,
        embedded=providers.Singleton(
            MemoryFailureThrottle, clock, settings.provided.login_address_failures, LOGIN_WINDOW_SECONDS
        ),
        production=providers.Singleton(
            RedisFailureThrottle, redis, settings.provided.login_address_failures, LOGIN_WINDOW_SECONDS,
            prefix="failures:address:",
        ),
    )
    registration_limiter = providers.Selector(
        mode,
        embedded=providers.Singleton(
            MemoryRateLimiter, clock, settings.provided.registration_rate, settings.provided.registrations
        ),
        production=providers.Singleton(
            RedisRateLimiter, redis, settings.provided.registration_rate, settings.provided.registrations
        ),
    )

    # --- sessions and sockets -----------------------------------------------
    # Every request is authenticated, and sends must stay cheap: a gateway remembers that
    # a token was not revoked until a revocation of its user is announced (or for
    # REVOCATION_RECHECK seconds at most), and that a user exists for COURIER_ACCOUNT_CHECK.
    revocations = providers.Singleton(
        RecentlyCheckedRevocations,
        providers.Selector(
            mode,
            embedded=providers.Singleton(SqlTokenRevocations, database, clock),
            production=providers.Singleton(RedisTokenRevocations, redis),
        ),
        REVOCATION_RECHECK,
    )
    accounts = providers.Singleton(RecentlyCheckedAccounts, users, settings.provided.account_check)
    sockets_per_user = providers.Selector(
        mode,
        embedded=providers.Singleton(MemoryConnectionCounter, settings.provided.ws_max_per_user),
        # On a cluster, one counter per user bucket (adapters/redis/bucketed_sockets.py).
        production=providers.Selector(
            redis_topology,
            single=providers.Resource(
                _closed_at_shutdown, RedisConnectionCounter, redis, settings.provided.ws_max_per_user,
                layout=key_layout, closing=closing,
            ),
            cluster=providers.Resource(
                _closed_at_shutdown, BucketedConnectionCounter, redis, settings.provided.ws_max_per_user, buckets,
                closing=closing,
            ),
        ),
    )
    sockets_per_address = providers.Singleton(MemoryConnectionCounter, settings.provided.ws_max_per_address)
    # What the sends' commits left for the worker: stream:persist, or each bucket's on a cluster.
    persist_queue = providers.Selector(
        redis_topology,
        single=providers.Singleton(RedisPersistQueue, redis, claim_idle_ms=settings.provided.worker_claim_idle_ms),
        cluster=providers.Singleton(RedisBucketPersistQueue, redis, cluster_keys,
                                    claim_idle_ms=settings.provided.worker_claim_idle_ms),
    )
    # A cluster's sends whose gateway died between their commit and their appends (worker).
    cluster_send_relay = providers.Singleton(ClusterSendRelay, inbox, settings.provided.redis_buckets)
    # The large groups' lg:{G}:persist streams (docs/design/large-groups.md, section 7.2).
    group_persist_queue = providers.Singleton(
        RedisGroupPersistQueue, redis, claim_idle_ms=settings.provided.worker_claim_idle_ms, keys=cluster_layout
    )

    # --- security -----------------------------------------------------------
    hasher = providers.Resource(
        _closed_at_shutdown,
        Argon2PasswordHasher,
        settings.provided.argon2_time_cost,
        settings.provided.argon2_memory_kib,
        settings.provided.argon2_parallelism,
        threads=settings.provided.hash_threads,
        queue=settings.provided.hash_queue,
        closing=closing,
    )
    tokens = providers.Singleton(
        JwtTokenService, settings.provided.resolved_jwt_secret.call(), settings.provided.token_ttl
    )

    # --- use cases ----------------------------------------------------------
    register = providers.Singleton(RegisterUser, users, hasher, ids, registration_limiter)
    log_in = providers.Singleton(LogIn, users, hasher, tokens, login_failures, address_login_failures)
    authenticate = providers.Singleton(Authenticate, tokens, revocations, accounts)
    log_out = providers.Singleton(LogOut, revocations, clock, settings.provided.token_ttl)
    admit_socket = providers.Singleton(AdmitSocket, sockets_per_user, sockets_per_address)
    get_user = providers.Singleton(GetUser, users)
    dispatcher = providers.Singleton(
        Dispatcher, inbox, idempotency, send_limiter, clock, ids, settings.provided.max_content_length
    )
    send_private = providers.Singleton(SendPrivateMessage, dispatcher, users)
    send_group = providers.Singleton(SendGroupMessage, dispatcher, groups, large_group_streams)
    timeline = providers.Singleton(Timeline, inbox, group_streams, cursor_checkpoints)
    # What the pulls read: the own log alone, or merged with the large groups' streams.
    log_reader = providers.Selector(
        settings.provided.large_groups, on=timeline, off=providers.Singleton(InboxReader, inbox),
    )
    pull = providers.Singleton(PullMessages, log_reader)
    pull_events = providers.Singleton(PullEvents, log_reader)
    history = providers.Singleton(ReadHistory, messages, groups, users)
    announcement_steps = providers.Singleton(AnnouncementSteps, inbox, outbox, large_group_streams)
    announcer = providers.Singleton(Announcer, announcement_steps)
    group_events = providers.Singleton(GroupEvents, announcer, ids, clock)
    # Large groups on: true, else false (what ChangeMessages, MarkRead and RelayTyping ask).
    large_groups_on = providers.Selector(settings.provided.large_groups, on=providers.Object(True),
                                         off=providers.Object(False))
    change_messages = providers.Singleton(
        ChangeMessages, messages, recent_messages, groups, announcer, clock, settings.provided.max_content_length,
        settings.provided.edit_window, large_groups=large_groups_on,
    )
    relay_announcements = providers.Singleton(RelayAnnouncements, announcement_steps)
    conversations = providers.Singleton(SqlConversationStore, database)
    list_conversations = providers.Singleton(ListConversations, conversations)
    receipt_preferences = providers.Singleton(SqlReceiptPreferences, database)
    mark_read = providers.Singleton(
        MarkRead, conversations, groups, users, announcer, clock,
        providers.Selector(mode, embedded=providers.Object(None),
                           production=providers.Singleton(RedisConversationSeqs, redis, cluster_layout)),
        preferences=receipt_preferences, max_group=settings.provided.receipts_max_group,
        large_groups=large_groups_on,
    )
    group_reads = providers.Singleton(GroupReads, conversations, groups)
    manage_groups = providers.Singleton(
        ManageGroups, groups, users, ids, providers.Singleton(GroupChangeAllowance, group_change_limiter),
        group_events,
        channels=providers.Selector(settings.provided.large_groups, on=providers.Object(True),
                                    off=providers.Object(False)),
    )
    gateway = providers.Singleton(
        Gateway, inbox, providers.Object(encode_delivery), encode_parts=providers.Object(encode_parts),
        # Large groups on: replays read through the timeline, group channels are followed.
        timeline=providers.Selector(settings.provided.large_groups, on=timeline, off=providers.Object(None)),
        subscriber=providers.Selector(settings.provided.large_groups, on=subscriber, off=providers.Object(None)),
        # On a cluster the bus sends a gateway only its users' buckets: it is told whom it serves.
        audience=providers.Selector(
            mode, embedded=providers.Object(None),
            production=providers.Selector(redis_topology, single=providers.Object(None), cluster=subscriber),
        ),
    )

    # --- presence and typing (pushed, never stored) ---------------------------
    presence_store = providers.Selector(
        mode,
        embedded=providers.Singleton(MemoryPresenceStore, clock, settings.provided.presence_grace),
        # Closed by the server's stop (PresenceTracker.close), before the Redis client.
        # On a cluster, one store per user bucket (adapters/redis/bucketed_presence.py).
        production=providers.Selector(
            redis_topology,
            single=providers.Singleton(RedisPresenceStore, redis, settings.provided.presence_grace,
                                       layout=key_layout),
            cluster=providers.Singleton(BucketedPresenceStore, redis, settings.provided.presence_grace, buckets),
        ),
    )
    presence_bus = providers.Selector(mode, embedded=providers.Singleton(InProcessPresenceBus),
                                      production=providers.Singleton(RedisPresenceBus, redis))
    typing_bus = providers.Selector(mode, embedded=providers.Singleton(InProcessTypingBus),
                                    production=providers.Singleton(RedisTypingBus, redis))
    presence_preferences = providers.Singleton(SqlPresencePreferences, database)
    presence_tracker = providers.Singleton(
        PresenceTracker, presence_store, providers.Singleton(PresencePublisher, presence_bus, presence_preferences)
    )
    presence_watch = providers.Singleton(
        PresenceWatch, presence_store, presence_bus, presence_preferences, clock, providers.Object(encode_frame)
    )
    get_presence = providers.Singleton(GetPresence, presence_store, presence_preferences, users, clock)
    relay_typing = providers.Singleton(RelayTyping, groups, users, typing_bus, providers.Object(encode_frame),
                                       streams=large_group_streams)
    typing_indicators = providers.Singleton(TypingIndicators, gateway, providers.Object(encode_frame))
    user_settings = providers.Singleton(UserSettings, receipt_preferences, presence_preferences, presence_tracker)

    # What a client may send on its socket: frame type -> handler (entrypoints/client_frames.py).
    client_frames = providers.Singleton(ClientFrames, providers.Dict(
        ping=providers.Object(answer_ping),
        typing=relay_typing,
        presence_subscribe=presence_watch.provided.subscribe,
    ))
    # Who hears of a socket's opening and closing besides the gateway.
    socket_observers = providers.Singleton(
        SocketObservers, providers.List(presence_tracker, presence_watch, relay_typing)
    )
    persister = providers.Factory(Persister, persist_queue, messages)
    group_persister = providers.Factory(Persister, group_persist_queue, messages)
    # Production only (courier worker): keeps seq:complete (adapters/redis/seq_counters.py),
    # restoring the large groups' state first.
    seq_counters = providers.Singleton(SeqCounters, redis, messages.provided.highest_seqs,
                                       large_groups=sql_groups.provided.large_groups, streams=group_streams,
                                       keys=cluster_layout)
