//! The composer: type a message for the selected client or accepted connection and send it, as
//! text (with a chosen line ending) or hex. Enter sends; "Send again" repeats the last message.

use serde_json::json;
use shared::{Command, DataInput};
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
}

impl SendTarget {
    pub fn tcp(endpoint: u32, conn: Option<u32>, label: String) -> Self {
        SendTarget {
            endpoint,
            conn,
            to: None,
            label,
            tcp: true,
        }
    }

    pub fn udp(endpoint: u32, to: Option<String>, label: String) -> Self {
        SendTarget {
            endpoint,
            conn: None,
            to,
            label,
            tcp: false,
        }
    }
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub target: Option<SendTarget>,
    pub on_command: Callback<(String, Command)>,
}

const ENDINGS: [(&str, &str); 3] = [("none", ""), ("\\n", "\n"), ("\\r\\n", "\r\n")];

fn command(value: serde_json::Value) -> Command {
    serde_json::from_value(value).expect("a valid command")
}

#[function_component]
pub fn Composer(props: &Props) -> Html {
    let text = use_state(String::new);
    let hex = use_state(|| false);
    let ending = use_state(|| 0usize);
    let last = use_state(|| None::<DataInput>);

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
        move |data: DataInput| {
            let cmd = command(json!({
                "op": "send", "endpoint": target.endpoint, "conn": target.conn, "to": target.to,
                "data": data,
            }));
            on_command.emit((format!("Send on {}", target.label), cmd));
            last.set(Some(data));
        }
    };
    let send = {
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
            send_data(data);
            text.set(String::new());
        })
    };
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
                send_data(data);
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
    let endpoint_target = json!({"endpoint": target.endpoint, "conn": target.conn});
    let on_shutdown = {
        let on_command = props.on_command.clone();
        let mut spec = endpoint_target.clone();
        spec["op"] = json!("shutdown_write");
        Callback::from(move |_: MouseEvent| {
            on_command.emit(("Shut down sending".into(), command(spec.clone())))
        })
    };
    let on_close = {
        let on_command = props.on_command.clone();
        let mut spec = endpoint_target;
        spec["op"] = json!("close");
        Callback::from(move |_: MouseEvent| {
            on_command.emit(("Close".into(), command(spec.clone())))
        })
    };
    let placeholder = if *hex {
        "hex bytes, e.g. 68 65 6c 6c 6f"
    } else {
        "message, Enter to send"
    };
    html! {
        <div class="composer">
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
            </div>
            <div class="composer-row">
                if target.tcp {
                    <button type="button" class="small" onclick={on_shutdown}
                            title="shutdown(SHUT_WR): the other side reads EOF, you can still receive">
                        { "Shut down sending" }
                    </button>
                }
                <button type="button" class="small" onclick={on_close}>{ "Close" }</button>
                if let Some(to) = &target.to { <span class="muted">{ format!("sends to {to}") }</span> }
            </div>
        </div>
    }
}
