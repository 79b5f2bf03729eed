//! `--url` given more than once: the load tester spreads its subscribers over the nodes and
//! reports each node and the total. A real two-node cluster needs Redis (the server's
//! tests); here the SAME real server is given twice, which exercises everything the load
//! tester does per node: each subscriber must still get every message, the per-node rows
//! must add up to the total, and the server's own figures must be counted once.

mod common;

use common::{loadtest, summary_of};

/// A pushpoll server on a free loopback port, killed when dropped.
struct Server {
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let (child, addr) = common::start_pushpoll();
    Server {
        child,
        url: format!("http://{addr}/"),
    }
}

#[test]
fn the_same_server_given_twice_delivers_everything_with_node_rows_that_sum_to_the_total() {
    let server = start_server();
    let out = std::env::temp_dir().join(format!("loadtest-nodes-{}", std::process::id()));
    for transport in ["sse", "ws", "longpoll"] {
        let _ = std::fs::remove_dir_all(&out);
        // --redis-pid is given the server's own pid: any process's /proc/PID/stat reads the
        // same way, and this one's CPU is also known from /api/stats, to check it against.
        let pid = server.child.id().to_string();
        let summary = summary_of(
            loadtest()
                .args(["run", "--transport", transport, "--clients", "21"])
                .args(["--rate", "10", "--duration", "3s", "--ramp", "300ms"])
                .args(["--rooms", "2", "--url", &server.url, "--url", &server.url])
                .args(["--redis-pid", &pid, "--out"])
                .arg(&out),
            &out,
        );
        let r = &summary["results"][0];
        let t = transport;
        let u = |v: &serde_json::Value, k: &str| {
            v[k].as_u64()
                .unwrap_or_else(|| panic!("{t}: no {k} in {v}"))
        };
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap();
        assert_eq!(r["errors"], serde_json::json!({}), "{t}: {r}");
        assert_eq!(u(r, "lost"), 0, "{t}: {r}");
        assert_eq!(u(r, "duplicates"), 0, "{t}");
        assert!(u(r, "events_expected") >= 21 * 10, "{t}: {r}");
        assert_eq!(u(r, "events_received"), u(r, "events_expected"), "{t}");

        let nodes = r["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{t}: {r}");
        for node in nodes {
            assert_eq!(node["url"], server.url.as_str(), "{t}");
            assert_eq!(u(node, "lost"), 0, "{t}: {node}");
            assert_eq!(
                u(node, "events_received"),
                u(node, "events_expected"),
                "{t}"
            );
            assert!(node["latency_us"]["p99"].as_u64().unwrap() > 0, "{t}");
            assert!(u(node, "bytes_in") > 0, "{t}");
        }
        // Round-robin: 21 subscribers over 2 nodes are 11 and 10.
        assert_eq!((u(&nodes[0], "clients"), u(&nodes[1], "clients")), (11, 10));
        // The subscribers' figures sum to the total ...
        for key in [
            "clients",
            "events_expected",
            "events_received",
            "lost",
            "duplicates",
            "requests",
            "bytes_in",
            "bytes_out",
        ] {
            assert_eq!(
                nodes.iter().map(|n| u(n, key)).sum::<u64>(),
                u(r, key),
                "{t}: {key} of the nodes do not sum to the total: {r}"
            );
        }
        // ... while one server's own figures are counted once: both rows show it whole.
        assert_eq!(
            u(&nodes[0], "server_requests"),
            u(r, "server_requests"),
            "{t}"
        );
        assert_eq!(u(r, "requests"), u(r, "server_requests"), "{t}: {r}");
        assert_eq!(f(&nodes[1], "server_cpu_s"), f(r, "server_cpu_s"), "{t}");
        // The same process's CPU read two ways (getrusage in /api/stats, /proc/PID/stat in
        // clock ticks of 10 ms), over windows a few ms apart.
        let (srv, redis) = (f(r, "server_cpu_s"), f(r, "redis_cpu_s"));
        assert!(
            srv > 0.0 && (srv - redis).abs() < 0.15,
            "{t}: {srv} vs {redis}"
        );

        let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1 + 3, "{t}: {csv}");
        assert!(csv.lines().next().unwrap().ends_with(",node,redis_cpu_s"));
        let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(md.contains("## Per node"), "{t}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn bad_node_options_are_one_line_errors() {
    let fails = |args: &[&str], needle: &str| {
        let output = loadtest().args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    let (a, b) = ("http://127.0.0.1:1", "http://10.0.0.1:80");
    fails(&["compare", "--url", a, "--url", b], "loopback");
    fails(&["compare", "--url", a, "--url", a], "cannot reach");
    fails(
        &["compare", "--feed", "draw", "--url", a, "--url", a],
        "per node",
    );
    fails(
        &["compare", "--churn", "0.1", "--url", a, "--url", a],
        "one --url",
    );
    fails(&["compare", "--redis-pid", "4294967295"], "--redis-pid");
    fails(
        &["compare", "--peer", "nchan", "--url", a, "--url", a],
        "one server",
    );
}
