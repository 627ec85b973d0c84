//! The TCP state machine in small: every state the kernel can report, laid out as in the
//! textbook diagram, with the selected socket's current state (as the OS reported it)
//! highlighted.

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

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The current state, as the last `tcp_state` event said.
    pub state: String,
}

#[function_component]
pub fn TcpMachine(props: &Props) -> Html {
    let (w, h, gap_x, gap_y) = (104i64, 22i64, 118i64, 30i64);
    html! {
        <figure class="tcp-machine">
            <svg viewBox="0 0 360 180" role="img"
                 aria-label={format!("TCP state machine, now {}", props.state)}>
                { for STATES.iter().map(|(name, col, row)| {
                    let (x, y) = (4 + col * gap_x, 4 + row * gap_y);
                    let on = props.state == *name;
                    html! {
                        <g class={classes!("state", on.then_some("now"))} data-state={*name}>
                            <rect x={x.to_string()} y={y.to_string()} width={w.to_string()} height={h.to_string()} rx="5" />
                            <text x={(x + w / 2).to_string()} y={(y + 15).to_string()} text-anchor="middle">{ *name }</text>
                        </g>
                    }
                }) }
            </svg>
            <figcaption>{ format!("TCP state now: {} (as the kernel reports it)", props.state) }</figcaption>
        </figure>
    }
}
