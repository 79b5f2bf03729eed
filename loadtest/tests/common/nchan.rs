//! nginx + nchan for the tests that measure it: scripts/nchan.sh started on a free loopback
//! port, stopped when dropped (shared by nchan.rs and sidebyside.rs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// nginx + nchan, stopped (SIGTERM to the script, which passes it on) when dropped.
pub struct Nchan {
    child: Child,
    pub url: String,
}

impl Drop for Nchan {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub fn start_nchan() -> Option<Nchan> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nchan.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take()?).read_line(&mut line);
    let url = line.trim().to_string();
    if read.is_err() || !url.starts_with("http://") {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let nchan = Nchan { child, url };
    // The URL is printed after `nginx -t` and just before nginx binds: wait for the port.
    let addr = nchan.url.trim_start_matches("http://").to_string();
    for _ in 0..50 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Some(nchan);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// [`start_nchan`] for a test: `None` (the test then returns, having said it skipped) when
/// nginx + nchan cannot start, except under `CI=true`, where that fails the test.
pub fn nchan_or_skip() -> Option<Nchan> {
    let nchan = start_nchan();
    if nchan.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: scripts/nchan.sh could not start nginx + nchan"
        );
        eprintln!("skipped: scripts/nchan.sh could not start nginx + nchan");
    }
    nchan
}
