//! The endpoints alive now: servers with their accepted connections beneath them, clients, and
//! the person's own programs with their sockets beneath them (and where each is stuck).
//! Clicking one shows its conversation (a program: its console); buttons stop or close it (a
//! program's sockets are the program's: stop the program instead).

use shared::{Command, EndpointInfo, EndpointSpec};
use yew::prelude::*;

use crate::format;
use crate::state::ConvKey;

pub struct Props {
    /// How many chat clients "add chat clients" adds (kept by `App`).
    pub joiners: UseStateHandle<usize>,
    pub endpoints: Vec<EndpointInfo>,
    pub selected: Option<ConvKey>,
    pub on_select: Callback<ConvKey>,
    pub on_command: Callback<(String, Command)>,
    /// (chat server port, how many) chat clients to connect.
    pub on_chat_clients: Callback<(u16, usize)>,
    /// The traced sockets (and their connections) blocked in a call now, with where
    /// (`accept() at line 15`).
    pub waiting: Vec<(ConvKey, String)>,
    /// The connections of each live server that have closed (they stay listed, folded).
    pub closed: Vec<(shared::EndpointId, Vec<(shared::ConnId, String)>)>,
    /// One-at-a-time servers with clients waiting in their listen backlog: how many.
    pub backlog: Vec<(shared::EndpointId, u32)>,
    /// The highest endpoint and connection ids before the last Reset: numbers shown count
    /// from there.
    pub base: (u32, u32),
    /// Whether what is listed is the bridge's now: while the page is not connected it is how
    /// things stood, greyed, and its buttons do nothing.
    pub live: bool,
    /// Chat members' nicknames: clients (no `conn`) and a chat server's connections.
    pub nicks: Vec<(ConvKey, String)>,
}

/// A plain function, not a component (its state lives in `App`): each component brings its
/// own copy of yew's lifecycle code into the page (docs/benchmarks.md, "Page size").
pub fn endpoint_list(props: &Props) -> Html {
    let joiners = props.joiners.clone();
    let item = |key: ConvKey,
                label: String,
                detail: String,
                button: Option<&'static str>,
                title: String,
                class: &'static str| {
        let selected = props.selected == Some(key);
        let on_select = props.on_select.reform(move |_: MouseEvent| key);
        let on_close = props
            .on_command
            .reform(move |_: MouseEvent| (title.clone(), Command::close(key.endpoint, key.conn)));
        html! {
            <div class={format::classes(&["item", class, format::on(key.conn.is_some(), "conn"), format::on(selected, "selected")])}>
                <button type="button" class="select" onclick={on_select}
                        aria-current={selected.then_some("true")}>
                    <span class="label">{ label }</span>
                    <span class="muted">{ detail }</span>
                </button>
                if let Some(button) = button {
                    <button type="button" class="small" onclick={on_close}>{ button }</button>
                }
            </div>
        }
    };
    let alive = |id: shared::EndpointId| props.endpoints.iter().any(|e| e.id == id);
    // A program's socket, beneath its program: where it is stuck, or its addresses.
    let socket = |e: &EndpointInfo| {
        let key = ConvKey {
            endpoint: e.id,
            conn: None,
        };
        let waits = |key: ConvKey| {
            props
                .waiting
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, w)| w)
        };
        let name = format::endpoint_name(
            e.id.saturating_sub(props.base.0),
            &e.spec,
            e.local.as_deref(),
        );
        let detail = match (waits(key).map(|w| ((), w)), &e.local, &e.peer) {
            (Some((_, w)), _, _) => format!("waiting in {w}"),
            (None, Some(local), Some(peer)) => format!("{local} → {peer}"),
            (None, Some(local), None) => format!("on {local}"),
            (None, None, _) => "not bound or connected yet".into(),
        };
        html! {
            <>
                { item(key, name, detail, None, String::new(), "traced") }
                { for e.connections.iter().map(|c| {
                    let key = ConvKey { endpoint: e.id, conn: Some(c.id) };
                    let detail = match waits(key) {
                        Some(w) => format!("waiting in {w}"),
                        None => "accepted connection".to_string(),
                    };
                    item(key, format!("conn {} · {}", c.id.saturating_sub(props.base.1), c.peer), detail, None, String::new(), "traced")
                }) }
            </>
        }
    };
    html! {
        <div class={format::classes(&["endpoint-list", format::on(!props.live, "stale")])}>
            <h2>{ "Endpoints" }</h2>
            if !props.live && !props.endpoints.is_empty() {
                <p class="warn" id="endpoints-stale">{ "Not connected to the bridge: this is how things stood when the connection was lost." }</p>
            }
            if props.endpoints.is_empty() {
                <p class="muted">{ "Nothing runs yet. Pick a lab above, create a server below, or run your own program (Programs tab)." }</p>
            }
            { for props.endpoints.iter().map(|e| {
                if let EndpointSpec::Traced(t) = &e.spec {
                    // Shown beneath its program (or alone, should the program be gone).
                    if alive(t.program) {
                        return html! {};
                    }
                    return html! { <div class="group">{ socket(e) }</div> };
                }
                if let EndpointSpec::Program(p) = &e.spec {
                    let key = ConvKey { endpoint: e.id, conn: None };
                    let name = p.label();
                    let place = match p.from {
                        shared::ProgramFrom::Page => "your program",
                        shared::ProgramFrom::Terminal => "your program, in a terminal",
                    };
                    let (button, title) = match p.from {
                        shared::ProgramFrom::Page => (Some("Stop"), format!("Stop {name}")),
                        shared::ProgramFrom::Terminal => (Some("Untrace"), format!("Stop showing {name}")),
                    };
                    return html! {
                        <div class="group program">
                            { item(key, format!("▶\u{a0}{name}"), format!("{place} · pid {}", p.pid), button, title, "program") }
                            { for props.endpoints.iter()
                                .filter(|s| matches!(&s.spec, EndpointSpec::Traced(t) if t.program == e.id))
                                .map(|s| html! { <div class="sockets">{ socket(s) }</div> }) }
                        </div>
                    };
                }
                let name = format::endpoint_name(e.id.saturating_sub(props.base.0), &e.spec, e.local.as_deref());
                let key = ConvKey { endpoint: e.id, conn: None };
                let is_server = matches!(e.spec, EndpointSpec::TcpServer(_) | EndpointSpec::UdpServer(_));
                let detail = match (&e.spec, &e.local, &e.peer) {
                    (EndpointSpec::TcpServer(_) | EndpointSpec::UdpServer(_), _, _) => format::server_summary(&e.spec),
                    (_, Some(local), Some(peer)) => format!("{local} → {peer}"),
                    _ => format::server_summary(&e.spec),
                };
                // Simulated trouble changes what happens: say it is on, where the endpoint is.
                let detail = match e.spec.impairment() {
                    Some(_) => format!("{detail} · simulated trouble on"),
                    None => detail,
                };
                let nick = |key: ConvKey| props.nicks.iter().find(|(k, _)| *k == key).map(|(_, n)| n.as_str());
                let detail = match nick(key) {
                    Some(n) => format!("chat as \"{n}\" · {detail}"),
                    None => detail,
                };
                let (button, title) = if is_server { (Some("Stop"), format!("Stop {name}")) } else { (Some("Close"), format!("Close {name}")) };
                // A server that serves one client at a time says who it serves and who waits.
                let one_at_a_time = matches!(&e.spec, EndpointSpec::TcpServer(s)
                    if s.concurrency == shared::Concurrency::OneAtATime);
                let waiting = props.backlog.iter().find(|(id, _)| *id == e.id).map(|(_, n)| *n);
                let chat_port = match &e.spec {
                    EndpointSpec::TcpServer(s) if s.behaviour == shared::Behaviour::Chat => {
                        e.local.as_deref().and_then(|l| format::port(l).parse::<u16>().ok())
                    }
                    _ => None,
                };
                html! {
                    <div class="group">
                        { item(key, name.clone(), detail, button, title, "") }
                        if let Some(port) = chat_port {
                            <div class="item conn chat-join">
                                <input type="number" min="1" max="50" class="short" value={joiners.to_string()}
                                       aria-label="How many chat clients to add"
                                       oninput={let joiners = joiners.clone(); Callback::from(move |e: InputEvent| {
                                           let value = e.target_unchecked_into::<web_sys::HtmlInputElement>().value();
                                           joiners.set(value.parse::<usize>().unwrap_or(3).clamp(1, 50));
                                       })} />
                                <button type="button" class="small add-chat"
                                        onclick={let n = *joiners; props.on_chat_clients.reform(move |_: MouseEvent| (port, n))}>
                                    { "add chat clients" }
                                </button>
                            </div>
                        }
                        // Open connections, then the closed ones (they stay until the server
                        // stops, so what a print-only server got can still be found).
                        { for e.connections.iter().map(|c| (c.id, c.peer.as_str(), true))
                            .chain(props.closed.iter().filter(|(id, _)| *id == e.id)
                                .flat_map(|(_, gone)| gone.iter().map(|(conn, peer)| (*conn, peer.as_str(), false))))
                            .map(|(conn, peer, open)| item(
                                ConvKey { endpoint: e.id, conn: Some(conn) },
                                format!("conn {} · {peer}", conn.saturating_sub(props.base.1)),
                                match (open, one_at_a_time, nick(ConvKey { endpoint: e.id, conn: Some(conn) })) {
                                    (true, _, Some(n)) => format!("in the chat as \"{n}\""),
                                    (true, true, None) => "being served".into(),
                                    (true, false, None) => "accepted connection".into(),
                                    (false, _, _) => "closed".into(),
                                },
                                open.then_some("Close"),
                                format!("Close conn {}", conn.saturating_sub(props.base.1)),
                                if open { "" } else { "closed" },
                            )) }
                        if let Some(n) = waiting {
                            <div class="item conn backlog" role="status">
                                { match n {
                                    1 => "1 client waits in the backlog: it is accepted when the one being served is done.".to_string(),
                                    n => format!("{n} clients wait in the backlog: the next is accepted when the one being served is done."),
                                } }
                            </div>
                        }
                    </div>
                }
            }) }
        </div>
    }
}
