//! Live simulated network trouble for the selected endpoint: loss, duplication, reordering and
//! delay for UDP; delay and a slow reader for TCP. Applied by the bridge, always labelled as
//! simulated in the timeline.

use shared::{Command, Impairment};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The endpoint, whether it is UDP, and the trouble it was created with.
    pub endpoint: u32,
    pub udp: bool,
    pub initial: Impairment,
    pub on_command: Callback<(String, Command)>,
}

/// A percentage from what was typed.
fn pct(v: u32) -> u8 {
    v.min(100) as u8
}

#[function_component]
pub fn Trouble(props: &Props) -> Html {
    let now = use_state(|| props.initial.clone());
    {
        // A different endpoint starts from its own settings.
        let (now, initial) = (now.clone(), props.initial.clone());
        use_effect_with(props.endpoint, move |_| now.set(initial));
    }
    let field = |label: &str, value: u32, set: fn(&mut Impairment, u32)| {
        let now = now.clone();
        let on_input = Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlInputElement>().value();
            let mut next = (*now).clone();
            set(&mut next, value.trim().parse().unwrap_or(0));
            now.set(next);
        });
        html! {
            <label>{ label }
                <input type="number" min="0" class="short" value={value.to_string()} oninput={on_input} />
            </label>
        }
    };
    let on_apply = {
        let (now, endpoint, on_command) = (now.clone(), props.endpoint, props.on_command.clone());
        Callback::from(move |_: MouseEvent| {
            on_command.emit((
                "Simulated trouble".into(),
                Command::Impair {
                    endpoint,
                    impairment: (*now).clone(),
                },
            ))
        })
    };
    html! {
        <details class="trouble live">
            <summary>{ if props.initial == shared::Impairment::default() {
                "Simulated network trouble, now: off"
            } else {
                "Simulated network trouble, now: ON"
            } }</summary>
            <div class="composer-row">
                if props.udp {
                    { field("loss % ", u32::from(now.loss_percent), |i, v| i.loss_percent = pct(v)) }
                    { field("duplicates % ", u32::from(now.duplicate_percent), |i, v| i.duplicate_percent = pct(v)) }
                    { field("reordered % ", u32::from(now.reorder_percent), |i, v| i.reorder_percent = pct(v)) }
                } else {
                    { field("read B/s (0: all) ", now.read_bytes_per_second, |i, v| i.read_bytes_per_second = v) }
                }
                { field("delay ms ", now.delay_ms, |i, v| i.delay_ms = v) }
                <button type="button" class="small" id="apply-trouble" onclick={on_apply}>{ "Apply" }</button>
            </div>
        </details>
    }
}
