//! The HTTP side of the bridge: the built frontend (inside the binary, `page`, or a folder given
//! with `--dist`) and the WebSocket endpoint, all behind the Host check (against DNS rebinding); the WebSocket also behind the
//! Origin allowlist (against other web pages). The token is checked inside the session, in its
//! hello; until then a connection holds only a place in a small budget that newcomers push the
//! oldest out of (`admission`), so idle peers without the token cannot lock the page out.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use super::admission::Gate;
use crate::hub::Hub;
use crate::security::{host_allowed, origin_allowed};

/// How long a client may take to send a request's headers: a client that trickles them
/// (slowloris) or sends nothing is closed after this, and waiting costs no CPU.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) read; beyond it, 431 and close.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// HTTP connections open at once (page loads and downloads; a WebSocket leaves this budget
/// once it is upgraded). A newcomer beyond it closes the oldest, so a flood of idle
/// connections can neither use up the bridge's file descriptors nor keep a page from loading.
pub const MAX_HTTP_CONNECTIONS: usize = 256;
/// WebSockets that have not said hello yet; a newcomer beyond it closes the oldest. Only a
/// session whose hello was accepted takes one of the `max_sessions` places.
pub const MAX_WAITING_HELLOS: usize = 16;
/// Largest amount of outgoing WebSocket data buffered for one session: a peer that never
/// reads (and floods pings, each owed a pong) cannot make the bridge hold more. It is well
/// above the largest message the bridge sends (a batch of about 512 KiB plus one event).
const MAX_WRITE_BUFFER: usize = 4 << 20;
/// How long open HTTP connections get to finish at shutdown.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Accepts HTTP connections until `shutdown` resolves, each with a header deadline, a head size
/// limit and TCP_NODELAY (events and replies are small messages written back to back: Nagle's
/// algorithm would hold each until the viewer's delayed ACK, tens of milliseconds later).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let open = Gate::new(MAX_HTTP_CONNECTIONS);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("accept() failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.held() >= MAX_HTTP_CONNECTIONS {
            tracing::warn!("{MAX_HTTP_CONNECTIONS} HTTP connections are open: closing the oldest");
        }
        let place = open.admit();
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a viewer's connection: {err}");
        }
        let service = TowerToHyperService::new(app.clone());
        let closing = closing.clone();
        connections.spawn(async move {
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
            let connection = http
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // Pushed out by newer connections: dropping it closes it.
                _ = place.evicted() => {}
                _ = closing.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(place);
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(DRAIN_WAIT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
    Ok(())
}

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    listen: SocketAddr,
    origins: Arc<Vec<String>>,
    sessions: Arc<Semaphore>,
    waiting: Arc<Gate>,
}

/// The bridge's routes, for a server listening on `listen`.
pub(crate) fn router(hub: Arc<Hub>, listen: SocketAddr, origins: Vec<String>) -> Router {
    let static_dir = hub.config.static_dir.clone();
    let page = match &static_dir {
        Some(dir) => std::fs::read_to_string(dir.join("index.html")).ok(),
        None => super::page::index_html(),
    }
    .unwrap_or_default();
    let policy =
        HeaderValue::from_str(&content_security_policy(&page)).expect("the policy is plain ASCII");
    let state = AppState {
        sessions: Arc::new(Semaphore::new(hub.config.max_sessions)),
        waiting: Gate::new(MAX_WAITING_HELLOS),
        hub,
        listen,
        origins: Arc::new(origins),
    };
    let routes = Router::new()
        .route(shared::WS_PATH, get(websocket))
        // Every path below /files/ is a download (one that names no file of the data
        // directory is refused there), never the page.
        .route("/files/{*name}", get(download))
        .route("/files/", get(no_file_named))
        .route("/status", get(status));
    let routes = match static_dir {
        Some(dir) => routes.fallback_service(frontend(&dir)),
        None if super::page::embedded() => routes.fallback(super::page::serve),
        None => {
            tracing::warn!("{NO_PAGE}");
            routes.fallback(no_frontend)
        }
    };
    routes
        // The page must not be framed by another site (clickjacking its buttons).
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // Only the page's own scripts, styles and WebSocket: text that slipped into the page
        // from an event could never run, nor send anything elsewhere.
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            policy,
        ))
        // The page never tells another site where it came from (its URL held the token once).
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// The Content-Security-Policy for the page in `index_html`: scripts from the bridge only, plus
/// the page's own inline loader (trunk writes one), allowed by its SHA-256 so that no other
/// inline script can run; WebAssembly compiled from those scripts; connections only back to
/// the bridge; no plugins, no framing, no forms sent anywhere. Styles may be inline (yew sets
/// `style` attributes).
pub(crate) fn content_security_policy(index_html: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut scripts = String::new();
    let mut rest = index_html;
    while let Some(open) = rest.find("<script") {
        let Some(end_of_tag) = rest[open..].find('>') else {
            break;
        };
        let tag = &rest[open..open + end_of_tag];
        let body_start = open + end_of_tag + 1;
        let Some(close) = rest[body_start..].find("</script>") else {
            break;
        };
        let body = &rest[body_start..body_start + close];
        if !tag.contains("src=") && !body.trim().is_empty() {
            let digest = sha2::Sha256::digest(body.as_bytes());
            let hash = base64::engine::general_purpose::STANDARD.encode(digest);
            scripts.push_str(&format!(" 'sha256-{hash}'"));
        }
        rest = &rest[body_start + close..];
    }
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{scripts}; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The built frontend from a folder (`--dist`); as inside the binary (`page`), unknown paths
/// get the page itself (it is a single-page app).
fn frontend(dir: &Path) -> ServeDir<ServeFile> {
    ServeDir::new(dir)
        .precompressed_gzip()
        .fallback(ServeFile::new(dir.join("index.html")))
}

/// Refuses any request whose Host is not this bridge: a page on another domain that rebinds its
/// name to 127.0.0.1 still sends its own name as Host.
async fn check_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match host {
        Some(host) if host_allowed(host, state.listen) => next.run(request).await,
        _ => {
            tracing::warn!(?host, "refused a request with a foreign Host header");
            (StatusCode::FORBIDDEN, "Forbidden: unexpected Host header\n").into_response()
        }
    }
}

async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if headers.contains_key(header::ORIGIN) && origin.is_none()
        || !origin_allowed(origin, &state.origins)
    {
        tracing::warn!(?origin, "refused a WebSocket from a foreign origin");
        return (StatusCode::FORBIDDEN, "Forbidden: origin not allowed\n").into_response();
    }
    let hub = state.hub.clone();
    let (waiting, sessions) = (state.waiting.clone(), state.sessions.clone());
    upgrade
        .max_message_size(hub.config.max_message_bytes)
        .max_frame_size(hub.config.max_frame_bytes)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            let tasks = hub.tasks.clone();
            let place = waiting.admit();
            tasks.track_future(super::session::run(socket, hub, place, sessions))
        })
}

/// Requests outside a session (downloads, status) carry the session token as a bearer token,
/// never in the URL.
fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| state.hub.config.token.matches(t))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "The session token is missing or wrong.\n",
    )
        .into_response()
}

/// Downloads a file of the data directory. The page sends the session token as a bearer token
/// (never in the URL); the name is confined to the data directory like every other.
/// `/files/` alone names no file.
async fn no_file_named() -> Response {
    (StatusCode::NOT_FOUND, "Name a file: /files/NAME\n").into_response()
}

async fn download(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let (file, size) = match state.hub.data.open(&name) {
        Ok(opened) => opened,
        Err(error) => {
            let status = match error.kind {
                shared::ErrorKind::NotAllowed => StatusCode::BAD_REQUEST,
                _ => StatusCode::NOT_FOUND,
            };
            return (status, format!("{}\n", error.explanation)).into_response();
        }
    };
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(
        tokio::fs::File::from_std(file),
    ));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// What the bridge holds now, for the soak test and anyone watching a long lecture: tasks
/// alive in the runtime, endpoints, open sessions. Needs the token, like a download.
async fn status(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let sessions = state.hub.config.max_sessions - state.sessions.available_permits();
    let body = serde_json::json!({
        "tasks": tasks,
        "endpoints": state.hub.registry.len(),
        "sessions": sessions,
    });
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Without a built frontend, say what this is and how to get the page.
/// What a bridge built without its page says, in its log and to a browser.
const NO_PAGE: &str = "this bridge was built without its page: only the WebSocket (/ws) is \
                       available. Build the page into the binary with `cargo xtask run` (or \
                       `cargo xtask page`, then `cargo build --release -p bridge`), serve a \
                       built page with --dist DIR, or use `trunk serve` for development";

async fn no_frontend() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "Socket Playground bridge {}: {NO_PAGE}.\nWebSocket clients connect to /ws (see docs/protocol.md).\n",
            env!("CARGO_PKG_VERSION")
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_pages_own_inline_loader_only() {
        let page = "<head><script type=\"module\">import init from '/a.js';</script>\
                    <script src=\"/b.js\"></script></head>";
        let policy = content_security_policy(page);
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(b"import init from '/a.js';"));
        assert!(policy.contains(&format!("'sha256-{hash}'")), "{policy}");
        assert_eq!(policy.matches("'sha256-").count(), 1, "{policy}");
        assert!(policy.contains("frame-ancestors 'none'") && !policy.contains(" 'unsafe-eval'"));
    }
}
