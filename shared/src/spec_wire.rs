//! How [`EndpointSpec`], [`Behaviour`] and [`ConnectionPolicy`] are read from JSON: the derived
//! wire format (internal tags, the labs' defaults for missing fields), read through plain
//! structs of optional fields, like events and messages, to keep serde's tag-buffering
//! machinery out of the WebAssembly page.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::commands::{
    default_backlog, default_behaviour, default_bind, default_concurrency, default_connect_timeout,
    default_policy, default_recv_buffer, default_recv_timeout,
};
use crate::{
    Behaviour, Concurrency, ConnectionPolicy, EndpointSpec, Impairment, TcpClientSpec,
    TcpServerSpec, UdpClientSpec, UdpServerSpec,
};

#[derive(Deserialize)]
struct SpecWire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    bind: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    backlog: Option<u32>,
    #[serde(default)]
    behaviour: Option<Behaviour>,
    #[serde(default)]
    policy: Option<ConnectionPolicy>,
    #[serde(default)]
    concurrency: Option<Concurrency>,
    #[serde(default)]
    recv_buffer: Option<usize>,
    #[serde(default)]
    log_file: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    impair: Option<Impairment>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    fernet_key: Option<String>,
    #[serde(default)]
    connect: Option<bool>,
    #[serde(default)]
    recv_timeout_ms: Option<u64>,
}

impl SpecWire {
    fn into_spec(self) -> Result<EndpointSpec, String> {
        let recv_buffer = self.recv_buffer.unwrap_or_else(default_recv_buffer);
        let server_port = self.port.unwrap_or(0);
        let client_port = || {
            self.port
                .ok_or_else(|| format!("a {} spec needs `port`", self.kind))
        };
        Ok(match self.kind.as_str() {
            "tcp_server" => EndpointSpec::TcpServer(TcpServerSpec {
                port: server_port,
                backlog: self.backlog.unwrap_or_else(default_backlog),
                policy: self.policy.unwrap_or_else(default_policy),
                concurrency: self.concurrency.unwrap_or_else(default_concurrency),
                recv_buffer,
                secret: self.secret,
                bind: self.bind.unwrap_or_else(default_bind),
                behaviour: self.behaviour.unwrap_or_else(default_behaviour),
                log_file: self.log_file,
                impair: self.impair,
            }),
            "udp_server" => EndpointSpec::UdpServer(UdpServerSpec {
                port: server_port,
                recv_buffer,
                bind: self.bind.unwrap_or_else(default_bind),
                behaviour: self.behaviour.unwrap_or_else(default_behaviour),
                log_file: self.log_file,
                impair: self.impair,
            }),
            "tcp_client" => EndpointSpec::TcpClient(TcpClientSpec {
                port: client_port()?,
                timeout_ms: self.timeout_ms.unwrap_or_else(default_connect_timeout),
                recv_buffer,
                host: self.host.unwrap_or_else(default_bind),
                secret: self.secret,
                fernet_key: self.fernet_key,
                impair: self.impair,
            }),
            "udp_client" => EndpointSpec::UdpClient(UdpClientSpec {
                port: client_port()?,
                connect: self.connect.unwrap_or(false),
                recv_timeout_ms: self.recv_timeout_ms.unwrap_or_else(default_recv_timeout),
                recv_buffer,
                host: self.host.unwrap_or_else(default_bind),
                impair: self.impair,
            }),
            other => return Err(format!("unknown endpoint type `{other}`")),
        })
    }
}

impl<'de> Deserialize<'de> for EndpointSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SpecWire::deserialize(deserializer)?
            .into_spec()
            .map_err(D::Error::custom)
    }
}

#[derive(Deserialize)]
struct BehaviourWire {
    kind: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

impl<'de> Deserialize<'de> for Behaviour {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = BehaviourWire::deserialize(deserializer)?;
        let missing =
            |field: &str| D::Error::custom(format!("a {} behaviour needs `{field}`", w.kind));
        Ok(match w.kind.as_str() {
            "print_only" => Behaviour::PrintOnly,
            "discard" => Behaviour::Discard,
            "echo" => Behaviour::Echo,
            "uppercase" => Behaviour::Uppercase,
            "manual" => Behaviour::Manual,
            "chat" => Behaviour::Chat,
            "prefix" => Behaviour::Prefix {
                prefix: w.prefix.clone().ok_or_else(|| missing("prefix"))?,
            },
            "fixed" => Behaviour::Fixed {
                reply: w.reply.clone().ok_or_else(|| missing("reply"))?,
            },
            "save_to_file" => Behaviour::SaveToFile {
                file: w.file.clone().ok_or_else(|| missing("file"))?,
            },
            "fernet_echo" => Behaviour::FernetEcho {
                key: w.key.clone().ok_or_else(|| missing("key"))?,
            },
            other => return Err(D::Error::custom(format!("unknown behaviour `{other}`"))),
        })
    }
}

#[derive(Deserialize)]
struct PolicyWire {
    kind: String,
    #[serde(default)]
    quit_word: Option<String>,
}

impl<'de> Deserialize<'de> for ConnectionPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = PolicyWire::deserialize(deserializer)?;
        match w.kind.as_str() {
            "one_shot" => Ok(ConnectionPolicy::OneShot),
            "persistent" => Ok(ConnectionPolicy::Persistent {
                quit_word: w.quit_word,
            }),
            other => Err(D::Error::custom(format!(
                "unknown connection policy `{other}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_back_with_the_lab_defaults() {
        let spec: EndpointSpec =
            serde_json::from_str(r#"{"type":"tcp_server","port":12000}"#).unwrap();
        assert_eq!(
            spec,
            EndpointSpec::TcpServer(TcpServerSpec {
                port: 12000,
                ..TcpServerSpec::default()
            })
        );
        let full = EndpointSpec::TcpServer(TcpServerSpec {
            behaviour: Behaviour::Prefix {
                prefix: "ACK: ".into(),
            },
            policy: ConnectionPolicy::Persistent {
                quit_word: Some("exit".into()),
            },
            secret: Some("s".into()),
            ..TcpServerSpec::default()
        });
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<EndpointSpec>(&json).unwrap(), full);
        assert!(serde_json::from_str::<EndpointSpec>(r#"{"type":"tcp_client"}"#).is_err());
        assert!(serde_json::from_str::<Behaviour>(r#"{"kind":"prefix"}"#).is_err());
    }
}
