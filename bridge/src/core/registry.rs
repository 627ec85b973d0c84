//! The registry: what the bridge runs right now, its live endpoints and their accepted
//! connections. Each socket task holds a [`Handle`] to its entry, through which everything it
//! does is recorded, and which takes the entry out when the socket closes (or when dropped,
//! should the task end any other way).
//!
//! Registry changes (an endpoint appears, gets its address, accepts, closes) are recorded as
//! events while the registry lock is held, and a new viewer takes its snapshot under the same
//! lock: the endpoint list it gets always agrees with the events it gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use shared::{
    ClosedBy, ConnId, ConnInfo, EndpointId, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind,
    EventKind, Target,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::control::Control;
use super::ctx::Ctx;
use super::event_log::{EventLog, Origin, Subscription};
use super::impair::Knob;
use super::lifeline::Lifeline;

struct ConnEntry {
    life: Lifeline,
    finished: CancellationToken,
    /// `None` for a traced program's connection, which only its program acts on.
    control: Option<mpsc::Sender<Control>>,
}

struct EndpointEntry {
    info: EndpointInfo,
    impair: Knob,
    life: Lifeline,
    finished: CancellationToken,
    control: Option<mpsc::Sender<Control>>,
    conns: BTreeMap<ConnId, ConnEntry>,
}

/// The live endpoints and connections; see the module header.
pub(crate) struct Registry {
    log: Arc<EventLog>,
    max_endpoints: usize,
    entries: Mutex<BTreeMap<EndpointId, EndpointEntry>>,
    next_endpoint: AtomicU32,
    next_conn: AtomicU32,
    /// Stopped when the bridge shuts down; every endpoint's lifeline descends from it.
    pub(crate) root: Lifeline,
    /// Told of every port an endpoint will use, before its first packet: the packet capture
    /// (issue 19) filters on them in the kernel.
    ports: std::sync::OnceLock<PortHook>,
    /// Told when a program is registered, before it can make its first call: the capture
    /// then keeps every loopback port (its sockets' ports are not known in time).
    programs: std::sync::OnceLock<ProgramHook>,
    /// Programs registered now: the capture asks for every batch of packets it reads, so
    /// this is counted rather than found among the entries.
    traced: AtomicUsize,
    /// Sockets closed in the last [`DEPARTED_FOR`] with their addresses, newest last: a
    /// traced program's packets are shown after its calls, and a short program's sockets have
    /// often closed by then (see [`Registry::owner`]).
    departed: Mutex<std::collections::VecDeque<Departed>>,
}

/// How long, and how many, closed sockets are remembered for [`Registry::owner`].
const DEPARTED_FOR: std::time::Duration = std::time::Duration::from_secs(2);
const DEPARTED_MAX: usize = 256;

/// A closed socket: its addresses (a listener's `peer` is `None`) and whose it was.
struct Departed {
    local: String,
    peer: Option<String>,
    endpoint: EndpointId,
    conn: Option<ConnId>,
    at: std::time::Instant,
}

/// See [`Registry::watch_ports`].
pub(crate) type PortHook = Box<dyn Fn(u16) + Send + Sync>;
/// See [`Registry::watch_programs`].
pub(crate) type ProgramHook = Box<dyn Fn() + Send + Sync>;

/// Whose a packet is: the endpoint (and connection) that sent it, or else received it, and
/// whether it sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // packets are captured on Linux only
pub(crate) struct Owner {
    pub(crate) endpoint: EndpointId,
    pub(crate) conn: Option<ConnId>,
    pub(crate) sent: bool,
    /// The socket has exactly the packet's addresses (a connection, a connected client), not
    /// only its own (a listener, an unconnected UDP socket).
    pub(crate) exact: bool,
}

impl Registry {
    /// Calls `hook` with every port an endpoint is given or learns from now on.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn watch_ports(&self, hook: PortHook) {
        let _ = self.ports.set(hook);
    }

    /// Calls `hook` whenever a program is registered from now on.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn watch_programs(&self, hook: ProgramHook) {
        let _ = self.programs.set(hook);
    }

    fn port_of(&self, addr: &str) {
        if let (Some(hook), Ok(addr)) = (self.ports.get(), addr.parse::<std::net::SocketAddr>()) {
            if addr.port() != 0 {
                hook(addr.port());
            }
        }
    }

    /// Whose the packet from `src` to `dst` is: its sender's socket if that is one of the
    /// bridge's, else its receiver's. For each side, a socket with exactly these addresses (a
    /// connection, a connected client) comes before one that only has the address (a
    /// listener, an unconnected UDP socket), and a live socket before one closed a moment ago.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn owner(&self, src: &str, dst: &str) -> Option<Owner> {
        let entries = self.entries();
        let departed = self.departed.lock().expect("departed lock");
        // (endpoint, connection, exact) of the socket at `from` talking to `to`.
        let find = |from: &str, to: &str| {
            let live_exact = entries.values().find_map(|e| {
                let conn = e
                    .info
                    .connections
                    .iter()
                    .find(|c| c.local == from && c.peer == to);
                match conn {
                    Some(c) => Some((e.info.id, Some(c.id))),
                    None => (e.info.local.as_deref() == Some(from)
                        && e.info.peer.as_deref() == Some(to))
                    .then_some((e.info.id, None)),
                }
            });
            let recent = || {
                departed
                    .iter()
                    .rev()
                    .filter(|d| d.at.elapsed() < DEPARTED_FOR)
            };
            let gone_exact = || {
                recent()
                    .find(|d| d.local == from && d.peer.as_deref() == Some(to))
                    .map(|d| (d.endpoint, d.conn))
            };
            let live_loose = || {
                entries.values().find_map(|e| {
                    (e.info.local.as_deref() == Some(from) && e.info.peer.is_none())
                        .then_some((e.info.id, None))
                })
            };
            let gone_loose = || {
                recent()
                    .find(|d| d.local == from && d.peer.is_none())
                    .map(|d| (d.endpoint, d.conn))
            };
            match live_exact.or_else(gone_exact) {
                Some(found) => Some((found, true)),
                None => live_loose().or_else(gone_loose).map(|found| (found, false)),
            }
        };
        let (((endpoint, conn), exact), sent) = match find(src, dst) {
            Some(found) => (found, true),
            None => (find(dst, src)?, false),
        };
        Some(Owner {
            endpoint,
            conn,
            sent,
            exact,
        })
    }

    /// Whether a program is traced now (its calls reach the bridge in batches, after the
    /// packets they send: the capture waits for them, see `wire::WAIT_FOR_SENDER`).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // packets are captured on Linux only
    pub(crate) fn traces_programs(&self) -> bool {
        self.traced.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn new(log: Arc<EventLog>, max_endpoints: usize, root: Lifeline) -> Arc<Self> {
        Arc::new(Registry {
            log,
            max_endpoints,
            entries: Mutex::new(BTreeMap::new()),
            next_endpoint: AtomicU32::new(1),
            next_conn: AtomicU32::new(1),
            root,
            ports: std::sync::OnceLock::new(),
            programs: std::sync::OnceLock::new(),
            traced: AtomicUsize::new(0),
            departed: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<EndpointId, EndpointEntry>> {
        self.entries.lock().expect("registry lock")
    }

    /// How many endpoints run now.
    pub(crate) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether a chat room of this bridge listens on `addr`: what a client gets from it is
    /// what others said, never a reply to its own send, so no round trip is measured.
    pub(crate) fn chat_room_at(&self, addr: &str) -> bool {
        self.entries().values().any(|e| {
            matches!(&e.info.spec, EndpointSpec::TcpServer(s) if s.behaviour == shared::Behaviour::Chat)
                && e.info.local.as_deref() == Some(addr)
        })
    }

    /// Whether this endpoint still runs.
    pub(crate) fn alive(&self, id: EndpointId) -> bool {
        self.entries().contains_key(&id)
    }

    /// The endpoints alive now and the event history, consistent with each other, plus a feed
    /// of what follows holding at most `budget` bytes of events.
    pub(crate) fn subscribe(&self, budget: usize) -> (Vec<EndpointInfo>, Subscription) {
        let entries = self.entries();
        let endpoints = entries.values().map(|e| e.info.clone()).collect();
        (endpoints, self.log.subscribe(budget))
    }

    /// Registers a new endpoint and records its socket() event.
    pub(crate) fn create_endpoint(
        self: &Arc<Self>,
        spec: EndpointSpec,
    ) -> Result<Handle, ErrorInfo> {
        self.create_endpoint_at(spec, None)
    }

    /// Registers a new endpoint and records its socket() event, made by the line `at` of a
    /// traced program.
    pub(crate) fn create_endpoint_at(
        self: &Arc<Self>,
        spec: EndpointSpec,
        at: Option<Box<shared::CodeAt>>,
    ) -> Result<Handle, ErrorInfo> {
        if let Some(impairment) = spec.impairment() {
            check_impairment(impairment)?;
        }
        // A client's server and a server's own port are watched before the first packet.
        let port = match &spec {
            EndpointSpec::TcpServer(s) => s.port,
            EndpointSpec::UdpServer(s) => s.port,
            EndpointSpec::TcpClient(c) => c.port,
            EndpointSpec::UdpClient(c) => c.port,
            EndpointSpec::Program(_) | EndpointSpec::Traced(_) => 0,
        };
        if let (Some(hook), true) = (self.ports.get(), port != 0) {
            hook(port);
        }
        if let (Some(hook), EndpointSpec::Program(_)) = (self.programs.get(), &spec) {
            hook();
        }
        let mut entries = self.entries();
        if entries.len() >= self.max_endpoints {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!(
                    "The bridge already runs {} servers and clients, its limit.",
                    self.max_endpoints
                ),
            )
            .with_hint("Close some, or reset, before creating more."));
        }
        let id = self.next_endpoint.fetch_add(1, Ordering::Relaxed);
        let life = self.root.child();
        let impair = Knob::new(spec.impairment().cloned());
        let finished = CancellationToken::new();
        if matches!(spec, EndpointSpec::Program(_)) {
            self.traced.fetch_add(1, Ordering::Relaxed);
        }
        entries.insert(
            id,
            EndpointEntry {
                info: EndpointInfo {
                    id,
                    spec: spec.clone(),
                    local: None,
                    peer: None,
                    connections: Vec::new(),
                },
                life: life.clone(),
                finished: finished.clone(),
                control: None,
                conns: BTreeMap::new(),
                impair: impair.clone(),
            },
        );
        let mut ctx = Ctx {
            origin: Origin {
                at,
                ..Origin::endpoint(id)
            },
            log: self.log.clone(),
            life,
        };
        ctx.emit(EventKind::Socket { spec });
        ctx.origin.at = None;
        Ok(Handle {
            registry: self.clone(),
            ctx,
            finished,
            closed: false,
            impair,
        })
    }

    /// Where commands for a client, a UDP server or an accepted connection go.
    pub(crate) fn control(&self, target: Target) -> Result<mpsc::Sender<Control>, ErrorInfo> {
        let entries = self.entries();
        let endpoint = entries
            .get(&target.endpoint)
            .ok_or_else(|| unknown_endpoint(target.endpoint))?;
        match target.conn {
            _ if endpoint.info.spec.is_programs() => Err(not_ours(target.endpoint)),
            Some(conn) => endpoint
                .conns
                .get(&conn)
                .ok_or_else(|| unknown_conn(target.endpoint, conn))?
                .control
                .clone()
                .ok_or_else(|| not_ours(target.endpoint)),
            None => endpoint.control.clone().ok_or_else(|| {
                ErrorInfo::new(
                    ErrorKind::Unsupported,
                    format!(
                        "Endpoint #{} is a TCP server: data goes over one of its accepted \
                         connections, not the listening socket.",
                        target.endpoint
                    ),
                )
                .with_hint("Name the connection (conn) to send on.")
            }),
        }
    }

    /// Stops an endpoint (a server with all its connections) or one accepted connection, and
    /// returns a token that is cancelled once it has closed.
    pub(crate) fn stop(
        &self,
        target: Target,
        by: ClosedBy,
        reason: &str,
    ) -> Result<CancellationToken, ErrorInfo> {
        let entries = self.entries();
        let endpoint = entries
            .get(&target.endpoint)
            .ok_or_else(|| unknown_endpoint(target.endpoint))?;
        if matches!(endpoint.info.spec, EndpointSpec::Traced(_)) {
            return Err(not_ours(target.endpoint));
        }
        let (life, finished) = match target.conn {
            Some(conn) => {
                let c = endpoint
                    .conns
                    .get(&conn)
                    .ok_or_else(|| unknown_conn(target.endpoint, conn))?;
                (&c.life, &c.finished)
            }
            None => (&endpoint.life, &endpoint.finished),
        };
        life.stop(by, reason);
        Ok(finished.clone())
    }

    /// Changes an endpoint's simulated network trouble.
    pub(crate) fn set_impairment(
        &self,
        endpoint: EndpointId,
        impairment: shared::Impairment,
    ) -> Result<(), ErrorInfo> {
        check_impairment(&impairment)?;
        let entries = self.entries();
        let entry = entries
            .get(&endpoint)
            .ok_or_else(|| unknown_endpoint(endpoint))?;
        entry.impair.set(impairment);
        Ok(())
    }

    /// Stops every endpoint; returns their finished tokens.
    pub(crate) fn stop_all(&self, by: ClosedBy, reason: &str) -> Vec<CancellationToken> {
        self.entries()
            .values()
            .map(|e| {
                e.life.stop(by, reason);
                e.finished.clone()
            })
            .collect()
    }
}

fn check_impairment(impairment: &shared::Impairment) -> Result<(), ErrorInfo> {
    impairment.check().map_err(|why| {
        ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("That simulated trouble is not possible: {why}."),
        )
    })
}

fn unknown_endpoint(id: EndpointId) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        format!("There is no endpoint #{id}: it was closed, or never existed."),
    )
}

/// A traced program's socket: only the program acts on it.
fn not_ours(id: EndpointId) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::Unsupported,
        format!("Endpoint #{id} is a socket of your own program: only the program sends on it or closes it."),
    )
    .with_hint("Stop the program to close its sockets.")
}

fn unknown_conn(id: EndpointId, conn: ConnId) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        format!("Server #{id} has no open connection #{conn}: it was closed, or never existed."),
    )
}

/// What a socket task holds while it runs, for an endpoint or one accepted connection of a
/// server (`ctx.origin.conn`): it records events, keeps the registry up to date, and takes the
/// entry out of the registry when it closes (or when dropped, should the task end any other
/// way).
pub(crate) struct Handle {
    registry: Arc<Registry>,
    /// Where the socket is, the log, and its lifeline: what the task's helpers take.
    pub(crate) ctx: Ctx,
    finished: CancellationToken,
    closed: bool,
    /// Simulated network trouble, shared by a server with its accepted connections.
    pub(crate) impair: Knob,
}

impl Handle {
    /// Records an event on this socket.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.ctx.emit(kind);
    }

    /// The socket's lifeline.
    pub(crate) fn life(&self) -> &Lifeline {
        &self.ctx.life
    }

    /// Records that the socket now has `local` (and, for a client, `peer`) and emits `kind`
    /// (bind or connect).
    pub(crate) fn set_addresses(&mut self, local: String, peer: Option<String>, kind: EventKind) {
        self.registry.port_of(&local);
        if let Some(peer) = &peer {
            self.registry.port_of(peer);
        }
        let mut entries = self.registry.entries();
        if let Some(entry) = entries.get_mut(&self.ctx.origin.endpoint) {
            entry.info.local = Some(local.clone());
            entry.info.peer.clone_from(&peer);
        }
        self.ctx.origin.local = Some(local);
        self.ctx.origin.peer = peer;
        self.ctx.emit(kind);
    }

    /// Records that the socket now has `local`, without an event: a traced UDP socket that
    /// the OS bound at its first sendto().
    pub(crate) fn learn_local(&mut self, local: String) {
        self.registry.port_of(&local);
        if let Some(entry) = self.registry.entries().get_mut(&self.ctx.origin.endpoint) {
            entry.info.local = Some(local.clone());
        }
        self.ctx.origin.local = Some(local);
    }

    /// Makes the endpoint reachable for send/shutdown commands.
    pub(crate) fn set_control(&self, control: mpsc::Sender<Control>) {
        if let Some(entry) = self.registry.entries().get_mut(&self.ctx.origin.endpoint) {
            entry.control = Some(control);
        }
    }

    /// A snapshot of this endpoint for a reply.
    pub(crate) fn info(&self) -> Option<EndpointInfo> {
        self.registry
            .entries()
            .get(&self.ctx.origin.endpoint)
            .map(|e| e.info.clone())
    }

    /// Registers a connection this server accepted and records accept(); returns its handle.
    pub(crate) fn accept(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        control: mpsc::Sender<Control>,
    ) -> Handle {
        self.accept_named(local.to_string(), peer.to_string(), Some(control))
    }

    /// [`Handle::accept`] with the addresses as text (a traced program reports them so) and
    /// no control for a traced program's connection; the accept() event carries this
    /// handle's line of code, if it has one.
    pub(crate) fn accept_named(
        &self,
        local: String,
        peer: String,
        control: Option<mpsc::Sender<Control>>,
    ) -> Handle {
        let id = self.registry.next_conn.fetch_add(1, Ordering::Relaxed);
        let life = self.ctx.life.child();
        let finished = CancellationToken::new();
        let mut ctx = Ctx {
            origin: Origin {
                endpoint: self.ctx.origin.endpoint,
                conn: Some(id),
                local: Some(local.clone()),
                peer: Some(peer.clone()),
                at: self.ctx.origin.at.clone(),
            },
            log: self.ctx.log.clone(),
            life: life.clone(),
        };
        let info = ConnInfo { id, peer, local };
        let mut entries = self.registry.entries();
        if let Some(entry) = entries.get_mut(&self.ctx.origin.endpoint) {
            entry.info.connections.push(info);
            entry.conns.insert(
                id,
                ConnEntry {
                    life,
                    finished: finished.clone(),
                    control,
                },
            );
        }
        ctx.emit(EventKind::Accept);
        ctx.origin.at = None;
        Handle {
            registry: self.registry.clone(),
            ctx,
            finished,
            closed: false,
            impair: self.impair.clone(),
        }
    }

    /// Records close() and takes the socket out of the registry.
    pub(crate) fn close(mut self, by: ClosedBy, reason: impl Into<String>) {
        self.finish(by, reason.into());
    }

    /// Closes with the reason the lifeline was stopped for.
    pub(crate) fn close_stopped(self) {
        let (by, reason) = self.ctx.life.reason();
        self.close(by, reason);
    }

    fn finish(&mut self, by: ClosedBy, reason: String) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut entries = self.registry.entries();
        let endpoint = self.ctx.origin.endpoint;
        let gone = match self.ctx.origin.conn {
            None => entries.remove(&endpoint).and_then(|e| {
                if matches!(e.info.spec, EndpointSpec::Program(_)) {
                    self.registry.traced.fetch_sub(1, Ordering::Relaxed);
                }
                Some((e.info.local?, e.info.peer))
            }),
            Some(conn) => entries.get_mut(&endpoint).and_then(|entry| {
                entry.conns.remove(&conn);
                let at = entry.info.connections.iter().position(|c| c.id == conn)?;
                let c = entry.info.connections.remove(at);
                Some((c.local, Some(c.peer)))
            }),
        };
        if let Some((local, peer)) = gone {
            let mut departed = self.registry.departed.lock().expect("departed lock");
            while departed.len() >= DEPARTED_MAX
                || departed
                    .front()
                    .is_some_and(|d| d.at.elapsed() > DEPARTED_FOR)
            {
                departed.pop_front();
            }
            departed.push_back(Departed {
                local,
                peer,
                endpoint,
                conn: self.ctx.origin.conn,
                at: std::time::Instant::now(),
            });
        }
        self.ctx.emit(EventKind::Close { by, reason });
        drop(entries);
        self.finished.cancel();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let what = match self.ctx.origin.conn {
            None => "the endpoint stopped unexpectedly",
            Some(_) => "the connection stopped unexpectedly",
        };
        self.finish(ClosedBy::Bridge, what.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "127.0.0.1:9000";
    const CLIENT: &str = "127.0.0.1:50000";

    /// Whose a packet is, as the capture asks while a program is traced: a listener's address
    /// alone is not its sender's for sure (an accept() not yet reported), a connection's
    /// addresses are, and a connection closed a moment ago still owns its last packets.
    #[test]
    fn a_packet_is_its_senders_by_both_addresses_also_just_after_close() {
        let registry = Registry::new(Arc::new(EventLog::new(100, 1 << 20)), 8, Lifeline::root());
        let mut listener = registry
            .create_endpoint(EndpointSpec::TcpServer(shared::TcpServerSpec::default()))
            .unwrap();
        listener.set_addresses(SERVER.into(), None, EventKind::Listen { backlog: 1 });
        let out = registry.owner(SERVER, CLIENT).unwrap();
        assert!(out.sent && !out.exact && out.conn.is_none(), "{out:?}");
        let conn = listener.accept_named(SERVER.into(), CLIENT.into(), None);
        let id = conn.ctx.origin.conn;
        let out = registry.owner(SERVER, CLIENT).unwrap();
        assert!(out.sent && out.exact && out.conn == id, "{out:?}");
        // The client is nobody's: the packet is its receiver's, the connection.
        let back = registry.owner(CLIENT, SERVER).unwrap();
        assert!(!back.sent && back.exact && back.conn == id, "{back:?}");
        conn.close(ClosedBy::Local, "done");
        let after = registry.owner(SERVER, CLIENT).unwrap();
        assert!(after.sent && after.exact && after.conn == id, "{after:?}");
        assert!(registry.owner("127.0.0.1:1", "127.0.0.1:2").is_none());
    }
}
