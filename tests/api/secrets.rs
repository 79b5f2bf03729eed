//! Secrets at rest. The database holds the cookies' signing key, the
//! session ids and the whispers; the `--secret-file` holds the key. Each is read here as
//! another local user would, as the audit did: `runuser -u nobody -- cat FILE`, against the
//! real binary started under umask 000 (the most permissive there is). A file the server
//! makes is owner-only whatever the umask; an existing one that others can read is refused
//! with the fix, except a pushpoll database, which is made owner-only with a warning.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::Watchdog;

/// Runs `argv` as user `nobody`; `true` if it succeeded. A failure must be a permission
/// refusal, not a missing file.
fn nobody_can(argv: &[&str], path: &Path) -> bool {
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .args(argv)
        .arg(path)
        .stdout(Stdio::null())
        .output()
        .expect("runuser (util-linux) runs the reads as another user");
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Permission denied"),
        "{argv:?} {}: {err}",
        path.display()
    );
    false
}

fn nobody_reads(path: &Path) -> bool {
    nobody_can(&["cat"], path)
}

/// `runuser` needs root (the tests run as root in CI). Elsewhere the test says so and ends;
/// under `CI=true` it fails instead.
fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: these tests read files as user nobody through runuser, which needs root"
    );
    eprintln!("skipped: reading files as another user needs root (runuser)");
    false
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A temporary directory any user may enter (a temp dir is `0700`, which alone would keep
/// `nobody` out whatever the files' modes), with a world-readable control file in it that
/// `nobody` can read: proof that a refusal below comes from the file's own mode.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let control = dir.path().join("control");
    std::fs::write(&control, b"anyone may read this").unwrap();
    chmod(&control, 0o644);
    assert!(
        nobody_reads(&control),
        "nobody must be able to reach the directory"
    );
    dir
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// The real binary under umask 000, with `args`, its stderr in `log`. The shell also makes
/// `probe` before it `exec`s the server, so the test can check the umask took effect.
fn command_under_umask_000(args: &[&str], probe: &Path, log: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg("umask 000; : > \"$PROBE\"; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_pushpoll"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .env("PROBE", probe)
        .stderr(std::fs::File::create(log).unwrap());
    command
}

async fn login(http: &reqwest::Client, base: &str, nick: &str) -> String {
    let res = http
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "nick": nick }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

async fn say(http: &reqwest::Client, base: &str, cookie: &str, text: &str) {
    let res = http
        .post(format!("{base}/api/chat/messages"))
        .header("cookie", cookie)
        .json(&serde_json::json!({ "room": "lobby", "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Starts the server under umask 000 and writes to it (a login, a whisper, messages), so
/// the database's `-wal` and `-shm` exist.
async fn start_and_write(args: &[&str], dir: &Path) -> (pushpoll::spawn::Spawned, PathBuf) {
    let probe = dir.join("umask-probe");
    let log = dir.join("server.log");
    let mut command = command_under_umask_000(args, &probe, &log);
    let spawned = pushpoll::spawn::start(&mut command)
        .await
        .expect("the server starts");
    assert_eq!(mode(&probe), 0o666, "the server runs under umask 000");
    let http = reqwest::Client::new();
    let alice = login(&http, &spawned.url, "alice").await;
    login(&http, &spawned.url, "bob").await;
    for i in 0..5 {
        say(&http, &spawned.url, &alice, &format!("m{i}")).await;
    }
    (spawned, log)
}

#[tokio::test]
async fn the_database_its_wal_shm_and_directory_and_the_secret_file_are_owner_only_under_umask_000()
{
    let _watchdog = Watchdog::arm();
    if !as_root() {
        return;
    }
    let dir = open_dir();
    let data = dir.path().join("data");
    let db = data.join("chat.sqlite");
    let secret = dir.path().join("secret");
    let (_server, _) = start_and_write(
        &[
            "--db",
            db.to_str().unwrap(),
            "--secret-file",
            secret.to_str().unwrap(),
        ],
        dir.path(),
    )
    .await;

    // The directory the server made: nobody may even list it.
    assert_eq!(mode(&data), 0o700);
    assert!(!nobody_can(&["ls"], &data));
    // Open the door ourselves, so that only the files' own modes stand in the way.
    chmod(&data, 0o755);
    let control = data.join("control");
    std::fs::write(&control, b"x").unwrap();
    chmod(&control, 0o644);
    assert!(nobody_reads(&control));

    let files = [
        db.clone(),
        with_suffix(&db, "-wal"),
        with_suffix(&db, "-shm"),
        secret,
    ];
    for file in &files {
        assert!(file.exists(), "{} exists", file.display());
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert!(!nobody_reads(file), "nobody read {}", file.display());
    }
}

/// What the binary printed and its exit code, for a start that must fail.
async fn failed_start(args: &[&str]) -> (i32, String) {
    let _watchdog = Watchdog::arm();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .output(),
    )
    .await
    .expect("the server exits at once")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_secret_file_others_can_read_is_refused_at_start_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, [1u8; 32]).unwrap();
    chmod(&secret, 0o644);
    let (code, stderr) = failed_start(&[
        "--db",
        ":memory:",
        "--secret-file",
        secret.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("the secret file {}", secret.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("chmod 600 {}", secret.display())),
        "{stderr}"
    );
    assert_eq!(mode(&secret), 0o644, "the server does not change it");
}

#[tokio::test]
async fn a_database_others_can_read_that_is_not_pushpolls_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    chmod(&db, 0o644);
    let (code, stderr) = failed_start(&["--db", db.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", db.display())),
        "{stderr}"
    );
    assert!(stderr.contains("mode 0644"), "{stderr}");
    assert_eq!(mode(&db), 0o644, "the server does not change it");
}

/// Every pushpoll before this one made its database `0644`: such a database is made
/// owner-only at start, with a warning naming it, and serves on.
#[tokio::test]
async fn a_pushpoll_database_others_can_read_is_made_owner_only_with_a_warning() {
    let _watchdog = Watchdog::arm();
    if !as_root() {
        return;
    }
    let dir = open_dir();
    let db = dir.path().join("chat.sqlite");
    drop(pushpoll::engine::embedded::sqlite::SqliteStore::open(db.to_str().unwrap()).unwrap());
    chmod(&db, 0o644);
    assert!(nobody_reads(&db), "as an older pushpoll left it");

    let (_server, log) = start_and_write(&["--db", db.to_str().unwrap()], dir.path()).await;
    for file in [&db, &with_suffix(&db, "-wal"), &with_suffix(&db, "-shm")] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        assert!(!nobody_reads(file), "nobody read {}", file.display());
    }
    let stderr = std::fs::read_to_string(log).unwrap();
    assert!(
        stderr.contains("made it owner-only") && stderr.contains(&db.display().to_string()),
        "{stderr}"
    );
}
