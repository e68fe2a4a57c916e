"""courier serve | worker | migrate"""
from __future__ import annotations

import argparse
import asyncio
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
        ("serve", "the API and WebSocket gateway (embedded mode: also migrates and persists)"),
        ("worker", "the persister: stream:persist -> MySQL (production mode)"),
        ("migrate", "alembic upgrade head against the configured database"),
    ):
        add_flags(commands.add_parser(name, help=text, description=text))
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
        from adapters.sql.migrate import upgrade

        upgrade(settings.resolved_database_url())
        log.info("database migrated to head")
        return 0
    if args.command == "worker":
        if settings.mode == EMBEDDED:
            log.info("embedded mode: `courier serve` persists every message itself; no worker is needed")
            return 0
        from entrypoints.worker import run_worker

        return asyncio.run(_until_signal(lambda stop: run_worker(settings, stop)))
    from entrypoints.server import CourierServer

    async def serve(stop: asyncio.Event) -> int:
        server = CourierServer(settings)
        await server.start()
        await stop.wait()
        log.info("shutting down")
        await server.stop()
        return 0

    return asyncio.run(_until_signal(serve))


async def _until_signal(run) -> int:
    """Run `run(stop_event)` until SIGTERM or SIGINT sets the event."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await run(stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
