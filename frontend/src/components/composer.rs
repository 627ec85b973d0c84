//! The composer: type a message for the selected client or accepted connection and send it, as
//! text (with a chosen line ending) or hex. Enter sends; "Send again" repeats the last message.

use shared::{Command, DataInput, FetchSendCommand, SendBulkCommand, SendCommand, Target};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Where the composer sends.
#[derive(Debug, Clone, PartialEq)]
pub struct SendTarget {
    pub endpoint: u32,
    pub conn: Option<u32>,
    /// For UDP: the destination (a UDP server replies to its last sender).
    pub to: Option<String>,
    pub label: String,
    /// TCP has a write side to shut down; UDP does not.
    pub tcp: bool,
    /// A Fernet client encrypts what it sends, and can spoil a token on purpose.
    pub fernet: bool,
    /// Whether the peer reads lines (a chat server): then Enter adds a newline by default.
    pub lines: bool,
    /// Whether the peer is a discard server of this bridge: then a speed test is offered.
    pub discard: bool,
}

impl SendTarget {
    pub fn tcp(endpoint: u32, conn: Option<u32>, label: String) -> Self {
        SendTarget {
            endpoint,
            conn,
            to: None,
            label,
            tcp: true,
            fernet: false,
            lines: false,
            discard: false,
        }
    }

    pub fn udp(endpoint: u32, to: Option<String>, label: String) -> Self {
        SendTarget {
            to,
            tcp: false,
            ..SendTarget::tcp(endpoint, None, label)
        }
    }
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub target: Option<SendTarget>,
    pub on_command: Callback<(String, Command)>,
    /// Whether the bridge is connected: while it is not, nothing can be sent.
    pub enabled: bool,
}

const ENDINGS: [(&str, &str); 3] = [("none", ""), ("\\n", "\n"), ("\\r\\n", "\r\n")];

#[function_component]
pub fn Composer(props: &Props) -> Html {
    let text = use_state(String::new);
    let hex = use_state(|| false);
    let ending = use_state(|| 0usize);
    let last = use_state(|| None::<DataInput>);
    // The web-API exercise's URL, ready to fetch again (the handout's Exercise 8).
    let url = use_state(|| crate::labs::WEATHER_URL.to_string());

    // A line-based peer gets "\n" after each message unless the person chooses otherwise.
    {
        let ending = ending.clone();
        let lines = props.target.as_ref().is_some_and(|t| t.lines);
        use_effect_with(lines, move |lines| ending.set(usize::from(*lines)));
    }
    let Some(target) = props.target.clone() else {
        return html! {
            <div class="composer disabled">
                <p class="muted">{ "To send, select an open client or an accepted connection." }</p>
            </div>
        };
    };

    let send_data = {
        let on_command = props.on_command.clone();
        let target = target.clone();
        let last = last.clone();
        move |data: DataInput, tamper: bool| {
            let cmd = Command::Send(SendCommand {
                endpoint: target.endpoint,
                conn: target.conn,
                to: target.to.clone(),
                data: data.clone(),
                tamper,
            });
            on_command.emit((format!("Send on {}", target.label), cmd));
            last.set(Some(data));
        }
    };
    let send_with = |tamper: bool| {
        let text = text.clone();
        let (hex, ending) = (*hex, *ending);
        let send_data = send_data.clone();
        Callback::from(move |()| {
            if text.is_empty() {
                return;
            }
            let data = if hex {
                DataInput::Hex((*text).clone())
            } else {
                DataInput::Text(format!("{}{}", *text, ENDINGS[ending].1))
            };
            send_data(data, tamper);
            text.set(String::new());
        })
    };
    let send = send_with(false);
    let on_tamper = send_with(true).reform(|_: MouseEvent| ());
    let on_input = {
        let text = text.clone();
        Callback::from(move |e: InputEvent| {
            text.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_key = {
        let send = send.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" && !e.shift_key() {
                e.prevent_default();
                send.emit(());
            }
        })
    };
    let on_send = send.reform(|_: MouseEvent| ());
    let on_again = {
        let last = (*last).clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(data) = last.clone() {
                send_data(data, false);
            }
        })
    };
    let on_mode = {
        let hex = hex.clone();
        Callback::from(move |e: Event| {
            hex.set(e.target_unchecked_into::<HtmlInputElement>().value() == "hex")
        })
    };
    let on_ending = {
        let ending = ending.clone();
        Callback::from(move |e: Event| {
            let value = e
                .target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value();
            ending.set(value.parse().unwrap_or(0));
        })
    };
    let endpoint_target = Target {
        endpoint: target.endpoint,
        conn: target.conn,
    };
    let on_shutdown = props.on_command.reform(move |_: MouseEvent| {
        (
            "Shut down sending".to_string(),
            Command::ShutdownWrite(endpoint_target),
        )
    });
    let on_close = props
        .on_command
        .reform(move |_: MouseEvent| ("Close".to_string(), Command::Close(endpoint_target)));
    let on_url = {
        let url = url.clone();
        Callback::from(move |e: InputEvent| {
            url.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_fetch = {
        let (on_command, url, target) = (props.on_command.clone(), url.clone(), target.clone());
        Callback::from(move |_: MouseEvent| {
            let cmd = Command::FetchSend(FetchSendCommand {
                endpoint: target.endpoint,
                conn: target.conn,
                to: target.to.clone(),
                url: url.trim().to_string(),
            });
            on_command.emit((format!("Fetch {}", url.trim()), cmd));
        })
    };
    // A speed test: 100 MB of generated data as fast as TCP takes it (pair it with a server
    // whose behaviour is "discard"); the transfer report says how fast it went.
    let on_bulk = {
        let (on_command, endpoint) = (props.on_command.clone(), target.endpoint);
        Callback::from(move |_: MouseEvent| {
            let cmd = Command::SendBulk(SendBulkCommand {
                endpoint,
                bytes: 100_000_000,
            });
            on_command.emit(("Send 100 MB of test data".to_string(), cmd));
        })
    };
    let placeholder = if *hex {
        "hex bytes, e.g. 68 65 6c 6c 6f"
    } else {
        "message, Enter to send"
    };
    html! {
        // A disabled fieldset disables every control inside it.
        <fieldset class="composer" disabled={!props.enabled}>
            if !props.enabled {
                <p class="warn" id="composer-offline">{ "The bridge is not connected: nothing can be sent until it is back." }</p>
            }
            <div class="composer-row">
                <fieldset class="mode">
                    <legend class="sr-only">{ "Format" }</legend>
                    <label><input type="radio" name="mode" value="text" checked={!*hex} onchange={on_mode.clone()} />{ "text" }</label>
                    <label><input type="radio" name="mode" value="hex" checked={*hex} onchange={on_mode} />{ "hex" }</label>
                </fieldset>
                <label class="ending" title="Added after the text">{ "ending " }
                    <select onchange={on_ending} disabled={*hex} aria-label="Line ending">
                        { for ENDINGS.iter().enumerate().map(|(i, (name, _))| html! {
                            <option value={i.to_string()} selected={*ending == i}>{ *name }</option>
                        }) }
                    </select>
                </label>
            </div>
            <div class="composer-row">
                <input id="composer-input" class="message" type="text" value={(*text).clone()}
                       placeholder={placeholder} aria-label={format!("Message for {}", target.label)}
                       oninput={on_input} onkeydown={on_key} />
                <button type="button" id="send-button" class="primary" onclick={on_send}>{ "Send" }</button>
                <button type="button" onclick={on_again} disabled={last.is_none()}>{ "Send again" }</button>
                if target.fernet {
                    <button type="button" class="small" onclick={on_tamper}
                            title="Encrypt, flip one byte of the token, send: the other side must reject it">
                        { "Send tampered" }
                    </button>
                }
            </div>
            <div class="composer-row">
                <input class="url" type="text" value={(*url).clone()} oninput={on_url}
                       aria-label="URL to fetch and send" />
                <button type="button" class="small" onclick={on_fetch}
                        title="HTTP GET the URL, then send the body over this socket">{ "Fetch & send" }</button>
            </div>
            <div class="composer-row">
                if target.tcp {
                    <button type="button" class="small" onclick={on_shutdown}
                            title="shutdown(SHUT_WR): the other side reads EOF, you can still receive">
                        { "Shut down sending" }
                    </button>
                }
                if target.discard {
                    <button type="button" class="small" id="bulk-button" onclick={on_bulk}
                            title="Send 100 MB of generated data as fast as TCP takes it, then shut down sending">
                        { "Speed test: send 100 MB" }
                    </button>
                }
                <button type="button" class="small" onclick={on_close}>{ "Close" }</button>
                if let Some(to) = &target.to { <span class="muted">{ format!("sends to {to}") }</span> }
            </div>
        </fieldset>
    }
}
