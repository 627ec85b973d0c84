//! One conversation: what was sent and received on a client, a UDP endpoint, or one accepted
//! connection, each recv() chunk with its size, EOF and close as lines, errors explained.

use std::rc::Rc;

use shared::{Event, EventKind};
use yew::prelude::*;

use crate::format;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub title: String,
    /// The selected conversation: its latest events, and how many earlier were left out.
    pub conversation: Option<(crate::state::Events, usize)>,
    pub started_unix_ms: u64,
    /// Who the two sides are, as a student would name them: ("client", "server").
    pub roles: (String, String),
    /// SHA-256 of every file sent in this session, to tell a receiver whether its copy matches.
    pub sent_hashes: Vec<String>,
    /// Every receiver's transfer report in this session, to tell a sender what arrived.
    pub arrivals: crate::state::Events,
    /// Connection numbers shown count from this (the last Reset's highest).
    pub conn_base: u32,
    /// Whether the packets on the wire are shown between the messages; `None` when nothing
    /// is captured (no switch then).
    #[prop_or_default]
    pub wire: Option<bool>,
    #[prop_or_default]
    pub on_wire: Callback<()>,
    /// Downloads this conversation's packets as pcapng.
    #[prop_or_default]
    pub on_capture_save: Callback<Option<crate::state::ConvKey>>,
    /// The conversation shown.
    #[prop_or_default]
    pub conv: Option<crate::state::ConvKey>,
    /// The kernel's last counters of this connection, and when (sent when packets are not
    /// captured).
    #[prop_or_default]
    pub counters: Option<(shared::TcpCounters, u64)>,
}

/// The last TCP state the kernel reported for this conversation, and when.
fn tcp_state(events: &[Rc<Event>]) -> Option<(String, u64)> {
    events.iter().rev().find_map(|e| match &e.kind {
        EventKind::TcpState { state } => Some((state.clone(), e.t_us)),
        _ => None,
    })
}

#[function_component]
pub fn Conversation(props: &Props) -> Html {
    // Keep the newest message in view as the conversation grows.
    let view = use_node_ref();
    {
        let view = view.clone();
        let newest = props
            .conversation
            .as_ref()
            .and_then(|(events, _)| events.last().map(|e| e.seq));
        use_effect_with(newest, move |_| {
            if let Some(el) = view.cast::<web_sys::HtmlElement>() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
    let Some((events, skipped)) = &props.conversation else {
        return html! {
            <div class="conversation-view empty">
                <h2>{ "Conversation" }</h2>
                <p class="muted">{ "Select a client or a connection on the left to see what it sent and received." }</p>
            </div>
        };
    };
    let (mine, theirs) = (props.roles.0.as_str(), props.roles.1.as_str());
    let merged = events.iter().any(|e| e.conn.is_none()) && events.iter().any(|e| e.conn.is_some());
    html! {
        <div class="conversation-view" ref={view}>
            <h2>{ "Conversation" }</h2>
            <p class="conv-title">{ &props.title }</p>
            if let Some(on) = props.wire {
                <p class="wire-switch">
                    <label><input type="checkbox" id="conversation-wire" checked={on}
                        onchange={props.on_wire.reform(|_: web_sys::Event| ())} />{ " packets on the wire" }</label>
                    if let Some(key) = props.conv {
                        <button type="button" class="small" id="conversation-pcapng"
                                title="This conversation's captured packets as a pcapng file, for Wireshark"
                                onclick={props.on_capture_save.reform(move |_: MouseEvent| Some(key))}>{ "its packets (pcapng)" }</button>
                    }
                </p>
            }
            if let Some((counters, t_us)) = props.counters {
                <p class="counters small-print" id="tcp-counters">
                    { format!("The kernel counts (at {}): {}", format::relative(t_us), format::counters(&counters)) }
                </p>
            }
            if let Some((state, t_us)) = tcp_state(events) {
                { crate::components::tcp_machine::tcp_machine(&crate::components::tcp_machine::Props {
                    state, at: crate::format::relative(t_us),
                }) }
            }
            <ol class="messages" aria-live="polite">
                if *skipped > 0 {
                    <li class="line muted">{ format!("… {skipped} earlier events not shown (see the timeline)") }</li>
                }
                if events.is_empty() {
                    <li class="line muted">{ "Nothing yet." }</li>
                }
                { for events.iter().enumerate().filter(|(i, e)| !superseded(events, *i, e) && !matches!(e.kind, EventKind::TcpCounters(_))).map(|(_, e)| {
                    // A server's own line holds all its connections: say whose each is.
                    let theirs = match e.conn {
                        Some(conn) if merged => {
                            format!("{theirs} (conn {})", conn.saturating_sub(props.conn_base))
                        }
                        _ => theirs.to_string(),
                    };
                    message(e, mine, &theirs, props)
                }) }
            </ol>
        </div>
    }
}

/// A progress event followed by a later one (or by the report) is not worth a line of its own.
fn superseded(events: &[Rc<Event>], i: usize, event: &Event) -> bool {
    matches!(event.kind, EventKind::Progress { .. })
        && events[i + 1..].iter().any(|later| {
            matches!(
                later.kind,
                EventKind::Progress { .. } | EventKind::Transfer(_)
            )
        })
}

fn message(event: &Event, mine: &str, theirs: &str, props: &Props) -> Html {
    let body = message_body(event, mine, theirs, props);
    // A traced program's call: the line of code that made it, under the message.
    match &event.at {
        Some(at) => html! {
            <>
                { body }
                <li class={format::classes(&["code-at", call_side(event)])} data-line={at.line.to_string()}
                    title={format::code_at(event).unwrap_or_default()}>
                    <span class="n">{ format::where_at(at) }</span>
                    <code>{ at.code.clone() }</code>
                    if let Some(us) = at.blocked_us.filter(|us| *us >= 100_000) {
                        <span class="muted">{ format!(" waited {} s", shared::decimal(us / 1000, 3)) }</span>
                    }
                </li>
            </>
        },
        None => body,
    }
}

/// Which side of the conversation a call's line sits on.
fn call_side(event: &Event) -> &'static str {
    match event.kind {
        EventKind::Send { .. } | EventKind::SendTo { .. } => "sent",
        EventKind::Recv { .. } | EventKind::RecvFrom { .. } => "received",
        _ => "middle",
    }
}

/// What the receiver of a file this socket sent got: its report, matched by address (the
/// receiver's peer is this sender).
fn arrival<'a>(event: &Event, arrivals: &'a [Rc<Event>]) -> Option<&'a shared::TransferReport> {
    let local = event.local.as_deref()?;
    arrivals.iter().rev().find_map(|e| match &e.kind {
        EventKind::Transfer(r) if e.peer.as_deref() == Some(local) => Some(r),
        _ => None,
    })
}

fn message_body(event: &Event, mine: &str, theirs: &str, props: &Props) -> Html {
    let (sent_hashes, arrivals) = (&props.sent_hashes, &props.arrivals);
    let t = format::relative(event.when());
    let peer = event.peer.clone().unwrap_or_default();
    match &event.kind {
        EventKind::Send { data } | EventKind::SendTo { data } => html! {
            <li class="msg sent" data-kind={event.kind.name()}>
                <span class="who">{ match &event.kind {
                    // recvfrom() and sendto() are about addresses: say which.
                    EventKind::SendTo { .. } if !peer.is_empty() => format!("{mine} → {peer}"),
                    _ => format!("{mine} →"),
                } }</span>
                <span class="text">{ format::preview(data) }</span>
                <span class="meta">{ format!("{} · {}() · {t}", format::bytes(data.len), if matches!(event.kind, EventKind::Send{..}) { "send" } else { "sendto" }) }</span>
            </li>
        },
        EventKind::Recv { data, rtt_us } | EventKind::RecvFrom { data, rtt_us } => {
            let call = if matches!(event.kind, EventKind::Recv { .. }) {
                "recv"
            } else {
                "recvfrom"
            };
            let rtt = rtt_us.map_or(String::new(), |us| format!(" · round trip {us} µs"));
            html! {
                <li class="msg received" data-kind={event.kind.name()}>
                    <span class="who">{ match &event.kind {
                        EventKind::RecvFrom { .. } if !peer.is_empty() => format!("← {theirs} {peer}"),
                        _ => format!("← {theirs}"),
                    } }</span>
                    <span class="text">{ format::preview(data) }</span>
                    <span class="meta">{ format!("{} in one {call}() · {t}{rtt}", format::bytes(data.len)) }</span>
                </li>
            }
        }
        EventKind::Encrypted { plaintext } => html! {
            <li class="msg sent crypto" data-kind="encrypted">
                <span class="who">{ "plaintext, encrypted before sending" }</span>
                <span class="text">{ format::preview(plaintext) }</span>
            </li>
        },
        EventKind::Decrypted { plaintext } => html! {
            <li class="msg received crypto" data-kind="decrypted">
                <span class="who">{ "decrypted from the token above" }</span>
                <span class="text">{ format::preview(plaintext) }</span>
            </li>
        },
        EventKind::Progress { file, bytes, total } => html! {
            <li class="line progress-line" data-kind="progress">
                { format!("{}: {} ", format::transfer_name(file), format::bytes(*bytes as usize)) }
                if let Some(total) = total {
                    <progress max={total.max(&1).to_string()} value={bytes.to_string()}></progress>
                }
            </li>
        },
        EventKind::Transfer(report) => {
            let matches = report.direction == shared::Direction::Received
                && sent_hashes.contains(&report.sha256);
            let hashed = !report.sha256.is_empty();
            let verdict = match (report.direction, report.complete, matches) {
                (shared::Direction::Sent, _, _) => String::new(),
                (_, true, _) if !hashed => " (counted and thrown away)".into(),
                (_, true, true) => " ✓ the SHA-256 matches the sender's".into(),
                (_, true, false) => " (no matching sender in this session to compare with)".into(),
                (_, false, _) => " ✗ incomplete".into(),
            };
            // The sender's line says what arrived too, where the sender looks.
            let arrived = (report.direction == shared::Direction::Sent)
                .then(|| arrival(event, arrivals))
                .flatten()
                .map(|got| {
                    let count = got.datagrams.as_ref().map_or(String::new(), |d| {
                        format!(
                            "{} of {} datagrams, {} missing",
                            d.received, d.expected, d.missing
                        )
                    });
                    match (
                        got.complete && got.sha256 == report.sha256,
                        count.is_empty(),
                    ) {
                        (true, _) => {
                            "ARRIVED whole at the receiver ✓ (SHA-256 matches)".to_string()
                        }
                        (false, true) => format!(
                            "ARRIVED INCOMPLETE: the receiver got {}",
                            format::bytes(got.bytes as usize)
                        ),
                        (false, false) => format!("ARRIVED INCOMPLETE: the receiver got {count}"),
                    }
                });
            let lost = arrived.as_deref().is_some_and(|a| a.contains("INCOMPLETE"));
            html! {
                <li class={format::classes(&["msg", "transfer", format::on(!report.complete || lost, "error")])} data-kind="transfer">
                    <strong>{ format!("{}{verdict}", format::detail(event)) }</strong>
                    if let Some(arrived) = arrived {
                        <strong class="arrived" id="transfer-arrived">{ arrived }</strong>
                    }
                    if hashed {
                        <span class="meta">{ format!("SHA-256 {}", report.sha256) }</span>
                    }
                </li>
            }
        }
        EventKind::Error { op, error } => html! {
            <li class="msg error" role="alert" data-kind="error">
                <strong>{ format!("{op}() failed: ") }</strong>{ &error.explanation }
                if let Some(hint) = &error.hint { <div class="hint">{ hint }</div> }
            </li>
        },
        EventKind::Timeout { .. } => html! {
            <li class="line warn" data-kind="timeout">{ format!("— {} · {t} —", format::detail(event)) }</li>
        },
        EventKind::Eof => html! {
            <li class="line" data-kind="eof">{ format!("— {theirs} closed its side (recv() returned 0 bytes) · {t} —") }</li>
        },
        EventKind::Close { reason, .. } => html! {
            <li class="line" data-kind="close">{ format!("— close(): {reason} · {t} —") }</li>
        },
        // A packet between the messages: on the side of the socket that sent it; what a
        // retransmission or an ICMP message says follows its numbers.
        EventKind::Packet(p) => {
            // Sent by this conversation's socket, or by its peer (then it came in here).
            let own = props.conv.is_none_or(|key| {
                key.endpoint == event.endpoint && (key.conn.is_none() || key.conn == event.conn)
            });
            let side = if (p.dir == "out") == own {
                "sent"
            } else {
                "received"
            };
            let data = if p.data.len > 0 {
                format::short_preview(&p.data, 24)
            } else {
                String::new()
            };
            html! {
                <li class={format::classes(&["wire-line", side, format::on(!p.detail.is_empty(), "warn")])} data-kind="packet">
                    { format!("⇄ {} {data} {} · {t}", format::wire_label(p), p.detail) }
                </li>
            }
        }
        EventKind::Accept => html! {
            <li class="line" data-kind="accept">{ format!("— accepted a connection from {peer} · {t} —") }</li>
        },
        _ => html! {
            <li class="line muted" data-kind={event.kind.name()}>{ format!("{} {} · {t}", format::call(event), format::detail(event)) }</li>
        },
    }
}
