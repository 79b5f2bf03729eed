//! What the load tester's integration tests share: the two real binaries, and a run read
//! back from the `summary.json` it wrote.
#![allow(dead_code)]

pub mod nchan;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `loadtest` binary, told where the `pushpoll` binary beside it is.
pub fn loadtest() -> Command {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
    let server = bin.with_file_name("pushpoll");
    assert!(
        server.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        server.display()
    );
    let mut cmd = Command::new(bin);
    cmd.env("PUSHPOLL_BIN", server);
    cmd
}

/// The `pushpoll` binary beside `loadtest` on a free loopback port (`--db :memory:`, a rate
/// limit the publisher never meets), for tests that measure a running server with `--url`.
pub fn start_pushpoll() -> (std::process::Child, std::net::SocketAddr) {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_loadtest")).with_file_name("pushpoll");
    let mut command = Command::new(bin);
    command
        .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
        .args(["--rate-limit", "100000", "--rate-limit-bytes", "1073741824"])
        .stderr(std::process::Stdio::null());
    pushpoll::spawn::start_blocking(&mut command).expect("start pushpoll")
}

/// Runs `cmd`, which writes its results to `out`; fails with its output if it failed, and
/// returns the `summary.json` it wrote.
pub fn summary_of(cmd: &mut Command, out: &Path) -> serde_json::Value {
    let output = cmd.output().expect("run loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "loadtest failed:\n{stdout}\n{stderr}"
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json parses")
}
