//! The results page: a web view of the runtime inventory and the ImageScans, served by
//! the controller on its own listener (`--results-listen`), HTTPS or, for a port-forward, plain
//! HTTP. Never anonymous: a bearer token or a session cookie from `POST /login`, the token
//! checked with a TokenReview and a SubjectAccessReview ([`auth`]).
//!
//! - [`model`]: the snapshot the inventory publishes, the figures and the filters (pure);
//! - [`view`]: the HTML pages (pure);
//! - [`export`]: CSV and JSON (pure); [`pdf`]: a scan's PDF (pure);
//! - [`auth`]: the reviews, sessions and bearer cache;
//! - [`actions`]: scan now, rescan, reevaluate, pause, resume, cancel, each as the viewer;
//! - [`searches`]: each viewer's saved searches, stored by the controller in the cluster.
//!
//! The pages read the inventory's latest [`model::View`] from a watch channel; the API is
//! called to check tokens, and with the viewer's own token for the actions.

pub mod actions;
pub mod auth;
pub mod export;
pub mod model;
pub mod pdf;
pub mod searches;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use kube::Client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::mirror::MirrorView;
use crate::tls;
use actions::{Action, Actor};
use auth::{Decision, Sessions};
use model::{RunningFilter, ScanFilter, Snapshot, View};
use searches::{SearchPage, Store};

/// The session cookie's name.
pub const COOKIE: &str = "scangate-session";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--results-listen serves HTTPS: set --results-tls-cert-file and --results-tls-key-file, or --results-insecure-http behind a port-forward"
    )]
    NoTls,
    #[error("set both --results-tls-cert-file and --results-tls-key-file, or neither")]
    HalfTls,
    #[error("the results page certificate: {0}")]
    Tls(#[from] tls::Error),
    #[error("cannot serve the results page on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The flags of the results page.
#[derive(Debug, Clone, clap::Args)]
pub struct ResultsArgs {
    /// Address of the results page (HTTPS; plain HTTP with --results-insecure-http); off when
    /// unset.
    #[arg(long, env = "SCANGATE_RESULTS_LISTEN")]
    pub results_listen: Option<SocketAddr>,
    /// PEM certificate (chain) the results page serves.
    #[arg(long, env = "SCANGATE_RESULTS_TLS_CERT_FILE")]
    pub results_tls_cert_file: Option<PathBuf>,
    /// PEM private key of --results-tls-cert-file.
    #[arg(long, env = "SCANGATE_RESULTS_TLS_KEY_FILE")]
    pub results_tls_key_file: Option<PathBuf>,
    /// Serve the results page over plain HTTP (only behind `kubectl port-forward` or the API
    /// server's service proxy; tokens travel in the clear otherwise).
    #[arg(long, env = "SCANGATE_RESULTS_INSECURE_HTTP")]
    pub results_insecure_http: bool,
    /// How often a viewer's rights are asked again (a session's, a bearer token's): a revoked
    /// viewer loses the page within this. Each ask is a TokenReview and SubjectAccessReviews.
    #[arg(long, env = "SCANGATE_RESULTS_ACCESS_RECHECK", default_value = "60s", value_parser = crate::cli::duration)]
    pub results_access_recheck: std::time::Duration,
}

/// How the page is served.
#[derive(Clone, Debug)]
pub enum Listener {
    Https(SocketAddr, tls::TlsFiles),
    Http(SocketAddr),
}

impl ResultsArgs {
    /// The listener the flags ask for, or `None` when the page is off.
    pub fn listener(&self) -> Result<Option<Listener>> {
        let Some(addr) = self.results_listen else {
            return Ok(None);
        };
        match (&self.results_tls_cert_file, &self.results_tls_key_file) {
            (Some(cert), Some(key)) => Ok(Some(Listener::Https(
                addr,
                tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                },
            ))),
            (None, None) if self.results_insecure_http => Ok(Some(Listener::Http(addr))),
            (None, None) => Err(Error::NoTls),
            _ => Err(Error::HalfTls),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template (`/scans/{namespace}/{name}`), or `other`.
    page: String,
    code: u16,
}

/// `scangate_results_requests_total`.
#[derive(Clone, Default)]
pub struct ResultsMetrics {
    requests: Family<RequestLabels, Counter>,
}

impl ResultsMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "results_requests",
            "Requests to the results page, by route and status code",
            self.requests.clone(),
        );
    }
}

/// The cluster the page talks to.
pub struct Cluster {
    /// The controller's client: token and access reviews.
    pub client: Client,
    /// The controller's connection settings, which the actions use with the viewer's token.
    pub config: kube::Config,
    /// Where "scan now" creates its ImageScans (results there are trusted).
    pub scangate_namespace: String,
}

/// What the handlers share.
struct Pages {
    view: watch::Receiver<View>,
    /// What the verdict mirror last did.
    mirror: watch::Receiver<MirrorView>,
    client: Client,
    config: kube::Config,
    scangate_namespace: String,
    /// The viewers' saved searches, in scangate's namespace.
    searches: Store,
    sessions: Sessions,
    /// Served over TLS: the cookie is `Secure`.
    secure: bool,
    metrics: ResultsMetrics,
}

/// Binds the listener and serves the page in the background.
pub async fn serve(
    listener: Listener,
    access_recheck: std::time::Duration,
    cluster: Cluster,
    view: watch::Receiver<View>,
    mirror: watch::Receiver<MirrorView>,
    metrics: ResultsMetrics,
) -> Result<()> {
    let secure = matches!(listener, Listener::Https(..));
    let router = router(Arc::new(Pages {
        view,
        mirror,
        searches: Store {
            client: cluster.client.clone(),
            namespace: cluster.scangate_namespace.clone(),
        },
        client: cluster.client,
        config: cluster.config,
        scangate_namespace: cluster.scangate_namespace,
        sessions: Sessions::new(access_recheck),
        secure,
        metrics,
    }));
    match listener {
        Listener::Https(addr, files) => {
            let loaded = files.load()?;
            let rustls = RustlsConfig::from_config(loaded.config);
            tokio::spawn(reload_certificate(files, loaded.contents, rustls.clone()));
            let std_listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| Error::Serve { addr, source })?;
            let server = axum_server::from_tcp_rustls(std_listener, rustls)
                .map_err(|source| Error::Serve { addr, source })?;
            tracing::info!(%addr, "results page serving HTTPS");
            tokio::spawn(async move {
                if let Err(error) = server.serve(router.into_make_service()).await {
                    tracing::error!(%error, "results page stopped");
                }
            });
        }
        Listener::Http(addr) => {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Serve { addr, source })?;
            tracing::warn!(%addr, "results page serving plain HTTP (--results-insecure-http): reach it only through a port-forward");
            tokio::spawn(async move {
                if let Err(error) = axum::serve(tcp, router).await {
                    tracing::error!(%error, "results page stopped");
                }
            });
        }
    }
    Ok(())
}

/// How often the certificate files are read again.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Swaps the served certificate when its files change (cert-manager rotates the webhook's,
/// which deploy/ serves the page with); files that do not load keep the current one.
async fn reload_certificate(
    files: tls::TlsFiles,
    mut current: tls::Contents,
    rustls: RustlsConfig,
) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let contents = match files.read() {
            Ok(c) if c != current => c,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%error, "results page: cannot read the certificate; keeping the current one");
                continue;
            }
        };
        match files.build(contents.clone()) {
            Ok(loaded) => {
                rustls.reload_from_config(loaded.config);
                tracing::info!("results page: certificate reloaded");
                current = contents;
            }
            Err(error) => {
                tracing::warn!(%error, "results page: new certificate not usable yet; keeping the current one");
            }
        }
    }
}

fn router(pages: Arc<Pages>) -> Router {
    let protected = Router::new()
        .route("/", get(landing))
        .route("/running", get(running))
        .route("/running.json", get(running_json))
        .route("/running.csv", get(running_csv))
        .route("/scans", get(scans))
        .route("/scans.json", get(scans_json))
        .route("/scans.csv", get(scans_csv))
        .route("/scans/{namespace}/{name}", get(scan))
        .route("/scans/{namespace}/{name}/report.pdf", get(scan_pdf))
        .route("/scans/{namespace}/{name}/{action}", post(scan_action))
        .route("/scan-now", post(scan_now))
        .route("/searches", post(save_search))
        .route("/searches/delete", post(delete_search))
        .route_layer(middleware::from_fn_with_state(pages.clone(), require_user));
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(pages.clone(), count))
        .layer(middleware::from_fn(headers))
        .with_state(pages)
}

const APP_JS: &str = include_str!("static/app.js");
const APP_CSS: &str = include_str!("static/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The headers of every answer.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, "default-src 'self'"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Counts each answer by route template and code.
async fn count(State(pages): State<Arc<Pages>>, request: Request, next: Next) -> Response {
    let page = page_of(request.uri().path()).to_string();
    let response = next.run(request).await;
    pages
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            page,
            code: response.status().as_u16(),
        })
        .inc();
    response
}

/// The route template of a path, as the metrics label it.
fn page_of(path: &str) -> &'static str {
    const PAGES: [&str; 14] = [
        "/",
        "/login",
        "/logout",
        "/running",
        "/running.json",
        "/running.csv",
        "/scans",
        "/scans.json",
        "/scans.csv",
        "/scan-now",
        "/searches",
        "/searches/delete",
        "/static/app.js",
        "/static/app.css",
    ];
    if let Some(page) = PAGES.iter().find(|p| **p == path) {
        return page;
    }
    let parts: Option<Vec<&str>> = path
        .strip_prefix("/scans/")
        .map(|rest| rest.split('/').collect());
    match parts.as_deref() {
        Some([_, _]) => "/scans/{namespace}/{name}",
        Some([_, _, "report.pdf"]) => "/scans/{namespace}/{name}/report.pdf",
        Some([_, _, "rescan"]) => "/scans/{namespace}/{name}/rescan",
        Some([_, _, "reevaluate"]) => "/scans/{namespace}/{name}/reevaluate",
        Some([_, _, "pause"]) => "/scans/{namespace}/{name}/pause",
        Some([_, _, "resume"]) => "/scans/{namespace}/{name}/resume",
        Some([_, _, "cancel"]) => "/scans/{namespace}/{name}/cancel",
        _ => "other",
    }
}

fn html(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// 401 with the login form.
fn unauthenticated(message: &str) -> Response {
    let mut response = html(StatusCode::UNAUTHORIZED, view::login(message));
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn forbidden(user: &str, reason: &str) -> Response {
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    };
    html(
        StatusCode::FORBIDDEN,
        view::message(
            "Forbidden",
            &format!(
                "{user} may not list ImageScans in every namespace{why}. Ask a cluster admin for a ClusterRole granting list on imagescans.scanning.scangate.dev cluster-wide (a namespace-scoped view is not offered yet), or log in with another token."
            ),
        ),
    )
}

fn unavailable(text: &str) -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        view::message("Unavailable", text),
    )
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The decision on a token: cached, else asked of the API server.
async fn decide(pages: &Pages, token: &str) -> Result<Decision, auth::Error> {
    let now = Instant::now();
    if let Some(decision) = pages.sessions.cached(token, now) {
        return Ok(decision);
    }
    let decision = auth::review(&pages.client, token).await?;
    pages.sessions.remember(token, decision.clone(), now);
    Ok(decision)
}

/// Lets a request through with a live session or an allowed bearer token, with the viewer
/// ([`actions::Actor`]) in its extensions.
async fn require_user(
    State(pages): State<Arc<Pages>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if let Some(id) = cookie_value(headers, COOKIE).map(str::to_string)
        && let Some(live) = pages.sessions.user(&id, Instant::now())
    {
        let actor = Actor {
            user: live.user.username.clone().unwrap_or_default(),
            token: live.token,
            csrf: Some(live.csrf),
        };
        request.extensions_mut().insert(actor);
        if !live.recheck {
            return next.run(request).await;
        }
        // A minute on, the session's user must still have the right (it may be revoked).
        return match auth::recheck(&pages.client, &live.user).await {
            Ok(Decision::Allowed(_)) => {
                pages.sessions.confirmed(&id, Instant::now());
                next.run(request).await
            }
            Ok(Decision::Forbidden(user, reason)) => {
                pages.sessions.end(&id);
                forbidden(&user, &reason)
            }
            Ok(Decision::Unauthenticated) => {
                pages.sessions.end(&id);
                unauthenticated("The session ended; log in again.")
            }
            Err(error) => {
                tracing::warn!(%error, "cannot check a session's rights again");
                unavailable(&format!("Cannot check your rights now: {error}"))
            }
        };
    }
    let Some(token) = bearer(headers).map(str::to_string) else {
        return unauthenticated("");
    };
    match decide(&pages, &token).await {
        Ok(Decision::Allowed(user)) => {
            request.extensions_mut().insert(Actor {
                user: user.username.unwrap_or_default(),
                token,
                csrf: None,
            });
            next.run(request).await
        }
        Ok(Decision::Unauthenticated) => {
            unauthenticated("The token is not valid (expired, revoked or mistyped).")
        }
        Ok(Decision::Forbidden(user, reason)) => forbidden(&user, &reason),
        Err(error) => {
            tracing::warn!(%error, "cannot check a token");
            unavailable(&format!("Cannot check the token now: {error}"))
        }
    }
}

async fn login_form() -> Response {
    html(StatusCode::OK, view::login(""))
}

async fn login(State(pages): State<Arc<Pages>>, body: Bytes) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return unauthenticated("Paste a token.");
    };
    match decide(&pages, &token).await {
        Ok(Decision::Allowed(user)) => match pages.sessions.start(user, token, Instant::now()) {
            Ok(id) => {
                let secure = if pages.secure { "; Secure" } else { "" };
                let cookie = format!(
                    "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                    auth::SESSION_TTL.as_secs()
                );
                match HeaderValue::from_str(&cookie) {
                    Ok(cookie) => (
                        StatusCode::SEE_OTHER,
                        [
                            (header::SET_COOKIE, cookie),
                            (header::LOCATION, HeaderValue::from_static("/")),
                        ],
                    )
                        .into_response(),
                    Err(_) => unavailable("Cannot start a session; try again."),
                }
            }
            Err(error) => unavailable(&format!("Cannot start a session: {error}")),
        },
        Ok(Decision::Unauthenticated) => {
            unauthenticated("The token is not valid (expired, revoked or mistyped).")
        }
        Ok(Decision::Forbidden(user, reason)) => forbidden(&user, &reason),
        Err(error) => unavailable(&format!("Cannot check the token now: {error}")),
    }
}

async fn logout(State(pages): State<Arc<Pages>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers, COOKIE) {
        pages.sessions.end(id);
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    match HeaderValue::from_str(&cookie) {
        Ok(cookie) => (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie),
                (header::LOCATION, HeaderValue::from_static("/login")),
            ],
        )
            .into_response(),
        Err(_) => html(StatusCode::OK, view::login("Logged out.")),
    }
}

async fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        view::message(
            "Not found",
            "There is no such page; start from the overview at /.",
        ),
    )
}

/// The latest snapshot, or why there is none (answered 503).
fn snapshot(pages: &Pages) -> Result<Arc<Snapshot>, &'static str> {
    ready(&pages.view.borrow())
}

/// The snapshot of a view, or why there is none.
fn ready(view: &View) -> Result<Arc<Snapshot>, &'static str> {
    match view {
        View::Ready(s) => Ok(s.clone()),
        View::Standby => Err(
            "This replica is standing by: only the leader keeps the inventory. Reach the page through the leader's pod (kubectl -n scangate-system get lease scangate-controller names it).",
        ),
        View::Starting => Err(
            "The inventory has not been computed yet (its watches are syncing); reload in a few seconds.",
        ),
    }
}

fn query(request: &Request) -> &str {
    request.uri().query().unwrap_or_default()
}

/// The rows of `/running` the query shows at `now` (its window ends then).
fn running_rows<'s>(
    snapshot: &'s Snapshot,
    q: &str,
    now: jiff::Timestamp,
) -> (RunningFilter, Vec<&'s model::Running>) {
    let (filter, valid) = RunningFilter::from_query(q);
    let rows = snapshot
        .running
        .iter()
        .filter(|r| valid && filter.shows(r, now))
        .collect();
    (filter, rows)
}

fn scan_rows<'s>(snapshot: &'s Snapshot, q: &str) -> (ScanFilter, Vec<&'s model::Scan>) {
    let (filter, valid) = ScanFilter::from_query(q);
    let mut rows: Vec<&model::Scan> = snapshot
        .scans
        .iter()
        .filter(|s| valid && filter.matches(s))
        .collect();
    model::sort_scans(&mut rows, filter.sort);
    (filter, rows)
}

fn csv(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn json(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

async fn landing(State(pages): State<Arc<Pages>>) -> Response {
    match snapshot(&pages) {
        Ok(s) => {
            let mirror = pages.mirror.borrow().clone();
            html(StatusCode::OK, view::landing(&s, &mirror))
        }
        Err(why) => unavailable(why),
    }
}

/// The viewer's saved searches of a page, or why they cannot be shown.
/// (The read is bounded by [`auth::REVIEW_TIMEOUT`]: the page never waits longer for them.)
async fn saved_of(pages: &Pages, actor: &Actor, page: SearchPage) -> view::SavedView {
    let read = tokio::time::timeout(auth::REVIEW_TIMEOUT, pages.searches.list(&actor.user));
    match read.await {
        Ok(Ok(list)) => {
            view::SavedView::Listed(list.into_iter().filter(|s| s.page == page).collect())
        }
        Ok(Err(error)) => {
            tracing::warn!(user = %actor.user, %error, "cannot read saved searches");
            view::SavedView::Unavailable(error.to_string())
        }
        Err(_) => view::SavedView::Unavailable(format!(
            "the cluster did not answer within {:?}; reload to try again",
            auth::REVIEW_TIMEOUT
        )),
    }
}

async fn running(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> Response {
    let s = match snapshot(&pages) {
        Ok(s) => s,
        Err(why) => return unavailable(why),
    };
    let saved = saved_of(&pages, &actor, SearchPage::Running).await;
    let (filter, rows) = running_rows(&s, query(&request), jiff::Timestamp::now());
    html(
        StatusCode::OK,
        view::running(&s, &filter, &rows, actor.csrf.as_deref(), &saved),
    )
}

async fn running_json(State(pages): State<Arc<Pages>>, request: Request) -> Response {
    match snapshot(&pages) {
        Ok(s) => json(export::running_json(
            running_rows(&s, query(&request), jiff::Timestamp::now())
                .1
                .into_iter(),
        )),
        Err(why) => unavailable(why),
    }
}

async fn running_csv(State(pages): State<Arc<Pages>>, request: Request) -> Response {
    match snapshot(&pages) {
        Ok(s) => csv(
            "running.csv",
            export::running_csv(
                running_rows(&s, query(&request), jiff::Timestamp::now())
                    .1
                    .into_iter(),
            ),
        ),
        Err(why) => unavailable(why),
    }
}

async fn scans(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    request: Request,
) -> Response {
    let s = match snapshot(&pages) {
        Ok(s) => s,
        Err(why) => return unavailable(why),
    };
    let saved = saved_of(&pages, &actor, SearchPage::Scans).await;
    let (filter, rows) = scan_rows(&s, query(&request));
    html(
        StatusCode::OK,
        view::scans(&s, &filter, &rows, actor.csrf.as_deref(), &saved),
    )
}

/// `POST /searches`: saves the search `query` of `page` under `name` (the form's fields), then
/// shows the page with it.
async fn save_search(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> Response {
    let (fields, page) = match search_form(&actor, &body, "Not saved") {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    let saved = match searches::Saved::new(field("name"), page, field("query")) {
        Ok(saved) => saved,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                view::message("Not saved", &e.to_string()),
            );
        }
    };
    let href = saved.href();
    match pages
        .searches
        .update(&actor.user, |list| searches::save(list, saved))
        .await
    {
        Ok(()) => see_other(&href),
        Err(e) => search_refused("Not saved", &actor, e),
    }
}

/// `POST /searches/delete`: deletes the saved search `name` of `page`.
async fn delete_search(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> Response {
    let (fields, page) = match search_form(&actor, &body, "Not deleted") {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let name = fields.get("name").cloned().unwrap_or_default();
    match pages
        .searches
        .update(&actor.user, |list| searches::delete(list, page, &name))
        .await
    {
        Ok(()) => see_other(&format!("/{}", page.as_str())),
        Err(e) => search_refused("Not deleted", &actor, e),
    }
}

/// A saved-search form's fields and page, once its CSRF token is checked; else the refusal,
/// titled `title` (403 for the token, 400 for an unknown page).
fn search_form(
    actor: &Actor,
    body: &[u8],
    title: &str,
) -> Result<(std::collections::HashMap<String, String>, SearchPage), Box<Response>> {
    let fields = form(body);
    if let Err(e) = actions::check_csrf(actor, fields.get("csrf").map(String::as_str)) {
        return Err(Box::new(html(
            StatusCode::FORBIDDEN,
            view::message(title, &e.to_string()),
        )));
    }
    let page = fields.get("page").map(String::as_str).unwrap_or_default();
    match SearchPage::parse(page) {
        Ok(page) => Ok((fields, page)),
        Err(e) => Err(Box::new(html(
            StatusCode::BAD_REQUEST,
            view::message(title, &e.to_string()),
        ))),
    }
}

/// A refused change of saved searches: the viewer's mistake (4xx) or the cluster's (5xx).
fn search_refused(title: &str, actor: &Actor, error: searches::Error) -> Response {
    use searches::Error as E;
    tracing::info!(user = %actor.user, %error, "saved searches not changed");
    let code = match &error {
        E::NoName
        | E::NameTooLong(_)
        | E::NameChars
        | E::QueryTooLong(_)
        | E::TooMany
        | E::UnknownPage(_) => StatusCode::BAD_REQUEST,
        E::NotFound(..) => StatusCode::NOT_FOUND,
        E::Conflict => StatusCode::CONFLICT,
        E::NotYours { .. } | E::Unreadable { .. } => StatusCode::FORBIDDEN,
        E::Api { .. } => StatusCode::BAD_GATEWAY,
    };
    html(code, view::message(title, &error.to_string()))
}

/// 303 to a page of this site.
fn see_other(href: &str) -> Response {
    match HeaderValue::from_str(href) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, HeaderValue::from_static("/"))],
        )
            .into_response(),
    }
}

async fn scans_json(State(pages): State<Arc<Pages>>, request: Request) -> Response {
    match snapshot(&pages) {
        Ok(s) => json(export::scans_json(
            scan_rows(&s, query(&request)).1.into_iter(),
        )),
        Err(why) => unavailable(why),
    }
}

async fn scans_csv(State(pages): State<Arc<Pages>>, request: Request) -> Response {
    match snapshot(&pages) {
        Ok(s) => csv(
            "scans.csv",
            export::scans_csv(scan_rows(&s, query(&request)).1.into_iter()),
        ),
        Err(why) => unavailable(why),
    }
}

async fn scan(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    match snapshot(&pages) {
        Ok(s) => match s.scan(&namespace, &name) {
            Some(scan) => html(StatusCode::OK, view::scan(scan, actor.csrf.as_deref())),
            None => html(
                StatusCode::NOT_FOUND,
                view::message(
                    "Not found",
                    &format!(
                        "There is no ImageScan {namespace}/{name}; see /scans for those there are."
                    ),
                ),
            ),
        },
        Err(why) => unavailable(why),
    }
}

/// A scan's PDF: its facts and verdict, and every vulnerability of its report ConfigMap, read
/// with the viewer's own token (a viewer who may not read it gets the violations alone, and
/// the PDF says why).
async fn scan_pdf(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let scan = match snapshot(&pages) {
        Ok(s) => match s.scan(&namespace, &name) {
            Some(scan) => scan.clone(),
            None => {
                return html(
                    StatusCode::NOT_FOUND,
                    view::message(
                        "Not found",
                        &format!("There is no ImageScan {namespace}/{name}."),
                    ),
                );
            }
        },
        Err(why) => return unavailable(why),
    };
    let report = actions::read_report(&pages.config, &actor, &namespace, &name).await;
    let lines = view::scan_pdf_lines(&scan, report.as_ref().map_err(Clone::clone));
    let title = format!("ImageScan {namespace}/{name}");
    let file = format!("attachment; filename=\"{name}.pdf\"");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&file)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        pdf::document(&title, &lines),
    )
        .into_response()
}

/// A form's fields.
fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Checks the form's CSRF token, does the action as the viewer, and says how it went.
async fn act(
    pages: &Pages,
    actor: &Actor,
    fields: &std::collections::HashMap<String, String>,
    action: Action,
) -> Response {
    use actions::Error;
    let done = match actions::check_csrf(actor, fields.get("csrf").map(String::as_str)) {
        Ok(()) => {
            actions::perform(
                &pages.config,
                actor,
                &action,
                &pages.scangate_namespace,
                jiff::Timestamp::now(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match done {
        Ok(said) => {
            tracing::info!(user = %actor.user, action = %action.describe(), "results page action");
            html(StatusCode::OK, view::message("Done", &said))
        }
        Err(error) => {
            tracing::info!(user = %actor.user, action = %action.describe(), %error, "results page action refused");
            let code = match &error {
                Error::Csrf | Error::Forbidden { .. } => StatusCode::FORBIDDEN,
                Error::NotFound { .. } => StatusCode::NOT_FOUND,
                Error::Api { .. } => StatusCode::BAD_GATEWAY,
            };
            html(code, view::message("Not done", &error.to_string()))
        }
    }
}

/// `POST /scans/{namespace}/{name}/{action}`: `rescan`, `reevaluate`, `pause`, `resume`,
/// `cancel`, or `vex` (record an OpenVEX statement about one of its CVEs).
async fn scan_action(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let action = match action.as_str() {
        "vex" => {
            // The statement is about the scan's image, as the index knows it.
            let image = match snapshot(&pages) {
                Ok(s) => match s.scan(&namespace, &name) {
                    Some(scan) => scan.image.clone(),
                    None => return not_found().await,
                },
                Err(why) => return unavailable(why),
            };
            match actions::vex_statement(
                &fields,
                &namespace,
                &image,
                &actor.user,
                jiff::Timestamp::now(),
            ) {
                Ok(statement) => Action::RecordVex {
                    namespace: statement.metadata.namespace.unwrap_or_default(),
                    name: statement.metadata.name.unwrap_or_default(),
                    spec: Box::new(statement.spec),
                },
                Err(why) => return html(StatusCode::BAD_REQUEST, view::message("Not done", &why)),
            }
        }
        other => match Action::on_scan(other, namespace, name) {
            Some(action) => action,
            None => return not_found().await,
        },
    };
    act(&pages, &actor, &fields, action).await
}

async fn scan_now(
    State(pages): State<Arc<Pages>>,
    Extension(actor): Extension<Actor>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let image = fields.get("image").map(String::as_str).unwrap_or_default();
    match crate::image::ImageRef::parse(image) {
        Ok(image) => act(&pages, &actor, &fields, Action::ScanNow { image }).await,
        Err(e) => html(
            StatusCode::BAD_REQUEST,
            view::message(
                "Not done",
                &format!("{image:?} is not an image reference: {e}"),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(listen: bool, cert: bool, key: bool, insecure: bool) -> ResultsArgs {
        ResultsArgs {
            results_listen: listen.then(|| SocketAddr::from(([127, 0, 0, 1], 8444))),
            results_tls_cert_file: cert.then(|| "c.pem".into()),
            results_tls_key_file: key.then(|| "k.pem".into()),
            results_insecure_http: insecure,
            results_access_recheck: std::time::Duration::from_secs(60),
        }
    }

    #[test]
    fn the_page_is_https_unless_told_otherwise() {
        assert!(matches!(
            args(false, false, false, false).listener(),
            Ok(None)
        ));
        assert!(matches!(
            args(true, false, false, false).listener(),
            Err(Error::NoTls)
        ));
        assert!(matches!(
            args(true, true, false, true).listener(),
            Err(Error::HalfTls)
        ));
        assert!(matches!(
            args(true, true, true, false).listener(),
            Ok(Some(Listener::Https(..)))
        ));
        assert!(matches!(
            args(true, false, false, true).listener(),
            Ok(Some(Listener::Http(_)))
        ));
    }

    #[test]
    fn without_a_snapshot_the_page_says_why() {
        assert!(ready(&View::Standby).is_err_and(|why| why.contains("standing by")));
        assert!(ready(&View::Starting).is_err_and(|why| why.contains("not been computed")));
        assert!(ready(&View::Ready(Arc::new(Snapshot::default()))).is_ok());
    }

    #[test]
    fn requests_are_counted_by_route_template() {
        assert_eq!(page_of("/"), "/");
        assert_eq!(page_of("/scans.csv"), "/scans.csv");
        assert_eq!(page_of("/scans/shop/web"), "/scans/{namespace}/{name}");
        assert_eq!(page_of("/scans/shop"), "other");
        assert_eq!(
            page_of("/scans/shop/web/pause"),
            "/scans/{namespace}/{name}/pause"
        );
        assert_eq!(page_of("/searches/delete"), "/searches/delete");
        assert_eq!(page_of("/anything/else"), "other");
    }

    #[test]
    fn tokens_come_from_the_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; scangate-session=xyz; b=2"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        assert_eq!(cookie_value(&h, COOKIE), Some("xyz"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
