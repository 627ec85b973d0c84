//! One-click set-ups for the labs in the handouts: each starts the lab's server and, where the
//! lab has one, a client connected to it, with the handout's values.

use shared::{
    Behaviour, Command, Concurrency, ConnectionPolicy, TcpClientSpec, TcpServerSpec, UdpClientSpec,
    UdpServerSpec,
};

/// A lab preset: commands run in order, each after the previous one succeeded.
pub struct Preset {
    /// A stable name for the page's markup (`data-preset`) and its tests.
    pub id: &'static str,
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
    /// The server serves one client at a time, as the handout's does, so the preset connects
    /// no client of its own: one would hold the server and leave the student's own client
    /// waiting in the backlog. The lab card offers the playground's client (to this port)
    /// after the student's.
    pub own_client_first: Option<u16>,
    /// What to do, in the handout's order.
    pub steps_to_try: &'static [&'static str],
    /// What the handout says the student should see.
    pub expect: &'static str,
}

/// The weather URL of the Goldsmiths workshop's Exercise 8, exactly as the handout gives it.
pub const WEATHER_URL: &str =
    "https://api.open-meteo.com/v1/forecast?latitude=51.47&longitude=0.0363&current_weather=true";

impl Preset {
    /// The commands to send, in order, with `key` for any Fernet key.
    pub fn commands(&self, key: &str) -> Vec<Command> {
        (self.steps)(key)
    }

    /// The port of the server the preset starts first.
    pub fn server_port(&self) -> Option<u16> {
        match self.commands("").first()? {
            Command::TcpServerStart(s) => Some(s.port),
            Command::UdpServerStart(s) => Some(s.port),
            _ => None,
        }
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
        id: "uppercase",
        name: "Uppercase server :12000",
        description: "Kurose & Ross: listen(1), one recv(1024), reply in upper case, close. \
                      One client at a time: run yours first.",
        steps: |_| {
            vec![Command::TcpServerStart(tcp_server(
                12000,
                Behaviour::Uppercase,
            ))]
        },
        chat_clients: None,
        fetch: None,
        own_client_first: Some(12000),
        steps_to_try: &[
            "Run the handout's client: python3 TCPClient.py (a terminal, or the Programs tab).",
            "Type a sentence in lower case and press Enter.",
        ],
        expect: "From Server: the sentence in upper case; the server closes the connection and \
                 waits for the next client.",
    },
    Preset {
        id: "thanks",
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
        own_client_first: None,
        steps_to_try: &[
            "Run the handout's client, or nc 127.0.0.1 8080, twice.",
            "Compare the two connections' ports in Endpoints.",
        ],
        expect: "Thanks for connecting, then the connection closes; each client has its own port.",
    },
    Preset {
        id: "print-only",
        name: "Print-only server :12014",
        description: "ELEN task 1: the server prints each sentence it receives and sends nothing \
                      back. A client is connected.",
        steps: |_| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    ..tcp_server(12014, Behaviour::PrintOnly)
                }),
                client(12014),
            ]
        },
        chat_clients: None,
        fetch: None,
        own_client_first: None,
        steps_to_try: &[
            "Send a sentence from the client below, or run your own client.",
            "Click the server in Endpoints to see what it printed.",
        ],
        expect: "The server shows each sentence; the client gets no reply.",
    },
    Preset {
        id: "echo-exit",
        name: "Echo until \"exit\" :12001",
        description: "The server echoes every message on one connection and closes when \
                      \"exit\" arrives. One client at a time: run yours first.",
        steps: |_| {
            vec![Command::TcpServerStart(TcpServerSpec {
                policy: persistent(Some("exit")),
                ..tcp_server(12001, Behaviour::Echo)
            })]
        },
        chat_clients: None,
        fetch: None,
        own_client_first: Some(12001),
        steps_to_try: &[
            "Run your client (ELEN task 3), or nc 127.0.0.1 12001.",
            "Send a few messages, then exit.",
        ],
        expect: "Every message comes back; after exit the server closes the connection.",
    },
    Preset {
        id: "udp-echo",
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
        own_client_first: None,
        steps_to_try: &[
            "Send from the client below, or run your UDP client (ELEN task 4).",
            "Look at the sender's address on each datagram the server got.",
        ],
        expect: "Each datagram comes back to the address it came from, whole.",
    },
    Preset {
        id: "ack",
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
        own_client_first: None,
        steps_to_try: &["Send a message from the client, or run the workshop's client."],
        expect: "Server response: ACK: and your message.",
    },
    Preset {
        id: "timing",
        name: "Timing: TCP and UDP :12012",
        description: "Goldsmiths Exercises 1 and 2: a TCP and a UDP echo server, a client for \
                      each. Every reply shows its round trip.",
        steps: |_| {
            vec![
                Command::TcpServerStart(TcpServerSpec {
                    policy: persistent(None),
                    concurrency: Concurrency::Concurrent,
                    ..tcp_server(12012, Behaviour::Echo)
                }),
                Command::UdpServerStart(UdpServerSpec {
                    port: 12013,
                    ..UdpServerSpec::default()
                }),
                client(12012),
                Command::UdpClientOpen(UdpClientSpec::to("127.0.0.1", 12013)),
            ]
        },
        chat_clients: None,
        fetch: None,
        own_client_first: None,
        steps_to_try: &[
            "Send the same message from the TCP client and from the UDP client.",
            "For many at once, use the TCP vs UDP tab.",
        ],
        expect: "Each reply's round trip in microseconds; TCP also paid for its handshake.",
    },
    Preset {
        id: "logging",
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
        own_client_first: None,
        steps_to_try: &[
            "Send a few messages.",
            "Open received.txt in the Files tab.",
        ],
        expect: "Each message echoed, and one line for it in received.txt.",
    },
    Preset {
        id: "file-tcp",
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
        own_client_first: None,
        steps_to_try: &["Upload a file in the Files tab, select the client, Send."],
        expect: "received.bin with the same SHA-256 as the file sent.",
    },
    Preset {
        id: "file-udp",
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
        own_client_first: None,
        steps_to_try: &[
            "Send a file from the client (Files tab).",
            "Then turn on simulated loss and send again.",
        ],
        expect: "What arrived beside what was sent: with loss, datagrams go missing.",
    },
    Preset {
        id: "chat",
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
        own_client_first: None,
        steps_to_try: &[
            "Say something from one member.",
            "Join with nc 127.0.0.1 12007.",
        ],
        expect: "Every other member gets the line; the sender does not.",
    },
    Preset {
        id: "fernet",
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
        own_client_first: None,
        steps_to_try: &["Send a message, then Send tampered."],
        expect: "Only tokens on the wire; a tampered token is refused with ERROR.",
    },
    Preset {
        id: "auth",
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
        own_client_first: None,
        steps_to_try: &[
            "Send from the client.",
            "Connect with nc 127.0.0.1 12009 and answer wrong.",
        ],
        expect: "The client is served; a wrong answer is refused and closed.",
    },
    Preset {
        id: "fernet-chat",
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
        own_client_first: None,
        steps_to_try: &["Say something from one member."],
        expect: "The server relays a token; the other member reads the text.",
    },
    Preset {
        id: "web-api",
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
        own_client_first: None,
        steps_to_try: &["Watch the fetch in the timeline, then click the server."],
        expect: "The server prints the weather JSON the client sent on.",
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
