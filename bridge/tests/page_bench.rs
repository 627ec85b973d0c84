//! Page benchmarks (run by `cargo xtask bench`, never as part of the tests): how soon the page
//! first renders, and how long frames take while it ingests 100,000 real events. Prints medians
//! and worst cases for docs/benchmarks.md.

mod common;

use common::browser::{dist, Browser};
use common::*;
use serde_json::{json, Value};

/// Page loads measured for the first render.
const LOADS: usize = 7;
/// Round trips through a UDP echo server: two events each (recvfrom, sendto) on the server,
/// two on the bridge's own... here the peer is Python, so exactly two per round trip.
const ROUND_TRIPS: usize = 50_000;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[((values.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn page_first_render_and_100k_events() {
    let Some(dist) = dist() else {
        panic!("run through cargo xtask bench, which builds the page");
    };
    let bridge = Bridge::start_with(|c| {
        c.static_dir = Some(dist);
        // The page should get every event; the default lets a slow tab skip ahead instead.
        c.live_capacity = 1 << 17;
    })
    .await;
    let browser = Browser::start().await;

    let mut first_render = Vec::new();
    for _ in 0..LOADS {
        browser.open(&bridge).await;
        browser.client.refresh().await.unwrap();
        browser.wait_text("#bridge-status", "connected").await;
        let ms = browser
            .client
            .execute(
                "return performance.getEntriesByName('sp-first-render')[0].startTime",
                vec![],
            )
            .await
            .unwrap();
        first_render.push(ms.as_f64().unwrap());
    }
    let worst_render = first_render.iter().copied().fold(0.0, f64::max);
    println!(
        "BENCH page first render: median {:.1} ms, worst {:.1} ms over {LOADS} loads (budget 300 ms)",
        median(&mut first_render),
        worst_render
    );

    // A UDP echo server on the bridge; a Python peer does the round trips.
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    browser.wait_text("#event-count", "2 events").await;
    browser
        .client
        .execute(
            "window.__frames = []; let last = performance.now();
             const tick = (t) => { window.__frames.push(t - last); last = t;
                                   if (!window.__stop) requestAnimationFrame(tick); };
             requestAnimationFrame(tick);
             window.__long = [];
             new PerformanceObserver((l) => l.getEntries().forEach(e => window.__long.push(e.duration)))
                 .observe({ type: 'longtask' });",
            vec![],
        )
        .await
        .unwrap();
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s.sendto(b"m%d" % i, ("127.0.0.1", port))
    s.recvfrom(64)
print("done")
"#;
    let started = std::time::Instant::now();
    let out = python(
        script,
        &[&port_of(&server).to_string(), &ROUND_TRIPS.to_string()],
    )
    .await;
    assert_eq!(out.trim(), "done");
    let expected = 2 + 2 * ROUND_TRIPS;
    browser
        .wait_text("#event-count", &format!("{expected} events"))
        .await;
    let ingest = started.elapsed();
    let stats = browser
        .client
        .execute(
            "window.__stop = true; return [window.__frames, window.__long];",
            vec![],
        )
        .await
        .unwrap();
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .collect()
    };
    let mut frames = numbers(&stats[0]);
    let long = numbers(&stats[1]);
    frames.remove(0);
    let worst = frames.iter().copied().fold(0.0, f64::max);
    println!(
        "BENCH page ingest of {expected} events in {:.1} s: {} frames, median {:.1} ms, p99 {:.1} ms, worst {:.1} ms \
         (budget 50 ms); {} long tasks, longest {:.0} ms",
        ingest.as_secs_f64(),
        frames.len(),
        median(&mut frames),
        percentile(&mut frames, 0.99),
        worst,
        long.len(),
        long.iter().copied().fold(0.0, f64::max),
    );
    browser.screenshot("100k-events").await;
    browser.close().await;
}
