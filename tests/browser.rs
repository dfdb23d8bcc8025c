//! The headless-Chromium harness (tests/common/browser.rs) against a tiny page served on
//! loopback: navigation, evaluation, typing, extra headers, a screenshot and a printed PDF.
//! Runs with `SCANGATE_E2E=1` (Chromium and pdftotext from `make browser`).

mod common;

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use common::browser::{Error, assert_png, browser, pdf_text};

const PAGE: &str = r#"<!doctype html>
<html><head><title>harness</title><link rel="stylesheet" href="/app.css"></head>
<body>
<h1>Images</h1>
<input id="search" type="search">
<select id="registry"><option value="">all</option><option>docker.io</option><option>ghcr.io</option></select>
<p>shown: <span data-figure="shown">3</span></p>
<ul id="rows">
  <li data-registry="docker.io">docker.io/library/busybox:1.32.1</li>
  <li data-registry="ghcr.io">ghcr.io/acme/app:2</li>
  <li data-registry="docker.io">docker.io/library/alpine:3.10</li>
</ul>
<p class="screen-only">SCREEN-ONLY-TEXT</p>
<p class="print-only">CVE-2021-42374 CVE-2021-42386</p>
<a id="next" href="/next">next</a>
<script src="/app.js"></script>
</body></html>"#;

const SCRIPT: &str = r#"
const search = document.getElementById('search');
document.getElementById('registry').addEventListener('change', (e) => {
  document.title = 'registry ' + e.target.value;
});
search.addEventListener('input', () => {
  let shown = 0;
  for (const row of document.querySelectorAll('#rows li')) {
    row.hidden = !row.textContent.includes(search.value);
    if (!row.hidden) shown++;
  }
  document.querySelector('[data-figure="shown"]').textContent = String(shown);
});
"#;

const STYLE: &str = ".print-only { display: none; }
@media print { .print-only { display: block; } .screen-only { display: none; } }";

/// Serves the page on 127.0.0.1 from a thread of its own; returns its base URL.
fn serve() -> String {
    let app = axum::Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/next",
            get(|| async { Html("<title>next</title><p>next page</p>") }),
        )
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route(
            "/headers",
            get(|headers: HeaderMap| async move {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            }),
        )
        .route(
            "/denied",
            get(|| async { (StatusCode::UNAUTHORIZED, Html("<p>log in</p>")).into_response() }),
        );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr: SocketAddr = listener.local_addr().expect("local address");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{addr}")
}

#[test]
fn the_harness_drives_a_real_chromium() {
    let Some(browser) = browser() else { return };
    let base = serve();
    let page = browser.new_page();

    page.navigate(&format!("{base}/")).expect("navigate");
    assert_eq!(page.status().expect("status"), 200);
    let title: String = page.eval("document.title").expect("title");
    assert_eq!(title, "harness");
    let awaited: u32 = page
        .eval("new Promise(r => setTimeout(() => r(42), 10))")
        .expect("a promise is awaited");
    assert_eq!(awaited, 42);
    let thrown = page.eval::<Option<u32>>("(() => { throw new Error('boom'); })()");
    assert!(
        matches!(&thrown, Err(Error::Exception(text)) if text.contains("boom")),
        "{thrown:?}"
    );
    assert!(matches!(
        page.eval::<u32>("'not a number'"),
        Err(Error::Value { .. })
    ));

    // Typing fires the page's input listener.
    page.type_into("input#search", "docker.io").expect("type");
    let shown: String = page
        .eval(r#"document.querySelector('[data-figure="shown"]').textContent"#)
        .expect("shown");
    assert_eq!(shown, "2");
    let visible: Vec<String> = page
        .eval(
            "[...document.querySelectorAll('#rows li:not([hidden])')].map(r => r.dataset.registry)",
        )
        .expect("visible rows");
    assert_eq!(visible, ["docker.io", "docker.io"]);
    assert!(matches!(
        page.type_into("input#missing", "x"),
        Err(Error::NoElement(_))
    ));

    page.select("select#registry", "ghcr.io").expect("select");
    let title: String = page.eval("document.title").expect("title");
    assert_eq!(title, "registry ghcr.io");
    assert!(matches!(
        page.select("select#registry", "quay.io"),
        Err(Error::NoOption { .. })
    ));

    // The screenshot is a PNG of the whole page.
    let dir = tempfile::tempdir().expect("tempdir");
    let png = dir.path().join("page.png");
    page.screenshot(&png).expect("screenshot");
    assert_png(&png, 1000);

    // The PDF is printed with the print styles.
    let pdf = dir.path().join("page.pdf");
    page.print_pdf(&pdf).expect("print");
    assert!(std::fs::read(&pdf).expect("read PDF").starts_with(b"%PDF-"));
    let text = pdf_text(&pdf);
    assert!(text.contains("CVE-2021-42374"), "{text}");
    assert!(text.contains("CVE-2021-42386"), "{text}");
    assert!(!text.contains("SCREEN-ONLY-TEXT"), "{text}");

    // A link followed to its page; an error status still loads.
    page.click_and_wait("a#next").expect("follow the link");
    let title: String = page.eval("document.title").expect("title");
    assert_eq!(title, "next");
    page.navigate(&format!("{base}/denied")).expect("navigate");
    assert_eq!(page.status().expect("status"), 401);
    let closed = format!("http://127.0.0.1:{}/", common::webhook::free_port());
    let refused = page.navigate(&closed);
    assert!(
        matches!(&refused, Err(Error::Navigation { text, .. }) if text.contains("REFUSED")),
        "{refused:?}"
    );

    // Extra headers go with the page's own fetch() calls.
    page.set_extra_headers(&[("Authorization", "Bearer t0ken")])
        .expect("headers");
    page.navigate(&format!("{base}/")).expect("navigate");
    let auth: String = page
        .eval("fetch('/headers').then(r => r.text())")
        .expect("fetch");
    assert_eq!(auth, "Bearer t0ken");

    // Pages are isolated: another one sends no such header.
    let other = browser.new_page();
    other.navigate(&format!("{base}/")).expect("navigate");
    let auth: String = other
        .eval("fetch('/headers').then(r => r.text())")
        .expect("fetch");
    assert_eq!(auth, "");
}
