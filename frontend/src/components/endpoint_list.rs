//! The endpoints alive now: servers with their accepted connections beneath them, and clients.
//! Clicking one shows its conversation; buttons stop or close it.

use shared::{Command, EndpointInfo, EndpointSpec};
use yew::prelude::*;

use crate::format;
use crate::state::ConvKey;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub endpoints: Vec<EndpointInfo>,
    pub selected: Option<ConvKey>,
    pub on_select: Callback<ConvKey>,
    pub on_command: Callback<(String, Command)>,
    /// (chat server port, how many) chat clients to connect.
    pub on_chat_clients: Callback<(u16, usize)>,
}

#[function_component]
pub fn EndpointList(props: &Props) -> Html {
    let joiners = use_state(|| 3usize);
    let item = |key: ConvKey,
                label: String,
                detail: String,
                button: &'static str,
                title: String| {
        let selected = props.selected == Some(key);
        let on_select = props.on_select.reform(move |_: MouseEvent| key);
        let on_close = props
            .on_command
            .reform(move |_: MouseEvent| (title.clone(), Command::close(key.endpoint, key.conn)));
        html! {
            <div class={classes!("item", key.conn.map(|_| "conn"), selected.then_some("selected"))}>
                <button type="button" class="select" onclick={on_select}
                        aria-current={selected.then_some("true")}>
                    <span class="label">{ label }</span>
                    <span class="muted">{ detail }</span>
                </button>
                <button type="button" class="small" onclick={on_close}>{ button }</button>
            </div>
        }
    };
    html! {
        <div class="endpoint-list">
            <h2>{ "Endpoints" }</h2>
            if props.endpoints.is_empty() {
                <p class="muted">{ "Nothing runs yet. Pick a lab above, or create a server below." }</p>
            }
            { for props.endpoints.iter().map(|e| {
                let name = format::endpoint_name(e.id, &e.spec, e.local.as_deref());
                let key = ConvKey { endpoint: e.id, conn: None };
                let is_server = matches!(e.spec, EndpointSpec::TcpServer(_) | EndpointSpec::UdpServer(_));
                let detail = match (&e.spec, &e.local, &e.peer) {
                    (EndpointSpec::TcpServer(_) | EndpointSpec::UdpServer(_), _, _) => format::server_summary(&e.spec),
                    (_, Some(local), Some(peer)) => format!("{local} → {peer}"),
                    _ => format::server_summary(&e.spec),
                };
                let (button, title) = if is_server { ("Stop", format!("Stop {name}")) } else { ("Close", format!("Close {name}")) };
                let chat_port = match &e.spec {
                    EndpointSpec::TcpServer(s) if s.behaviour == shared::Behaviour::Chat => {
                        e.local.as_deref().and_then(|l| format::port(l).parse::<u16>().ok())
                    }
                    _ => None,
                };
                html! {
                    <div class="group">
                        { item(key, name.clone(), detail, button, title) }
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
                        { for e.connections.iter().map(|c| item(
                            ConvKey { endpoint: e.id, conn: Some(c.id) },
                            format!("#{} {}", c.id, c.peer),
                            "accepted connection".into(),
                            "Close",
                            format!("Close connection #{}", c.id),
                        )) }
                    </div>
                }
            }) }
        </div>
    }
}
