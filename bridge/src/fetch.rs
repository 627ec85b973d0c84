//! "Fetch a URL and send the body": one HTTP/1.1 GET, made by hand over a TCP connection to the
//! address the policy allowed (so a name cannot resolve to one address for the check and
//! another for the request), with a body size limit. Plain `http://` only: the bridge speaks no
//! TLS.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use shared::{ErrorInfo, ErrorKind, MAX_FETCH_BODY};

use crate::explain::{explain, Op, Proto};
use crate::security::{resolve, Purpose};
use shared::Scope;

/// How long the whole fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The status and body of `url`, or why it could not be had.
pub(crate) async fn get(url: &str, scope: Scope) -> Result<(u16, Bytes), ErrorInfo> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch(url, scope))
        .await
        .unwrap_or_else(|_| {
            Err(ErrorInfo::new(
                ErrorKind::TimedOut,
                format!(
                    "Fetching {url} took longer than {} s.",
                    FETCH_TIMEOUT.as_secs()
                ),
            ))
        })
}

async fn fetch(url: &str, scope: Scope) -> Result<(u16, Bytes), ErrorInfo> {
    let bad = |why: &str| {
        ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("'{url}' cannot be fetched: {why}."),
        )
        .with_hint("Give a URL such as http://127.0.0.1:8000/weather.json")
    };
    let uri: hyper::Uri = url.parse().map_err(|_| bad("it is not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad("the bridge speaks plain HTTP only, not HTTPS (TLS)"));
        }
        _ => return Err(bad("only http:// URLs are supported")),
    }
    // A user name or password would go out in the request's Host header (and to nobody the
    // person meant): refused rather than passed on.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad(
            "it carries a user name or password (user:password@), which is not sent",
        ));
    }
    let host = uri.host().ok_or_else(|| bad("it has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let addr = resolve(host, port, scope, Purpose::Connect).await?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| explain(&e, Op::Connect, Proto::Tcp, &addr.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http_error(url, &e))?;
    tokio::spawn(connection);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "socket-playground-bridge")
        .body(Empty::<Bytes>::new())
        .map_err(|_| bad("the request could not be built"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http_error(url, &e))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_FETCH_BODY)
        .collect()
        .await
        .map_err(|_| {
            ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("The body of {url} is over {MAX_FETCH_BODY} bytes, more than one message should carry."),
            )
        })?
        .to_bytes();
    Ok((status, body))
}

fn http_error(url: &str, err: &hyper::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        ErrorKind::Other,
        format!("The HTTP exchange with {url} failed: {err}."),
    )
    .with_hint("Check that an HTTP server answers there.");
    info.os_message = Some(err.to_string());
    info
}
