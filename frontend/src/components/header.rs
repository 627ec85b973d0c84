//! The top bar: the bridge's status (with the exact command to start it when it is not
//! running), the lab presets, reset, lecture mode and the theme switch.

use crate::format;
use yew::prelude::*;

use crate::labs::PRESETS;
use crate::state::{BridgeInfo, Link};

pub struct Props {
    /// The Labs menu (folded away after a pick) and whether Export takes the keys along
    /// (kept by `App`).
    pub menu: NodeRef,
    pub secrets: UseStateHandle<bool>,
    pub link: Link,
    pub bridge: Option<BridgeInfo>,
    pub on_preset: Callback<usize>,
    pub on_reset: Callback<()>,
    pub lecture: bool,
    pub on_lecture: Callback<()>,
    /// In lecture mode, the view that fills the screen ("all" for the three columns).
    pub focus: &'static str,
    pub on_focus: Callback<&'static str>,
    /// Slow motion: events shown one at a time.
    /// Slow motion's state and buttons.
    pub slow: crate::hooks::SlowMotion,
    /// Events waiting to be shown in slow motion.
    pub queued: usize,
    pub dark: bool,
    pub on_theme: Callback<()>,
    /// Save what the page shows as a recording.
    /// Export: (`true` for everything since the page connected, `false` for the current lab
    /// since the last Clear; whether shared secrets and Fernet keys go in too).
    pub on_export: Callback<(bool, bool)>,
    /// A new demo: the views start empty.
    pub on_clear: Callback<()>,
    /// Whether something was cleared (then "Export this lab" is offered too).
    pub cleared: bool,
    /// Open a recording to replay.
    pub on_open: Callback<web_sys::File>,
}

/// A plain function, not a component (its state lives in `App`): each component brings its
/// own copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn header(props: &Props) -> Html {
    let (class, text, help): (&str, String, Option<Html>) = match &props.link {
        Link::Open => (
            "ok",
            "bridge: connected".into(),
            props.bridge.as_ref().map(|b| {
                let scope = match b.scope {
                    shared::Scope::Loopback => "loopback only",
                    shared::Scope::Lan => "LAN allowed",
                };
                html! { <span class="muted">{ format!("v{} · {scope}", b.version) }</span> }
            }),
        ),
        Link::Connecting => ("wait", "bridge: connecting…".into(), None),
        Link::Retrying {
            in_ms, was_open, ..
        } => {
            let seconds = in_ms.div_ceil(1000);
            if *was_open {
                (
                    "wait",
                    format!("bridge: reconnecting (next try in {seconds} s)"),
                    None,
                )
            } else {
                (
                    "bad",
                    format!("bridge: not running (next try in {seconds} s)"),
                    Some(html! {
                        <span>{ "Start it with " }<code>{ "cargo xtask run" }</code></span>
                    }),
                )
            }
        }
        Link::NoToken => (
            "bad",
            "bridge: no access token".into(),
            Some(html! {
                <span>{ "Open the URL that " }<code>{ "cargo xtask run" }</code>{ " printed (it ends in #token=…)." }</span>
            }),
        ),
        Link::Refused(error) => (
            "bad",
            "bridge: refused".into(),
            Some(html! {
                <span>{ format!("{} ", error.explanation) }{ error.hint.clone().unwrap_or_default() }</span>
            }),
        ),
    };
    let on_reset = props.on_reset.reform(|_: MouseEvent| ());
    let on_lecture = props.on_lecture.reform(|_: MouseEvent| ());
    let on_theme = props.on_theme.reform(|_: MouseEvent| ());
    let connected = props.link == Link::Open;
    let (menu, secrets) = (props.menu.clone(), props.secrets.clone());
    let on_open = {
        let on_open = props.on_open.clone();
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<web_sys::HtmlInputElement>();
            if let Some(file) = input.files().and_then(|f| f.get(0)) {
                on_open.emit(file);
            }
            input.set_value("");
        })
    };
    html! {
        <header class="topbar">
            <h1>{ "Socket Playground" }</h1>
            <div class={format::classes(&["status", class])} role="status" aria-live="polite" id="bridge-status">
                <span class="dot" aria-hidden="true"></span>
                <strong>{ text }</strong>
                if let Some(help) = help { { help } }
            </div>
            <details class="labs" ref={menu.clone()}>
                <summary>{ "Labs ▾" }</summary>
                <div class="labs-menu" role="menu">
                    { for PRESETS.iter().enumerate().map(|(i, preset)| {
                        let (on_preset, menu) = (props.on_preset.clone(), menu.clone());
                        // Run the preset and fold the menu away.
                        let on_click = Callback::from(move |_: MouseEvent| {
                            if let Some(details) = menu.cast::<web_sys::Element>() {
                                let _ = details.remove_attribute("open");
                            }
                            on_preset.emit(i);
                        });
                        html! {
                            <button type="button" role="menuitem" disabled={!connected}
                                    data-preset={preset.id} onclick={on_click}>
                                <strong>{ preset.name }</strong>
                                <span>{ preset.description }</span>
                            </button>
                        }
                    }) }
                </div>
            </details>
            <button type="button" id="export" onclick={{ let s = *secrets; props.on_export.reform(move |_: MouseEvent| (true, s)) }}
                    title="Save every event since this page connected as a recording to replay later">{ "Export" }</button>
            if props.cleared {
                <button type="button" id="export-lab" onclick={{ let s = *secrets; props.on_export.reform(move |_: MouseEvent| (false, s)) }}
                        title="Save only what happened since the last Clear">{ "Export this lab" }</button>
            }
            <label class="check" title="A recording holds the endpoints' shared secrets and Fernet keys only when this is ticked">
                <input type="checkbox" id="export-secrets" checked={*secrets}
                       onchange={{ let secrets = secrets.clone(); Callback::from(move |_: Event| secrets.set(!*secrets)) }} />
                { "with keys" }
            </label>
            <label class="open-recording" title="Replay a recording, no bridge needed">{ "Replay…" }
                <input id="open-recording" type="file" accept=".json,application/json"
                       onchange={on_open} />
            </label>
            <button type="button" id="reset" onclick={on_reset} disabled={!connected}
                    title="Close every server, client and program and start a new demo, numbered from 1 (Export still has it all)">{ "Reset" }</button>
            <button type="button" id="clear" onclick={props.on_clear.reform(|_: MouseEvent| ())}
                    title="A new demo: empty the timeline, the conversation and the diagrams (Export still has it all)">{ "Clear" }</button>
            <button type="button" id="lecture" onclick={on_lecture} aria-pressed={props.lecture.to_string()}>
                { if props.lecture { "Normal size" } else { "Lecture mode" } }
            </button>
            if props.lecture {
                <div class="focus" role="group" aria-label="Fill the screen with">
                    { for [("all", "All"), ("conversation", "Conversation"), ("sequence", "Sequence"),
                           ("timeline", "Timeline")].into_iter().map(|(view, label)| html! {
                        <button type="button" class="small" id={format!("focus-{view}")}
                                aria-pressed={(props.focus == view).to_string()}
                                onclick={props.on_focus.reform(move |_: MouseEvent| view)}>{ label }</button>
                    }) }
                </div>
            }
            <button type="button" id="slow-motion" onclick={props.slow.toggle.reform(|_: MouseEvent| ())}
                    aria-pressed={props.slow.on.to_string()}
                    title="Show the socket calls one at a time, so each can be pointed at">
                { if props.slow.on { "Normal speed" } else { "Slow motion" } }
            </button>
            if props.slow.on {
                <button type="button" id="slow-pause" onclick={props.slow.pause.reform(|_: MouseEvent| ())}
                        aria-pressed={props.slow.paused.to_string()}>
                    { if props.slow.paused { "▶ Go on" } else { "⏸ Pause" } }
                </button>
                <button type="button" id="slow-step" onclick={props.slow.step.reform(|_: MouseEvent| ())}
                        disabled={props.queued == 0} title="Show the next socket call">{ "Step" }</button>
                <span id="slow-queued" class="muted">{ format!("{} waiting", props.queued) }</span>
            }
            <button type="button" onclick={on_theme} aria-label="Switch between light and dark">
                { if props.dark { "Light" } else { "Dark" } }
            </button>
        </header>
    }
}
