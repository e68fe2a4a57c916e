"""Stage timings of group fan-out inside `courier serve`, for docs/perf-notes.md.

Not part of Courier: put this directory first on PYTHONPATH of a benchmark run and
`courier serve` times, for messages to more than 100 recipients,
  before        SendGroupMessage called -> RedisInbox.deliver called (group lookup,
                checks, recipients)
  deliver       RedisInbox.deliver (pack, EVALSHA round trip, Redis's script)
  notif_delay   deliver returned -> the notification reached the gateway
  on_notif      Gateway.on_notification (who gets it, queue the frames)
  flush         SocketWriter writing them (one send() per socket; in slices, first to last)
  in_gateway    SendGroupMessage called -> the end of the flush that wrote its frames
and lists the garbage collections (gc.callbacks) of the fan-out, with their length.
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
    stages = {"before": [], "deliver": [], "notif_delay": [], "on_notif": [], "flush": [], "in_gateway": []}
    delivered_at = {}
    group_send_started = []
    started_by_id = {}
    timeline = {}  # message id -> {stage: time}: the slowest are written out in full
    collections = []  # (start, generation, seconds) of every garbage collection
    _collecting = []

    def _on_gc(phase, info):
        if phase == "start":
            _collecting[:] = [time.perf_counter()]
        elif _collecting:
            began = _collecting.pop()
            collections.append((began, info["generation"], time.perf_counter() - began))

    import gc
    gc.callbacks.append(_on_gc)
    flushing = []

    def _patch():
        import adapters.redis.inbox as inbox_module
        import application.gateway as gateway_module
        import application.messaging as messaging_module
        import entrypoints.socket_writer as writer_module

        deliver = inbox_module.RedisInbox.deliver

        send_group = messaging_module.SendGroupMessage.__call__

        async def timed_send_group(self, sender_id, group_id, body):
            started = time.perf_counter()
            group_send_started.append(started)
            message = await send_group(self, sender_id, group_id, body)
            return message

        async def timed_deliver(self, message, recipient_ids):
            started = time.perf_counter()
            if len(recipient_ids) > 100 and group_send_started:
                began = group_send_started.pop()
                stages["before"].append(started - began)
                started_by_id[message.id] = began
                timeline[message.id] = {"send": began, "deliver": started}
            try:
                return await deliver(self, message, recipient_ids)
            finally:
                if len(recipient_ids) > 100:
                    delivered_at[message.id] = time.perf_counter()
                    timeline.get(message.id, {})["delivered"] = delivered_at[message.id]
                    stages["deliver"].append(time.perf_counter() - started)

        on_notification = gateway_module.Gateway.on_notification

        def timed_on_notification(self, notification):
            started = time.perf_counter()
            returned = delivered_at.pop(notification.message.id, None)
            if returned is not None:
                stages["notif_delay"].append(started - returned)
            timeline.get(notification.message.id, {})["notified"] = started
            on_notification(self, notification)
            if len(notification.cursors) > 100:
                stages["on_notif"].append(time.perf_counter() - started)
                flushing.append(notification.message.id)

        def record_written(started, message_ids):
            ended = time.perf_counter()
            stages["flush"].append(ended - started)
            for message_id in message_ids:
                timeline.get(message_id, {}).update(written_from=started, written=ended)
                began = started_by_id.pop(message_id, None)
                if began is not None:
                    stages["in_gateway"].append(ended - began)

        if hasattr(writer_module.SocketWriter, "_write_some"):
            # Written in slices over several turns: a cycle starts when nothing is being
            # written and more than 100 sockets wait, and ends when the slices are done.
            write_some = writer_module.SocketWriter._write_some
            cycle = []

            def timed_write_some(self):
                if not self._writing and len(self._pending) > 100:
                    cycle[:] = [time.perf_counter(), list(flushing)]
                    flushing.clear()
                write_some(self)
                if cycle and not self._writing:
                    record_written(*cycle)
                    cycle.clear()

            writer_module.SocketWriter._write_some = timed_write_some
        else:
            flush = writer_module.SocketWriter.flush

            def timed_flush(self):
                started, sockets = time.perf_counter(), len(self._pending)
                flush(self)
                if sockets > 100:
                    record_written(started, list(flushing))
                    flushing.clear()

            writer_module.SocketWriter.flush = timed_flush

        inbox_module.RedisInbox.deliver = timed_deliver
        messaging_module.SendGroupMessage.__call__ = timed_send_group
        gateway_module.Gateway.on_notification = timed_on_notification

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
            complete = [t for t in timeline.values() if "written" in t]
            complete.sort(key=lambda t: t["written"] - t["send"], reverse=True)
            first = min((t["send"] for t in complete), default=0.0)
            out.write("slowest in the gateway (at: s after the first group send; stages: ms after its send began):\n")
            during = [(at - first, gen, took) for at, gen, took in collections if at >= first]
            long_ones = [f"at={at:.2f}s gen{gen} {took * 1e3:.1f}ms" for at, gen, took in during if took > 0.002]
            out.write(f"garbage collections from the first group send on: {len(during)}; over 2 ms: "
                      + ", ".join(long_ones) + "\n")
            for t in complete[:12]:
                out.write(f"  at={t['send'] - first:.2f}s " + " ".join(f"{stage}={(at - t['send']) * 1e3:.1f}"
                                         for stage, at in sorted(t.items(), key=lambda kv: kv[1])) + "\n")
