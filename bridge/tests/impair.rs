//! Simulated network trouble: UDP loss, duplication, reordering and delay, a TCP delay and a
//! slow TCP reader, each applied at the socket boundary and shown as `impaired` events.

mod common;

use common::*;
use serde_json::json;
use shared::{EndpointInfo, EventKind};

/// A UDP server that saves a transfer into `got.bin`, and a UDP client to it with this
/// simulated trouble.
async fn impaired_udp_pair(
    c: &mut Client,
    impair: serde_json::Value,
) -> (EndpointInfo, EndpointInfo) {
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
            "behaviour": {"kind": "save_to_file", "file": "got.bin"}})))
        .await;
    let client = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port_of(&server), "impair": impair}),
        ))
        .await;
    (server, client)
}

fn impaired(events: &[shared::Event], endpoint: u32, action: &str) -> usize {
    events
        .iter()
        .filter(|e| e.endpoint == endpoint)
        .filter(
            |e| matches!(&e.kind, EventKind::Impaired { action: a, .. } if a.starts_with(action)),
        )
        .count()
}

#[tokio::test]
async fn twenty_percent_loss_loses_about_a_fifth_of_a_thousand_datagrams() {
    let data = TempDir::new("loss");
    write_pattern(&data.0.join("k.bin"), 100_000);
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let (server, client) = impaired_udp_pair(&mut c, json!({"loss_percent": 20})).await;
    let sent = c.transfer(cmd(json!({"op": "send_file", "endpoint": client.id, "file": "k.bin", "datagram_size": 100}))).await;
    assert_eq!(
        sent.datagrams.unwrap().received,
        1000,
        "the sender believes it sent all"
    );
    // The receiver gives up waiting for the lost datagrams, then reports.
    let got = c.report_of(server.id).await.datagrams.unwrap();
    assert_eq!(got.expected, 1000);
    assert!(
        (150..=250).contains(&got.missing),
        "lost {} of 1000",
        got.missing
    );
    assert_eq!(
        impaired(&c.events, client.id, "dropped") as u32,
        got.missing
    );
}

#[tokio::test]
async fn duplication_and_reordering_show_in_the_receivers_report() {
    let data = TempDir::new("dup");
    write_pattern(&data.0.join("k.bin"), 50_000);
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let (server, client) = impaired_udp_pair(
        &mut c,
        json!({"duplicate_percent": 20, "reorder_percent": 20}),
    )
    .await;
    c.ok(cmd(
        json!({"op": "send_file", "endpoint": client.id, "file": "k.bin", "datagram_size": 100}),
    ))
    .await;
    let got = c.report_of(server.id).await;
    let d = got.datagrams.clone().unwrap();
    assert!(d.duplicates > 0 && d.out_of_order > 0, "{d:?}");
    if d.missing == 0 {
        assert!(
            got.complete,
            "duplicates and reordering alone do not spoil the file: {got:?}"
        );
    }
}

#[tokio::test]
async fn delay_shows_in_round_trip_times_and_can_change_live() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let client = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port_of(&server),
            "impair": {"delay_ms": 150}, "recv_timeout_ms": 3000}),
        ))
        .await;
    c.ok(send_text(client.id, None, "slow")).await;
    let echo = c
        .wait_for("echo", |e| {
            e.endpoint == client.id && matches!(e.kind, EventKind::RecvFrom { .. })
        })
        .await;
    let EventKind::RecvFrom {
        rtt_us: Some(rtt), ..
    } = echo.kind
    else {
        panic!("an rtt")
    };
    assert!(
        rtt >= 150_000,
        "the simulated delay is in the round trip: {rtt} us"
    );
    // Everything lost from now on: the client waits in vain.
    c.ok(cmd(
        json!({"op": "impair", "endpoint": client.id, "impairment": {"loss_percent": 100}}),
    ))
    .await;
    c.ok(send_text(client.id, None, "gone")).await;
    c.wait_for("dropped", |e| e.endpoint == client.id && e.kind.name() == "impaired"
        && matches!(&e.kind, EventKind::Impaired { action, .. } if action.starts_with("dropped")))
        .await;
    assert_eq!(
        c.events
            .iter()
            .filter(|e| e.endpoint == server.id && e.kind.name() == "recv_from")
            .count(),
        1
    );
}

#[tokio::test]
async fn tcp_delay_and_a_slow_reader() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    // A server that reads 20,000 bytes a second, 2,000 at a time.
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "behaviour": {"kind": "print_only"},
            "policy": {"kind": "persistent"}, "recv_buffer": 65536,
            "impair": {"read_bytes_per_second": 20000}}),
        ))
        .await;
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server),
            "impair": {"delay_ms": 200}}),
        ))
        .await;
    c.ok(send_text(client.id, None, &"x".repeat(10_000))).await;
    c.wait_until("all read", |ev| {
        received(ev, server.id, None).len() == 10_000
    })
    .await;
    let chunks: Vec<usize> = c
        .events
        .iter()
        .filter(|e| e.endpoint == server.id && matches!(e.kind, EventKind::Recv { .. }))
        .map(|e| e.kind.data().unwrap().len)
        .collect();
    assert!(chunks.iter().all(|n| *n <= 2000), "{chunks:?}");
    let t = |kind: &str, endpoint: u32| {
        c.events
            .iter()
            .filter(|e| e.endpoint == endpoint && e.kind.name() == kind)
            .map(|e| e.t_us)
            .collect::<Vec<_>>()
    };
    let (first, last) = (
        t("recv", server.id)[0],
        *t("recv", server.id).last().unwrap(),
    );
    assert!(
        last - first >= 400_000,
        "10,000 bytes at 20,000 B/s take about half a second"
    );
    let delayed = t("impaired", client.id)[0];
    assert!(
        t("send", client.id)[0] >= delayed,
        "the send follows the delay"
    );
    assert!(
        first - delayed >= 200_000,
        "the data left 200 ms after it was asked for"
    );
}
