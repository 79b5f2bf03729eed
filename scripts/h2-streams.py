#!/usr/bin/env python3
"""What an open HTTP/2 stream costs the server in memory, to choose SETTINGS_MAX_CONCURRENT_STREAMS.

For each kind of held stream (an SSE stream on /sse/clock; a long poll parked on
/longpoll/draw, which without a cursor waits for the next stroke) and each number of streams
per connection S (1 up to the server's cap), a fresh server (`--tls-self-signed`, `--db :memory:`) gets C connections (one `curl --http2 --parallel`
each, which multiplexes its S requests as streams of one connection). Once /api/stats counts all
C x S held streams open, the server's RSS (VmRSS of /proc/PID/status) is read. The cost of a
stream is the slope of RSS over streams at fixed C (least squares), so what a connection costs
is not counted in it.

    scripts/h2-streams.py [--bin target/release/pushpoll] [--connections 10] [--out results/h2-streams]

Writes OUT/summary.json (the command, the date, the machine, every point and the slopes) and
OUT/README.md. Loopback only; needs curl with HTTP/2 (nghttp2).
"""

import argparse
import datetime
import json
import os
import platform
import re
import ssl
import subprocess
import sys
import time
import urllib.request

KINDS = {
    # path, the transport whose `open` count says the streams are held
    "sse": ("/sse/clock", "sse"),
    "longpoll": ("/longpoll/draw?timeout=60", "longpoll"),
}


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def stats(url):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url + "/api/stats", context=ctx, timeout=5) as r:
        return json.load(r)


def start_server(binary, cap_peer):
    args = [
        binary, "--addr", "127.0.0.1:0", "--tls-self-signed", "--db", ":memory:",
        "--max-requests-per-peer", str(cap_peer),
        "--max-connections-per-peer", "1000",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    m = re.search(r"https://[0-9.:]+", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"no URL in {line!r}")
    return proc, m.group(0)


def point(binary, kind, connections, per_conn, settle_s):
    path, transport = KINDS[kind]
    proc, url = start_server(binary, connections * per_conn + 64)
    curls = []
    try:
        # One warm-up request, so the baseline includes what any first request allocates.
        stats(url)
        time.sleep(0.5)
        baseline = rss_bytes(proc.pid)
        for _ in range(connections):
            cmd = ["curl", "-sk", "--http2", "--parallel", "--parallel-max", str(per_conn),
                   "-o", "/dev/null"]
            for _ in range(per_conn):
                cmd += [url + path, "-o", "/dev/null"]
            curls.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        want = connections * per_conn
        deadline = time.time() + 30
        s = stats(url)
        while time.time() < deadline:
            s = stats(url)
            if s["transports"][transport]["open"] >= want:
                break
            time.sleep(0.2)
        held = s["transports"][transport]["open"]
        conns = s["connections"]["open"]
        time.sleep(settle_s)
        rss = rss_bytes(proc.pid)
        return {
            "kind": kind, "connections": connections, "streams_per_connection": per_conn,
            "streams_held": held, "connections_open": conns,
            "rss_baseline_bytes": baseline, "rss_bytes": rss,
        }
    finally:
        for c in curls:
            c.kill()
            c.wait()
        proc.terminate()
        proc.wait()


def slope(points):
    xs = [p["streams_held"] for p in points]
    ys = [p["rss_bytes"] for p in points]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


LOADAVG_AT_START = open("/proc/loadavg").read().split()[:3]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/pushpoll")
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--streams", default="1,25,50,75,100", help="streams per connection, comma-separated")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--out", default="results/h2-streams")
    ap.add_argument("--cap", type=int, default=100, help="the server's MAX_H2_STREAMS, for the README")
    ap.add_argument("--per-peer", type=int, default=128, help="--max-requests-per-peer's default, for the README")
    a = ap.parse_args()
    per = [int(x) for x in a.streams.split(",")]
    points, slopes = [], {}
    for kind in KINDS:
        mine = []
        for s in per:
            p = point(a.bin, kind, a.connections, s, a.settle)
            print(json.dumps(p), file=sys.stderr)
            mine.append(p)
        points += mine
        slopes[kind] = round(slope(mine))
    incomplete = [p for p in points if p["streams_held"] < p["connections"] * p["streams_per_connection"]]
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    summary = {
        "what": "server RSS per open HTTP/2 stream (slope of RSS over held streams at a fixed number of connections)",
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
            "curl": subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
        },
        "binary": a.bin,
        "loadavg_at_start": LOADAVG_AT_START,
        "max_h2_streams": a.cap,
        "bytes_per_stream": slopes,
        "kib_per_stream": {k: round(v / 1024, 1) for k, v in slopes.items()},
        "incomplete_points": len(incomplete),
        "points": points,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    rows = "\n".join(
        f"| {p['kind']} | {p['connections']} | {p['streams_per_connection']} | {p['streams_held']} | "
        f"{p['rss_bytes'] / 1048576:.2f} |" for p in points)
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write(f"""# What an open HTTP/2 stream costs the server

`{summary['command']}`, {summary['date']}, {cpu}, {os.cpu_count()} cores.

Each point is a fresh server with {a.connections} HTTP/2 connections (`curl --http2 --parallel`),
each holding S streams; RSS is read once `/api/stats` counts every stream open. The cost of a
stream is the least-squares slope of RSS over held streams, so a connection's own cost is not in it.

| kind | bytes per stream | KiB per stream |
|---|---|---|
""" + "\n".join(f"| {k} | {v} | {summary['kib_per_stream'][k]} |" for k, v in slopes.items()) + f"""

| kind | connections | streams per connection | streams held | RSS (MiB) |
|---|---|---|---|---|
{rows}
""" + decision(slopes, a.cap, a.per_peer))
    print(json.dumps({"bytes_per_stream": slopes, "incomplete_points": len(incomplete)}))


def decision(slopes, cap, per_peer):
    """What the cap costs at most, from the measured slopes, for the README."""
    worst = max(slopes, key=slopes.get)
    return f"""
## What it means for SETTINGS_MAX_CONCURRENT_STREAMS

The server advertises {cap} streams per connection (`MAX_H2_STREAMS`, src/listener.rs), RFC 9113
§6.5.2's recommended minimum. At the dearest kind measured ({worst}), one connection's full set
of held streams costs about {slopes[worst] * cap / 1048576:.2f} MiB. The cap does not widen what one
client can hold: every stream is a request in flight, and `--max-requests-per-peer` (default
{per_peer}) bounds those over all of a peer's connections, about
{slopes[worst] * per_peer / 1048576:.2f} MiB of held streams at that cost.
"""


if __name__ == "__main__":
    main()
