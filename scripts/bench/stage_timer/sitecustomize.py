"""Stage timings of group fan-out inside `courier serve`, for docs/perf-notes.md.

Not part of Courier: put this directory first on PYTHONPATH of a benchmark run and
`courier serve` times, for messages to more than 100 recipients,
  deliver       RedisInbox.deliver (pack, EVALSHA round trip, Redis's script)
  notif_delay   deliver returned -> the notification reached the gateway
  on_notif      Gateway.on_notification (who gets it, queue the frames)
  flush         Frames.flush (one send() per socket)
and writes p50/p90/p99 to $STAGE_TIMER_OUT (default /tmp/stage_timer.txt) at exit:

  PYTHONPATH=scripts/bench/stage_timer PROFILE=0 scripts/bench/profile.sh production fanout \
      "--scenarios fanout --fanout 1000@50 --fanout-seconds 10" /tmp/stages
"""
import atexit
import builtins
import os
import sys
import time

if "serve" in sys.argv:
    stages = {"deliver": [], "notif_delay": [], "on_notif": [], "flush": []}
    delivered_at = {}

    def _patch():
        import adapters.redis.inbox as inbox_module
        import application.gateway as gateway_module
        import entrypoints.ws as ws_module

        deliver = inbox_module.RedisInbox.deliver

        async def timed_deliver(self, message, recipient_ids):
            started = time.perf_counter()
            try:
                return await deliver(self, message, recipient_ids)
            finally:
                if len(recipient_ids) > 100:
                    delivered_at[message.id] = time.perf_counter()
                    stages["deliver"].append(time.perf_counter() - started)

        on_notification = gateway_module.Gateway.on_notification

        def timed_on_notification(self, notification):
            started = time.perf_counter()
            returned = delivered_at.pop(notification.message.id, None)
            if returned is not None:
                stages["notif_delay"].append(started - returned)
            on_notification(self, notification)
            if len(notification.cursors) > 100:
                stages["on_notif"].append(time.perf_counter() - started)

        flush = ws_module.Frames.flush

        def timed_flush(self):
            started, sockets = time.perf_counter(), len(self._pending)
            flush(self)
            if sockets > 100:
                stages["flush"].append(time.perf_counter() - started)

        inbox_module.RedisInbox.deliver = timed_deliver
        gateway_module.Gateway.on_notification = timed_on_notification
        ws_module.Frames.flush = timed_flush

    _import = builtins.__import__
    _patched = []

    def _import_then_patch(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        if not _patched and name == "entrypoints.server":
            _patched.append(True)
            _patch()
        return module

    builtins.__import__ = _import_then_patch

    @atexit.register
    def _report():
        with open(os.environ.get("STAGE_TIMER_OUT", "/tmp/stage_timer.txt"), "w") as out:
            for name, times in stages.items():
                if times:
                    times.sort()
                    n = len(times)
                    out.write(f"{name} n={n} p50={times[n // 2] * 1e3:.2f}ms "
                              f"p90={times[int(n * .9)] * 1e3:.2f}ms p99={times[int(n * .99)] * 1e3:.2f}ms\n")
