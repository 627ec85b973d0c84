//! Round-trip times measured at the socket, the TCP-versus-UDP comparison, and fetching a URL
//! to send it on (against a local Python HTTP server: tests never leave this machine).

mod common;

use common::*;
use serde_json::json;
use shared::{ErrorKind, EventKind, ReplyData};

fn rtts(events: &[shared::Event], endpoint: u32) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.endpoint == endpoint)
        .filter_map(|e| match e.kind {
            EventKind::Recv { rtt_us, .. } | EventKind::RecvFrom { rtt_us, .. } => rtt_us,
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_reply_carries_its_round_trip_time() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (_, tcp) = c.tcp_pair(json!({"policy": {"kind": "persistent"}})).await;
    let udp_server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let udp = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port_of(&udp_server)}),
        ))
        .await;
    for i in 0..3 {
        c.ok(send_text(tcp.id, None, &format!("t{i}"))).await;
        c.wait_until("tcp echo", |ev| rtts(ev, tcp.id).len() == i + 1)
            .await;
        c.ok(send_text(udp.id, None, &format!("u{i}"))).await;
        c.wait_until("udp echo", |ev| rtts(ev, udp.id).len() == i + 1)
            .await;
    }
    for rtt in rtts(&c.events, tcp.id)
        .into_iter()
        .chain(rtts(&c.events, udp.id))
    {
        assert!(
            rtt > 0 && rtt < 5_000_000,
            "a plausible loopback round trip: {rtt} us"
        );
    }
    // The server's own recv() has no round trip to speak of.
    assert!(c
        .events
        .iter()
        .filter(|e| e.endpoint == udp_server.id)
        .all(|e| !matches!(
            e.kind,
            EventKind::RecvFrom {
                rtt_us: Some(_),
                ..
            }
        )));
}

#[tokio::test]
async fn compare_measures_both_protocols() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let ReplyData::Compare(report) = c
        .ok(cmd(
            json!({"op": "compare", "count": 300, "size": 100, "file_bytes": 4_000_000,
            "datagram_size": 1400}),
        ))
        .await
    else {
        panic!("a comparison")
    };
    for side in [&report.tcp, &report.udp] {
        assert_eq!(side.messages, 300);
        assert_eq!(side.samples_us.len() as u32, 300 - side.lost);
        assert!(side.rtt_us.min <= side.rtt_us.p50 && side.rtt_us.p50 <= side.rtt_us.max);
        assert!(side.rtt_us.p50 > 0 && side.bytes_per_second > 0);
    }
    assert_eq!(report.tcp.lost, 0, "TCP delivers every message");
    let file = report.file.unwrap();
    assert_eq!(file.bytes, 4_000_000);
    assert_eq!(file.udp_datagrams_sent, 2858);
    assert!(file.udp_datagrams_received <= file.udp_datagrams_sent);
    assert!(file.tcp_bytes_per_second > 0);
    let error = c.err(cmd(json!({"op": "compare", "count": 0}))).await;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn fetch_a_url_and_send_the_body() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let site = TempDir::new("site");
    std::fs::write(
        site.0.join("weather.json"),
        r#"{"city":"Cape Town","temp_c":21}"#,
    )
    .unwrap();
    let mut http = tokio::process::Command::new("python3")
        .args(["-u", "-c", "import http.server,functools,sys\nh=functools.partial(http.server.SimpleHTTPRequestHandler,directory=sys.argv[1])\ns=http.server.ThreadingHTTPServer(('127.0.0.1',0),h)\nprint(s.server_address[1],flush=True)\ns.serve_forever()", site.0.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(http.stdout.take().unwrap()).lines();
    let port = next_line(&mut lines).await;

    let (server, client) = c
        .tcp_pair(json!({"policy": {"kind": "persistent"}, "behaviour": {"kind": "print_only"}}))
        .await;
    let url = format!("http://127.0.0.1:{port}/weather.json");
    let sent = c
        .ok(cmd(
            json!({"op": "fetch_send", "endpoint": client.id, "url": url}),
        ))
        .await;
    assert_eq!(sent, ReplyData::Sent { bytes: 32 });
    c.wait_until("the server got the JSON", |ev| {
        received(ev, server.id, None) == br#"{"city":"Cape Town","temp_c":21}"#
    })
    .await;
    let fetched = c
        .wait_for("fetch event", |e| e.kind.name() == "fetch")
        .await;
    assert_eq!(
        fetched.kind,
        EventKind::Fetch {
            url: url.clone(),
            status: 200,
            bytes: 32
        }
    );

    // Without a server, or without a network, the error says so.
    let refused = c
        .err(cmd(json!({"op": "fetch_send", "endpoint": client.id,
            "url": format!("http://127.0.0.1:{}/", free_tcp_port())})))
        .await;
    assert_eq!(refused.kind, ErrorKind::ConnectionRefused);
    let unknown = c
        .err(cmd(json!({"op": "fetch_send", "endpoint": client.id,
            "url": "http://api.weather.invalid/today"})))
        .await;
    assert_eq!(unknown.kind, ErrorKind::NameResolutionFailed);
    assert!(
        unknown.hint.unwrap_or_default().contains("on the internet"),
        "a fetch's failed lookup may also mean this machine is offline"
    );
    // A private address without --allow-lan: refused before any connection (a public one is
    // allowed for fetches, which tests/fetch.rs and the policy's unit tests cover without ever
    // sending anything off this machine).
    let outside = c
        .err(cmd(
            json!({"op": "fetch_send", "endpoint": client.id, "url": "http://10.1.2.3/"}),
        ))
        .await;
    assert_eq!(
        outside.kind,
        ErrorKind::NotAllowed,
        "the address policy applies to fetches too"
    );
    // HTTPS to a server that speaks plain HTTP: the TLS handshake fails, in words.
    let tls = c
        .err(cmd(
            json!({"op": "fetch_send", "endpoint": client.id, "url": format!("https://127.0.0.1:{port}/")}),
        ))
        .await;
    assert!(
        tls.explanation.contains("The HTTPS connection failed"),
        "{}",
        tls.explanation
    );
    let _ = http.kill().await;
}
