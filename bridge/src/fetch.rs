//! "Fetch a URL and send the body": one HTTP/1.1 GET, made by hand over a TCP connection to the
//! address the policy allowed (so a name cannot resolve to one address for the check and
//! another for the request). A fetch is one GET made by the person holding the token, as their
//! own browser would make it, so it may reach public addresses; private ones only with
//! `--allow-lan`, link-local and metadata addresses never (`security::check_ip`).
//!
//! `https://` goes over TLS (rustls): the certificate is verified against the Mozilla roots
//! that `webpki-roots` ships (the same set everywhere, with no OS store to differ) and any
//! `--extra-root-cert`, for the URL's name (SNI). Redirects are followed, at most
//! [`MAX_REDIRECTS`], each hop judged by the policy again; a gzip body is accepted and
//! unpacked. The body is at most 256 KiB (unpacked too), the whole fetch at most 10 s. Each
//! step is reported as it happens (`fetch_step` events: the TLS step names the certificate's
//! subject and issuer, read with `x509-parser`), and every failure is explained.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use shared::{ErrorInfo, ErrorKind, MAX_FETCH_BODY};

use crate::explain::{explain, Op, Proto};
use crate::security::{resolve, Purpose, Reach};

/// How long the whole fetch may take, redirects included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed before the fetch counts as a loop.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// What a fetch needs: where it may go and whom it trusts. Made once, at start.
pub(crate) struct Fetcher {
    reach: Reach,
    tls: Arc<rustls::ClientConfig>,
}

/// One step of a fetch, for the timeline.
pub(crate) type Step<'a> = &'a (dyn Fn(&str, String) + Send + Sync);

impl Fetcher {
    /// Trusts the shipped roots and the certificates in `extra_roots` (PEM files).
    pub(crate) fn new(reach: Reach, extra_roots: &[std::path::PathBuf]) -> Result<Fetcher, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for path in extra_roots {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in certs {
                let cert =
                    cert.map_err(|e| format!("{} holds a bad certificate: {e}", path.display()))?;
                roots.add(cert).map_err(|e| {
                    format!("{}: not a usable root certificate: {e}", path.display())
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("{} holds no PEM certificate", path.display()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            reach,
            tls: Arc::new(tls),
        })
    }

    /// The final status and body of `url` (after redirects), or why it could not be had.
    pub(crate) async fn get(&self, url: &str, step: Step<'_>) -> Result<(u16, Bytes), ErrorInfo> {
        tokio::time::timeout(FETCH_TIMEOUT, self.follow(url, step))
            .await
            .unwrap_or_else(|_| {
                Err(ErrorInfo::new(
                    ErrorKind::TimedOut,
                    format!(
                        "Fetching {url} took longer than {} s.",
                        FETCH_TIMEOUT.as_secs()
                    ),
                )
                .with_hint("Check that the server answers, and try again."))
            })
    }

    async fn follow(&self, url: &str, step: Step<'_>) -> Result<(u16, Bytes), ErrorInfo> {
        let mut current = url.to_string();
        for hop in 0..=MAX_REDIRECTS {
            let answer = self.once(&current, step).await?;
            let Some(next) = answer.location.filter(|_| is_redirect(answer.status)) else {
                return Ok((answer.status, answer.body));
            };
            if hop == MAX_REDIRECTS {
                break;
            }
            let next = join(&current, &next)?;
            step("redirect", format!("{} → {next}", answer.status));
            current = next;
        }
        Err(ErrorInfo::new(
            ErrorKind::LimitReached,
            format!(
                "Fetching {url} was redirected more than {MAX_REDIRECTS} times: a redirect loop?"
            ),
        )
        .with_hint("Open the URL in a browser to see where it leads."))
    }

    /// One request, to one URL.
    async fn once(&self, url: &str, step: Step<'_>) -> Result<Answer, ErrorInfo> {
        let target = Target::parse(url)?;
        let addr = resolve(&target.host, target.port, &self.reach, Purpose::Fetch).await?;
        if target.host.parse::<std::net::IpAddr>().is_err() {
            step("resolve", format!("{} → {}", target.host, addr.ip()));
        }
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| explain(&e, Op::Connect, Proto::Tcp, &addr.to_string()))?;
        step("connect", format!("TCP connection to {addr}"));
        if !target.tls {
            return exchange(TokioIo::new(tcp), &target, step).await;
        }
        let name = ServerName::try_from(target.host.clone()).map_err(|_| {
            ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!("'{}' is not a name a certificate can be for.", target.host),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(&target.host, addr, &e))?;
        let (_, session) = tls.get_ref();
        let version = session
            .protocol_version()
            .map_or("TLS".to_string(), |v| format!("{v:?}").replace('_', "."));
        let suite = session
            .negotiated_cipher_suite()
            .map_or(String::new(), |s| format!("{:?}", s.suite()));
        let (subject, issuer) = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
            .map(|(_, cert)| (cert.subject().to_string(), cert.issuer().to_string()))
            .unwrap_or_default();
        step(
            "tls",
            format!(
                "{version}, {suite}; certificate of {subject}, issued by {issuer}, verified for {}",
                target.host
            ),
        );
        exchange(TokioIo::new(tls), &target, step).await
    }
}

/// What one request got back.
struct Answer {
    status: u16,
    location: Option<String>,
    body: Bytes,
}

/// A URL split into what the request needs.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// For the Host header: the name, and the port unless it is the scheme's own.
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, ErrorInfo> {
        let bad = |why: &str| {
            ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!("'{url}' cannot be fetched: {why}."),
            )
            .with_hint("Give a URL such as https://api.open-meteo.com/v1/forecast?latitude=51.47&longitude=0.0363&current_weather=true")
        };
        let uri: hyper::Uri = url.parse().map_err(|_| bad("it is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("only http:// and https:// URLs can be fetched")),
        };
        // A user name or password would go out in the request's Host header (and to nobody
        // the person meant): refused rather than passed on.
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad(
                "it carries a user name or password (user:password@), which is not sent",
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            tls,
            host: host.to_string(),
            port,
            authority: authority.as_str().to_string(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        })
    }
}

/// GET over an open connection (plain or TLS); the answer, with its body unpacked.
async fn exchange<IO>(io: IO, target: &Target, step: Step<'_>) -> Result<Answer, ErrorInfo>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let url = format!(
        "{}://{}{}",
        if target.tls { "https" } else { "http" },
        target.authority,
        target.path
    );
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| http_error(&url, &e))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::USER_AGENT, "socket-playground-bridge")
        .header(hyper::header::ACCEPT_ENCODING, "gzip")
        .body(Empty::<Bytes>::new())
        .map_err(|_| {
            ErrorInfo::new(ErrorKind::InvalidRequest, "The request could not be built.")
        })?;
    step(
        "request",
        format!("GET {} HTTP/1.1, Host: {}", target.path, target.authority),
    );
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http_error(&url, &e))?;
    let status = response.status();
    let header = |name: hyper::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let location = header(hyper::header::LOCATION);
    let gzip =
        header(hyper::header::CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    let too_big = || {
        ErrorInfo::new(
            ErrorKind::LimitReached,
            format!("The body of {url} is over {MAX_FETCH_BODY} bytes, more than one message should carry."),
        )
        .with_hint("Fetch a smaller resource (an API's JSON rather than a whole page).")
    };
    let wire = Limited::new(response.into_body(), MAX_FETCH_BODY)
        .collect()
        .await
        .map_err(|_| too_big())?
        .to_bytes();
    let body = if gzip {
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&wire[..])
            .take(MAX_FETCH_BODY as u64 + 1)
            .read_to_end(&mut unpacked)
            .map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Other,
                    format!("The gzip body of {url} could not be unpacked: {e}."),
                )
            })?;
        if unpacked.len() > MAX_FETCH_BODY {
            return Err(too_big());
        }
        Bytes::from(unpacked)
    } else {
        wire.clone()
    };
    let packed = if gzip {
        format!(" ({} gzipped)", wire.len())
    } else {
        String::new()
    };
    step(
        "response",
        format!(
            "{} {}, {} bytes{packed}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        ),
    );
    Ok(Answer {
        status: status.as_u16(),
        location,
        body,
    })
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a `Location` leads from `base`: a whole URL, a path on the same server, or a path
/// relative to the current one.
fn join(base: &str, location: &str) -> Result<String, ErrorInfo> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    let uri: hyper::Uri = base
        .parse()
        .map_err(|_| ErrorInfo::new(ErrorKind::InvalidRequest, "A redirect from a bad URL."))?;
    let origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str())
    );
    if let Some(rest) = location.strip_prefix("//") {
        return Ok(format!("{}://{rest}", uri.scheme_str().unwrap_or("http")));
    }
    if location.starts_with('/') {
        return Ok(format!("{origin}{location}"));
    }
    let path = uri.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!("{origin}{dir}{location}"))
}

/// A TLS failure in words: what was wrong with the certificate, or the handshake.
fn tls_error(host: &str, addr: SocketAddr, err: &std::io::Error) -> ErrorInfo {
    use rustls::CertificateError as C;
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    let (why, hint) = match inner {
        Some(rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => (
            format!("the certificate of {host} has expired"),
            "The server must renew its certificate; nothing on this side can fix it.",
        ),
        Some(rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. })) => (
            format!("the certificate of {host} is not valid yet (or this machine's clock is wrong)"),
            "Check this machine's date and time.",
        ),
        Some(rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })) => (
            format!("the certificate {addr} presented is for another name than {host}"),
            "Check the host name in the URL: the server answered with someone else's certificate.",
        ),
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer)) => (
            format!("the certificate of {host} is not signed by an authority this bridge trusts (self-signed, or a private one)"),
            "For a classroom's own server, start the bridge with --extra-root-cert FILE.",
        ),
        Some(rustls::Error::InvalidCertificate(other)) => (
            format!("the certificate of {host} was refused: {other:?}"),
            "Open the URL in a browser to see what is wrong with its certificate.",
        ),
        Some(other) => (
            format!("the TLS handshake with {host} failed: {other}"),
            "Check that the server speaks HTTPS on that port.",
        ),
        None => (
            format!("the TLS handshake with {host} failed: {err}"),
            "Check that the server speaks HTTPS on that port.",
        ),
    };
    let mut info = ErrorInfo::new(
        ErrorKind::Other,
        format!("The HTTPS connection failed: {why}."),
    )
    .with_hint(hint);
    info.os_message = Some(err.to_string());
    info
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_joined_like_a_browser_would() {
        let base = "https://example.test/v1/forecast?x=1";
        assert_eq!(join(base, "/v2/f").unwrap(), "https://example.test/v2/f");
        assert_eq!(
            join(base, "other").unwrap(),
            "https://example.test/v1/other"
        );
        assert_eq!(join(base, "http://a.test/").unwrap(), "http://a.test/");
        assert_eq!(join(base, "//b.test/x").unwrap(), "https://b.test/x");
    }

    #[test]
    fn urls_split_into_what_the_request_needs() {
        let t = Target::parse("https://api.open-meteo.com/v1/forecast?latitude=51.47").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("api.open-meteo.com", 443));
        assert_eq!(t.path, "/v1/forecast?latitude=51.47");
        assert_eq!(Target::parse("http://[::1]:8080/").unwrap().host, "::1");
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("http://u:p@x/").is_err());
    }
}
