//! A program's console, shown when the program is selected: what it printed (stdout, stderr)
//! and what was typed into it, in order; an uncaught exception explained, with its traceback;
//! how it ended. A line typed here goes to its `input()`; Stop ends it.

use std::rc::Rc;

use shared::{Event, EventKind, ProgramFrom, ProgramSpec};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::format;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub spec: ProgramSpec,
    /// The program endpoint's events (its console, errors, exit).
    pub events: crate::state::Events,
    /// Whether it still runs.
    pub running: bool,
    /// Where its sockets are stuck now, in words (`accept() at line 15`).
    pub waiting: Vec<String>,
    /// A line for its stdin.
    pub on_input: Callback<String>,
    pub on_stop: Callback<()>,
}

#[function_component]
pub fn Console(props: &Props) -> Html {
    let line = use_state(String::new);
    let view = use_node_ref();
    {
        let view = view.clone();
        let newest = props.events.last().map(|e| e.seq);
        use_effect_with(newest, move |_| {
            if let Some(el) = view.cast::<web_sys::HtmlElement>() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }
    let send = {
        let (line, on_input) = (line.clone(), props.on_input.clone());
        move || {
            on_input.emit((*line).clone());
            line.set(String::new());
        }
    };
    let on_key = {
        let send = send.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                send();
            }
        })
    };
    let on_send = Callback::from(move |_: MouseEvent| send());
    let on_line = {
        let line = line.clone();
        Callback::from(move |e: InputEvent| {
            line.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_stop = props.on_stop.reform(|_: MouseEvent| ());
    let ended = props.events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Exit { detail, code, .. } => Some((detail.clone(), *code == Some(0))),
        _ => None,
    });
    let from_page = props.spec.from == ProgramFrom::Page;
    let state = match (&ended, props.running) {
        (Some((detail, _)), _) => format!("ended: {detail}"),
        (None, true) => "running".to_string(),
        (None, false) => "no longer running".to_string(),
    };
    html! {
        <div class="console-view">
            <h2>{ "Program" }</h2>
            <p class="conv-title">{ props.spec.label() }</p>
            <p class="muted program-meta">
                <code>{ props.spec.argv.join(" ") }</code>
                { format!(" · pid {} · {}", props.spec.pid, if from_page { "run from this page" } else { "in a terminal (bridge trace)" }) }
            </p>
            <p class={format::classes(&["program-state", match &ended { Some((_, true)) => "ok", Some((_, false)) => "bad", None => "live" }])}
               id="program-state">{ state }</p>
            { for props.waiting.iter().map(|w| html! { <p class="waiting">{ format!("waiting in {w}") }</p> }) }
            <pre class="console" ref={view} role="log" aria-label="The program's output">{ console_text(&props.events, from_page) }</pre>
            { for props.events.iter().filter_map(|e| problem(e)) }
            if from_page && props.running && ended.is_none() {
                <div class="program-row console-input">
                    <input type="text" id="program-stdin" class="message" placeholder="type a line for input(), then Enter"
                           aria-label="A line for the program's input()" value={(*line).clone()} oninput={on_line} onkeydown={on_key} />
                    <button type="button" id="program-send" onclick={on_send}>{ "Send line" }</button>
                    <button type="button" id="program-stop" onclick={on_stop}>{ "■ Stop" }</button>
                </div>
            }
        </div>
    }
}

/// Everything the program printed and was given, in order, as one text (a terminal shows
/// it so; one text node also costs the page far less code than a node per write).
fn console_text(events: &[Rc<Event>], from_page: bool) -> String {
    let mut text = String::new();
    for event in events {
        match &event.kind {
            EventKind::Output { data, .. } => {
                if let Some(bytes) = data.bytes() {
                    text.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
            EventKind::Dropped { .. } | EventKind::Exit { .. } => {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!("[{}]\n", format::detail(event)));
            }
            _ => {}
        }
    }
    if text.is_empty() {
        text.push_str(if from_page {
            "Nothing printed yet."
        } else {
            "Its output is in the terminal it runs in."
        });
    }
    text
}

/// An error of the program (an exception nothing caught), explained, with its traceback.
fn problem(event: &Event) -> Option<Html> {
    let EventKind::Error { error, .. } = &event.kind else {
        return None;
    };
    let at = event
        .at
        .as_ref()
        .map(|at| format!("{}: {}", crate::format::where_at(at), at.code));
    let trace = error
        .os_message
        .clone()
        .filter(|t| t.starts_with("Traceback"));
    Some(html! {
        <div class="msg error" role="alert" data-kind="error">
            { &error.explanation }
            if let Some(at) = at { <div class="at"><code>{ at }</code></div> }
            if let Some(hint) = &error.hint { <div class="hint">{ hint }</div> }
            if let Some(trace) = trace {
                <details><summary>{ "traceback" }</summary><pre class="code">{ trace }</pre></details>
            }
        </div>
    })
}
