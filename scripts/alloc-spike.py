#!/usr/bin/env python3
"""Open N SSE streams on a local pushpoll, hold them, close them, and report the server's RSS.

Used by scripts/alloc-compare.sh. Prints one JSON line:
{"before_kb", "peak_kb", "after_kb", "opened", "failed"}. Only 127.0.0.0/8 targets; every
phase is bounded in time so a run cannot hang.
"""
import asyncio, json, sys, time

PORT, PID, N = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
HOLD_S, AFTER_S = float(sys.argv[4]), float(sys.argv[5])
SOURCES = 8  # spread the streams over 127.0.0.1..8 like several clients would


def rss_kb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def one(i, streams, ready):
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", PORT, local_addr=(f"127.0.0.{1 + i % SOURCES}", 0)), 10)
        w.write(f"GET /sse/clock HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n\r\n".encode())
        await w.drain()
        await asyncio.wait_for(r.read(1), 10)  # the response has started
        streams.append((r, w))
        ready.append(True)
        while True:  # keep draining so the server is never write-stalled
            if not await r.read(65536):
                return
    except (OSError, asyncio.TimeoutError):
        ready.append(False)


async def main():
    await asyncio.sleep(1)
    before = rss_kb()
    streams, ready = [], []
    tasks = []
    for i in range(N):
        tasks.append(asyncio.create_task(one(i, streams, ready)))
        if i % 200 == 199:
            await asyncio.sleep(0.02)  # stay under the listen backlog
    deadline = time.monotonic() + 60
    while len(ready) < N and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    peak = rss_kb()
    end = time.monotonic() + HOLD_S
    while time.monotonic() < end:
        peak = max(peak, rss_kb())
        await asyncio.sleep(0.25)
    for _, w in streams:
        w.transport.abort()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(AFTER_S)
    after = rss_kb()
    print(json.dumps({"before_kb": before, "peak_kb": peak, "after_kb": after,
                      "opened": sum(ready), "failed": len(ready) - sum(ready)}))


asyncio.run(main())
