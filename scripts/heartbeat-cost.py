#!/usr/bin/env python3
"""The heartbeat's cost per client, in bytes per hour, for each long-lived transport.

Runs the server (target/debug/pushpoll unless PUSHPOLL_BIN is set) on 127.0.0.1 with
`--keepalive 1s`, subscribes to the draw feed (quiet: nothing but heartbeats crosses it) over
SSE, the hidden iframe and WebSocket with raw sockets, and long polling with `timeout=1`, and
measures the bytes of one heartbeat as they cross the socket: HTTP/1.1 chunked framing and
WebSocket frame headers included. Long polling's heartbeat is the empty answer that ends each
hold: the request and the answer, headers included. The bytes per hour at the defaults follow
from the server's own defaults (`--keepalive 15s`, a 25 s hold): heartbeats per hour times
bytes per heartbeat. TCP/IP headers are added as 52 bytes per segment (IPv4 20 + TCP 20 +
the timestamps option 12, Linux's default), one data segment per heartbeat (TCP_NODELAY) and
its ACK (two requests' and two answers' segments for a long poll); Ethernet framing and TLS
records are not counted (over HTTPS add a TLS record's 22 bytes (TLS 1.3 AEAD) per write).

Writes results/heartbeat/summary.json.
"""

import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PUSHPOLL_BIN", os.path.join(ROOT, "target/debug/pushpoll"))
TCPIP = 52  # IPv4 (20) + TCP (20) + timestamps option (12)
SAMPLES = 6  # heartbeats measured per transport


def start():
    proc = subprocess.Popen(
        [BIN, "--addr", "127.0.0.1:0", "--db", ":memory:", "--keepalive", "1s"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = proc.stdout.readline()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
    return proc, port


def read_for(sock, seconds):
    sock.settimeout(0.2)
    data = b""
    end = time.time() + seconds
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return data


def stream(port, path, extra=""):
    """Bytes of one heartbeat on a stream: the bytes after the first one, divided by the
    heartbeats among them."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode())
    data = read_for(s, SAMPLES + 1.5)
    s.close()
    marks = [m.start() for m in re.finditer(rb'"heartbeat"', data)]
    assert len(marks) >= 3, data[-400:]
    # From one heartbeat to the next: whole chunks, framing included.
    between = data[marks[0]:marks[-1]]
    per = len(between) / (len(marks) - 1)
    return per, len(marks)


def ws(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        (
            f"GET /ws/draw HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    data = read_for(s, SAMPLES + 1.5)
    s.close()
    marks = [m.start() for m in re.finditer(rb'\{"heartbeat"', data)]
    assert len(marks) >= 3, data[-400:]
    per = (marks[-1] - marks[0]) / (len(marks) - 1)
    return per, len(marks)


def longpoll(port):
    s = socket.create_connection(("127.0.0.1", port))
    up = down = 0
    n = 3
    after = None
    for _ in range(n + 1):
        q = f"timeout=1" + (f"&after={after}" if after is not None else "")
        req = f"GET /longpoll/draw?{q} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        s.sendall(req)
        s.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        while len(body) < length:
            body += s.recv(65536)
        after = json.loads(body)["next"]
        if _ > 0:  # the first may answer with history; the rest are empty holds
            assert json.loads(body)["events"] == [], body
            up += len(req)
            down += len(head) + 4 + length
    s.close()
    return up / n, down / n


def main():
    proc, port = start()
    try:
        time.sleep(0.5)
        sse, sse_n = stream(port, "/sse/draw", "Accept: text/event-stream\r\n")
        iframe, iframe_n = stream(port, "/iframe/draw")
        sock, ws_n = ws(port)
        lp_up, lp_down = longpoll(port)
    finally:
        proc.terminate()
        proc.wait()
    keepalive_s, hold_s = 15, 25  # the server's defaults: --keepalive 15s, timeout=25
    per_hour_stream = 3600 / keepalive_s
    per_hour_lp = 3600 / hold_s
    rows = {}
    # Measured at 1000 ms; at the default the heartbeat says 15000: one digit more (the chunk
    # size and WebSocket length stay in the same number of bytes).
    digits = len(str(keepalive_s * 1000)) - len("1000")
    for name, per, n in [("sse", sse, sse_n), ("iframe", iframe, iframe_n), ("ws", sock, ws_n)]:
        app = round(per) + digits
        rows[name] = {
            "heartbeat_bytes": app,
            "heartbeats_measured": n - 1,
            "heartbeats_per_hour": per_hour_stream,
            "app_bytes_per_hour": round(app * per_hour_stream),
            "wire_bytes_per_hour": round((app + 2 * TCPIP) * per_hour_stream),
            "wire_kib_per_hour": round((app + 2 * TCPIP) * per_hour_stream / 1024, 1),
        }
    app = round(lp_up + lp_down)
    rows["longpoll"] = {
        "heartbeat_bytes": app,
        "request_bytes": round(lp_up),
        "answer_bytes": round(lp_down),
        "heartbeats_per_hour": per_hour_lp,
        "app_bytes_per_hour": round(app * per_hour_lp),
        "wire_bytes_per_hour": round((app + 4 * TCPIP) * per_hour_lp),
        "wire_kib_per_hour": round((app + 4 * TCPIP) * per_hour_lp / 1024, 1),
    }
    summary = {
        "name": "heartbeat",
        "definition": (
            "bytes per hour one idle client costs for the heartbeat at the server's defaults "
            "(--keepalive 15s for SSE, iframe and WebSocket; the 25 s hold for long polling): "
            "heartbeats per hour x bytes per heartbeat. app_bytes: bytes on the socket "
            "(HTTP/1.1 chunk framing, WebSocket frame headers, long polling's request and "
            "answer headers included); wire_bytes: plus 52 B of IPv4+TCP headers per segment "
            "(one data segment and one ACK per heartbeat, two of each per long poll). "
            "Ethernet and TLS not counted."
        ),
        "command": "python3 scripts/heartbeat-cost.py",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{platform.node()} {platform.machine()} {platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        "binary": os.path.relpath(BIN, ROOT),
        "transports": rows,
        "not_counted": (
            "WebSocket also carries the server's ping every 20 s (--ws-ping: a 2-byte frame, "
            "answered by a 6-byte masked pong), a keep-alive the page cannot see"
        ),
    }
    out = os.path.join(ROOT, "results/heartbeat")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    json.dump(summary, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
