//! The per-test deadline (`support::Watchdog`, armed by `spawn_app`): a test that outlives it
//! aborts the test process, naming the test, instead of hanging the suite.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::spawn_app;

/// Set only in the child process that the test below starts.
const CHILD: &str = "PUSHPOLL_WATCHDOG_CHILD";
const CHILD_TEST: &str = "watchdog::child_hangs_past_its_deadline";

/// Does nothing in a normal run. In the child it behaves like a test stuck in a loop: it
/// starts a server and then waits far past the 1 s deadline it is given.
#[tokio::test]
async fn child_hangs_past_its_deadline() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let _app = spawn_app(&[]).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[test]
fn a_test_that_hangs_is_aborted_at_its_deadline_with_its_name() {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([CHILD_TEST, "--exact", "--nocapture"])
        .env(CHILD, "1")
        .env("PUSHPOLL_TEST_DEADLINE_S", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    // Bound the parent too: were the watchdog broken, the child would sleep for 60 s.
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the watchdog did not stop a test 20 s past its 1 s deadline");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "the hanging test passed: {stderr}");
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}: {stderr}");
    }
    assert!(
        stderr.contains(&format!("watchdog: test `{CHILD_TEST}` still running")),
        "{stderr}"
    );
}
