//! The replay bar: step through a recorded session forward and back, or play it at a chosen
//! speed, without a bridge.

use std::rc::Rc;

use yew::prelude::*;

use crate::state::Replay;

pub struct Props {
    pub replay: Rc<Replay>,
    pub playing: bool,
    /// Playback speed in percent of real time.
    pub speed: u32,
    pub on_step: Callback<usize>,
    pub on_play: Callback<bool>,
    pub on_speed: Callback<u32>,
    pub on_leave: Callback<()>,
}

/// A plain function, not a component: it keeps no state, and each component brings its own
/// copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn replay_bar(props: &Props) -> Html {
    let (position, total) = (props.replay.position, props.replay.events.len());
    let go = |to: usize| props.on_step.reform(move |_: MouseEvent| to);
    let on_play = {
        let (on_play, playing) = (props.on_play.clone(), props.playing);
        Callback::from(move |_: MouseEvent| on_play.emit(!playing))
    };
    let on_speed = props.on_speed.reform(|e: Event| {
        e.target_unchecked_into::<web_sys::HtmlSelectElement>()
            .value()
            .parse()
            .unwrap_or(100)
    });
    let on_leave = props.on_leave.reform(|_: MouseEvent| ());
    html! {
        <div class="replay-bar" role="toolbar" aria-label="Replay">
            <strong id="replay-banner">{ "▶ A RECORDING, not the live bridge: nothing you press here reaches the bridge." }</strong>
            <span id="replay-position">{ format!("{position} / {total} events") }</span>
            <button type="button" class="small" onclick={go(0)} title="To the start">{ "Start" }</button>
            <button type="button" class="small" id="replay-back" onclick={go(position.saturating_sub(1))}
                    disabled={position == 0} title="One event back">{ "◀" }</button>
            <button type="button" class="small" id="replay-step" onclick={go((position + 1).min(total))}
                    disabled={position == total} title="One event forward">{ "▶" }</button>
            <button type="button" class="small" id="replay-end" onclick={go(total)} title="To the end">{ "End" }</button>
            <button type="button" class="small" id="replay-play" onclick={on_play}>
                { if props.playing { "Pause" } else { "Play" } }
            </button>
            <select aria-label="Speed" onchange={on_speed}>
                { for [25u32, 50, 100, 200, 500].iter().map(|s| html! {
                    <option value={s.to_string()} selected={props.speed == *s}>{ speed_name(*s) }</option>
                }) }
            </select>
            <button type="button" class="small" onclick={on_leave}>{ "Back to live" }</button>
        </div>
    }
}

/// A speed in hundredths as a factor, `0.25×`, `2×`.
fn speed_name(hundredths: u32) -> String {
    format!("{}×", shared::decimal(u64::from(hundredths), 2))
}

#[cfg(test)]
mod tests {
    #[test]
    fn speeds_read_as_factors() {
        assert_eq!(super::speed_name(25), "0.25×");
        assert_eq!(super::speed_name(50), "0.5×");
        assert_eq!(super::speed_name(200), "2×");
    }
}
