//! A stand-in for a web API on 127.0.0.1, for the fetch tests: a certificate authority made
//! for one test, a server certificate it signed (for a name, or already expired), and an HTTPS
//! server that answers by path. Nothing here leaves this machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the stand-in answers for the weather: the shape of open-meteo's `current_weather`.
pub const WEATHER: &str = r#"{"latitude":51.47,"longitude":0.0363,"current_weather":{"temperature":9.4,"windspeed":14.2,"weathercode":3}}"#;

/// A certificate authority made for one test, and a server certificate it signed.
pub struct Authority {
    pub ca_pem: String,
    leaf: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

pub fn authority(name: &str, expired: bool) -> Authority {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Socket Playground test authority",
    );
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, name);
    if expired {
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    Authority {
        ca_pem: ca.pem(),
        leaf: leaf.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// An HTTPS server on 127.0.0.1 that answers by path: the weather JSON, a redirect to it, a
/// redirect to itself, a gzip body, a body over the limit, or nothing at all.
pub async fn https_server(cert: &Authority) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.leaf.clone()], cert.key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if tls.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body): (&str, String, Vec<u8>) = match path.as_str() {
                    p if p.starts_with("/v1/forecast") => ("200 OK", String::new(), WEATHER.into()),
                    "/moved" => (
                        "302 Found",
                        "Location: /v1/forecast?latitude=51.47\r\n".into(),
                        Vec::new(),
                    ),
                    "/loop" => ("302 Found", "Location: /loop\r\n".into(), Vec::new()),
                    "/gzip" => {
                        use std::io::Write as _;
                        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                        gz.write_all(WEATHER.as_bytes()).unwrap();
                        (
                            "200 OK",
                            "Content-Encoding: gzip\r\n".into(),
                            gz.finish().unwrap(),
                        )
                    }
                    "/big" => ("200 OK", String::new(), vec![b'x'; 300 * 1024]),
                    "/silent" => {
                        tokio::time::sleep(Duration::from_secs(15)).await;
                        return;
                    }
                    _ => ("404 Not Found", String::new(), Vec::new()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
