//! One-click set-ups for the labs in the handouts: each starts the lab's server and, where the
//! lab has one, a client connected to it, with the handout's values.

use shared::{
    Behaviour, Command, Concurrency, ConnectionPolicy, TcpClientSpec, TcpServerSpec, UdpClientSpec,
    UdpServerSpec,
};

/// A lab preset: commands run in order, each after the previous one succeeded.
pub struct Preset {
    /// Short name for the menu.
    pub name: &'static str,
    /// What it sets up and what to try.
    pub description: &'static str,
    /// The commands, given a fresh Fernet key for the presets that need one.
    steps: fn(&str) -> Vec<Command>,
    /// Chat clients to connect afterwards: the chat server's port, how many, and whether they
    /// encrypt with the preset's key.
    pub chat_clients: Option<(u16, usize, bool)>,
    /// A URL the last client fetches and sends on (`fetch_send`) once everything is up.
    pub fetch: Option<&'static str>,
}

/// The weather URL of the Goldsmiths workshop's Exercise 8, exactly as the handout gives it.
pub const WEATHER_URL: &str =
    "https://api.open-meteo.com/v1/forecast?latitude=51.47&longitude=0.0363&current_weather=true";

impl Preset {
    /// The commands to send, in order, with `key` for any Fernet key.
    pub fn commands(&self, key: &str) -> Vec<Command> {
        (self.steps)(key)
    }
}

fn tcp_server(port: u16, behaviour: Behaviour) -> TcpServerSpec {
    TcpServerSpec {
        port,
        behaviour,
        ..TcpServerSpec::default()
    }
}

fn persistent(quit_word: Option<&str>) -> ConnectionPolicy {
    ConnectionPolicy::Persistent {
        quit_word: quit_word.map(str::to_string),
    }
}

fn client(port: u16) -> Command {
    Command::TcpClientConnect(TcpClientSpec::to("127.0.0.1", port))
}

/// Every preset, in the order of the labs.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "Uppercase server :12000",
        description: "Kurose & Ross: listen(1), one recv(1024), reply in upper case, close. \
                      A client is connected: send it a lowercase sentence.",
        steps: |_| {
            vec![
                Command::TcpServerStart(tcp_server(12000, Behaviour::Uppercase)),
                client(12000),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "\"Thanks for connecting\" :8080",
        description: "listen(5); every client gets \"Thanks for connecting\" and is closed. \
                      Connect twice and compare the clients' ephemeral ports.",
        steps: |_| {
            let reply = Behaviour::Fixed {
                reply: "Thanks for connecting".into(),
            };
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    backlog: 5,
                    ..tcp_server(8080, reply)
                }),
                client(8080),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "Echo until \"exit\" :12001",
        description: "The server echoes every message on one connection and closes when \
                      \"exit\" arrives. A client is connected.",
        steps: |_| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    policy: persistent(Some("exit")),
                    ..tcp_server(12001, Behaviour::Echo)
                }),
                client(12001),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "UDP echo :12002",
        description: "No connection: every datagram is echoed to its sender. A UDP client \
                      is ready to sendto().",
        steps: |_| {
            vec![
                Command::UdpServerStart(UdpServerSpec {
                    port: 12002,
                    ..UdpServerSpec::default()
                }),
                Command::UdpClientOpen(UdpClientSpec::to("127.0.0.1", 12002)),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "\"ACK: \" echo :12003",
        description: "Every message comes back as \"ACK: \" + message, until the client \
                      closes. A client is connected.",
        steps: |_| {
            let ack = Behaviour::Prefix {
                prefix: "ACK: ".into(),
            };
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    backlog: 5,
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    ..tcp_server(12003, ack)
                }),
                client(12003),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "Logging echo :12004",
        description: "Echoes every message and appends it to received.txt in the data \
                      directory (see the Files tab). A client is connected.",
        steps: |_| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    backlog: 5,
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    log_file: Some("received.txt".into()),
                    ..tcp_server(12004, Behaviour::Echo)
                }),
                client(12004),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "File transfer over TCP :12005",
        description: "A server saves whatever a client sends, until EOF, to received.bin. A \
                      client is connected: upload a file in the Files tab and send it.",
        steps: |_| {
            let save = Behaviour::SaveToFile {
                file: "received.bin".into(),
            };
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    backlog: 5,
                    concurrency: Concurrency::Concurrent,
                    ..tcp_server(12005, save)
                }),
                client(12005),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "File transfer over UDP :12006",
        description: "The same with numbered datagrams: the receiver reports what went \
                      missing or came out of order. A UDP client is ready.",
        steps: |_| {
            vec![
                Command::UdpServerStart(UdpServerSpec {
                    port: 12006,
                    behaviour: Behaviour::SaveToFile {
                        file: "datagrams.bin".into(),
                    },
                    ..UdpServerSpec::default()
                }),
                Command::UdpClientOpen(UdpClientSpec::to("127.0.0.1", 12006)),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "Chat room :12007",
        description: "Relays every line to everyone else, with nicknames, /who and join and \
                      leave notices. Three clients join; nc or Python can join too.",
        steps: |_| {
            vec![Command::TcpServerStart(TcpServerSpec {
                backlog: 16,
                concurrency: Concurrency::Concurrent,
                ..tcp_server(12007, Behaviour::Chat)
            })]
        },
        chat_clients: Some((12007, 3, false)),
        fetch: None,
    },
    Preset {
        name: "Encrypted echo :12008",
        description: "Fernet, as in Python's cryptography: the client encrypts, the server \
                      decrypts and encrypts its echo. Try \"Send tampered\".",
        steps: |key| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    ..tcp_server(12008, Behaviour::FernetEcho { key: key.into() })
                }),
                Command::TcpClientConnect(TcpClientSpec {
                    fernet_key: Some(key.into()),
                    ..TcpClientSpec::to("127.0.0.1", 12008)
                }),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "Authenticated server :12009",
        description: "Serves only clients that answer its challenge with the secret \
                      \"open sesame\" (HMAC, never sent in the clear). A client that knows it \
                      is connected.",
        steps: |_| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    secret: Some("open sesame".into()),
                    ..tcp_server(12009, Behaviour::Uppercase)
                }),
                Command::TcpClientConnect(TcpClientSpec {
                    secret: Some("open sesame".into()),
                    ..TcpClientSpec::to("127.0.0.1", 12009)
                }),
            ]
        },
        chat_clients: None,
        fetch: None,
    },
    Preset {
        name: "Encrypted chat :12010",
        description: "A chat room whose members share a Fernet key: the server relays only \
                      tokens, each member decrypts. Two members join.",
        steps: |_| {
            vec![Command::TcpServerStart(TcpServerSpec {
                backlog: 16,
                concurrency: Concurrency::Concurrent,
                ..tcp_server(12010, Behaviour::Chat)
            })]
        },
        chat_clients: Some((12010, 2, true)),
        fetch: None,
    },
    Preset {
        name: "Web API: weather over TCP :12011",
        description: "Goldsmiths Exercise 8: fetch the current weather from open-meteo over \
                      HTTPS and send it to a server over TCP. The client fetches the handout's \
                      URL once everything is up; the server prints the JSON it receives. Fetch \
                      again from the client's composer.",
        steps: |_| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    recv_buffer: 4096,
                    ..tcp_server(12011, Behaviour::PrintOnly)
                }),
                client(12011),
            ]
        },
        chat_clients: None,
        fetch: Some(WEATHER_URL),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_starts_a_server_first_and_uses_the_key() {
        for preset in PRESETS {
            let commands = preset.commands("the-key");
            assert!(
                matches!(
                    commands[0],
                    Command::TcpServerStart(_) | Command::UdpServerStart(_)
                ),
                "{}",
                preset.name
            );
        }
        let encrypted = PRESETS
            .iter()
            .find(|p| p.name.starts_with("Encrypted"))
            .unwrap();
        let json = serde_json::to_string(&encrypted.commands("the-key")).unwrap();
        assert_eq!(
            json.matches("the-key").count(),
            2,
            "server and client share the key"
        );
    }

    #[test]
    fn preset_ports_do_not_collide() {
        let mut ports = std::collections::BTreeSet::new();
        for preset in PRESETS {
            if let Command::TcpServerStart(s) = &preset.commands("k")[0] {
                assert!(ports.insert(s.port), "{}", s.port);
            }
            if let Command::UdpServerStart(s) = &preset.commands("k")[0] {
                assert!(ports.insert(s.port), "{}", s.port);
            }
        }
    }
}
