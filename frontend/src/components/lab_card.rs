//! The lab a preset set up: what to try, in the handout's order, and what the handout says
//! should appear. For a server that serves one client at a time it says so and offers the
//! playground's client only after the student's own (which would otherwise wait behind it).

use yew::prelude::*;

use crate::labs::PRESETS;

pub struct Props {
    /// Which preset (an index into `PRESETS`).
    pub preset: usize,
    /// Connect the playground's client to the one-at-a-time server (port).
    pub on_client: Callback<u16>,
    pub on_close: Callback<()>,
}

/// A plain function, not a component: it keeps no state, and each component brings its own
/// copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn lab_card(props: &Props) -> Html {
    let Some(preset) = PRESETS.get(props.preset) else {
        return html! {};
    };
    html! {
        <div class="lab-card" id="lab-card" data-preset={preset.id}>
            <div class="lab-head">
                <strong>{ preset.name }</strong>
                <button type="button" class="small" aria-label="Close the lab card"
                        onclick={props.on_close.reform(|_: MouseEvent| ())}>{ "✕" }</button>
            </div>
            if preset.own_client_first.is_some() {
                <p class="one-at-a-time">
                    { "One client at a time, as in the handout: run your own client first. \
                       A second client waits in the backlog until the first is done." }
                </p>
            }
            <ol>{ for preset.steps_to_try.iter().map(|s| html! { <li>{ *s }</li> }) }</ol>
            <p class="expect"><strong>{ "Expected: " }</strong>{ preset.expect }</p>
            if let Some(port) = preset.own_client_first {
                <button type="button" class="small" id="lab-client"
                        onclick={props.on_client.reform(move |_: MouseEvent| port)}>
                    { "Connect the playground's client" }
                </button>
            }
        </div>
    }
}
