//! The root component: owns the state and the bridge connection, lays out the views, and turns
//! their callbacks into commands and actions.

use shared::{Command, EndpointSpec};
use yew::prelude::*;

use crate::components::composer::{Composer, SendTarget};
use crate::components::conversation::Conversation;
use crate::components::endpoint_list::EndpointList;
use crate::components::header::Header;
use crate::components::new_endpoint::NewEndpoint;
use crate::components::notice::NoticeBar;
use crate::components::timeline::Timeline;
use crate::hooks::use_bridge;
use crate::labs::PRESETS;
use crate::state::{Action, ConvKey, Link, State};

/// How many events of one conversation are drawn at most.
const CONVERSATION_LIMIT: usize = 400;

#[function_component]
pub fn App() -> Html {
    let state = use_reducer(State::default);
    let bridge = use_bridge(state.dispatcher());
    let lecture = use_state(|| false);
    let dark = use_state(prefers_dark);
    let run = bridge.runner();
    // Marks the first render, so benchmarks can read when the page became usable.
    use_effect_with((), |_| {
        if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
            let _ = performance.mark("sp-first-render");
        }
    });

    let on_preset = {
        let bridge = bridge.clone();
        Callback::from(move |index: usize| {
            let bridge = bridge.clone();
            let preset = &PRESETS[index];
            yew::platform::spawn_local(async move {
                for command in preset.commands() {
                    if !bridge.run(preset.name, command).await {
                        break;
                    }
                }
            });
        })
    };
    let on_reset = {
        let run = run.clone();
        Callback::from(move |()| run.emit(("Reset".into(), Command::Reset)))
    };
    let on_select = {
        let dispatch = state.dispatcher();
        Callback::from(move |key: ConvKey| dispatch.dispatch(Action::Select(Some(key))))
    };
    let on_dismiss = {
        let dispatch = state.dispatcher();
        Callback::from(move |()| dispatch.dispatch(Action::DismissNotice))
    };
    let toggle_lecture = {
        let lecture = lecture.clone();
        Callback::from(move |()| lecture.set(!*lecture))
    };
    let toggle_theme = {
        let dark = dark.clone();
        Callback::from(move |()| dark.set(!*dark))
    };

    let log = state.log.borrow();
    let roles = state
        .selected
        .map(|key| roles(&state, key))
        .unwrap_or_default();
    let (conversation, title, target) = match state.selected {
        Some(key) => {
            let (events, skipped) = log.conversation(key, CONVERSATION_LIMIT);
            let title = conversation_title(&state, key);
            (Some((events, skipped)), title, send_target(&state, key))
        }
        None => (None, String::new(), None),
    };
    let started_unix_ms = state.bridge.as_ref().map_or(0, |b| b.started_unix_ms);
    let names = log
        .specs
        .keys()
        .map(|id| (*id, log.name(*id)))
        .collect::<Vec<_>>();
    let connected = state.link == Link::Open;

    html! {
        <div class={classes!("app", dark.then_some("dark"), lecture.then_some("lecture"))}>
            <Header
                link={state.link.clone()}
                bridge={state.bridge.clone()}
                {on_preset}
                {on_reset}
                lecture={*lecture}
                on_lecture={toggle_lecture}
                dark={*dark}
                on_theme={toggle_theme}
            />
            <main class="columns">
                <section class="panel endpoints" aria-label="Endpoints">
                    <EndpointList
                        endpoints={state.endpoints.values().cloned().collect::<Vec<_>>()}
                        selected={state.selected}
                        on_select={on_select.clone()}
                        on_command={run.clone()}
                    />
                    <NewEndpoint on_command={run.clone()} enabled={connected} />
                </section>
                <section class="panel conversation" aria-label="Conversation">
                    if let Some(notice) = state.notice.clone() {
                        <NoticeBar {notice} on_dismiss={on_dismiss} />
                    }
                    <Conversation
                        {title}
                        roles={roles}
                        conversation={conversation}
                        started_unix_ms={started_unix_ms}
                    />
                    <Composer target={target} on_command={run.clone()} />
                </section>
                <section class="panel timeline-panel" aria-label="Timeline">
                    <Timeline
                        log={state.log.clone()}
                        version={state.version}
                        names={names}
                        started_unix_ms={started_unix_ms}
                        lecture={*lecture}
                        on_select={on_select}
                    />
                </section>
            </main>
        </div>
    }
}

fn conversation_title(state: &State, key: ConvKey) -> String {
    let log = state.log.borrow();
    let name = log.name(key.endpoint);
    match key.conn {
        Some(conn) => {
            let peer = state
                .endpoints
                .get(&key.endpoint)
                .and_then(|e| e.connections.iter().find(|c| c.id == conn))
                .map(|c| c.peer.clone())
                .unwrap_or_else(|| "closed".into());
            format!("{name}, connection #{conn} ({peer})")
        }
        None => name,
    }
}

/// Where the composer sends for the selected conversation, if that endpoint is alive and can.
fn send_target(state: &State, key: ConvKey) -> Option<SendTarget> {
    let endpoint = state.endpoints.get(&key.endpoint)?;
    let label = conversation_title(state, key);
    match (&endpoint.spec, key.conn) {
        (EndpointSpec::TcpServer(_), Some(conn)) => endpoint
            .connections
            .iter()
            .any(|c| c.id == conn)
            .then(|| SendTarget::tcp(key.endpoint, Some(conn), label)),
        (EndpointSpec::TcpClient(_), None) => Some(SendTarget::tcp(key.endpoint, None, label)),
        (EndpointSpec::UdpClient(_), None) => Some(SendTarget::udp(key.endpoint, None, label)),
        (EndpointSpec::UdpServer(_), None) => {
            // A UDP server answers whoever wrote to it last.
            let log = state.log.borrow();
            let (events, _) = log.conversation(key, 50);
            let last_sender = events
                .iter()
                .rev()
                .find(|e| matches!(e.kind, shared::EventKind::RecvFrom { .. }))
                .and_then(|e| e.peer.clone());
            last_sender.map(|to| SendTarget::udp(key.endpoint, Some(to), label))
        }
        _ => None,
    }
}

/// The names of the two sides of a conversation: this socket's role first.
fn roles(state: &State, key: ConvKey) -> (String, String) {
    let log = state.log.borrow();
    let spec = log.specs.get(&key.endpoint).map(|(spec, _)| spec);
    let (mine, theirs) = match (spec, key.conn) {
        (Some(EndpointSpec::TcpClient(_) | EndpointSpec::UdpClient(_)), _) => ("client", "server"),
        (Some(_), _) => ("server", "client"),
        (None, _) => ("this socket", "peer"),
    };
    (mine.to_string(), theirs.to_string())
}

fn prefers_dark() -> bool {
    web_sys::window()
        .and_then(|w| w.match_media("(prefers-color-scheme: dark)").ok().flatten())
        .is_some_and(|m| m.matches())
}
