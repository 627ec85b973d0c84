//! TCP against UDP: run a real comparison on the bridge and show the round-trip spread, a
//! latency chart and throughput side by side.

use std::rc::Rc;

use shared::{Command, CompareReport, CompareSpec, RoundTrips};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::format;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub report: Option<Rc<CompareReport>>,
    pub on_run: Callback<Command>,
    pub enabled: bool,
}

#[function_component]
pub fn Compare(props: &Props) -> Html {
    let count = use_state(|| "1000".to_string());
    let size = use_state(|| "64".to_string());
    let file_mb = use_state(|| "10".to_string());
    let problem = use_state(|| None::<String>);
    let field = |state: &UseStateHandle<String>, id: &str, label: &str| {
        let state_set = state.clone();
        let on_input = Callback::from(move |e: InputEvent| {
            state_set.set(e.target_unchecked_into::<HtmlInputElement>().value())
        });
        html! {
            <label for={id.to_string()}>{ label }
                <input id={id.to_string()} type="text" class="short" value={(**state).clone()} oninput={on_input} />
            </label>
        }
    };
    let on_run = {
        let (count, size, file_mb, problem, on_run) = (
            count.clone(),
            size.clone(),
            file_mb.clone(),
            problem.clone(),
            props.on_run.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let parsed = (
                count.trim().parse::<u32>(),
                size.trim().parse::<usize>(),
                file_mb.trim().parse::<u64>(),
            );
            let (Ok(count), Ok(size), Ok(mb)) = parsed else {
                problem.set(Some(
                    "Messages, bytes and megabytes must be numbers.".into(),
                ));
                return;
            };
            problem.set(None);
            on_run.emit(Command::Compare(CompareSpec {
                count,
                size,
                file_bytes: mb * 1_000_000,
                datagram_size: 1400,
            }));
        })
    };
    html! {
        <div class="compare">
            <h2>{ "TCP vs UDP" }</h2>
            <p class="muted">{ "Real measurements on this machine: echo round trips over each protocol, then the same bytes sent one way over each." }</p>
            <div class="composer-row">
                { field(&count, "cmp-count", "messages ") }
                { field(&size, "cmp-size", "bytes each ") }
                { field(&file_mb, "cmp-file", "file MB ") }
                <button type="button" class="primary" id="compare-run" onclick={on_run} disabled={!props.enabled}>{ "Compare" }</button>
            </div>
            if let Some(why) = &*problem { <p class="problem">{ why }</p> }
            if let Some(report) = &props.report { { view(report) } }
        </div>
    }
}

fn view(report: &CompareReport) -> Html {
    let row = |name: &str, r: &RoundTrips| {
        html! {
            <tr>
                <th>{ name }</th>
                <td>{ r.rtt_us.p50 }</td><td>{ r.rtt_us.p90 }</td><td>{ r.rtt_us.p99 }</td><td>{ r.rtt_us.max }</td>
                <td>{ format!("{}/{}", r.lost, r.messages) }</td>
                <td>{ format!("{} MB/s", format::tenths(r.bytes_per_second as f64 / 1e6)) }</td>
            </tr>
        }
    };
    html! {
        <>
            <table class="compare-table" id="compare-table">
                <thead><tr><th></th><th>{ "p50 µs" }</th><th>{ "p90 µs" }</th><th>{ "p99 µs" }</th><th>{ "max µs" }</th><th>{ "lost" }</th><th>{ "throughput" }</th></tr></thead>
                <tbody>{ row("TCP", &report.tcp) }{ row("UDP", &report.udp) }</tbody>
            </table>
            { chart(&report.tcp, &report.udp) }
            if let Some(file) = &report.file {
                <table class="compare-table">
                    <thead><tr><th>{ format!("{} one way", format::bytes(file.bytes as usize)) }</th><th>{ "time" }</th><th>{ "throughput" }</th><th>{ "arrived" }</th></tr></thead>
                    <tbody>
                        <tr><th>{ "TCP" }</th><td>{ format!("{} ms", format::tenths(file.tcp_duration_us as f64 / 1000.0)) }</td>
                            <td>{ format!("{} MB/s", file.tcp_bytes_per_second / 1_000_000) }</td><td>{ "all of it, in order" }</td></tr>
                        <tr><th>{ "UDP" }</th><td>{ format!("{} ms", format::tenths(file.udp_duration_us as f64 / 1000.0)) }</td>
                            <td>{ format!("{} MB/s", file.udp_bytes_per_second / 1_000_000) }</td>
                            <td>{ format!("{} of {} datagrams ({} lost)", file.udp_datagrams_received, file.udp_datagrams_sent,
                                file.udp_datagrams_sent - file.udp_datagrams_received.min(file.udp_datagrams_sent)) }</td></tr>
                    </tbody>
                </table>
            }
        </>
    }
}

/// A histogram of round-trip times, TCP and UDP bars side by side per bucket.
fn chart(tcp: &RoundTrips, udp: &RoundTrips) -> Html {
    const BUCKETS: usize = 24;
    let (w, h) = (480.0, 140.0);
    let top = tcp.rtt_us.p99.max(udp.rtt_us.p99).max(1) as f64 * 1.1;
    let histogram = |samples: &[u32]| {
        let mut counts = [0usize; BUCKETS];
        for s in samples {
            let i = ((*s as f64 / top) * BUCKETS as f64) as usize;
            counts[i.min(BUCKETS - 1)] += 1;
        }
        counts
    };
    let (t, u) = (histogram(&tcp.samples_us), histogram(&udp.samples_us));
    let most = t.iter().chain(u.iter()).copied().max().unwrap_or(1).max(1) as f64;
    let bw = w / BUCKETS as f64;
    let bar = |i: usize, n: usize, offset: f64, class: &'static str| {
        let bh = n as f64 / most * (h - 20.0);
        html! { <rect class={class} x={px(i as f64 * bw + offset)} y={px(h - 16.0 - bh)}
        width={px(bw / 2.0 - 1.0)} height={px(bh)} /> }
    };
    html! {
        <svg class="chart" viewBox="0 0 480 140" role="img"
             aria-label="Round-trip time distribution, TCP and UDP">
            { for (0..BUCKETS).map(|i| bar(i, t[i], 0.0, "tcp")) }
            { for (0..BUCKETS).map(|i| bar(i, u[i], bw / 2.0, "udp")) }
            <text x="0" y="138" class="axis">{ "0 µs" }</text>
            <text x="410" y="138" class="axis">{ format!("{} µs", top as u64) }</text>
            <text x="370" y="12" class="legend tcp-text">{ "■ TCP" }</text>
            <text x="425" y="12" class="legend udp-text">{ "■ UDP" }</text>
        </svg>
    }
}

/// An SVG length in whole pixels: integer formatting keeps float formatting out of the page.
fn px(x: f64) -> String {
    (x.round() as i64).to_string()
}
