//! The hub: what the bridge runs right now. It owns the event log and the registry of live
//! endpoints and their accepted connections, and hands each endpoint task a handle through
//! which everything it does is recorded.
//!
//! Registry changes (an endpoint appears, gets its address, accepts, closes) are recorded as
//! events while the registry lock is held, and a new viewer takes its snapshot under the same
//! lock: the endpoint list it gets always agrees with the events it gets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use shared::{
    ClosedBy, ConnId, ConnInfo, EndpointId, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind,
    EventKind, Target, TransferReport,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::datadir::DataDir;
use crate::events::{EventLog, Origin, Subscription};
use crate::Config;

/// A request to a running socket from a command; the task answers through `done`.
pub(crate) enum Control {
    /// send()/sendall() on TCP; sendto() on UDP, to `to` or the default peer.
    Send {
        data: Vec<u8>,
        to: Option<SocketAddr>,
        /// Fernet clients: spoil the token on purpose.
        tamper: bool,
        done: oneshot::Sender<Result<usize, ErrorInfo>>,
    },
    /// shutdown(SHUT_WR).
    ShutdownWrite {
        done: oneshot::Sender<Result<(), ErrorInfo>>,
    },
    /// Send a file of the data directory (UDP: in datagrams of `datagram_size` bytes).
    SendFile {
        file: String,
        datagram_size: usize,
        done: oneshot::Sender<Result<TransferReport, ErrorInfo>>,
    },
    /// Send this many bytes of generated data (TCP), then shut down the write side.
    SendBulk {
        bytes: u64,
        done: oneshot::Sender<Result<TransferReport, ErrorInfo>>,
    },
}

impl Control {
    /// Answers a request this kind of socket cannot carry out.
    pub(crate) fn refuse(self, why: &str) {
        let error = || ErrorInfo::new(ErrorKind::Unsupported, why);
        match self {
            Control::Send { done, .. } => {
                let _ = done.send(Err(error()));
            }
            Control::ShutdownWrite { done } => {
                let _ = done.send(Err(error()));
            }
            Control::SendFile { done, .. } | Control::SendBulk { done, .. } => {
                let _ = done.send(Err(error()));
            }
        }
    }
}

/// How a socket task learns that it must close, and why. Stopping a server stops its
/// connections through child lifelines, which then report the server's reason.
#[derive(Clone)]
pub(crate) struct Lifeline {
    token: CancellationToken,
    why: Arc<OnceLock<(ClosedBy, String)>>,
    parent: Option<Arc<Lifeline>>,
}

impl Lifeline {
    pub(crate) fn root() -> Self {
        Lifeline {
            token: CancellationToken::new(),
            why: Arc::new(OnceLock::new()),
            parent: None,
        }
    }

    pub(crate) fn child(&self) -> Self {
        Lifeline {
            token: self.token.child_token(),
            why: Arc::new(OnceLock::new()),
            parent: Some(Arc::new(self.clone())),
        }
    }

    /// Asks the task to close; the first reason given wins.
    pub(crate) fn stop(&self, by: ClosedBy, reason: impl Into<String>) {
        let _ = self.why.set((by, reason.into()));
        self.token.cancel();
    }

    /// Resolves once the task must close.
    pub(crate) async fn stopped(&self) {
        self.token.cancelled().await
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was stopped (its own reason, else its parent's).
    pub(crate) fn reason(&self) -> (ClosedBy, String) {
        if let Some(why) = self.why.get() {
            return why.clone();
        }
        match &self.parent {
            Some(parent) => parent.reason(),
            None => (ClosedBy::Bridge, "the bridge is shutting down".into()),
        }
    }
}

struct ConnEntry {
    life: Lifeline,
    finished: CancellationToken,
    control: mpsc::Sender<Control>,
}

struct EndpointEntry {
    info: EndpointInfo,
    impair: crate::impair::Knob,
    life: Lifeline,
    finished: CancellationToken,
    control: Option<mpsc::Sender<Control>>,
    conns: BTreeMap<ConnId, ConnEntry>,
}

/// Shared state of the whole bridge.
pub(crate) struct Hub {
    pub(crate) config: Config,
    pub(crate) log: EventLog,
    /// Where logs and transferred files live.
    pub(crate) data: DataDir,
    /// Files on their way in from browsers.
    pub(crate) uploads: crate::upload::Uploads,
    registry: Mutex<BTreeMap<EndpointId, EndpointEntry>>,
    next_endpoint: AtomicU32,
    next_conn: AtomicU32,
    /// Stopped when the bridge shuts down; every endpoint's lifeline descends from it.
    pub(crate) root: Lifeline,
    /// Every endpoint and connection task, so shutdown can wait for all of them.
    pub(crate) tasks: TaskTracker,
    /// Cancelled by the next reset (and shutdown): work that is not an endpoint, such as a
    /// comparison, stops with it.
    work: Mutex<CancellationToken>,
    /// One comparison at a time: its sockets are outside the endpoint caps.
    pub(crate) comparing: tokio::sync::Semaphore,
}

impl Hub {
    pub(crate) fn new(config: Config) -> Arc<Hub> {
        let log = EventLog::new(
            config.history_events,
            config.history_bytes,
            config.live_capacity,
        );
        let root = Lifeline::root();
        Arc::new(Hub {
            work: Mutex::new(root.token.child_token()),
            comparing: tokio::sync::Semaphore::new(1),
            data: DataDir::new(config.data_dir.clone(), config.max_file_bytes),
            uploads: Default::default(),
            config,
            log,
            registry: Mutex::new(BTreeMap::new()),
            next_endpoint: AtomicU32::new(1),
            next_conn: AtomicU32::new(1),
            root,
            tasks: TaskTracker::new(),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, BTreeMap<EndpointId, EndpointEntry>> {
        self.registry.lock().expect("registry lock")
    }

    /// How many endpoints run now.
    pub(crate) fn endpoint_count(&self) -> usize {
        self.registry().len()
    }

    /// Whether this endpoint still runs.
    pub(crate) fn alive(&self, id: EndpointId) -> bool {
        self.registry().contains_key(&id)
    }

    /// Records a bridge-level event (endpoint 0).
    pub(crate) fn emit_bridge(&self, kind: EventKind) {
        self.log.emit(&Origin::endpoint(0), kind);
    }

    /// The endpoints alive now and the event history, consistent with each other, plus the
    /// live stream that follows.
    pub(crate) fn subscribe(&self) -> (Vec<EndpointInfo>, Subscription) {
        let registry = self.registry();
        let endpoints = registry.values().map(|e| e.info.clone()).collect();
        (endpoints, self.log.subscribe())
    }

    /// Registers a new endpoint and records its socket() event.
    pub(crate) fn create_endpoint(
        self: &Arc<Self>,
        spec: EndpointSpec,
    ) -> Result<EndpointHandle, ErrorInfo> {
        if let Some(impairment) = spec.impairment() {
            check_impairment(impairment)?;
        }
        let mut registry = self.registry();
        if registry.len() >= self.config.max_endpoints {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!(
                    "The bridge already runs {} servers and clients, its limit.",
                    self.config.max_endpoints
                ),
            )
            .with_hint("Close some, or reset, before creating more."));
        }
        let id = self.next_endpoint.fetch_add(1, Ordering::Relaxed);
        let life = self.root.child();
        let impair = crate::impair::Knob::new(spec.impairment().cloned());
        let finished = CancellationToken::new();
        registry.insert(
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
        let origin = Origin::endpoint(id);
        self.log.emit(&origin, EventKind::Socket { spec });
        Ok(EndpointHandle {
            hub: self.clone(),
            origin,
            life,
            finished,
            closed: false,
            impair,
        })
    }

    /// Where commands for a client, a UDP server or an accepted connection go.
    pub(crate) fn control(&self, target: Target) -> Result<mpsc::Sender<Control>, ErrorInfo> {
        let registry = self.registry();
        let endpoint = registry
            .get(&target.endpoint)
            .ok_or_else(|| unknown_endpoint(target.endpoint))?;
        match target.conn {
            Some(conn) => endpoint
                .conns
                .get(&conn)
                .map(|c| c.control.clone())
                .ok_or_else(|| unknown_conn(target.endpoint, conn)),
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
        let registry = self.registry();
        let endpoint = registry
            .get(&target.endpoint)
            .ok_or_else(|| unknown_endpoint(target.endpoint))?;
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
        let registry = self.registry();
        let entry = registry
            .get(&endpoint)
            .ok_or_else(|| unknown_endpoint(endpoint))?;
        entry.impair.set(impairment);
        Ok(())
    }

    /// The token that the next reset cancels.
    pub(crate) fn work(&self) -> CancellationToken {
        self.work.lock().expect("work lock").clone()
    }

    /// Stops every endpoint and all other work; returns the endpoints' finished tokens.
    pub(crate) fn stop_all(&self, by: ClosedBy, reason: &str) -> Vec<CancellationToken> {
        let next = self.root.token.child_token();
        std::mem::replace(&mut *self.work.lock().expect("work lock"), next).cancel();
        self.registry()
            .values()
            .map(|e| {
                e.life.stop(by, reason);
                e.finished.clone()
            })
            .collect()
    }

    fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
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

fn unknown_conn(id: EndpointId, conn: ConnId) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        format!("Server #{id} has no open connection #{conn}: it was closed, or never existed."),
    )
}

/// What an endpoint task holds while it runs: it records events, keeps the registry up to date,
/// and takes the endpoint out of the registry when it closes (or when dropped, should the task
/// end any other way).
pub(crate) struct EndpointHandle {
    pub(crate) hub: Arc<Hub>,
    pub(crate) origin: Origin,
    pub(crate) life: Lifeline,
    finished: CancellationToken,
    closed: bool,
    /// Simulated network trouble, shared with its accepted connections.
    pub(crate) impair: crate::impair::Knob,
}

impl EndpointHandle {
    /// Records an event on this endpoint.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.hub.log.emit(&self.origin, kind);
    }

    /// Records that the socket now has `local` (and, for a client, `peer`) and emits `kind`
    /// (bind or connect).
    pub(crate) fn set_addresses(&mut self, local: String, peer: Option<String>, kind: EventKind) {
        let mut registry = self.hub.registry();
        if let Some(entry) = registry.get_mut(&self.origin.endpoint) {
            entry.info.local = Some(local.clone());
            entry.info.peer.clone_from(&peer);
        }
        self.origin.local = Some(local);
        self.origin.peer = peer;
        self.hub.log.emit(&self.origin, kind);
    }

    /// Makes the endpoint reachable for send/shutdown commands.
    pub(crate) fn set_control(&self, control: mpsc::Sender<Control>) {
        if let Some(entry) = self.hub.registry().get_mut(&self.origin.endpoint) {
            entry.control = Some(control);
        }
    }

    /// A snapshot of this endpoint for a reply.
    pub(crate) fn info(&self) -> Option<EndpointInfo> {
        self.hub
            .registry()
            .get(&self.origin.endpoint)
            .map(|e| e.info.clone())
    }

    /// Registers an accepted connection and records accept().
    pub(crate) fn accept(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        control: mpsc::Sender<Control>,
    ) -> ConnHandle {
        let id = self.hub.next_conn_id();
        let life = self.life.child();
        let finished = CancellationToken::new();
        let origin = Origin {
            endpoint: self.origin.endpoint,
            conn: Some(id),
            local: Some(local.to_string()),
            peer: Some(peer.to_string()),
        };
        let info = ConnInfo {
            id,
            peer: peer.to_string(),
            local: local.to_string(),
        };
        let mut registry = self.hub.registry();
        if let Some(entry) = registry.get_mut(&self.origin.endpoint) {
            entry.info.connections.push(info);
            entry.conns.insert(
                id,
                ConnEntry {
                    life: life.clone(),
                    finished: finished.clone(),
                    control,
                },
            );
        }
        self.hub.log.emit(&origin, EventKind::Accept);
        ConnHandle {
            hub: self.hub.clone(),
            origin,
            life,
            finished,
            closed: false,
            impair: self.impair.clone(),
        }
    }

    /// Records close() and takes the endpoint out of the registry.
    pub(crate) fn close(mut self, by: ClosedBy, reason: impl Into<String>) {
        self.finish(by, reason.into());
    }

    /// Closes with the reason the lifeline was stopped for.
    pub(crate) fn close_stopped(self) {
        let (by, reason) = self.life.reason();
        self.close(by, reason);
    }

    fn finish(&mut self, by: ClosedBy, reason: String) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut registry = self.hub.registry();
        registry.remove(&self.origin.endpoint);
        self.hub
            .log
            .emit(&self.origin, EventKind::Close { by, reason });
        drop(registry);
        self.finished.cancel();
    }
}

impl Drop for EndpointHandle {
    fn drop(&mut self) {
        self.finish(ClosedBy::Bridge, "the endpoint stopped unexpectedly".into());
    }
}

/// Like [`EndpointHandle`], for one accepted connection of a TCP server.
pub(crate) struct ConnHandle {
    pub(crate) hub: Arc<Hub>,
    pub(crate) origin: Origin,
    pub(crate) life: Lifeline,
    finished: CancellationToken,
    closed: bool,
    /// The server's simulated trouble.
    pub(crate) impair: crate::impair::Knob,
}

impl ConnHandle {
    pub(crate) fn emit(&self, kind: EventKind) {
        self.hub.log.emit(&self.origin, kind);
    }

    pub(crate) fn close(mut self, by: ClosedBy, reason: impl Into<String>) {
        self.finish(by, reason.into());
    }

    pub(crate) fn close_stopped(self) {
        let (by, reason) = self.life.reason();
        self.close(by, reason);
    }

    fn finish(&mut self, by: ClosedBy, reason: String) {
        if self.closed {
            return;
        }
        self.closed = true;
        let conn = self.origin.conn.unwrap_or_default();
        let mut registry = self.hub.registry();
        if let Some(entry) = registry.get_mut(&self.origin.endpoint) {
            entry.conns.remove(&conn);
            entry.info.connections.retain(|c| c.id != conn);
        }
        self.hub
            .log
            .emit(&self.origin, EventKind::Close { by, reason });
        drop(registry);
        self.finished.cancel();
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        self.finish(
            ClosedBy::Bridge,
            "the connection stopped unexpectedly".into(),
        );
    }
}
