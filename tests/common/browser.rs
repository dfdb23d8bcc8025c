//! Real headless Chromium (Debian's `chromium`, installed by `make browser`) driven over the
//! Chrome DevTools Protocol: one WebSocket to the browser, one flattened session per page.
//!
//! Browser tests run when `SCANGATE_E2E=1` (see [`browser`]); then a missing `chromium` fails
//! the test loudly. Every wait is bounded by [`WAIT`]; the browser is killed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The bound of every wait on the browser.
pub const WAIT: Duration = Duration::from_secs(30);

/// The largest DevTools message accepted (a full-page screenshot or a PDF, base64).
const MAX_MESSAGE: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("DevTools answered {method} with error {code}: {message}")]
    Protocol {
        method: String,
        code: i64,
        message: String,
    },
    #[error("the DevTools connection closed while waiting for {0}")]
    Closed(String),
    #[error("navigating to {url} failed: {text}")]
    Navigation { url: String, text: String },
    #[error("the page's JavaScript threw: {0}")]
    Exception(String),
    #[error("no element matches {0:?} in the page")]
    NoElement(String),
    #[error("the select {select:?} has no option {value:?}")]
    NoOption { select: String, value: String },
    #[error("the value {value} from the page is not what the test expected")]
    Value {
        value: Value,
        #[source]
        source: serde_json::Error,
    },
    #[error("DevTools sent {what} that is not base64")]
    Base64 {
        what: &'static str,
        #[source]
        source: base64::DecodeError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The browser when browser tests are enabled (`SCANGATE_E2E=1`); `None` (after saying why)
/// otherwise. Panics when they are enabled and Chromium cannot start.
pub fn browser() -> Option<Browser> {
    if std::env::var("SCANGATE_E2E").as_deref() != Ok("1") {
        eprintln!(
            "skipping: set SCANGATE_E2E=1 (and run `make browser`) for the headless-Chromium tests"
        );
        return None;
    }
    Some(Browser::start())
}

/// The browser executable: `SCANGATE_CHROMIUM`, else `chromium` on the PATH.
fn executable() -> PathBuf {
    std::env::var_os("SCANGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"))
}

/// An event from the browser: (session, method, params).
#[derive(Clone, Debug)]
struct Event {
    session: Option<String>,
    method: String,
    params: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;

pub struct Browser {
    runtime: tokio::runtime::Runtime,
    child: Child,
    /// Chromium's last lines of standard error, for failure messages.
    log: Arc<Mutex<Vec<String>>>,
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    next_id: AtomicU64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and connects to its DevTools endpoint.
    /// Panics (saying to run `make browser`) when it is not installed or does not start.
    pub fn start() -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("chromium-")
            .tempdir()
            .expect("a profile directory for Chromium");
        let exe = executable();
        let mut child = Command::new(&exe)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                // The results page serves a test CA's certificate.
                "--ignore-certificate-errors",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            // Its own process group, so the renderers go with it (see Drop).
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Chromium with `make browser` (Debian's \
                     `chromium`), or set SCANGATE_CHROMIUM to the browser's path",
                    exe.display()
                )
            });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ws_tx, ws_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("Chromium's standard error");
        let lines = Arc::clone(&log);
        // Reads standard error to its end, so Chromium never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = ws_tx.send(url.trim().to_string());
                }
                // No D-Bus in a container: Chromium's complaints about it are noise.
                if line.contains(":ERROR:dbus/") {
                    continue;
                }
                let mut kept = lines.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() >= 200 {
                    kept.remove(0);
                }
                kept.push(line);
            }
        });
        let url = match ws_rx.recv_timeout(WAIT) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Chromium printed no `DevTools listening on ws://…` line within {WAIT:?} \
                     ({e}); its standard error:\n{}",
                    log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
                );
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the DevTools connection");
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let connected = runtime.block_on(async {
            tokio::time::timeout(
                WAIT,
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true),
            )
            .await
        });
        let socket = match connected {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(e)) => panic!("cannot connect to Chromium's DevTools at {url}: {e}"),
            Err(_) => panic!("connecting to Chromium's DevTools at {url} took over {WAIT:?}"),
        };
        let (mut sink, mut stream) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(4096);
        runtime.spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let answers = Arc::clone(&pending);
        let published = events.clone();
        runtime.spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                dispatch(value, &answers, &published);
            }
            // Closed: every caller still waiting learns it at once.
            answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Browser {
            runtime,
            child,
            log,
            out,
            pending,
            events,
            next_id: AtomicU64::new(1),
            _profile: profile,
        }
    }

    /// A new tab in a browser context of its own (its own cookies), with the Page and Runtime
    /// domains enabled.
    pub fn new_page(&self) -> Page<'_> {
        let context = self
            .call(
                None,
                "Target.createBrowserContext",
                json!({"disposeOnDetach": true}),
            )
            .expect("a new browser context");
        let context = context["browserContextId"].as_str().unwrap_or_default();
        let target = self
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
            )
            .expect("a new tab");
        let target = target["targetId"].as_str().unwrap_or_default().to_string();
        let session = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .expect("a DevTools session on the new tab");
        let page = Page {
            browser: self,
            session: session["sessionId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            context: context.to_string(),
        };
        for domain in ["Page.enable", "Runtime.enable"] {
            page.call(domain, json!({}))
                .unwrap_or_else(|e| panic!("{domain}: {e}"));
        }
        page
    }

    /// Sends `method` (in `session`, or to the browser) and waits for its answer.
    fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if self.out.send(Message::text(message.to_string())).is_err() {
            return Err(Error::Closed(method.to_string()));
        }
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(WAIT, rx).await });
        match answer {
            Ok(Ok(result)) => result.map_err(|e| match e {
                Error::Protocol { code, message, .. } => Error::Protocol {
                    method: method.to_string(),
                    code,
                    message,
                },
                other => other,
            }),
            Ok(Err(_)) => Err(Error::Closed(method.to_string())),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                Err(Error::Timeout {
                    what: format!("the answer to {method}"),
                    after: WAIT,
                })
            }
        }
    }

    /// Chromium's recent standard error, for a failing test's message.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

/// Routes one message from the browser: an answer to its caller, an event to the subscribers.
fn dispatch(value: Value, pending: &Pending, events: &broadcast::Sender<Event>) {
    if let Some(id) = value["id"].as_u64() {
        let waiter = pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(waiter) = waiter {
            let answer = match value.get("error") {
                Some(error) => Err(Error::Protocol {
                    method: String::new(),
                    code: error["code"].as_i64().unwrap_or_default(),
                    message: error["message"].as_str().unwrap_or_default().to_string(),
                }),
                None => Ok(value["result"].clone()),
            };
            let _ = waiter.send(answer);
        }
    } else if let Some(method) = value["method"].as_str() {
        let _ = events.send(Event {
            session: value["sessionId"].as_str().map(str::to_string),
            method: method.to_string(),
            params: value["params"].clone(),
        });
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Asked to close, Chromium ends its renderers; then the process group is killed in
        // case it did not (`kill` by the group's id, which is Chromium's pid).
        let _ = self.call(None, "Browser.close", json!({}));
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("Chromium's standard error:\n{}", self.log());
        }
    }
}

/// A tab, in a browser context of its own.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
    context: String,
}

impl Page<'_> {
    fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.browser.call(Some(&self.session), method, params)
    }

    /// Runs `action`, then waits for this page's event `method` (subscribed before `action`,
    /// so none is missed).
    fn after<T>(&self, what: &str, method: &str, action: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut events = self.browser.events.subscribe();
        let value = action()?;
        let session = self.session.as_str();
        let waited = self.browser.runtime.block_on(async {
            tokio::time::timeout(WAIT, async {
                loop {
                    match events.recv().await {
                        Ok(e) if e.session.as_deref() == Some(session) && e.method == method => {
                            return Ok(());
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(Error::Closed(what.to_string()));
                        }
                    }
                }
            })
            .await
        });
        match waited {
            Ok(Ok(())) => Ok(value),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout {
                what: what.to_string(),
                after: WAIT,
            }),
        }
    }

    /// Goes to `url` and waits for its load event (also for an error status such as 401).
    pub fn navigate(&self, url: &str) -> Result<()> {
        let what = format!("the load event of {url}");
        self.after(&what, "Page.loadEventFired", || {
            let answer = self.call("Page.navigate", json!({"url": url}))?;
            match answer["errorText"].as_str() {
                Some(text) if !text.is_empty() => Err(Error::Navigation {
                    url: url.to_string(),
                    text: text.to_string(),
                }),
                _ => Ok(()),
            }
        })
    }

    /// Clicks the element `selector` (a link, a submit button) and waits for the load event of
    /// the page it leads to.
    pub fn click_and_wait(&self, selector: &str) -> Result<()> {
        let what = format!("the page loaded by clicking {selector:?}");
        self.after(&what, "Page.loadEventFired", || {
            let found: bool = self.eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (e) e.click(); return !!e; }})()",
                json!(selector)
            ))?;
            if found {
                Ok(())
            } else {
                Err(Error::NoElement(selector.to_string()))
            }
        })
    }

    /// Sends `headers` (e.g. `Authorization: Bearer …`) with every request of this page,
    /// `fetch()` included.
    pub fn set_extra_headers(&self, headers: &[(&str, &str)]) -> Result<()> {
        self.call("Network.enable", json!({}))?;
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.call("Network.setExtraHTTPHeaders", json!({"headers": headers}))?;
        Ok(())
    }

    /// Evaluates `js` in the page (a promise is awaited) and returns its value; a thrown
    /// exception is an error.
    pub fn eval<T: DeserializeOwned>(&self, js: &str) -> Result<T> {
        let answer = self.call(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or_else(|| details["text"].as_str())
                .unwrap_or("an exception")
                .to_string();
            return Err(Error::Exception(text));
        }
        let value = answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null);
        serde_json::from_value(value.clone()).map_err(|source| Error::Value { value, source })
    }

    /// Focuses `selector` and types `text` into it as a keyboard would (Input.insertText, so
    /// the page's `input` listeners run).
    pub fn type_into(&self, selector: &str, text: &str) -> Result<()> {
        let found: bool = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (e) e.focus(); return !!e; }})()",
            json!(selector)
        ))?;
        if !found {
            return Err(Error::NoElement(selector.to_string()));
        }
        self.call("Input.insertText", json!({"text": text}))?;
        Ok(())
    }

    /// Chooses `value` in the `<select>` `selector` as a user would: the `input` and `change`
    /// events fire.
    pub fn select(&self, selector: &str, value: &str) -> Result<()> {
        let chosen: Option<bool> = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             if (![...e.options].some(o => o.value === {value})) return false; \
             e.value = {value}; \
             for (const t of ['input', 'change']) e.dispatchEvent(new Event(t, {{bubbles: true}})); \
             return true; }})()",
            json!(selector),
            value = json!(value),
        ))?;
        match chosen {
            Some(true) => Ok(()),
            Some(false) => Err(Error::NoOption {
                select: selector.to_string(),
                value: value.to_string(),
            }),
            None => Err(Error::NoElement(selector.to_string())),
        }
    }

    /// The HTTP status of the document shown.
    pub fn status(&self) -> Result<u16> {
        self.eval("performance.getEntriesByType('navigation')[0].responseStatus")
    }

    /// Writes a PNG of the whole page (beyond the viewport) to `path`.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let metrics = self.call("Page.getLayoutMetrics", json!({}))?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0).ceil();
        // Bounded, so a runaway page does not make a gigapixel image.
        let height = size["height"].as_f64().unwrap_or(900.0).ceil().min(16384.0);
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            }),
        )?;
        write_base64(&shot, "the screenshot", path)
    }

    /// Prints the page to a PDF at `path` as the browser's print does (the `@media print`
    /// styles apply).
    pub fn print_pdf(&self, path: &Path) -> Result<()> {
        let pdf = self.call(
            "Page.printToPDF",
            json!({"printBackground": true, "preferCSSPageSize": true}),
        )?;
        write_base64(&pdf, "the PDF", path)
    }
}

impl Drop for Page<'_> {
    fn drop(&mut self) {
        let _ = self.browser.call(
            None,
            "Target.disposeBrowserContext",
            json!({"browserContextId": self.context}),
        );
    }
}

fn write_base64(answer: &Value, what: &'static str, path: &Path) -> Result<()> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["data"].as_str().unwrap_or_default())
        .map_err(|source| Error::Base64 { what, source })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The text of the PDF at `path`, by `pdftotext -layout` (poppler-utils, `make browser`).
pub fn pdf_text(path: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run pdftotext ({e}): install poppler-utils with `make browser`")
        });
    assert!(
        out.status.success(),
        "pdftotext {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `path` is a PNG of more than `min_bytes` bytes.
pub fn assert_png(path: &Path, min_bytes: usize) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > min_bytes,
        "{} has only {} bytes: an empty page?",
        path.display(),
        bytes.len()
    );
}
