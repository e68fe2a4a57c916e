"""Where a large group's message waits inside `courier serve`, for docs/perf-notes.md.

Not part of Courier: put this directory first on PYTHONPATH of a benchmark run of the
load generator's fan-out (its contents are "bench|<tag>|<seq>|<sent at>", the load
generator's time.perf_counter: CLOCK_MONOTONIC, the same clock in every process), and
`courier serve` records, for each message to a large group, in ms after its sender sent it:
  handler     SendGroupMessage called (the POST parsed, the token checked)
  appended    the stream append returned (the 201 is next)
  notified    the notification reached Gateway._push_group
  pushed      every local socket's frame queued
  written     the SocketWriter's flush that wrote them ended
and, with their times, the event loop's stalls over 20 ms (a timer every 2 ms that came
late) and the garbage collections over 2 ms. At exit $LARGE_TIMER_OUT (default
/tmp/large_timer.txt) gets the stages' p50/p90/p99 and the slowest messages, each with the
stalls and collections around it:

  PYTHONPATH=scripts/bench/large_timer PROFILE=0 scripts/bench/profile.sh production fanout \\
      "--scenarios fanout --fanout 1000@50 --fanout-seconds 10" /tmp/large
"""
import atexit
import builtins
import gc
import os
import sys
import time

if "serve" in sys.argv:
    clock = time.perf_counter
    marks: dict[str, dict[str, float]] = {}  # the message's content -> stage -> time
    sent_at: dict[str, float] = {}  # the message's content -> the load generator's send time
    stalls: list[tuple[float, float]] = []  # (when the late timer ran, how late)
    collections: list[tuple[float, int, float]] = []  # (start, generation, seconds)
    _collecting: list[float] = []
    _flushing: list[str] = []

    def _on_gc(phase, info):
        if phase == "start":
            _collecting[:] = [clock()]
        elif _collecting:
            began = _collecting.pop()
            collections.append((began, info["generation"], clock() - began))

    gc.callbacks.append(_on_gc)
    long_callbacks: list[tuple[float, float, str]] = []  # (start, seconds, what ran)

    if os.environ.get("LARGE_TIMER_CALLBACKS") == "1":
        # Which callback holds the loop (only when Courier runs on asyncio's own loop,
        # COURIER_EVENT_LOOP=asyncio: uvloop's handles cannot be wrapped).
        import asyncio.events

        _run = asyncio.events.Handle._run

        def timed_run(self):
            started = clock()
            _run(self)
            took = clock() - started
            if took > 0.02:
                long_callbacks.append((started, took, repr(self)[:300]))

        asyncio.events.Handle._run = timed_run

    def _sent_time(content) -> float | None:
        parts = content.split("|") if isinstance(content, str) else ()
        if len(parts) == 4 and parts[0] == "bench":
            try:
                return float(parts[3])
            except ValueError:
                return None
        return None

    def _patch():
        import asyncio

        import application.gateway as gateway_module
        import application.groups as groups_module
        import application.messaging as messaging_module
        import entrypoints.socket_writer as writer_module

        create = groups_module.ManageGroups.create

        async def watched_create(self, *args, **kwargs):
            while _started:  # the loop runs now: watch it from the group's creation on
                _started.pop()()
            created = await create(self, *args, **kwargs)
            marks["created"] = {"at": clock()}
            return created

        groups_module.ManageGroups.create = watched_create
        send_group = messaging_module.SendGroupMessage.__call__

        async def timed_send_group(self, sender_id, group_id, body):
            started = clock()
            content = body.get("content") if isinstance(body, dict) else None
            t = _sent_time(content)
            if t is not None:
                sent_at[content] = t
                marks.setdefault(content, {})["handler"] = started
            message = await send_group(self, sender_id, group_id, body)
            if t is not None:
                marks[content]["appended"] = clock()
            return message

        push_group = gateway_module.Gateway._push_group

        def timed_push_group(self, notification):
            started = clock()
            push_group(self, notification)
            content = getattr(notification.event, "content", None)
            if content in sent_at:
                stages = marks[content]
                stages["notified"] = started
                stages["pushed"] = clock()
                _flushing.append(content)

        flush = writer_module.SocketWriter.flush

        def timed_flush(self):
            flush(self)
            if _flushing:
                ended = clock()
                for content in _flushing:
                    marks[content]["written"] = ended
                _flushing.clear()

        messaging_module.SendGroupMessage.__call__ = timed_send_group
        gateway_module.Gateway._push_group = timed_push_group
        writer_module.SocketWriter.flush = timed_flush

        def watch_loop():
            loop = asyncio.get_running_loop()
            due = [clock() + 0.002]

            def tick():
                late = clock() - due[0]
                if late > 0.02:
                    stalls.append((clock(), late))
                due[0] = clock() + 0.002
                loop.call_later(0.002, tick)

            loop.call_later(0.002, tick)

        _started.append(watch_loop)

    _started: list = []
    _import = builtins.__import__
    _patched: list = []

    def _import_then_patch(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        if not _patched and name == "entrypoints.server":
            _patched.append(True)
            _patch()
        return module

    builtins.__import__ = _import_then_patch

    @atexit.register
    def _report():
        done = {mid: st for mid, st in marks.items() if mid in sent_at and len(st) == 5}
        order = ("handler", "appended", "notified", "pushed", "written")
        with open(os.environ.get("LARGE_TIMER_OUT", "/tmp/large_timer.txt"), "w") as out:
            if not done:
                out.write("no large-group message of the load generator was timed\n")
                return
            first = min(sent_at[mid] for mid in done)
            if "created" in marks:
                out.write(f"group created (201 ready) at {marks['created']['at'] - first:.3f}s\n")
            out.write(f"messages timed: {len(done)}\n")
            for stage in order:
                times = sorted((st[stage] - sent_at[mid]) * 1e3 for mid, st in done.items())
                n = len(times)
                out.write(f"{stage:9} ms after send: p50={times[n // 2]:.1f} p90={times[int(n * .9)]:.1f} "
                          f"p99={times[int(n * .99)]:.1f} max={times[-1]:.1f}\n")
            long_gc = [(at, gen, took) for at, gen, took in collections if took > 0.002 and at >= first - 2]
            out.write("collections over 2 ms from 2 s before the first send: "
                      + ", ".join(f"at={at - first:.3f}s gen{gen} {took * 1e3:.1f}ms" for at, gen, took in long_gc)
                      + "\n")
            out.write("loop stalls over 20 ms from 2 s before the first send: "
                      + ", ".join(f"at={at - first:.3f}s {late * 1e3:.1f}ms" for at, late in stalls if at >= first - 2)
                      + "\n")
            for at, took, what in long_callbacks:
                if at >= first - 2:
                    out.write(f"callback over 20 ms at={at - first:.3f}s {took * 1e3:.1f}ms {what}\n")
            slowest = sorted(done, key=lambda mid: done[mid]["written"] - sent_at[mid], reverse=True)[:12]
            out.write("slowest (at: s after the first send; stages in ms after its send):\n")
            for mid in slowest:
                t = sent_at[mid]
                st = done[mid]
                out.write(f"  at={t - first:.3f}s " + " ".join(f"{s}={(st[s] - t) * 1e3:.1f}" for s in order) + "\n")
