//! A failed command, explained where the person is looking, until dismissed.

use yew::prelude::*;

use crate::state::Notice;

pub struct Props {
    pub notice: Notice,
    pub on_dismiss: Callback<()>,
}

/// A plain function, not a component: it keeps no state, and each component brings its own
/// copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn notice_bar(props: &Props) -> Html {
    let error = &props.notice.error;
    let on_click = props.on_dismiss.reform(|_: MouseEvent| ());
    html! {
        <div class="notice" role="alert">
            <div>
                <strong>{ format!("{} failed: ", props.notice.title) }</strong>
                { &error.explanation }
                if let Some(hint) = &error.hint {
                    <div class="hint">{ hint }</div>
                }
                if let Some(os) = &error.os_message {
                    <div class="muted">{ format!("OS: {os}") }</div>
                }
            </div>
            <button type="button" onclick={on_click} aria-label="Dismiss">{ "✕" }</button>
        </div>
    }
}
