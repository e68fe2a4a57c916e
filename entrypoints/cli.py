"""courier serve | worker | migrate | seed-channel"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys

from entrypoints import logs
from entrypoints.settings import EMBEDDED, SettingsError, add_flags, load

log = logging.getLogger("courier.cli")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="courier", description="Courier: real-time messaging backend")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "the API and WebSocket gateway (a SQLite database: also migrates it; embedded mode: also persists)"),
        ("worker", "the persister: stream:persist -> MySQL (production mode)"),
        ("migrate", "alembic upgrade head against the configured database"),
    ):
        add_flags(commands.add_parser(name, help=text, description=text))
    text = ("a broadcast channel of N new members, for benchmarks (COURIER_LARGE_GROUP must be on); "
            "prints the channel's id, its owner and the members' names as JSON")
    seed = commands.add_parser("seed-channel", help=text, description=text)
    seed.add_argument("--members", type=int, required=True, help="members, the owner included")
    seed.add_argument("--password", default="password-123", help="every seeded user's password")
    seed.add_argument("--prefix", default=None,
                      help="the users' names: <prefix>owner and <prefix>000001 ... (default: a random one)")
    seed.add_argument("--channel-name", default="seeded channel")
    add_flags(seed)
    args = parser.parse_args(argv)
    try:
        settings = load(args)
        if args.command != "migrate":
            settings.resolved_jwt_secret()  # production refuses to start without one
    except SettingsError as error:
        print(f"courier: {error}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_file)
    if args.command == "migrate":
        return _migrate(settings.resolved_database_url())
    if args.command == "seed-channel":
        return _seed_channel(settings, args)
    if args.command == "worker":
        if settings.mode == EMBEDDED:
            log.info("embedded mode: `courier serve` persists every message itself; no worker is needed")
            return 0
        from entrypoints.worker import run_worker

        return _run(settings, _until_signal(lambda stop: run_worker(settings, stop)))
    from entrypoints.server import CourierServer

    async def serve(stop: asyncio.Event) -> int:
        server = CourierServer(settings)
        if not await _start_unless_stopped(server, stop):
            return 0
        settle_garbage_collector()
        await stop.wait()
        log.info("shutting down")
        await server.stop()
        return 0

    return _run(settings, _until_signal(serve))


async def _start_unless_stopped(server, stop: asyncio.Event) -> bool:
    """server.start(), given up (cancelled) if a signal to stop comes first: in production
    mode it waits for Redis before listening (entrypoints/bucket_guard.py)."""
    starting = asyncio.ensure_future(server.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if starting.done():
        starting.result()  # its exception, if any (BucketCountChanged: see _run)
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False


def _run(settings, main_coroutine) -> int:
    """Run on uvloop (COURIER_EVENT_LOOP=uvloop, the default, when it is installed):
    its loop makes the futures, handles and timers every request and push goes
    through cheaper than asyncio's pure-Python loop (see docs/perf-notes.md)."""
    factory = None
    if settings.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("COURIER_EVENT_LOOP=uvloop but uvloop is not installed; using asyncio's loop")
        else:
            factory = uvloop.new_event_loop
    from adapters.redis.deployment import BucketCountChanged

    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            return runner.run(main_coroutine)
        except BucketCountChanged as error:
            # Started with another COURIER_REDIS_BUCKETS than its Redis data was written
            # with: one line saying so, and the exit status of a bad setting.
            print(f"courier: {error}", file=sys.stderr)
            return 2


# A young collection every GC_THRESHOLD0 allocations (CPython's default: 700). With
# thousands of sockets every push and request allocates, and the default makes the
# collector run thousands of times a second and promote short-lived objects into
# older generations, whose collections then walk every socket's objects.
GC_THRESHOLD0 = 20_000


def settle_garbage_collector() -> None:
    """After start-up: everything made so far (modules, the app, the container, the
    adapters) lives as long as the process, so move it out of the collector's sight
    (gc.freeze) and collect less often. The collector stays on: reference cycles
    that sockets and futures leave behind are still freed."""
    gc.collect()
    gc.freeze()
    _, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD0, threshold1, threshold2)


def _seed_channel(settings, args: argparse.Namespace) -> int:
    from adapters.redis.deployment import BucketCountChanged
    from domain import errors
    from entrypoints.seed import seed_channel

    if settings.large_group <= 0:
        print("courier: seed-channel needs large groups on (COURIER_LARGE_GROUP > 0)", file=sys.stderr)
        return 2
    if args.members < 1:
        print("courier: --members must be at least 1 (the owner)", file=sys.stderr)
        return 2
    try:
        seeded = asyncio.run(seed_channel(settings, args.members, args.password, args.prefix, args.channel_name))
    except errors.CourierError as error:
        print(f"courier: {error}", file=sys.stderr)
        return 1
    except BucketCountChanged as error:
        print(f"courier: {error}", file=sys.stderr)
        return 2
    print(json.dumps(seeded.public()))
    return 0


def _migrate(database_url: str) -> int:
    """`courier migrate`: a database that cannot be reached or refuses the login is one
    line of error (the URL without its password), not an alembic traceback."""
    from sqlalchemy import exc
    from sqlalchemy.engine import make_url

    from adapters.sql.migrate import upgrade

    try:
        upgrade(database_url)
    except (exc.OperationalError, exc.InterfaceError) as error:
        shown = make_url(database_url).render_as_string(hide_password=True)
        log.error("cannot migrate %s: %s", shown, error.orig)
        return 1
    log.info("database migrated to head")
    return 0


async def _until_signal(run) -> int:
    """Run `run(stop_event)` until SIGTERM or SIGINT sets the event."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await run(stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
