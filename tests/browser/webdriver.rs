//! One harness for three browser engines: a small W3C WebDriver client (plain HTTP and JSON
//! over reqwest) that drives Chromium through chromedriver, Firefox ESR through geckodriver and
//! WebKitGTK's MiniBrowser through WebKitWebDriver under Xvfb.
//!
//! Why not a WebDriver crate: a session must outlive the Tokio runtime of the test that
//! started it (each `#[tokio::test]` has its own), so that one browser per engine serves test
//! after test. A session here is only a driver URL and an id; any runtime can talk to it.
//!
//! Each session has its own driver process (geckodriver serves one session per process) in a
//! process group of its own, under a shell that kills the group when the test binary exits
//! (its stdin, a pipe from this process, closes). Sessions go back to a per-engine pool after
//! a test that passed, with extra windows closed, cookies deleted and the page blank; after a
//! failed test the session is ended instead.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    Chromium,
    Firefox,
    WebKit,
}

const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::WebKit];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
            Engine::WebKit => "webkit",
        }
    }

    /// The programs this engine needs, each with where it comes from, checked before a start:
    /// a missing one fails the test with that message (the README's test command installs
    /// them all).
    fn programs(self) -> Vec<(String, &'static str)> {
        match self {
            Engine::Chromium => vec![
                (env_or("CHROMIUM", "/usr/bin/chromium"), "Debian's chromium"),
                (
                    env_or("CHROMEDRIVER", "/usr/bin/chromedriver"),
                    "Debian's chromium-driver",
                ),
            ],
            Engine::Firefox => vec![
                (
                    env_or("FIREFOX", "/usr/bin/firefox-esr"),
                    "Debian's firefox-esr",
                ),
                (geckodriver(), "cargo install geckodriver"),
            ],
            Engine::WebKit => vec![
                (
                    "/usr/bin/WebKitWebDriver".to_string(),
                    "Debian's webkit2gtk-driver",
                ),
                (MINIBROWSER.to_string(), "Debian's webkit2gtk-driver"),
                ("/usr/bin/xvfb-run".to_string(), "Debian's xvfb"),
            ],
        }
    }

    /// The shell command line that runs this engine's driver on `port`.
    fn driver_command(self, port: u16) -> Vec<String> {
        let port = port.to_string();
        match self {
            Engine::Chromium => vec![
                env_or("CHROMEDRIVER", "/usr/bin/chromedriver"),
                format!("--port={port}"),
            ],
            Engine::Firefox => vec![geckodriver(), "--port".into(), port],
            // WebKitGTK has no headless mode in Debian's build: it draws into a virtual X
            // display. `-a` picks a free display number.
            Engine::WebKit => vec![
                "/usr/bin/xvfb-run".into(),
                "-a".into(),
                "-s".into(),
                "-screen 0 1920x1600x24".into(),
                "/usr/bin/WebKitWebDriver".into(),
                format!("--port={port}"),
            ],
        }
    }

    /// What a new session asks for. `pageLoadStrategy: none`: a navigation returns at once,
    /// since the iframe page's forever frame never finishes loading.
    fn capabilities(self) -> Value {
        let always = match self {
            Engine::Chromium => json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": env_or("CHROMIUM", "/usr/bin/chromium"),
                    // A profile of its own in a temporary folder (chromedriver makes one per
                    // session and removes it when the session ends).
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--disable-component-update", "--disable-background-networking",
                        "--disable-sync", "--no-first-run", "--window-size=1280,1400",
                    ],
                },
                "goog:loggingPrefs": { "browser": "ALL" },
            }),
            Engine::Firefox => json!({
                "browserName": "firefox",
                "moz:firefoxOptions": {
                    "binary": env_or("FIREFOX", "/usr/bin/firefox-esr"),
                    // geckodriver makes a temporary profile per session and removes it after.
                    "args": ["-headless", "--width=1280", "--height=1400"],
                    "prefs": {
                        "app.update.auto": false,
                        "browser.shell.checkDefaultBrowser": false,
                        "datareporting.policy.dataSubmissionEnabled": false,
                        "toolkit.telemetry.enabled": false,
                        "network.captive-portal-service.enabled": false,
                        "browser.safebrowsing.malware.enabled": false,
                        "browser.safebrowsing.phishing.enabled": false,
                    },
                },
            }),
            // MiniBrowser in automation mode runs an ephemeral session: nothing is kept.
            Engine::WebKit => json!({
                "webkitgtk:browserOptions": {
                    "binary": MINIBROWSER,
                    "args": ["--automation"],
                },
            }),
        };
        let mut always = always;
        always["pageLoadStrategy"] = json!("none");
        always["timeouts"] = json!({ "script": 30_000, "pageLoad": 300_000, "implicit": 0 });
        // The HTTPS tests (h2.rs) serve a certificate made at start-up, which no browser
        // trusts: WebDriver's standard capability lets the session proceed past it.
        always["acceptInsecureCerts"] = json!(true);
        json!({ "capabilities": { "alwaysMatch": always } })
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `GECKODRIVER`, else `cargo install`'s place for it, else the PATH's.
fn geckodriver() -> String {
    if let Ok(path) = std::env::var("GECKODRIVER") {
        return path;
    }
    let home = std::env::var("CARGO_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cargo",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    let installed = format!("{home}/bin/geckodriver");
    if std::path::Path::new(&installed).exists() {
        return installed;
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| format!("{dir}/geckodriver"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or(installed)
}

/// A driver process and the one session it runs.
struct Session {
    engine: Engine,
    /// `http://127.0.0.1:PORT/session/ID`
    base: String,
    /// Whether the driver hands out the browser's console (chromedriver's `se/log`).
    console_log: bool,
    /// The browser's version, as its driver reports it (`browserVersion`).
    version: String,
    /// The write end of the driver shell's stdin: dropping it ends the driver's process
    /// group (and so does this process's exit).
    lifeline: Mutex<Option<ChildStdin>>,
    log_path: std::path::PathBuf,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the pipe makes the shell kill its process group.
        if let Some(mut stdin) = self.lifeline.lock().unwrap().take() {
            let _ = stdin.write_all(b"\n");
        }
    }
}

static POOL: LazyLock<Mutex<HashMap<Engine, Vec<Arc<Session>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// WebKit's xvfb-run picks its display by looking for a free lock file; two at once can
/// pick the same one. Starts are one at a time per engine.
static STARTING: LazyLock<HashMap<Engine, tokio::sync::Mutex<()>>> = LazyLock::new(|| {
    Engine::ALL
        .iter()
        .map(|e| (*e, tokio::sync::Mutex::new(())))
        .collect()
});

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_session(engine: Engine, http: &reqwest::Client) -> Arc<Session> {
    for (path, from) in engine.programs() {
        assert!(
            std::path::Path::new(&path).exists(),
            "{path} not found: the {} browser tests need {from} (the README's test command installs it)",
            engine.name()
        );
    }
    let _one_at_a_time = STARTING[&engine].lock().await;
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let log_path = std::env::temp_dir().join(format!(
            "pushpoll-{}-driver-{}-{port}.log",
            engine.name(),
            std::process::id()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        // The shell starts the driver in the background, then waits on its stdin; when that
        // closes (this process ended, or the session is dropped) it ends the whole group:
        // driver, browser and Xvfb.
        let script = r#""$@" & trap '' TERM; read _line; kill -TERM 0; sleep 2; kill -KILL 0"#;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("driver")
            .args(engine.driver_command(port))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the WebDriver driver");
        let lifeline = child.stdin.take();
        // Reap the shell when it ends, so no zombie stays.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let driver = format!("http://127.0.0.1:{port}");
        let ready = Instant::now() + Duration::from_secs(20);
        while Instant::now() < ready {
            if let Ok(r) = http.get(format!("{driver}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created = http
            .post(format!("{driver}/session"))
            .json(&engine.capabilities())
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let session = Session {
            engine,
            base: String::new(),
            console_log: false,
            version: String::new(),
            lifeline: Mutex::new(lifeline),
            log_path: log_path.clone(),
        };
        let body: Value = match created {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(e) => {
                last_error = format!("{e}");
                continue;
            }
        };
        let Some(id) = body["value"]["sessionId"].as_str() else {
            last_error = format!("{body}");
            continue;
        };
        let mut session = session;
        session.base = format!("{driver}/session/{id}");
        session.version = body["value"]["capabilities"]["browserVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        session.console_log = engine == Engine::Chromium
            && http
                .get(format!("{}/se/log/types", session.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
        return Arc::new(session);
    }
    panic!(
        "could not start a {} session: {last_error} (driver log in {})",
        engine.name(),
        std::env::temp_dir().display()
    );
}

/// A browser of one engine, lent to one test: a pooled session, returned when dropped.
pub struct Browser {
    session: Option<Arc<Session>>,
    http: reqwest::Client,
    /// Window handles and whether a page of this test has them; the first is the session's.
    windows: tokio::sync::Mutex<Vec<(String, bool)>>,
    /// The window the driver is switched to: every command of a page switches first.
    current: tokio::sync::Mutex<String>,
    /// Chromium's console errors read so far (reading the driver's log empties it).
    console: Mutex<Vec<String>>,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap()
}

impl Browser {
    pub async fn launch(engine: Engine) -> Browser {
        let http = http_client();
        let pooled = POOL.lock().unwrap().entry(engine).or_default().pop();
        let session = match pooled {
            Some(s) => s,
            None => start_session(engine, &http).await,
        };
        let mut browser = Browser {
            session: Some(session),
            http,
            windows: tokio::sync::Mutex::new(Vec::new()),
            current: tokio::sync::Mutex::new(String::new()),
            console: Mutex::new(Vec::new()),
        };
        let handle = browser
            .command(reqwest::Method::GET, "/window", Value::Null)
            .await
            .expect("the session's window");
        let handle = handle.as_str().unwrap().to_string();
        browser.windows = tokio::sync::Mutex::new(vec![(handle.clone(), false)]);
        browser.current = tokio::sync::Mutex::new(handle);
        browser
            .set_window_size(1280, 1400)
            .await
            .expect("window size");
        browser
    }

    pub fn engine(&self) -> Engine {
        self.session().engine
    }

    /// The browser's version, e.g. `153.8.0`.
    pub fn version(&self) -> String {
        self.session().version.clone()
    }

    fn session(&self) -> &Session {
        self.session.as_ref().unwrap()
    }

    /// One WebDriver command on the session; the value, or the error's text.
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.session().base);
        let mut request = self.http.request(method.clone(), &url);
        if method == reqwest::Method::POST {
            request = request.json(&if body.is_null() { json!({}) } else { body });
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .map_err(|e| format!("{path}: {status}: {e}"))?;
        if status.is_success() {
            Ok(value["value"].clone())
        } else {
            Err(format!(
                "{path}: {} {}",
                value["value"]["error"].as_str().unwrap_or(""),
                value["value"]["message"].as_str().unwrap_or("")
            ))
        }
    }

    async fn set_window_size(&self, width: u32, height: u32) -> Result<Value, String> {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await
    }

    /// Opens `url` in a window of this browser (the session's own first, then new ones) and
    /// waits until the new document is parsing.
    pub async fn open(&self, url: &str) -> (Page<'_>, Errors<'_>) {
        let handle = {
            let mut windows = self.windows.lock().await;
            if let Some(w) = windows.iter_mut().find(|(_, used)| !used) {
                w.1 = true;
                w.0.clone()
            } else {
                let _current = self.current.lock().await;
                let made = self
                    .command(
                        reqwest::Method::POST,
                        "/window/new",
                        json!({ "type": "window" }),
                    )
                    .await
                    .expect("a new window");
                let handle = made["handle"].as_str().unwrap().to_string();
                windows.push((handle.clone(), true));
                handle
            }
        };
        let page = Page {
            browser: self,
            handle,
        };
        // Mark the old document, navigate (the command returns at once: page load strategy
        // none), then wait for a document without the mark.
        let _ = page.execute("window.__ppOld = true; return true").await;
        page.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let fresh = page
                .execute(
                    "return window.__ppOld !== true && location.href !== 'about:blank' && document.readyState !== 'loading'",
                )
                .await;
            if fresh == Ok(Value::Bool(true)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {url} did not load: {fresh:?}",
                self.engine().name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let errors = Errors { page: page.clone() };
        (page, errors)
    }
}

impl Drop for Browser {
    /// Back to the pool, cleaned, unless the test failed (then the session ends with it).
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if std::thread::panicking() {
            return; // dropping the last Arc ends the driver's process group
        }
        let windows: Vec<String> = self
            .windows
            .get_mut()
            .iter()
            .map(|(h, _)| h.clone())
            .collect();
        // Async cleanup from a synchronous drop: a thread with its own small runtime.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let browser = Browser {
                    session: Some(session),
                    http: http_client(),
                    windows: tokio::sync::Mutex::new(Vec::new()),
                    current: tokio::sync::Mutex::new(String::new()),
                    console: Mutex::new(Vec::new()),
                };
                let ok = browser.reset(&windows).await.is_ok();
                let mut browser = browser;
                let session = browser.session.take().unwrap();
                if ok {
                    POOL.lock()
                        .unwrap()
                        .entry(session.engine)
                        .or_default()
                        .push(session);
                }
            });
        });
        let _ = cleaned.join();
    }
}

impl Browser {
    /// Closes every window but the first, deletes the cookies of the page it shows (the test
    /// servers all live on 127.0.0.1, and cookies do not tell ports apart), blanks it and
    /// drops the console lines read so far.
    async fn reset(&self, windows: &[String]) -> Result<(), String> {
        use reqwest::Method;
        for handle in windows.iter().skip(1) {
            self.command(Method::POST, "/window", json!({ "handle": handle }))
                .await?;
            self.command(Method::DELETE, "/window", Value::Null).await?;
        }
        let first = windows.first().ok_or("no window")?;
        self.command(Method::POST, "/window", json!({ "handle": first }))
            .await?;
        // Deleting cookies needs a document with a host; a blank or error page has none.
        let _ = self.command(Method::DELETE, "/cookie", Value::Null).await;
        self.command(Method::POST, "/url", json!({ "url": "about:blank" }))
            .await?;
        if self.session().console_log {
            self.command(Method::POST, "/se/log", json!({ "type": "browser" }))
                .await?;
        }
        Ok(())
    }
}

/// One window of a [`Browser`].
#[derive(Clone)]
pub struct Page<'b> {
    browser: &'b Browser,
    handle: String,
}

impl Page<'_> {
    pub fn engine(&self) -> Engine {
        self.browser.engine()
    }

    /// A command on this window: switches the session to it first.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let mut current = self.browser.current.lock().await;
        if *current != self.handle {
            self.browser
                .command(
                    reqwest::Method::POST,
                    "/window",
                    json!({ "handle": self.handle }),
                )
                .await?;
            *current = self.handle.clone();
        }
        self.browser.command(method, path, body).await
    }

    /// Runs a function body (`return …` for a value; a returned promise is awaited).
    ///
    /// Write page globals as `window.name = …`, also inside callbacks the script installs:
    /// Firefox runs executed scripts in a sandbox, where a bare `name = …` in a callback lands
    /// on the sandbox's global, not on the page's `window`, so a later script never sees it.
    pub async fn execute(&self, body: &str) -> Result<Value, String> {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": body, "args": [] }),
        )
        .await
    }

    /// The value of the JavaScript expression `js`.
    pub async fn evaluate(&self, js: &str) -> Result<Value, String> {
        self.execute(&format!("return ({js}\n);")).await
    }

    /// Sets the window's outer size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await
        .expect("resize");
    }

    /// Presses and releases each key in turn, as the keyboard would (WebDriver actions):
    /// `"\u{E004}"` is Tab, `"\u{E007}"` Enter (W3C WebDriver, "Keyboard actions").
    pub async fn press_keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": key.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": key.to_string() }));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await
        .expect("key actions");
        let _ = self
            .call(reqwest::Method::DELETE, "/actions", Value::Null)
            .await;
    }

    /// A PNG of what the window shows.
    pub async fn screenshot_png(&self) -> Vec<u8> {
        let b64 = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await
            .expect("screenshot");
        decode_base64(b64.as_str().unwrap())
    }

    /// The WebDriver reference of the first element matching the CSS `selector` ("Find Element").
    async fn element(&self, selector: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/element",
            json!({ "using": "css selector", "value": selector }),
        )
        .await
        .unwrap_or_else(|e| panic!("find {selector}: {e:?}"))
    }

    /// Sends this window's next commands into the document of the iframe `selector` (WebDriver
    /// "Switch To Frame"), until [`Page::leave_frame`].
    pub async fn enter_frame(&self, selector: &str) {
        let found = self.element(selector).await;
        self.call(reqwest::Method::POST, "/frame", json!({ "id": found }))
            .await
            .expect("switch to the frame");
    }

    /// Back from [`Page::enter_frame`] to the window's own document.
    pub async fn leave_frame(&self) {
        self.call(reqwest::Method::POST, "/frame/parent", Value::Null)
            .await
            .expect("switch to the parent");
    }

    /// A PNG of one element.
    pub async fn element_png(&self, selector: &str) -> Vec<u8> {
        let found = self.element(selector).await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element reference")
            .to_string();
        let b64 = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{id}/screenshot"),
                Value::Null,
            )
            .await
            .expect("element screenshot");
        decode_base64(b64.as_str().unwrap())
    }

    /// Leaves the page: the window goes blank and can be used by the next `open`.
    pub async fn close(self) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            "/url",
            json!({ "url": "about:blank" }),
        )
        .await?;
        let mut windows = self.browser.windows.lock().await;
        if let Some(w) = windows.iter_mut().find(|(h, _)| *h == self.handle) {
            w.1 = false;
        }
        Ok(())
    }
}

/// What went wrong in a page: what its `static/errors.js` recorded (every engine), and in
/// Chromium also the browser's console errors, which include failed requests.
pub struct Errors<'b> {
    page: Page<'b>,
}

impl Errors<'_> {
    pub async fn all(&self) -> Vec<String> {
        let mut out: Vec<String> = match self
            .page
            .evaluate("(window.pushpollErrors || []).slice()")
            .await
        {
            Ok(Value::Array(lines)) => lines
                .into_iter()
                .map(|l| l.as_str().unwrap_or("").to_string())
                .collect(),
            other => vec![format!("could not read the page's errors: {other:?}")],
        };
        if self.page.browser.session().console_log
            && let Ok(Value::Array(entries)) = self
                .page
                .call(
                    reqwest::Method::POST,
                    "/se/log",
                    json!({ "type": "browser" }),
                )
                .await
        {
            // The console of the whole session (this test's windows only: the pool drains
            // it between tests); kept across calls, since reading it empties it.
            let mut seen = self.page.browser.console.lock().unwrap();
            for entry in entries {
                if entry["level"] == "SEVERE" {
                    seen.push(format!(
                        "console: {}",
                        entry["message"].as_str().unwrap_or("")
                    ));
                }
            }
            out.extend(seen.iter().cloned());
        }
        out
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut value = [255u8; 256];
    for (i, c) in ALPHABET.iter().enumerate() {
        value[*c as usize] = i as u8;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = value[c as usize];
        if v == 255 {
            continue; // padding and line breaks
        }
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The session's driver log, for a failure message.
pub fn driver_log(page: &Page<'_>) -> String {
    let path = &page.browser.session().log_path;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: String = text
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    format!("{}:\n{tail}", path.display())
}
