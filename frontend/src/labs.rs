//! One-click set-ups for the labs in the handouts: each starts the lab's server and, where the
//! lab has one, a client connected to it, with the handout's values.

use shared::Command;

/// A lab preset: commands run in order, each after the previous one succeeded.
pub struct Preset {
    /// Short name for the menu.
    pub name: &'static str,
    /// What it sets up and what to try.
    pub description: &'static str,
    /// The commands, as the protocol's JSON.
    steps: &'static [&'static str],
}

impl Preset {
    /// The commands to send, in order.
    pub fn commands(&self) -> Vec<Command> {
        self.steps
            .iter()
            .map(|json| serde_json::from_str(json).expect("presets are valid commands"))
            .collect()
    }
}

/// Every preset, in the order of the labs.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "Uppercase server :12000",
        description: "Kurose & Ross: listen(1), one recv(1024), reply in upper case, close. \
                      A client is connected: send it a lowercase sentence.",
        steps: &[
            r#"{"op":"tcp_server_start","bind":"127.0.0.1","port":12000,"backlog":1,"behaviour":{"kind":"uppercase"},"policy":{"kind":"one_shot"},"concurrency":"one_at_a_time","recv_buffer":1024}"#,
            r#"{"op":"tcp_client_connect","host":"127.0.0.1","port":12000}"#,
        ],
    },
    Preset {
        name: "\"Thanks for connecting\" :8080",
        description: "listen(5); every client gets \"Thanks for connecting\" and is closed. \
                      Connect twice and compare the clients' ephemeral ports.",
        steps: &[
            r#"{"op":"tcp_server_start","bind":"127.0.0.1","port":8080,"backlog":5,"behaviour":{"kind":"fixed","reply":"Thanks for connecting"},"policy":{"kind":"one_shot"}}"#,
            r#"{"op":"tcp_client_connect","host":"127.0.0.1","port":8080}"#,
        ],
    },
    Preset {
        name: "Echo until \"exit\" :12001",
        description: "The server echoes every message on one connection and closes when \
                      \"exit\" arrives. A client is connected.",
        steps: &[
            r#"{"op":"tcp_server_start","bind":"127.0.0.1","port":12001,"backlog":1,"behaviour":{"kind":"echo"},"policy":{"kind":"persistent","quit_word":"exit"}}"#,
            r#"{"op":"tcp_client_connect","host":"127.0.0.1","port":12001}"#,
        ],
    },
    Preset {
        name: "UDP echo :12002",
        description: "No connection: every datagram is echoed to its sender. A UDP client \
                      is ready to sendto().",
        steps: &[
            r#"{"op":"udp_server_start","bind":"127.0.0.1","port":12002,"behaviour":{"kind":"echo"}}"#,
            r#"{"op":"udp_client_open","host":"127.0.0.1","port":12002}"#,
        ],
    },
    Preset {
        name: "\"ACK: \" echo :12003",
        description: "Every message comes back as \"ACK: \" + message, until the client \
                      closes. A client is connected.",
        steps: &[
            r#"{"op":"tcp_server_start","bind":"127.0.0.1","port":12003,"backlog":5,"behaviour":{"kind":"prefix","prefix":"ACK: "},"policy":{"kind":"persistent"},"concurrency":"concurrent"}"#,
            r#"{"op":"tcp_client_connect","host":"127.0.0.1","port":12003}"#,
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_starts_a_server_first() {
        for preset in PRESETS {
            let commands = preset.commands();
            assert!(
                matches!(
                    commands[0],
                    Command::TcpServerStart(_) | Command::UdpServerStart(_)
                ),
                "{}",
                preset.name
            );
        }
    }
}
