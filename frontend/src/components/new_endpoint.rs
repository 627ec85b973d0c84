//! Forms to create a TCP or UDP server or client with every option the bridge has, filled in
//! with the labs' values.

use crate::format;
use crate::vec_map::VecMap;

use shared::{
    Behaviour, Command, Concurrency, ConnectionPolicy, Impairment, TcpClientSpec, TcpServerSpec,
    UdpClientSpec, UdpServerSpec,
};
use web_sys::HtmlInputElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub on_command: Callback<(String, Command)>,
    /// Whether the bridge is connected (else the form cannot submit).
    pub enabled: bool,
    /// The port of the server the last lab preset started: the client forms aim at it.
    pub lab_port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TcpServer,
    UdpServer,
    TcpClient,
    UdpClient,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::TcpServer,
        Kind::UdpServer,
        Kind::TcpClient,
        Kind::UdpClient,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::TcpServer => "TCP server",
            Kind::UdpServer => "UDP server",
            Kind::TcpClient => "TCP client",
            Kind::UdpClient => "UDP client",
        }
    }
}

type Fields = VecMap<&'static str, String>;

fn defaults() -> Fields {
    [
        ("bind", "127.0.0.1"),
        ("host", "127.0.0.1"),
        ("port", "12000"),
        // A client's server port is its own field: the server form's port is where to listen.
        ("to_port", "12000"),
        ("backlog", "1"),
        ("behaviour", "echo"),
        ("behaviour_text", ""),
        ("policy", "one_shot"),
        ("quit_word", "exit"),
        ("concurrency", "one_at_a_time"),
        ("recv_buffer", "1024"),
        ("timeout_ms", "5000"),
        ("recv_timeout_ms", "2000"),
        ("connect", ""),
        ("log_file", ""),
        ("secret", ""),
        ("key", ""),
        ("loss", "0"),
        ("duplicate", "0"),
        ("reorder", "0"),
        ("delay", "0"),
        ("slow_read", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn number<T: std::str::FromStr>(fields: &Fields, name: &str, label: &str) -> Result<T, String> {
    fields[name]
        .trim()
        .parse()
        .map_err(|_| format!("{label} must be a whole number in range"))
}

/// The command the form describes, or what is wrong with it.
fn build(kind: Kind, f: &Fields) -> Result<Command, String> {
    let text = |name: &str| f[name].trim().to_string();
    let optional = |name: &str| {
        let value = f[name].trim();
        (!value.is_empty()).then(|| value.to_string())
    };
    let behaviour = || match f["behaviour"].as_str() {
        "uppercase" => Behaviour::Uppercase,
        "print_only" => Behaviour::PrintOnly,
        "manual" => Behaviour::Manual,
        "chat" => Behaviour::Chat,
        "prefix" => Behaviour::Prefix {
            prefix: f["behaviour_text"].clone(),
        },
        "fixed" => Behaviour::Fixed {
            reply: f["behaviour_text"].clone(),
        },
        "save_to_file" => Behaviour::SaveToFile {
            file: text("behaviour_text"),
        },
        "fernet_echo" => Behaviour::FernetEcho { key: text("key") },
        "discard" => Behaviour::Discard,
        _ => Behaviour::Echo,
    };
    let percent = |name: &str, label: &str| -> Result<u8, String> {
        let n: u8 = number(f, name, label)?;
        if n > 100 {
            return Err(format!("{label} is a percentage, 0 to 100"));
        }
        Ok(n)
    };
    let impairment = Impairment {
        loss_percent: percent("loss", "Loss")?,
        duplicate_percent: percent("duplicate", "Duplication")?,
        reorder_percent: percent("reorder", "Reordering")?,
        delay_ms: number(f, "delay", "Delay")?,
        read_bytes_per_second: number(f, "slow_read", "Reading speed")?,
    };
    let impair = (impairment != Impairment::default()).then_some(impairment);
    let port: u16 = match kind {
        Kind::TcpServer | Kind::UdpServer => number(f, "port", "Port")?,
        Kind::TcpClient | Kind::UdpClient => number(f, "to_port", "Server port")?,
    };
    let recv_buffer: usize = number(f, "recv_buffer", "recv() buffer")?;
    Ok(match kind {
        Kind::TcpServer => Command::TcpServerStart(TcpServerSpec {
            bind: text("bind"),
            port,
            backlog: number(f, "backlog", "Backlog")?,
            behaviour: behaviour(),
            policy: if f["policy"] == "persistent" {
                ConnectionPolicy::Persistent {
                    quit_word: optional("quit_word"),
                }
            } else {
                ConnectionPolicy::OneShot
            },
            concurrency: if f["concurrency"] == "concurrent" {
                Concurrency::Concurrent
            } else {
                Concurrency::OneAtATime
            },
            recv_buffer,
            log_file: optional("log_file"),
            secret: optional("secret"),
            impair: impair.clone(),
        }),
        Kind::UdpServer => Command::UdpServerStart(UdpServerSpec {
            bind: text("bind"),
            port,
            behaviour: behaviour(),
            recv_buffer,
            log_file: optional("log_file"),
            impair: impair.clone(),
        }),
        Kind::TcpClient => Command::TcpClientConnect(TcpClientSpec {
            timeout_ms: number(f, "timeout_ms", "Timeout")?,
            recv_buffer,
            secret: optional("secret"),
            fernet_key: optional("key"),
            impair: impair.clone(),
            ..TcpClientSpec::to(&text("host"), port)
        }),
        Kind::UdpClient => Command::UdpClientOpen(UdpClientSpec {
            connect: f["connect"] == "on",
            recv_timeout_ms: number(f, "recv_timeout_ms", "Reply timeout")?,
            recv_buffer,
            impair,
            ..UdpClientSpec::to(&text("host"), port)
        }),
    })
}

#[function_component]
pub fn NewEndpoint(props: &Props) -> Html {
    let kind = use_state(|| Kind::TcpServer);
    let fields = use_state(defaults);
    let problem = use_state(|| None::<String>);
    // A lab preset points the client forms at its server.
    {
        let fields = fields.clone();
        use_effect_with(props.lab_port, move |port| {
            if let Some(port) = port {
                let mut next = (*fields).clone();
                next.insert("to_port", port.to_string());
                fields.set(next);
            }
        });
    }

    let set = |name: &'static str| {
        let fields = fields.clone();
        Callback::from(move |value: String| {
            let mut next = (*fields).clone();
            next.insert(name, value);
            fields.set(next);
        })
    };
    let text = |name: &'static str, label: &str, hint: &str| {
        let on_input =
            set(name).reform(|e: InputEvent| e.target_unchecked_into::<HtmlInputElement>().value());
        let id = format!("new-{name}");
        html! {
            <label for={id.clone()}>
                <span>{ label }</span>
                <input id={id} type="text" value={fields[name].clone()} oninput={on_input} title={hint.to_string()} />
            </label>
        }
    };
    let choice = |name: &'static str, label: &str, options: &[(&str, &str)]| {
        let on_change = set(name).reform(|e: Event| {
            e.target_unchecked_into::<web_sys::HtmlSelectElement>()
                .value()
        });
        let id = format!("new-{name}");
        html! {
            <label for={id.clone()}>
                <span>{ label }</span>
                <select id={id} onchange={on_change}>
                    { for options.iter().map(|(value, text)| html! {
                        <option value={value.to_string()} selected={fields[name] == *value}>{ *text }</option>
                    }) }
                </select>
            </label>
        }
    };
    let on_generate = {
        let set = set("key");
        Callback::from(move |_: MouseEvent| {
            if let Some(key) = crate::token::random_fernet_key() {
                set.emit(key);
            }
        })
    };
    let on_copy = {
        let key = fields["key"].clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(window) = web_sys::window() {
                // For a student's Python script: Fernet(b"<this key>").
                let _ = window.navigator().clipboard().write_text(&key);
            }
        })
    };
    let key_field = html! {
        <div class="key-row">
            { text("key", "Fernet key", "32 bytes, URL-safe base64: the same on both sides") }
            <button type="button" class="small" onclick={on_generate}>{ "Generate" }</button>
            <button type="button" class="small" onclick={on_copy} disabled={fields["key"].is_empty()}>{ "Copy" }</button>
        </div>
    };
    let tcp = *kind == Kind::TcpServer;
    let behaviour = html! {
        <>
            { choice("behaviour", "Behaviour", &[("echo", "echo"), ("uppercase", "uppercase"),
                ("prefix", "prefix (\"ACK: \")"), ("fixed", "fixed reply"), ("print_only", "print only"),
                ("manual", "I reply by hand"), ("save_to_file", "save to a file"), ("chat", "chat room (TCP)"),
                ("fernet_echo", "encrypted echo (TCP)"), ("discard", "discard: speed test (TCP)")][..if tcp { 10 } else { 7 }]) }
            if matches!(fields["behaviour"].as_str(), "prefix" | "fixed" | "save_to_file") {
                { text("behaviour_text", match fields["behaviour"].as_str() {
                    "prefix" => "Prefix", "fixed" => "Reply", _ => "File name" }, "") }
            }
            if tcp && fields["behaviour"] == "fernet_echo" { { key_field.clone() } }
            { text("log_file", "Log to file (optional)", "append each message to this file of the data directory") }
        </>
    };
    let on_connect = {
        let set = set("connect");
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            set.emit(if on { "on".into() } else { String::new() });
        })
    };
    let form_fields = match *kind {
        Kind::TcpServer => html! {
            <>
                { text("bind", "Address", "127.0.0.1 keeps it on this machine") }
                { text("port", "Port", "0 picks any free port") }
                { text("backlog", "listen() backlog", "how many clients may wait to be accepted") }
                { behaviour }
                { choice("policy", "Connection", &[("one_shot", "one message, then close"), ("persistent", "open until closed")]) }
                if fields["policy"] == "persistent" {
                    { text("quit_word", "Quit word", "the server closes when this arrives; empty: never") }
                }
                { choice("concurrency", "Clients", &[("one_at_a_time", "one at a time"), ("concurrent", "many at once")]) }
                { text("recv_buffer", "recv() buffer (bytes)", "bytes read per recv() call") }
                { text("secret", "Shared secret (optional)", "clients must prove they know it before being served") }
            </>
        },
        Kind::UdpServer => html! {
            <>
                { text("bind", "Address", "127.0.0.1 keeps it on this machine") }
                { text("port", "Port", "0 picks any free port") }
                { behaviour }
                { text("recv_buffer", "recvfrom() buffer (bytes)", "a longer datagram is cut") }
            </>
        },
        Kind::TcpClient => html! {
            <>
                { text("host", "Server address", "") }
                { text("to_port", "Server port", "") }
                { text("timeout_ms", "connect() timeout (ms)", "") }
                { text("recv_buffer", "recv() buffer (bytes)", "") }
                <details class="extras">
                    <summary>{ "Authentication and encryption (optional)" }</summary>
                    { text("secret", "Shared secret", "answers the server's challenge") }
                    { key_field }
                </details>
            </>
        },
        Kind::UdpClient => html! {
            <>
                { text("host", "Server address", "") }
                { text("to_port", "Server port", "") }
                <label class="check"><input type="checkbox" checked={fields["connect"] == "on"} onchange={on_connect} />
                    <span>{ "connect() the socket (then a closed port shows as an error)" }</span></label>
                { text("recv_timeout_ms", "Wait for a reply (ms)", "") }
                { text("recv_buffer", "recvfrom() buffer (bytes)", "") }
            </>
        },
    };
    let on_submit = {
        let (kind, fields, problem, on_command) = (
            *kind,
            fields.clone(),
            problem.clone(),
            props.on_command.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match build(kind, &fields) {
                Ok(command) => {
                    problem.set(None);
                    let verb = if matches!(kind, Kind::TcpServer | Kind::UdpServer) {
                        "Start"
                    } else {
                        "Open"
                    };
                    on_command.emit((format!("{verb} {}", kind.label()), command));
                }
                Err(why) => problem.set(Some(why)),
            }
        })
    };
    html! {
        <form class="new-endpoint" onsubmit={on_submit} aria-label="Create a server or client">
            <h2>{ "New" }</h2>
            <div class="tabs" role="tablist">
                { for Kind::ALL.iter().map(|k| {
                    let on_click = { let kind = kind.clone(); let k = *k; Callback::from(move |_: MouseEvent| kind.set(k)) };
                    html! {
                        <button type="button" role="tab" aria-selected={(*kind == *k).to_string()}
                                class={format::on(*kind == *k, "active")} onclick={on_click}>{ k.label() }</button>
                    }
                }) }
            </div>
            <div class="fields">{ form_fields }</div>
            <details class="trouble">
                <summary>{ "Simulated network trouble from the start" }</summary>
                <div class="fields">
                    if matches!(*kind, Kind::UdpServer | Kind::UdpClient) {
                        { text("loss", "Loss %", "datagrams it sends that silently vanish") }
                        { text("duplicate", "Duplicates %", "datagrams it sends twice") }
                        { text("reorder", "Reordering %", "datagrams held back behind the next one") }
                    } else {
                        { text("slow_read", "Read at most (B/s)", "0: as fast as data comes; slower fills the sender's buffers") }
                    }
                    { text("delay", "Delay before each send (ms)", "") }
                </div>
            </details>
            if let Some(why) = &*problem { <p class="problem" role="alert">{ why }</p> }
            <button type="submit" class="primary" disabled={!props.enabled}>
                { if matches!(*kind, Kind::TcpServer | Kind::UdpServer) { format!("Start {}", kind.label()) } else { format!("Open {}", kind.label()) } }
            </button>
        </form>
    }
}
