//! The sequence diagram: one lane per socket (the listening socket, each accepted socket, each
//! client, and outside peers), and in time order an arrow for each connect, accept, send and
//! close between lanes, and a mark for each recv() chunk with its byte count. A traced program's
//! sockets are lanes like the playground's, matched by their addresses, so a client and a server
//! of the person's own face each other; their calls say their line (`L19`). Clicking an item
//! selects its event in the timeline.

use std::rc::Rc;

use shared::{Event, EventKind};
use yew::prelude::*;

use crate::format;
use crate::state::{ConvKey, SharedLog};
use crate::vec_map::VecMap;

/// The picked event's item, which the app scrolls into view.
pub const SCROLL_TO: &str = ".sequence .item.highlight";

/// Events drawn at most (the latest ones).
const MAX_ROWS: usize = 300;
const LANE_W: i64 = 180;
const ROW_H: i64 = 26;
const TOP: i64 = 44;

pub struct Props {
    pub log: SharedLog,
    /// Only this conversation's lanes (its socket and its peer's), if set.
    pub only: Option<ConvKey>,
    /// Where in the log to begin: the current lab's start, or 0 for everything.
    pub start: usize,
    /// Drawn half as large again, for a projector (lecture mode).
    pub large: bool,
    /// An event picked elsewhere (a check's failing step): marked (and scrolled to by the app).
    pub highlight: Option<u64>,
    /// Draw the captured packets between the lanes, each where it crossed the wire.
    pub wire: bool,
    pub on_select: Callback<Rc<Event>>,
}

/// A lane: a socket of the bridge, or a peer outside it.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Lane {
    Socket(ConvKey),
    Outside(String),
}

/// The diagram. A plain function, not a component (a component's lifecycle code cost the page
/// about 600 bytes): the app scrolls a picked event into view ([`SCROLL_TO`]).
pub fn sequence(props: &Props) -> Html {
    let log = props.log.borrow();
    let start = props.start.min(log.events.len());
    // Positions of the events drawn.
    let events: Vec<usize> = (start..log.events.len())
        .filter(|&i| {
            let e = &log.events[i];
            e.endpoint != 0
                && !matches!(
                    e.kind,
                    EventKind::TcpState { .. }
                        | EventKind::TcpCounters(_)
                        | EventKind::Progress { .. }
                        | EventKind::Output { .. }
                        | EventKind::Exit { .. }
                        | EventKind::Dropped { .. }
                )
                && (props.wire || !matches!(e.kind, EventKind::Packet(_)))
                && !matches!(
                    log.specs.get(&e.endpoint),
                    Some((shared::EndpointSpec::Program(_), _))
                )
        })
        .collect();
    // Which socket has which address: a connected socket by (local, peer), a listener by local.
    // (Sorted vectors, not hash maps: each map type brought its own code into the page.)
    let mut connected: VecMap<(String, String), ConvKey> = VecMap::new();
    let mut listening: VecMap<String, ConvKey> = VecMap::new();
    // (From the calls only: a packet names its socket's addresses before its accept() does.)
    for e in events
        .iter()
        .map(|&i| &log.events[i])
        .filter(|e| !matches!(e.kind, EventKind::Packet(_)))
    {
        let key = ConvKey::of(e);
        match (&e.local, &e.peer, &e.kind) {
            (Some(local), None, EventKind::Bind | EventKind::Listen { .. }) => {
                listening.insert(local.clone(), key);
            }
            (Some(local), Some(peer), _) => {
                let pair = (local.clone(), peer.clone());
                if !connected.contains_key(&pair) {
                    connected.insert(pair, key);
                }
            }
            _ => {}
        }
    }
    let other_side = |e: &Event| -> Option<Lane> {
        let peer = e.peer.clone()?;
        let local = e.local.clone().unwrap_or_default();
        if let Some(key) = connected.get(&(peer.clone(), local)) {
            return Some(Lane::Socket(*key));
        }
        if let Some(key) = listening.get(&peer) {
            return Some(Lane::Socket(*key));
        }
        // A UDP socket talks to a bound (unconnected) socket: match its address alone.
        if let Some(key) = connected
            .iter()
            .find(|((l, _), _)| *l == peer)
            .map(|(_, k)| *k)
        {
            return Some(Lane::Socket(key));
        }
        Some(Lane::Outside(peer))
    };
    let wanted = |e: &Event| match props.only {
        None => true,
        Some(only) => ConvKey::of(e) == only || other_side(e) == Some(Lane::Socket(only)),
    };
    let mut rows = Vec::new();
    for i in events {
        if wanted(&log.events[i]) {
            crate::state::place_by_time(&mut rows, i, &log.events);
        }
    }
    let shown: Vec<&Rc<Event>> = rows[rows.len().saturating_sub(MAX_ROWS)..]
        .iter()
        .map(|&i| &log.events[i])
        .collect();

    let mut lanes: Vec<Lane> = Vec::new();
    let lane_of = |lane: Lane, lanes: &mut Vec<Lane>| -> i64 {
        match lanes.iter().position(|l| *l == lane) {
            Some(i) => i as i64,
            None => {
                lanes.push(lane);
                lanes.len() as i64 - 1
            }
        }
    };
    let mut items = Vec::new();
    for (row, e) in shown.iter().enumerate() {
        // A packet crosses from the socket with its addresses where a call names one: a
        // server's connection, not the listener that had it before accept() said so.
        let own = match (&e.kind, &e.local, &e.peer) {
            (EventKind::Packet(_), Some(local), Some(peer)) => {
                connected.get(&(local.clone(), peer.clone())).copied()
            }
            _ => None,
        };
        let from = lane_of(
            Lane::Socket(own.unwrap_or_else(|| ConvKey::of(e))),
            &mut lanes,
        );
        let arrow_to = match &e.kind {
            EventKind::Connect
            | EventKind::Send { .. }
            | EventKind::SendTo { .. }
            | EventKind::Shutdown => other_side(e),
            EventKind::Accept => Some(Lane::Socket(ConvKey {
                endpoint: e.endpoint,
                conn: None,
            })),
            EventKind::Close { .. } if e.peer.is_some() => other_side(e),
            EventKind::Packet(_) => other_side(e),
            _ => None,
        };
        let to = arrow_to.map(|lane| lane_of(lane, &mut lanes));
        let label = match &e.kind {
            // What was said, shortened, as well as how much.
            EventKind::Send { data }
            | EventKind::SendTo { data }
            | EventKind::Recv { data, .. }
            | EventKind::RecvFrom { data, .. } => format!(
                "{} {} {}",
                format::call(e),
                format::short_preview(data, 14),
                format::bytes(data.len)
            ),
            EventKind::Close { .. } => "close() → FIN".into(),
            EventKind::Shutdown => "shutdown → FIN".into(),
            EventKind::Packet(p) => format::wire_label(p),
            _ => format::call(e),
        };
        let label = match &e.at {
            Some(at) if at.line > 0 => format!("{label} · L{}", at.line),
            _ => label,
        };
        let y = TOP + row as i64 * ROW_H + ROW_H / 2;
        let x = |lane: i64| lane * LANE_W + LANE_W / 2;
        let event = (*e).clone();
        let on_click = props.on_select.reform(move |_: MouseEvent| event.clone());
        let group = format::Group::of(&e.kind).label();
        let item = match (to, &e.kind) {
            // A packet slants from its sender down to its receiver, as a lecture draws it.
            (Some(to), EventKind::Packet(p)) if to != from => {
                let (a, b) = if p.dir == "out" {
                    (from, to)
                } else {
                    (to, from)
                };
                wire(x(a), x(b), y, &label)
            }
            _ => match to {
                // Accept points from the listener to the new socket.
                Some(to) if matches!(e.kind, EventKind::Accept) => {
                    arrow(x(to), x(from), y, &label, group)
                }
                Some(to) if to != from => arrow(x(from), x(to), y, &label, group),
                _ => html! {
                    <g class={format::classes(&["mark", group])}>
                        <circle cx={x(from).to_string()} cy={y.to_string()} r="4" />
                        <text x={(x(from) + 8).to_string()} y={(y + 4).to_string()}>{ label }</text>
                    </g>
                },
            },
        };
        let class = format::classes(&[
            "item",
            format::on(props.highlight == Some(e.seq), "highlight"),
        ]);
        items.push(html! { <g {class} data-kind={e.kind.name()} data-seq={e.seq.to_string()} onclick={on_click}>{ item }</g> });
    }
    // Half a lane more on the right: the last lane's labels run past its line.
    let width = (lanes.len() as i64).max(1) * LANE_W + LANE_W / 2;
    let height = TOP + shown.len() as i64 * ROW_H + 10;
    let lane_names: Vec<String> = lanes
        .iter()
        .map(|lane| match lane {
            Lane::Socket(key) => {
                let name = log.name(key.endpoint);
                match key.conn {
                    Some(conn) => format!("{} {}", short(&name), log.conn_name(conn)),
                    None => short(&name),
                }
            }
            Lane::Outside(addr) => format!("outside {addr}"),
        })
        .collect();
    html! {
        <div class="sequence">
            if shown.is_empty() {
                <p class="muted">{ "Nothing to draw yet: start a lab, and each socket call appears here as it happens." }</p>
            } else {
                <svg class="sequence-svg" width={(if props.large { width * 3 / 2 } else { width }).to_string()}
                     height={(if props.large { height * 3 / 2 } else { height }).to_string()}
                     viewBox={format!("0 0 {width} {height}")} role="img" aria-label="Sequence diagram of the socket calls">
                    <defs>
                        <marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                            <path d="M 0 0 L 10 5 L 0 10 z" />
                        </marker>
                    </defs>
                    { for lane_names.iter().enumerate().map(|(i, name)| {
                        let x = i as i64 * LANE_W + LANE_W / 2;
                        html! {
                            <g class="lane">
                                <text x={x.to_string()} y="16" text-anchor="middle" class="lane-name">{ name.clone() }</text>
                                <line x1={x.to_string()} y1="24" x2={x.to_string()} y2={height.to_string()} />
                            </g>
                        }
                    }) }
                    { for items }
                </svg>
            }
        </div>
    }
}

fn arrow(x1: i64, x2: i64, y: i64, label: &str, group: &'static str) -> Html {
    let middle = (x1 + x2) / 2;
    html! {
        <g class={format::classes(&["arrow", group])}>
            <line x1={x1.to_string()} y1={y.to_string()} x2={x2.to_string()} y2={y.to_string()} marker-end="url(#head)" />
            <text x={middle.to_string()} y={(y - 4).to_string()} text-anchor="middle">{ label.to_string() }</text>
        </g>
    }
}

/// A packet's arrow: dashed and slanted (it takes time on the wire), its label above.
fn wire(x1: i64, x2: i64, y: i64, label: &str) -> Html {
    let middle = (x1 + x2) / 2;
    html! {
        <g class="wire">
            <line x1={x1.to_string()} y1={(y - 7).to_string()} x2={x2.to_string()} y2={(y + 7).to_string()} marker-end="url(#head)" />
            <text x={middle.to_string()} y={(y - 3).to_string()} text-anchor="middle">{ label.to_string() }</text>
        </g>
    }
}

/// Lane titles stay short: `TCP client #2 → :12000` becomes `TCP client #2`, and a long
/// program name is cut before its port, `kurose_tcp_se… :12000`.
fn short(name: &str) -> String {
    const MOST: usize = 20;
    let name = name.split(" → ").next().unwrap_or(name);
    if name.chars().count() <= MOST {
        return name.to_string();
    }
    let (label, rest) = name.rsplit_once(" :").map_or((name, ""), |(l, p)| (l, p));
    let keep = MOST.saturating_sub(rest.len() + 3).max(4);
    let cut: String = label.chars().take(keep).collect();
    if rest.is_empty() {
        format!("{cut}…")
    } else {
        format!("{cut}… :{rest}")
    }
}
