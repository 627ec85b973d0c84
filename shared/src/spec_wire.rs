//! How [`EndpointSpec`], the four specs, [`Behaviour`], [`ConnectionPolicy`] and
//! [`Impairment`] are read from JSON: the derived wire format (internal tags, the labs'
//! defaults for missing fields), read with plain field reads ([`crate::json`]). The page reads
//! specs inside events; the bridge reads the same specs inside commands, through the same
//! code ([`via_json!`](crate::via_json)).

use crate::json::{Fields, FromJson, Json};
use crate::specs::{
    default_backlog, default_behaviour, default_bind, default_concurrency, default_connect_timeout,
    default_policy, default_recv_buffer, default_recv_timeout,
};
use crate::{
    Behaviour, Concurrency, ConnectionPolicy, EndpointSpec, Impairment, TcpClientSpec,
    TcpServerSpec, UdpClientSpec, UdpServerSpec,
};

impl FromJson for EndpointSpec {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let kind = f.tag("type")?;
        (match &*kind {
            "tcp_server" => TcpServerSpec::from_fields(&mut f).map(EndpointSpec::TcpServer),
            "udp_server" => UdpServerSpec::from_fields(&mut f).map(EndpointSpec::UdpServer),
            "tcp_client" => TcpClientSpec::from_fields(&mut f).map(EndpointSpec::TcpClient),
            "udp_client" => UdpClientSpec::from_fields(&mut f).map(EndpointSpec::UdpClient),
            "program" => crate::ProgramSpec::from_fields(&mut f).map(EndpointSpec::Program),
            "traced" => crate::TracedSpec::from_fields(&mut f).map(EndpointSpec::Traced),
            other => return Err(format!("unknown endpoint type `{other}`")),
        })
        .map_err(|e| format!("a {kind} spec {e}"))
    }
}

/// A spec read on its own (a command) or inside a tagged [`EndpointSpec`] (an event).
macro_rules! spec_from_json {
    ($($ty:ty),*) => {$(
        impl FromJson for $ty {
            fn from_json(value: Json<'_>) -> Result<Self, String> {
                <$ty>::from_fields(&mut Fields::of(value)?)
            }
        }
    )*};
}
spec_from_json!(TcpServerSpec, UdpServerSpec, TcpClientSpec, UdpClientSpec);

impl TcpServerSpec {
    fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(TcpServerSpec {
            bind: f.or("bind", default_bind)?,
            port: f.or("port", || 0)?,
            backlog: f.or("backlog", default_backlog)?,
            behaviour: f.or("behaviour", default_behaviour)?,
            policy: f.or("policy", default_policy)?,
            concurrency: f.or("concurrency", default_concurrency)?,
            recv_buffer: f.or("recv_buffer", default_recv_buffer)?,
            log_file: f.opt("log_file")?,
            secret: f.opt("secret")?,
            impair: f.opt("impair")?,
        })
    }
}

impl UdpServerSpec {
    fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(UdpServerSpec {
            bind: f.or("bind", default_bind)?,
            port: f.or("port", || 0)?,
            behaviour: f.or("behaviour", default_behaviour)?,
            recv_buffer: f.or("recv_buffer", default_recv_buffer)?,
            log_file: f.opt("log_file")?,
            impair: f.opt("impair")?,
        })
    }
}

impl TcpClientSpec {
    fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(TcpClientSpec {
            host: f.or("host", default_bind)?,
            port: f.req("port")?,
            timeout_ms: f.or("timeout_ms", default_connect_timeout)?,
            recv_buffer: f.or("recv_buffer", default_recv_buffer)?,
            secret: f.opt("secret")?,
            fernet_key: f.opt("fernet_key")?,
            impair: f.opt("impair")?,
        })
    }
}

impl UdpClientSpec {
    fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(UdpClientSpec {
            host: f.or("host", default_bind)?,
            port: f.req("port")?,
            connect: f.or("connect", || false)?,
            recv_timeout_ms: f.or("recv_timeout_ms", default_recv_timeout)?,
            recv_buffer: f.or("recv_buffer", default_recv_buffer)?,
            impair: f.opt("impair")?,
        })
    }
}

impl FromJson for Behaviour {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let kind = f.tag("kind")?;
        (|| {
            Ok(match &*kind {
                "print_only" => Behaviour::PrintOnly,
                "discard" => Behaviour::Discard,
                "echo" => Behaviour::Echo,
                "uppercase" => Behaviour::Uppercase,
                "manual" => Behaviour::Manual,
                "chat" => Behaviour::Chat,
                "prefix" => Behaviour::Prefix {
                    prefix: f.req("prefix")?,
                },
                "fixed" => Behaviour::Fixed {
                    reply: f.req("reply")?,
                },
                "save_to_file" => Behaviour::SaveToFile {
                    file: f.req("file")?,
                },
                "fernet_echo" => Behaviour::FernetEcho { key: f.req("key")? },
                other => return Err(format!("unknown behaviour `{other}`")),
            })
        })()
        .map_err(|e: String| format!("a {kind} behaviour {e}"))
    }
}

impl FromJson for ConnectionPolicy {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let kind = f.tag("kind")?;
        match &*kind {
            "one_shot" => Ok(ConnectionPolicy::OneShot),
            "persistent" => Ok(ConnectionPolicy::Persistent {
                quit_word: f.opt("quit_word")?,
            }),
            other => Err(format!("unknown connection policy `{other}`")),
        }
    }
}

impl FromJson for Impairment {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Impairment {
            loss_percent: f.or("loss_percent", || 0)?,
            duplicate_percent: f.or("duplicate_percent", || 0)?,
            reorder_percent: f.or("reorder_percent", || 0)?,
            delay_ms: f.or("delay_ms", || 0)?,
            read_bytes_per_second: f.or("read_bytes_per_second", || 0)?,
        })
    }
}

crate::json_names!(Concurrency {
    "one_at_a_time" => Concurrency::OneAtATime,
    "concurrent" => Concurrency::Concurrent,
});

crate::via_json!(
    EndpointSpec,
    TcpServerSpec,
    UdpServerSpec,
    TcpClientSpec,
    UdpClientSpec,
    Behaviour,
    ConnectionPolicy,
    Impairment,
    Concurrency,
);

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
