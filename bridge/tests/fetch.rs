//! `fetch_send` over HTTPS, as the workshop's web-API exercise does it (seed 004, Exercise 8),
//! without leaving this machine: a test HTTPS server on 127.0.0.1 with a certificate made for
//! the test, the exercise's host pointed at it with `resolve` (`--resolve`) and the test's
//! authority trusted with `extra_root_certs` (`--extra-root-cert`). The certificate is checked
//! for real: the same server fails with the usual roots, another name, or an expired one.

mod common;

use std::net::SocketAddr;

use common::https::{authority, https_server, WEATHER};
use common::*;
use serde_json::json;
use shared::{ErrorKind, EventKind};

/// The exercise's URL, exactly as the handout gives it.
const SEED_URL: &str =
    "https://api.open-meteo.com/v1/forecast?latitude=51.47&longitude=0.0363&current_weather=true";

/// A bridge that points `names` (port 443) at `server` and trusts `ca_pem` (if given).
async fn bridge_for(
    server: SocketAddr,
    names: &[&str],
    ca_pem: Option<&str>,
    dir: &TempDir,
) -> Bridge {
    let ca_file = dir.0.join("ca.pem");
    if let Some(pem) = ca_pem {
        std::fs::write(&ca_file, pem).unwrap();
    }
    let names: Vec<(String, u16, SocketAddr)> =
        names.iter().map(|n| (n.to_string(), 443, server)).collect();
    let trusted = ca_pem.is_some();
    Bridge::start_with(move |c| {
        c.resolve = names;
        if trusted {
            c.extra_root_certs = vec![ca_file];
        }
    })
    .await
}

/// A print-only TCP server and a client connected to it; returns (server id, client id).
async fn receiver(c: &mut Client) -> (u32, u32) {
    let (server, client) = c
        .tcp_pair(
            json!({"behaviour": {"kind": "print_only"}, "concurrency": "concurrent",
            "policy": {"kind": "persistent"}}),
        )
        .await;
    (server.id, client.id)
}

fn fetch(client: u32, url: &str) -> shared::Command {
    cmd(json!({"op": "fetch_send", "endpoint": client, "url": url}))
}

#[tokio::test]
async fn the_exercise_url_is_fetched_over_https_and_sent_on() {
    let cert = authority("api.open-meteo.com", false);
    let server = https_server(&cert).await;
    let dir = TempDir::new("fetch-seed");
    let bridge = bridge_for(server, &["api.open-meteo.com"], Some(&cert.ca_pem), &dir).await;
    let mut c = bridge.client().await;
    let (server_id, client_id) = receiver(&mut c).await;
    c.ok(fetch(client_id, SEED_URL)).await;
    c.wait_until("the JSON arrived at the receiving server", |ev| {
        received(ev, server_id, None) == WEATHER.as_bytes()
    })
    .await;
    let steps: Vec<(String, String)> = c
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FetchStep { step, detail } => Some((step.clone(), detail.clone())),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        ["resolve", "connect", "tls", "request", "response"],
        "{steps:?}"
    );
    assert!(
        steps[0].1.contains("api.open-meteo.com → 127.0.0.1"),
        "{steps:?}"
    );
    assert!(
        steps[2].1.contains("TLSv1.3") && steps[2].1.contains("verified"),
        "{steps:?}"
    );
    assert!(steps[4].1.starts_with("200 OK"), "{steps:?}");
    let fetched = c
        .wait_for("the fetch", |e| matches!(e.kind, EventKind::Fetch { .. }))
        .await;
    assert!(matches!(fetched.kind, EventKind::Fetch { status: 200, .. }));
}

#[tokio::test]
async fn certificates_are_verified_for_real() {
    let cert = authority("api.open-meteo.com", false);
    let server = https_server(&cert).await;
    let dir = TempDir::new("fetch-certs");
    // The usual roots only: the test's authority is nobody they trust.
    let bridge = bridge_for(server, &["api.open-meteo.com"], None, &dir).await;
    let mut c = bridge.client().await;
    let (_, client) = receiver(&mut c).await;
    let untrusted = c.err(fetch(client, SEED_URL)).await;
    assert!(
        untrusted.explanation.contains("not signed by an authority"),
        "{untrusted:?}"
    );
    assert!(untrusted.hint.unwrap().contains("--extra-root-cert"));
    drop(c);
    // Another name pointed at the same server: its certificate is for someone else.
    let bridge = bridge_for(server, &["other.example"], Some(&cert.ca_pem), &dir).await;
    let mut c = bridge.client().await;
    let (_, client) = receiver(&mut c).await;
    let mismatch = c
        .err(fetch(client, "https://other.example/v1/forecast"))
        .await;
    assert!(
        mismatch.explanation.contains("for another name"),
        "{mismatch:?}"
    );
    // An expired certificate.
    let old = authority("api.open-meteo.com", true);
    let old_server = https_server(&old).await;
    let bridge = bridge_for(old_server, &["api.open-meteo.com"], Some(&old.ca_pem), &dir).await;
    let mut c = bridge.client().await;
    let (_, client) = receiver(&mut c).await;
    let expired = c.err(fetch(client, SEED_URL)).await;
    assert!(expired.explanation.contains("has expired"), "{expired:?}");
}

#[tokio::test]
async fn redirects_gzip_and_limits() {
    let cert = authority("api.open-meteo.com", false);
    let server = https_server(&cert).await;
    let dir = TempDir::new("fetch-hops");
    let bridge = bridge_for(server, &["api.open-meteo.com"], Some(&cert.ca_pem), &dir).await;
    let mut c = bridge.client().await;
    let (server_id, client) = receiver(&mut c).await;
    c.ok(fetch(client, "https://api.open-meteo.com/moved"))
        .await;
    c.wait_for("the redirect followed", |e| {
        matches!(&e.kind, EventKind::FetchStep { step, detail }
            if step == "redirect" && detail.starts_with("302 → https://api.open-meteo.com/v1/"))
    })
    .await;
    c.ok(fetch(client, "https://api.open-meteo.com/gzip")).await;
    c.wait_until("the unpacked body arrived too", |ev| {
        received(ev, server_id, None) == [WEATHER.as_bytes(), WEATHER.as_bytes()].concat()
    })
    .await;
    let looping = c
        .err(fetch(client, "https://api.open-meteo.com/loop"))
        .await;
    assert_eq!(looping.kind, ErrorKind::LimitReached);
    assert!(
        looping.explanation.contains("redirected more than 5 times"),
        "{looping:?}"
    );
    let big = c.err(fetch(client, "https://api.open-meteo.com/big")).await;
    assert_eq!(big.kind, ErrorKind::LimitReached);
    let silent = c
        .err(fetch(client, "https://api.open-meteo.com/silent"))
        .await;
    assert_eq!(silent.kind, ErrorKind::TimedOut, "{silent:?}");
}

#[tokio::test]
async fn link_local_and_metadata_addresses_are_never_fetched() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (_, client) = receiver(&mut c).await;
    // The numeric spellings a URL can give the metadata address; none is connected to.
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://0xa9fea9fe/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://[fd00:ec2::254]/",
    ] {
        let refused = c.err(fetch(client, url)).await;
        assert!(
            matches!(
                refused.kind,
                ErrorKind::NotAllowed | ErrorKind::NameResolutionFailed
            ),
            "{url}: {refused:?}"
        );
    }
}
