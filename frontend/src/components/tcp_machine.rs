//! The TCP state machine in small: every state the kernel can report and the transitions
//! between them, laid out as in the textbook diagram, with the selected socket's current state
//! (as the OS reported it) highlighted.

use crate::format;
use yew::prelude::*;

/// (state, column, row) in the picture.
const STATES: [(&str, i64, i64); 11] = [
    ("CLOSE", 1, 0),
    ("LISTEN", 2, 0),
    ("SYN_SENT", 0, 1),
    ("SYN_RECV", 2, 1),
    ("ESTABLISHED", 1, 2),
    ("FIN_WAIT1", 0, 3),
    ("CLOSE_WAIT", 2, 3),
    ("FIN_WAIT2", 0, 4),
    ("CLOSING", 1, 4),
    ("LAST_ACK", 2, 4),
    ("TIME_WAIT", 0, 5),
];

pub struct Props {
    /// The current state, as the last `tcp_state` event said.
    pub state: String,
    /// When the kernel said so (the timeline's time).
    pub at: String,
}

/// The transitions a socket's state takes (RFC 793, Figure 6), by index into `STATES`: open,
/// connect, the handshakes, and both ways of closing.
const STEPS: [(usize, usize); 14] = [
    (0, 1),  // listen()
    (0, 2),  // connect(): SYN sent
    (1, 3),  // SYN received
    (2, 4),  // SYN+ACK received
    (3, 4),  // ACK received
    (4, 5),  // close(): FIN sent
    (4, 6),  // FIN received
    (5, 7),  // ACK of the FIN
    (5, 8),  // FIN received while closing
    (7, 10), // FIN received
    (8, 10), // ACK received
    (6, 9),  // close(): FIN sent
    (9, 0),  // ACK received
    (10, 0), // after twice the maximum segment lifetime
];

/// A plain function, not a component: it keeps no state, and each component brings its own
/// copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn tcp_machine(props: &Props) -> Html {
    let (w, h, gap_x, gap_y) = (104i64, 22i64, 118i64, 42i64);
    let at = |i: usize| {
        let (_, col, row) = STATES[i];
        (4 + col * gap_x, 4 + row * gap_y)
    };
    // An arrow's points: to a box beside, edge to edge; back up to CLOSE, through the gap
    // between the columns; else from the bottom of one box to the top of the next.
    let path = |(from, to): (usize, usize)| -> String {
        let ((x1, y1), (x2, y2)) = (at(from), at(to));
        let points = if to == 0 && from != 0 {
            let side = if x1 < x2 {
                (x1 + w, x2, x2 - 7)
            } else {
                (x1, x2 + w, x1 - 7)
            };
            let (start, end, lane) = side;
            let y = y2 + h / 2 + 5;
            format!(
                "{start},{} {lane},{} {lane},{y} {end},{y}",
                y1 + h / 2,
                y1 + h / 2
            )
        } else if y1 == y2 {
            format!("{},{} {},{}", x1 + w, y1 + h / 2 - 5, x2, y2 + h / 2 - 5)
        } else {
            format!("{},{} {},{}", x1 + w / 2, y1 + h, x2 + w / 2, y2)
        };
        points
    };
    html! {
        <figure class="tcp-machine">
            <svg viewBox="0 0 360 240" role="img"
                 aria-label={format!("TCP state machine, now {}", props.state)}>
                <defs>
                    <marker id="tcp-head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">
                        <path d="M0,0 L10,5 L0,10 z" />
                    </marker>
                </defs>
                { for STEPS.iter().map(|step| html! {
                    <polyline class="step" points={path(*step)} marker-end="url(#tcp-head)" />
                }) }
                { for STATES.iter().map(|(name, col, row)| {
                    let (x, y) = (4 + col * gap_x, 4 + row * gap_y);
                    let on = props.state == *name;
                    html! {
                        <g class={format::classes(&["state", format::on(on, "now")])} data-state={*name}>
                            <rect x={x.to_string()} y={y.to_string()} width={w.to_string()} height={h.to_string()} rx="5" />
                            <text x={(x + w / 2).to_string()} y={(y + 15).to_string()} text-anchor="middle">{ *name }</text>
                        </g>
                    }
                }) }
            </svg>
            <figcaption>{ format!("TCP state now: {} (as the kernel reported it at {})", props.state, props.at) }</figcaption>
            if props.state == "TIME_WAIT" {
                <p class="muted small-print">{ "The kernel keeps TIME_WAIT for about 60 seconds, then forgets the connection." }</p>
            }
        </figure>
    }
}
