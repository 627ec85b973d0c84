//! The Python code mirror: for an endpoint as configured, the equivalent Python 3 program in the
//! style of the labs (stdlib `socket`; `threading` for concurrent servers; `cryptography` only
//! for Fernet). Servers print `ready <port>` once listening, so a script (or a test) can find a
//! port chosen by the OS; clients read lines from the keyboard like the labs' `input()`.
//!
//! The programs are templates in `templates/`, one readable Python file per kind (MiniJinja:
//! `{% if %}` for the parts a spec turns on, `{{ name }}` for its values). Every value from a
//! spec goes in as a Python literal made here (quotes, backslashes and control characters
//! escaped) or a number, and comments get no control characters, so nothing a spec holds can
//! leave its literal.

use std::sync::OnceLock;

use minijinja::{context, Environment};
use shared::{
    Behaviour, Concurrency, ConnectionPolicy, EndpointSpec, TcpClientSpec, TcpServerSpec,
    UdpClientSpec, UdpServerSpec,
};

/// The templates, named as `include` names them.
const TEMPLATES: [(&str, &str); 6] = [
    ("tcp_server.py", include_str!("templates/tcp_server.py")),
    ("udp_server.py", include_str!("templates/udp_server.py")),
    ("tcp_client.py", include_str!("templates/tcp_client.py")),
    ("udp_client.py", include_str!("templates/udp_client.py")),
    ("reply_to.py", include_str!("templates/reply_to.py")),
    (
        "authenticate_call.py",
        include_str!("templates/authenticate_call.py"),
    ),
];

/// The templates, parsed once.
fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        // A block tag on a line of its own leaves no blank line behind.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("the templates are valid");
        }
        env
    })
}

/// Renders one template with values that are already Python literals.
fn render(name: &str, values: minijinja::Value) -> String {
    environment()
        .get_template(name)
        .and_then(|t| t.render(values))
        .expect("the templates render with any values")
}

/// The program for an endpoint (public for the tests that run it with python3).
pub fn program(spec: &EndpointSpec) -> String {
    match spec {
        EndpointSpec::TcpServer(s) => tcp_server(s),
        EndpointSpec::UdpServer(s) => udp_server(s),
        EndpointSpec::TcpClient(c) => tcp_client(c),
        EndpointSpec::UdpClient(c) => udp_client(c),
        EndpointSpec::Program(_) | EndpointSpec::Traced(_) => {
            "# This is your own program: the playground shows its source and its calls,\n\
             # it does not write another one for it.\n"
                .to_string()
        }
    }
}

/// A file name for the program.
pub fn file_name(spec: &EndpointSpec) -> &'static str {
    match spec {
        EndpointSpec::TcpServer(_) => "tcp_server.py",
        EndpointSpec::UdpServer(_) => "udp_server.py",
        EndpointSpec::TcpClient(_) => "tcp_client.py",
        EndpointSpec::UdpClient(_) => "udp_client.py",
        EndpointSpec::Program(_) | EndpointSpec::Traced(_) => "your_program.py",
    }
}

/// A Python bytes literal.
fn bytes(text: &str) -> String {
    let mut out = String::from("b\"");
    for b in text.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// Milliseconds as Python seconds, exactly, and always a float: `5.0`, `2.5`, `0.25`.
fn seconds(ms: u64) -> String {
    let text = shared::decimal(ms, 3);
    if text.contains('.') {
        text
    } else {
        text + ".0"
    }
}

/// A Python string literal: quotes, backslashes and every control character escaped, so that
/// whatever a spec holds stays inside the literal (Rust's `{:?}` would write `\u{1b}`, which
/// Python does not read).
fn string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a `#` comment: on one line, whatever it holds (a newline in a host name must not
/// start a line of code).
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A behaviour's name in the templates, and its text (a prefix or a fixed reply) as a bytes
/// literal.
fn behaviour(behaviour: &Behaviour) -> (&'static str, Option<String>) {
    match behaviour {
        Behaviour::PrintOnly => ("print_only", None),
        Behaviour::Echo => ("echo", None),
        Behaviour::Uppercase => ("uppercase", None),
        Behaviour::Prefix { prefix } => ("prefix", Some(bytes(prefix))),
        Behaviour::Fixed { reply } => ("fixed", Some(bytes(reply))),
        Behaviour::Manual => ("manual", None),
        Behaviour::SaveToFile { .. } => ("save_to_file", None),
        Behaviour::Discard => ("discard", None),
        Behaviour::Chat => ("chat", None),
        Behaviour::FernetEcho { .. } => ("fernet_echo", None),
    }
}

/// "on 127.0.0.1:12000", or on any free port.
fn server_title(what: &str, bind: &str, port: u16) -> String {
    let port = match port {
        0 => "any free port".to_string(),
        port => port.to_string(),
    };
    comment(&format!("{what} on {bind}:{port}"))
}

fn tcp_server(s: &TcpServerSpec) -> String {
    let (kind, text) = behaviour(&s.behaviour);
    // Chat rooms, file receivers and counters serve everyone at once, as the bridge does.
    let concurrent = s.concurrency == Concurrency::Concurrent
        || matches!(
            s.behaviour,
            Behaviour::Chat | Behaviour::SaveToFile { .. } | Behaviour::Discard
        );
    let quit_word = match &s.policy {
        ConnectionPolicy::Persistent {
            quit_word: Some(word),
        } => Some(bytes(word.trim())),
        _ => None,
    };
    let (file, key) = match &s.behaviour {
        Behaviour::SaveToFile { file } => (Some(string(file)), None),
        Behaviour::FernetEcho { key } => (None, Some(bytes(key))),
        _ => (None, None),
    };
    render(
        "tcp_server.py",
        context! {
            title => server_title("TCP server", &s.bind, s.port),
            host => string(&s.bind),
            port => s.port,
            backlog => s.backlog,
            buffer => s.recv_buffer,
            concurrent,
            kind,
            text,
            file,
            key,
            secret => s.secret.as_deref().map(string),
            log_file => s.log_file.as_deref().map(string),
            quit_word,
            one_shot => s.policy == ConnectionPolicy::OneShot,
        },
    )
}

fn udp_server(s: &UdpServerSpec) -> String {
    let (kind, text) = behaviour(&s.behaviour);
    let file = match &s.behaviour {
        Behaviour::SaveToFile { file } => Some(string(file)),
        _ => None,
    };
    render(
        "udp_server.py",
        context! {
            title => server_title("UDP server", &s.bind, s.port),
            host => string(&s.bind),
            port => s.port,
            buffer => s.recv_buffer,
            kind,
            text,
            file,
            log_file => s.log_file.as_deref().map(string),
        },
    )
}

fn tcp_client(c: &TcpClientSpec) -> String {
    render(
        "tcp_client.py",
        context! {
            title => comment(&format!("TCP client of {}:{}", c.host, c.port)),
            host => string(&c.host),
            port => c.port,
            buffer => c.recv_buffer,
            timeout => seconds(c.timeout_ms),
            secret => c.secret.as_deref().map(string),
            key => c.fernet_key.as_deref().map(bytes),
        },
    )
}

fn udp_client(c: &UdpClientSpec) -> String {
    render(
        "udp_client.py",
        context! {
            title => comment(&format!("UDP client of {}:{}", c.host, c.port)),
            host => string(&c.host),
            port => c.port,
            buffer => c.recv_buffer,
            timeout => seconds(c.recv_timeout_ms),
            connect => c.connect,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_exact_seconds() {
        assert_eq!(seconds(5_000), "5.0");
        assert_eq!(seconds(2_500), "2.5");
        assert_eq!(seconds(250), "0.25");
        assert_eq!(seconds(1_001), "1.001");
    }

    #[test]
    fn nothing_in_a_spec_leaves_its_literal_or_comment() {
        assert_eq!(string("a\"b\\c\n\u{1b}é"), r#""a\"b\\c\n\u001bé""#);
        let spec = EndpointSpec::TcpClient(TcpClientSpec::to(
            "x\nimport os; os.system('echo pwned')\n#",
            12000,
        ));
        let code = program(&spec);
        assert!(
            !code.lines().any(|line| line.starts_with("import os")),
            "{code}"
        );
    }

    #[test]
    fn literals_are_python() {
        assert_eq!(bytes("ACK: \"x\"\n"), r#"b"ACK: \"x\"\n""#);
        assert_eq!(bytes("é"), r#"b"\xc3\xa9""#);
    }

    #[test]
    fn the_lab_server_reads_like_the_lab() {
        let spec = EndpointSpec::TcpServer(TcpServerSpec {
            port: 12000,
            behaviour: Behaviour::Uppercase,
            ..TcpServerSpec::default()
        });
        let py = program(&spec);
        for line in [
            "server.listen(BACKLOG)",
            "data = conn.recv(BUFFER)",
            "return data.upper()",
            "break  # one-shot",
            "serve(conn, addr)  # one client at a time",
        ] {
            assert!(py.contains(line), "missing {line:?} in\n{py}");
        }
        assert!(!py.contains("threading"));
    }
}
