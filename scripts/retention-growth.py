#!/usr/bin/env python3
"""How fast the SQLite database grows under the audit's flood, and where
it stops: N sessions from one address (127.0.0.2) post the largest message (2000 four-byte
characters, 8,000 bytes of text) as fast as --rate-limit lets them, for S seconds.

    scripts/retention-growth.py [--bin target/release/pushpoll] [--seconds 30]
                                [--sessions 30] [--out FILE.json] [-- SERVER FLAGS...]

Starts the binary on 127.0.0.1:0 with a fresh database in a temporary directory (plus the
server flags given after `--`, e.g. `--retain-bytes 8388608`), samples the database file and
its -wal every second, and prints (and writes to --out) one JSON object: the command, the
machine, messages stored, the samples, the file size at start, at its largest and at the end,
the growth rate over the whole run and over its second half (with the messages stored in
it), and the append latency (POST to 201, as the client sees it) in each half. Touches
nothing outside its temporary directory; only loopback.
"""
import http.client, json, os, platform, subprocess, sys, tempfile, threading, time

args = sys.argv[1:]
server_flags = []
if "--" in args:
    i = args.index("--")
    args, server_flags = args[:i], args[i + 1:]
opts = {"--bin": "target/release/pushpoll", "--seconds": "30", "--sessions": "30", "--out": ""}
while args:
    key, value, args = args[0], args[1], args[2:]
    if key not in opts:
        sys.exit(f"unknown option {key}")
    opts[key] = value
SECONDS, SESSIONS = float(opts["--seconds"]), int(opts["--sessions"])
BODY = json.dumps({"room": "lobby", "text": "\U0001F600" * 2000}, ensure_ascii=False).encode()

work = tempfile.mkdtemp(prefix="retention-")
db = os.path.join(work, "chat.sqlite")
server = subprocess.Popen(
    [opts["--bin"], "--addr", "127.0.0.1:0", "--db", db, *server_flags],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    line = server.stdout.readline()
    addr = next(w for w in line.split() if w.startswith("http://")).rstrip("/")[len("http://"):]
    host, port = addr.rsplit(":", 1)
    port = int(port)

    def connect():
        return http.client.HTTPConnection(host, port, timeout=10, source_address=("127.0.0.2", 0))

    def size(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0

    cookies = []
    for i in range(SESSIONS):
        c = connect()
        c.request("POST", "/api/session", json.dumps({"nick": f"flood{i}"}),
                  {"content-type": "application/json"})
        r = c.getresponse()
        r.read()
        if r.status != 201:
            sys.exit(f"login {i}: {r.status}")
        cookies.append(r.getheader("set-cookie").split(";")[0])
        c.close()

    start_sizes = (size(db), size(db + "-wal"))
    stored, refused, latencies = [0], [0], []
    lock = threading.Lock()
    began = time.monotonic()
    deadline = began + SECONDS

    def flood(cookie):
        c = connect()
        while time.monotonic() < deadline:
            sent = time.monotonic()
            c.request("POST", "/api/chat/messages", BODY,
                      {"content-type": "application/json", "cookie": cookie})
            r = c.getresponse()
            r.read()
            took = time.monotonic() - sent
            with lock:
                if r.status == 201:
                    stored[0] += 1
                    latencies.append((sent - began, took))
                elif r.status == 429:
                    refused[0] += 1
                else:
                    raise SystemExit(f"unexpected {r.status}")
            if r.status == 429:
                time.sleep(min(float(r.getheader("retry-after") or 1), 1.0))

    threads = [threading.Thread(target=flood, args=(c,)) for c in cookies]
    for t in threads:
        t.start()
    samples = []
    while time.monotonic() < deadline + 0.5:
        with lock:
            n = stored[0]
        samples.append({"t_s": round(time.monotonic() - began, 1), "stored": n,
                        "db_bytes": size(db), "wal_bytes": size(db + "-wal")})
        time.sleep(1)
    for t in threads:
        t.join()

    # The flood comes in bursts (each session's 20 messages, then 10 s of 429s), so growth is
    # given over the whole run and over its second half, each from first to last sample.
    def growth(part):
        return round((part[-1]["db_bytes"] - part[0]["db_bytes"]) / max(part[-1]["t_s"] - part[0]["t_s"], 1e-9))

    half = [s for s in samples if s["t_s"] >= SECONDS / 2]

    def pct(xs, p):
        xs = sorted(xs)
        return round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 2) if xs else None

    first_half = [took for t, took in latencies if t < SECONDS / 2]
    second_half = [took for t, took in latencies if t >= SECONDS / 2]
    result = {
        "command": " ".join(["scripts/retention-growth.py", *sys.argv[1:]]),
        "server": [opts["--bin"], "--addr", "127.0.0.1:0", "--db", "TMP/chat.sqlite", *server_flags],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                   f"Linux {platform.release()}, loadavg at end {os.getloadavg()[0]:.2f}",
        "sessions": SESSIONS, "seconds": SECONDS, "message_text_bytes": 8000,
        "stored": stored[0], "refused_429": refused[0],
        "db_bytes_start": start_sizes[0], "db_bytes_max": max(s["db_bytes"] for s in samples),
        "db_bytes_end": samples[-1]["db_bytes"],
        "wal_bytes_max": max(s["wal_bytes"] for s in samples),
        "db_growth_bytes_per_s": growth(samples),
        "db_growth_bytes_per_s_second_half": growth(half),
        "stored_second_half": half[-1]["stored"] - half[0]["stored"],
        "append_ms_p50_p99_first_half": [pct(first_half, 0.5), pct(first_half, 0.99)],
        "append_ms_p50_p99_second_half": [pct(second_half, 0.5), pct(second_half, 0.99)],
        "samples": samples,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if opts["--out"]:
        with open(opts["--out"], "w") as f:
            f.write(text + "\n")
finally:
    server.terminate()
    server.wait(timeout=10)
    for name in os.listdir(work):
        os.remove(os.path.join(work, name))
    os.rmdir(work)
