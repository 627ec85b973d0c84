//! The page's state, the actions that change it and the reducer. Everything the views show is
//! derived from the bridge's welcome snapshot and the events that follow, so a reload or a
//! second tab shows the same thing.
//!
//! The event log can hold 100,000 events, so it sits behind an `Rc<RefCell<_>>` that the
//! reducer appends to, and `version` counts changes: cloning the state for each action stays
//! cheap, and views re-render when `version` moves.

use std::cell::RefCell;

use crate::vec_map::{VecMap, VecSet};
use std::rc::Rc;

use shared::{
    CompareReport, ConnId, ConnInfo, EndpointId, EndpointInfo, EndpointSpec, ErrorInfo, Event,
    EventKind, FileInfo, Limits, Scope, Welcome,
};

use crate::format::Group;

/// One conversation: a client, a UDP endpoint, or one accepted connection of a TCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvKey {
    pub endpoint: EndpointId,
    pub conn: Option<ConnId>,
}

impl ConvKey {
    pub fn of(event: &Event) -> ConvKey {
        ConvKey {
            endpoint: event.endpoint,
            conn: event.conn,
        }
    }
}

/// The WebSocket to the bridge, as the status bar tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// The page was opened without the token (and the tab has none stored).
    NoToken,
    /// Opening the WebSocket.
    Connecting,
    /// Welcome received; live.
    Open,
    /// Closed or never reached; trying again after `in_ms`.
    Retrying {
        attempt: u32,
        in_ms: u32,
        /// Whether this tab was ever connected (then "reconnecting", else "not running").
        was_open: bool,
    },
    /// The bridge refused the session (wrong token, other protocol version): no retry.
    Refused(ErrorInfo),
}

/// What the welcome said about the bridge.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeInfo {
    pub version: String,
    pub started_unix_ms: u64,
    pub scope: Scope,
    pub limits: Limits,
    /// Where the data directory is, as the bridge said.
    pub data_dir: String,
    /// Whether it captures packets, and if not what would allow it.
    pub capture: Option<shared::CaptureStatus>,
}

/// What a view shows of a command that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// What was being done, such as "Start TCP server".
    pub title: String,
    pub error: ErrorInfo,
}

/// Every event since the welcome, indexed for the views.
#[derive(Debug, Default)]
pub struct Log {
    pub events: Vec<Rc<Event>>,
    /// Positions in `events` of each conversation's events.
    pub conversations: VecMap<ConvKey, Vec<usize>>,
    /// Positions of each conversation's packets on the wire and kernel counters: apart from
    /// its calls, so what a conversation last did (waiting in recv()) stays a call.
    pub wire: VecMap<ConvKey, Vec<usize>>,
    /// Some packet on the wire was seen (live, or in a recording replayed).
    pub packets: bool,
    /// Which conversation each (local, peer) address pair is, to find a packet's receiver.
    sockets: VecMap<(String, String), ConvKey>,
    /// Spec and address of every endpoint seen, including closed ones, for naming.
    pub specs: VecMap<EndpointId, (EndpointSpec, Option<String>)>,
    /// Events the bridge skipped for this tab because it read too slowly.
    pub missed: u64,
    /// Events older than the bridge's history when this tab connected.
    pub dropped: u64,
    /// Events before the last Clear or Reset: no longer shown, still exported.
    pub earlier: Vec<Rc<Event>>,
    /// The highest endpoint and connection ids before the last Reset: the page numbers what
    /// came after it from 1 again (the bridge's ids stay unique, so a late command can never
    /// reach a newer endpoint that took an old number).
    pub base: (EndpointId, ConnId),
    /// The highest endpoint and connection ids seen.
    seen: (EndpointId, ConnId),
    /// Chat members' nicknames: what a client of a chat server said it is called (its first
    /// line, or the last "/nick NAME"), and what each member of a chat server said; noted as
    /// each line arrives, so no render reads the whole history for them.
    pub nicks: VecMap<ConvKey, String>,
    /// Where the current lab began in `events` (the last preset; a Reset starts at 0): what
    /// the sequence diagram draws unless asked for more.
    pub lab_start: usize,
    /// Where in `events` the latest check began (its `check_started`): the Check panel reads
    /// its steps' verdicts from the events after it.
    pub check: Option<usize>,
}

impl Log {
    /// The number the page shows for an endpoint: counted from the last Reset.
    pub fn shown(&self, id: EndpointId) -> EndpointId {
        id.saturating_sub(self.base.0)
    }

    /// What the page calls a server's connection: "conn 3" (endpoints are "#3").
    pub fn conn_name(&self, conn: ConnId) -> String {
        format!("conn {}", conn.saturating_sub(self.base.1))
    }

    /// Notes a chat member's nickname from a line it sent (a client) or a chat server got.
    fn note_nick(&mut self, event: &Event) {
        let text = match (&event.kind, event.conn) {
            (EventKind::Send { data }, None) | (EventKind::Recv { data, .. }, Some(_)) => {
                &data.preview
            }
            _ => return,
        };
        let chat = |spec: &EndpointSpec| matches!(spec, EndpointSpec::TcpServer(s) if s.behaviour == shared::Behaviour::Chat);
        let member = match (self.specs.get(&event.endpoint), event.conn) {
            (Some((spec, _)), Some(_)) => chat(spec),
            (Some((EndpointSpec::TcpClient(_), _)), None) => {
                let peer = event.peer.as_deref().map(crate::format::port);
                self.specs.values().any(|(spec, local)| {
                    chat(spec)
                        && peer.is_some()
                        && local.as_deref().map(crate::format::port) == peer
                })
            }
            _ => false,
        };
        if !member {
            return;
        }
        let key = ConvKey::of(event);
        let mut nick = self.nicks.get(&key).cloned();
        for line in text.lines() {
            match line.strip_prefix("/nick ") {
                Some(name) => nick = Some(name.trim().to_string()),
                None if nick.is_none() && !line.starts_with('/') => {
                    nick = Some(line.trim().to_string())
                }
                None => {}
            }
        }
        if let Some(nick) = nick.filter(|n| !n.is_empty()) {
            self.nicks.insert(key, nick);
        }
    }

    fn push(&mut self, event: Rc<Event>) {
        self.note_nick(&event);
        self.seen.0 = self.seen.0.max(event.endpoint);
        self.seen.1 = self.seen.1.max(event.conn.unwrap_or(0));
        if matches!(event.kind, EventKind::Reset) {
            // Everything was closed: a new demo starts (Export still has what came before).
            self.base = self.seen;
            self.start_over();
        }
        if let EventKind::Socket { spec } = &event.kind {
            self.specs.insert(event.endpoint, (spec.clone(), None));
        }
        if matches!(event.kind, EventKind::Bind | EventKind::Connect) && event.conn.is_none() {
            if let Some(entry) = self.specs.get_mut(&event.endpoint) {
                entry.1.clone_from(&event.local);
            }
        }
        let index = self.events.len();
        if matches!(event.kind, EventKind::CheckStarted { .. }) {
            self.check = Some(index);
        }
        if event.endpoint != 0 {
            let key = ConvKey::of(&event);
            let packet = matches!(event.kind, EventKind::Packet(_));
            // Whose addresses these are: a call says best, a packet until a call does. (A
            // connection's data calls add nothing its connect or accept did not say.)
            let data = matches!(event.kind, EventKind::Send { .. } | EventKind::Recv { .. });
            if let (Some(local), Some(peer), false) = (&event.local, &event.peer, data) {
                let pair = (local.clone(), peer.clone());
                if !packet || !self.sockets.contains_key(&pair) {
                    self.sockets.insert(pair, key);
                }
            }
            if packet || matches!(event.kind, EventKind::TcpCounters(_)) {
                self.packets |= packet;
                push_to(&mut self.wire, key, index);
                // A packet is the receiving socket's too, where the page knows that socket.
                let receiver = match (&event.local, &event.peer) {
                    (Some(local), Some(peer)) if packet => {
                        self.sockets.get(&(peer.clone(), local.clone())).copied()
                    }
                    _ => None,
                };
                if let Some(receiver) = receiver.filter(|r| *r != key) {
                    push_to(&mut self.wire, receiver, index);
                }
            } else {
                push_to(&mut self.conversations, key, index);
            }
        }
        self.events.push(event);
    }

    /// Moves what is shown into `earlier`: the views start empty, the names stay known.
    fn start_over(&mut self) {
        self.sockets.clear();
        let mut earlier = std::mem::take(&mut self.earlier);
        earlier.append(&mut self.events);
        self.earlier = earlier;
        self.conversations.clear();
        self.wire.clear();
        self.lab_start = 0;
        self.check = None;
    }

    /// A name for an endpoint, also after it closed.
    pub fn name(&self, id: EndpointId) -> String {
        match self.specs.get(&id) {
            Some((spec, local)) => {
                crate::format::endpoint_name(self.shown(id), spec, local.as_deref())
            }
            None if id == 0 => "bridge".to_string(),
            None => format!("#{id}"),
        }
    }

    /// The program an endpoint is, or belongs to (a traced socket), if any.
    pub fn program_of(&self, id: EndpointId) -> Option<EndpointId> {
        match self.specs.get(&id).map(|(spec, _)| spec) {
            Some(EndpointSpec::Program(_)) => Some(id),
            Some(EndpointSpec::Traced(t)) => Some(t.program),
            _ => None,
        }
    }

    /// A TCP server's events and all its connections', in order, at most the last `limit`,
    /// and how many earlier were left out: what a print-only server printed stays there after
    /// the connection closed. (The conversations' lists are merged by hand: a sort brought
    /// its own copy of the sorting code into the page.)
    pub fn server_conversation(
        &self,
        endpoint: EndpointId,
        limit: usize,
        wire: bool,
    ) -> (Vec<Rc<Event>>, usize) {
        fn of(index: &VecMap<ConvKey, Vec<usize>>, endpoint: EndpointId) -> Vec<&Vec<usize>> {
            index
                .iter()
                .filter(|(key, _)| key.endpoint == endpoint)
                .map(|(_, at)| at)
                .collect()
        }
        let mut lists = of(&self.conversations, endpoint);
        if wire {
            lists.extend(of(&self.wire, endpoint));
        }
        self.latest(&lists, limit)
    }

    /// The events of these ascending lists of positions, merged in order, at most the last
    /// `limit`, and how many earlier were left out.
    fn latest(&self, lists: &[&Vec<usize>], limit: usize) -> (Vec<Rc<Event>>, usize) {
        if let [only] = lists {
            // One list (the usual case): only its tail is looked at.
            let skip = only.len().saturating_sub(limit);
            let events = only[skip..]
                .iter()
                .map(|i| self.events[*i].clone())
                .collect();
            return (events, skip);
        }
        let mut next = vec![0usize; lists.len()];
        let mut merged = Vec::new();
        loop {
            let mut best: Option<(usize, usize)> = None;
            for (list, at) in lists.iter().zip(&next) {
                if let Some(&index) = list.get(*at) {
                    if best.is_none_or(|(b, _)| index < b) {
                        best = Some((index, 0));
                    }
                }
            }
            let Some((index, _)) = best else { break };
            for (list, at) in lists.iter().zip(next.iter_mut()) {
                if list.get(*at) == Some(&index) {
                    *at += 1;
                }
            }
            place_by_time(&mut merged, index, &self.events);
        }
        let skip = merged.len().saturating_sub(limit);
        let events = merged[skip..]
            .iter()
            .map(|i| self.events[*i].clone())
            .collect();
        (events, skip)
    }

    /// The connections of a server seen in the log (accepted, whether still open or not),
    /// with the client's address, by id.
    pub fn connections_of(&self, endpoint: EndpointId) -> Vec<(ConnId, String)> {
        let mut conns: VecMap<ConnId, String> = VecMap::new();
        for key in self
            .conversations
            .keys()
            .filter(|key| key.endpoint == endpoint)
        {
            if let Some(conn) = key.conn {
                let peer = self
                    .last_of(*key)
                    .and_then(|e| e.peer.clone())
                    .unwrap_or_default();
                conns.insert(conn, peer);
            }
        }
        conns.iter().map(|(c, p)| (*c, p.clone())).collect()
    }

    /// The last event of a conversation.
    pub fn last_of(&self, key: ConvKey) -> Option<&Rc<Event>> {
        self.conversations
            .get(&key)
            .and_then(|indexes| indexes.last())
            .map(|i| &self.events[*i])
    }

    /// A conversation's events (with its packets if `wire`), at most the last `limit`, and
    /// how many earlier were left out.
    pub fn conversation(&self, key: ConvKey, limit: usize, wire: bool) -> (Vec<Rc<Event>>, usize) {
        let mut lists: Vec<&Vec<usize>> = self.conversations.get(&key).into_iter().collect();
        if wire {
            lists.extend(self.wire.get(&key));
        }
        self.latest(&lists, limit)
    }

    /// The kernel's last counters of a connection (when packets are not captured), and when.
    pub fn counters(&self, key: ConvKey) -> Option<(shared::TcpCounters, u64)> {
        self.wire.get(&key)?.iter().rev().find_map(|i| {
            let e = &self.events[*i];
            match &e.kind {
                EventKind::TcpCounters(c) => Some((*c, e.t_us)),
                _ => None,
            }
        })
    }

    /// The timeline's rows: positions of the events the filter accepts, in the order they
    /// happened ([`place_by_time`]).
    pub fn filtered(&self, filter: &Filter) -> Vec<usize> {
        let mut rows: Vec<usize> = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            // A program's own close follows its exit, which already says it ended: no
            // socket call, and not a second row a student would read as one.
            let program_closed = matches!(e.kind, EventKind::Close { .. })
                && e.conn.is_none()
                && self.program_of(e.endpoint) == Some(e.endpoint);
            if filter.accepts(e) && !program_closed {
                place_by_time(&mut rows, i, &self.events);
            }
        }
        rows
    }
}

/// Adds an event's position to a conversation's list.
fn push_to(index: &mut VecMap<ConvKey, Vec<usize>>, key: ConvKey, at: usize) {
    match index.get_mut(&key) {
        Some(list) => list.push(at),
        None => {
            index.insert(key, vec![at]);
        }
    }
}

/// The timeline's filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Only this endpoint's events.
    pub endpoint: Option<EndpointId>,
    /// Only these groups of events.
    pub groups: VecSet<Group>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            endpoint: None,
            groups: Group::ALL.into_iter().collect(),
        }
    }
}

impl Filter {
    pub fn accepts(&self, event: &Event) -> bool {
        self.endpoint.is_none_or(|id| event.endpoint == id)
            && self.groups.contains(&Group::of(&event.kind))
    }
}

/// Everything the page shows. Compared field by field (derived, so a new field counts); the
/// event log by identity and `version`, not by content.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub link: Link,
    pub bridge: Option<BridgeInfo>,
    /// Endpoints alive now, with their open connections.
    pub endpoints: VecMap<EndpointId, EndpointInfo>,
    pub log: SharedLog,
    /// Counts changes to `log`.
    pub version: u64,
    /// The conversation shown in the middle.
    pub selected: Option<ConvKey>,
    pub notice: Option<Notice>,
    /// What changed without the person asking, said once: the page came back to a bridge.
    pub info: Option<String>,
    /// The data directory, as last listed.
    pub files: Vec<FileInfo>,
    /// Uploads from this tab: file name, bytes so far, size, and the SHA-256 once done.
    pub uploads: VecMap<String, Upload>,
    /// The last TCP-versus-UDP comparison.
    pub comparison: Option<Rc<CompareReport>>,
    /// The checks the bridge has (`check_list`), once asked for.
    pub checks: Option<Rc<Vec<shared::CheckInfo>>>,
    /// A check of this page's runs (its reply has not come yet).
    pub checking: bool,
    /// Transfer reports seen: when it moves, the file list is worth listing again.
    pub transfers: u64,
    /// The Python mirror of an endpoint, as the bridge wrote it: endpoint, file name, code.
    pub program: Option<Rc<(EndpointId, String, String)>>,
    /// The source of a traced program (program endpoint, file, code), for the Source tab.
    pub source: Option<Rc<(EndpointId, String, String)>>,
    /// The event picked elsewhere (the sequence diagram), shown in the timeline.
    pub highlight: Option<u64>,
    /// A recording being replayed instead of the live bridge.
    pub replay: Option<Rc<Replay>>,
    /// Slow motion: events received and not shown yet.
    pub queued: usize,
}

/// A recording on screen: its events, and how many of them are shown. Each step shares the
/// recording's events (and the log shares each event) instead of copying them.
#[derive(Debug)]
pub struct Replay {
    pub events: Rc<[Rc<Event>]>,
    pub position: usize,
}

/// The same recording at the same step: events never change once read, so comparing the
/// list's address says what comparing every event would, without that comparison's code in
/// the page.
impl PartialEq for Replay {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.events, &other.events) && self.position == other.position
    }
}

/// An upload from this tab, as its progress bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub bytes: u64,
    pub size: u64,
    pub sha256: Option<String>,
    pub failed: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            link: Link::Connecting,
            bridge: None,
            endpoints: VecMap::new(),
            log: SharedLog::default(),
            version: 0,
            selected: None,
            notice: None,
            info: None,
            files: Vec::new(),
            uploads: VecMap::new(),
            comparison: None,
            checks: None,
            checking: false,
            transfers: 0,
            program: None,
            source: None,
            highlight: None,
            replay: None,
            queued: 0,
        }
    }
}

/// Events handed to a view. Two lists are equal when they hold the same events (the same
/// `Rc`s, in order): a logged event never changes, so this says what comparing contents
/// would, and the page carries no comparison of every kind of event.
#[derive(Debug, Clone, Default)]
pub struct Events(pub Vec<Rc<Event>>);

impl PartialEq for Events {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| Rc::ptr_eq(a, b))
    }
}

impl std::ops::Deref for Events {
    type Target = [Rc<Event>];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The event log, shared (not cloned) by every copy of the state. Two are equal when they are
/// the same log: its changes are counted by `State::version`.
#[derive(Debug, Clone, Default)]
pub struct SharedLog(Rc<RefCell<Log>>);

impl PartialEq for SharedLog {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl SharedLog {
    /// Which log this is, for memo keys.
    pub fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }
}

impl std::ops::Deref for SharedLog {
    type Target = RefCell<Log>;

    fn deref(&self) -> &RefCell<Log> {
        &self.0
    }
}

/// What can happen.
#[derive(Debug, Clone)]
pub enum Action {
    NoToken,
    Connecting,
    Welcome(Box<Welcome>),
    Retrying {
        attempt: u32,
        in_ms: u32,
    },
    Refused(ErrorInfo),
    Events(Vec<Event>),
    Missed(u64),
    /// A command failed; show why.
    Failed {
        title: String,
        error: ErrorInfo,
    },
    /// A command created an endpoint; a new client's conversation gets selected.
    Created(EndpointInfo),
    Select(Option<ConvKey>),
    DismissNotice,
    DismissInfo,
    /// An endpoint's simulated trouble was changed (by this page).
    Impaired(EndpointId, shared::Impairment),
    /// The data directory was listed.
    Files(Vec<FileInfo>),
    /// An upload moved on (or ended: `sha256` set, or `failed`).
    Upload {
        file: String,
        upload: Upload,
    },
    /// A comparison finished.
    Compared(Box<CompareReport>),
    /// The bridge's checks were listed.
    Checks(Vec<shared::CheckInfo>),
    /// This page's check began (true) or its reply came (false).
    Checking(bool),
    /// An event was picked: highlight it in the timeline and show its conversation.
    Highlight {
        seq: u64,
        key: ConvKey,
    },
    /// Show a recording instead of the bridge, from its start.
    ReplayLoad(Box<shared::Recording>),
    /// Show the first `n` events of the recording.
    ReplayTo(usize),
    /// The Python mirror of an endpoint arrived.
    Program {
        endpoint: EndpointId,
        file: String,
        code: String,
    },
    /// The source of a traced program arrived.
    Source {
        program: EndpointId,
        file: String,
        code: String,
    },
    /// A new demo: the views start empty (what runs stays, and so does the history, for
    /// Export).
    Clear,
    /// A preset set up a new lab: the sequence diagram starts there.
    LabStarted,
    /// Slow motion: how many events wait to be shown.
    Queued(usize),
    /// Slow motion showed this event: mark it in the timeline (without changing what is
    /// selected).
    Mark(u64),
}

impl State {
    /// Applies one action. Pure but for appending to the shared log.
    pub fn apply(mut self, action: Action) -> State {
        match action {
            Action::NoToken => self.link = Link::NoToken,
            Action::Connecting => {
                if !matches!(self.link, Link::Retrying { .. }) {
                    self.link = Link::Connecting;
                }
            }
            Action::Retrying { attempt, in_ms } => {
                let was_open = match &self.link {
                    Link::Open => true,
                    Link::Retrying { was_open, .. } => *was_open,
                    _ => false,
                };
                self.link = Link::Retrying {
                    attempt,
                    in_ms,
                    was_open,
                };
            }
            Action::Refused(error) => self.link = Link::Refused(error),
            // While a recording is on screen, the live bridge does not draw over it.
            Action::Welcome(_) | Action::Events(_) | Action::Missed(_) if self.replay.is_some() => {
            }
            Action::ReplayLoad(recording) => {
                let started_unix_ms = recording.started_unix_ms;
                // What was selected and said belongs to the live bridge, not to the recording.
                self.selected = None;
                self.notice = None;
                self.highlight = None;
                self.replay = Some(Rc::new(Replay {
                    events: recording.events.into_iter().map(Rc::new).collect(),
                    position: 0,
                }));
                if let Some(bridge) = &mut self.bridge {
                    bridge.started_unix_ms = started_unix_ms;
                }
                self = self.apply(Action::ReplayTo(0));
            }
            Action::ReplayTo(position) => {
                if let Some(replay) = self.replay.clone() {
                    let position = position.min(replay.events.len());
                    let mut log = Log::default();
                    self.endpoints.clear();
                    for event in &replay.events[..position] {
                        track_endpoint(&mut self.endpoints, event);
                        log.push(Rc::clone(event));
                    }
                    self.log = SharedLog(Rc::new(RefCell::new(log)));
                    self.version += 1;
                    self.replay = Some(Rc::new(Replay {
                        events: Rc::clone(&replay.events),
                        position,
                    }));
                }
            }
            Action::Welcome(welcome) => {
                let Welcome {
                    bridge_version,
                    started_unix_ms,
                    scope,
                    limits,
                    snapshot,
                    data_dir,
                    capture,
                    ..
                } = *welcome;
                // Back after a lost connection: say what the page now shows.
                if let Some(before) = &self.bridge {
                    self.info = Some(if before.started_unix_ms == started_unix_ms {
                        "Connected again: the bridge sent what it holds, so the views show it afresh."
                    } else {
                        "Connected to a bridge that was restarted: the views show what the new \
                         bridge holds. What the old one showed is gone, unless it was exported."
                    }.to_string());
                }
                let mut log = Log {
                    dropped: snapshot.history_dropped,
                    ..Log::default()
                };
                for endpoint in &snapshot.endpoints {
                    log.specs
                        .insert(endpoint.id, (endpoint.spec.clone(), endpoint.local.clone()));
                }
                for event in snapshot.events {
                    log.push(Rc::new(event));
                }
                self.log = SharedLog(Rc::new(RefCell::new(log)));
                self.version += 1;
                self.endpoints = snapshot.endpoints.into_iter().map(|e| (e.id, e)).collect();
                self.bridge = Some(BridgeInfo {
                    version: bridge_version,
                    started_unix_ms,
                    scope,
                    limits,
                    data_dir,
                    capture,
                });
                self.link = Link::Open;
            }
            Action::Events(events) => {
                let mut reset = false;
                {
                    let mut log = self.log.borrow_mut();
                    for event in events {
                        if matches!(event.kind, EventKind::Transfer(_)) {
                            self.transfers += 1;
                        }
                        reset |= matches!(event.kind, EventKind::Reset);
                        track_endpoint(&mut self.endpoints, &event);
                        log.push(Rc::new(event));
                    }
                }
                self.version += 1;
                if reset {
                    let log = std::mem::take(&mut *self.log.borrow_mut());
                    self.log = SharedLog(Rc::new(RefCell::new(log)));
                    self.start_over();
                }
            }
            Action::Missed(count) => {
                self.log.borrow_mut().missed += count;
                self.version += 1;
            }
            Action::Failed { title, error } => self.notice = Some(Notice { title, error }),
            Action::Created(info) => {
                if matches!(
                    info.spec,
                    EndpointSpec::TcpClient(_)
                        | EndpointSpec::UdpClient(_)
                        | EndpointSpec::Program(_)
                ) {
                    self.selected = Some(ConvKey {
                        endpoint: info.id,
                        conn: None,
                    });
                }
            }
            Action::Select(key) => self.selected = key,
            Action::DismissNotice => self.notice = None,
            Action::DismissInfo => self.info = None,
            Action::Impaired(endpoint, impairment) => {
                let on = (impairment != shared::Impairment::default()).then_some(impairment);
                if let Some(e) = self.endpoints.get_mut(&endpoint) {
                    match &mut e.spec {
                        EndpointSpec::TcpServer(s) => s.impair = on,
                        EndpointSpec::UdpServer(s) => s.impair = on,
                        EndpointSpec::TcpClient(s) => s.impair = on,
                        EndpointSpec::UdpClient(s) => s.impair = on,
                        EndpointSpec::Program(_) | EndpointSpec::Traced(_) => {}
                    }
                }
            }
            Action::Files(files) => self.files = files,
            Action::Upload { file, upload } => {
                self.uploads.insert(file, upload);
            }
            Action::Compared(report) => self.comparison = Some(Rc::new(*report)),
            Action::Checks(checks) => self.checks = Some(Rc::new(checks)),
            Action::Checking(on) => self.checking = on,
            Action::Highlight { seq, key } => {
                self.highlight = Some(seq);
                self.selected = Some(key);
            }
            Action::Program {
                endpoint,
                file,
                code,
            } => self.program = Some(Rc::new((endpoint, file, code))),
            Action::Source {
                program,
                file,
                code,
            } => self.source = Some(Rc::new((program, file, code))),
            Action::Queued(n) => self.queued = n,
            Action::Mark(seq) => self.highlight = Some(seq),
            Action::Clear => {
                // A fresh log (views compare logs by identity), the names kept.
                let mut old = std::mem::take(&mut *self.log.borrow_mut());
                old.start_over();
                self.log = SharedLog(Rc::new(RefCell::new(old)));
                self.start_over();
            }
            Action::LabStarted => {
                let mut log = self.log.borrow_mut();
                log.lab_start = log.events.len();
            }
        }
        self
    }
}

impl State {
    /// What belongs to the demo before: the selection, a notice, the picked event, the
    /// comparison.
    fn start_over(&mut self) {
        self.version += 1;
        self.selected = None;
        self.notice = None;
        self.highlight = None;
        self.comparison = None;
    }
}

/// Keeps the live endpoint list in step with the events, as the bridge's registry changes.
fn track_endpoint(endpoints: &mut VecMap<EndpointId, EndpointInfo>, event: &Event) {
    if let EventKind::Socket { spec } = &event.kind {
        endpoints.insert(
            event.endpoint,
            EndpointInfo {
                id: event.endpoint,
                spec: spec.clone(),
                local: None,
                peer: None,
                connections: Vec::new(),
            },
        );
        return;
    }
    let Some(endpoint) = endpoints.get_mut(&event.endpoint) else {
        return;
    };
    match (&event.kind, event.conn) {
        (EventKind::Bind | EventKind::Connect, None) => {
            endpoint.local.clone_from(&event.local);
            if event.peer.is_some() {
                endpoint.peer.clone_from(&event.peer);
            }
        }
        (EventKind::Connecting, None) => endpoint.peer.clone_from(&event.peer),
        (EventKind::Accept, Some(conn)) => endpoint.connections.push(ConnInfo {
            id: conn,
            peer: event.peer.clone().unwrap_or_default(),
            local: event.local.clone().unwrap_or_default(),
        }),
        (EventKind::Close { .. }, Some(conn)) => endpoint.connections.retain(|c| c.id != conn),
        (EventKind::Close { .. }, None) => {
            endpoints.remove(&event.endpoint);
        }
        _ => {}
    }
}

impl yew::Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        Rc::new(Rc::unwrap_or_clone(self).apply(action))
    }
}

/// Adds the position `i` of one of `events` to `rows`, positions kept in the order their
/// events happened ([`Event::when`]): a packet where it crossed the wire, a traced call where
/// it was made, though the bridge read both a little later than the events around them (a
/// traced program's calls come in batches, up to a quarter of a second late). Most go at the
/// end; one read late goes after the last that happened before it or with it, found by a
/// binary search (by hand, not a sort: a sort brought its own code into the page).
pub fn place_by_time(rows: &mut Vec<usize>, i: usize, events: &[Rc<Event>]) {
    let when = events[i].when();
    if rows.last().is_none_or(|&last| events[last].when() <= when) {
        rows.push(i);
    } else {
        let at = rows.partition_point(|&r| events[r].when() <= when);
        rows.insert(at, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::{ClosedBy, Payload, Snapshot};

    fn event(seq: u64, endpoint: u32, conn: Option<u32>, kind: EventKind) -> Event {
        Event {
            seq,
            t_us: seq * 1000,
            endpoint,
            conn,
            local: Some("127.0.0.1:12000".into()),
            peer: conn.map(|c| format!("127.0.0.1:{}", 50000 + c)),
            at: None,
            kind,
        }
    }

    fn server_spec() -> EndpointSpec {
        serde_json::from_str(r#"{"type":"tcp_server","port":12000}"#).unwrap()
    }

    fn welcome(endpoints: Vec<EndpointInfo>, events: Vec<Event>) -> Action {
        Action::Welcome(Box::new(Welcome {
            protocol: shared::PROTOCOL_VERSION,
            bridge_version: "test".into(),
            started_unix_ms: 0,
            now_us: 0,
            scope: Scope::Loopback,
            limits: Limits {
                max_message_bytes: 1 << 20,
                max_frame_bytes: 1 << 18,
                max_endpoints: 64,
                max_connections_per_server: 64,
                history_events: 10_000,
            },
            data_dir: String::new(),
            capture: None,
            snapshot: Snapshot {
                endpoints,
                events,
                history_dropped: 0,
            },
        }))
    }

    #[test]
    fn events_keep_the_endpoint_list_in_step() {
        let mut state = State::default().apply(welcome(vec![], vec![]));
        assert_eq!(state.link, Link::Open);
        state = state.apply(Action::Events(vec![
            event(
                1,
                1,
                None,
                EventKind::Socket {
                    spec: server_spec(),
                },
            ),
            event(2, 1, None, EventKind::Bind),
            event(3, 1, Some(7), EventKind::Accept),
        ]));
        let server = &state.endpoints[&1];
        assert_eq!(server.local.as_deref(), Some("127.0.0.1:12000"));
        assert_eq!(server.connections.len(), 1);
        assert_eq!(server.connections[0].peer, "127.0.0.1:50007");

        state = state.apply(Action::Events(vec![event(
            4,
            1,
            Some(7),
            EventKind::Close {
                by: ClosedBy::Peer,
                reason: "bye".into(),
            },
        )]));
        assert!(state.endpoints[&1].connections.is_empty());
        state = state.apply(Action::Events(vec![event(
            5,
            1,
            None,
            EventKind::Close {
                by: ClosedBy::Local,
                reason: "stopped".into(),
            },
        )]));
        assert!(state.endpoints.is_empty());
        // Still named in the timeline after it closed.
        assert_eq!(state.log.borrow().name(1), "TCP server :12000");
    }

    #[test]
    fn conversations_are_indexed_and_cut_to_the_latest() {
        let mut state = State::default().apply(welcome(vec![], vec![]));
        let recv = |seq| {
            event(
                seq,
                1,
                Some(3),
                EventKind::Recv {
                    data: Payload::from_bytes(format!("m{seq}").as_bytes()),
                    rtt_us: None,
                },
            )
        };
        state = state.apply(Action::Events((1..=10).map(recv).collect()));
        let key = ConvKey {
            endpoint: 1,
            conn: Some(3),
        };
        let (events, skipped) = state.log.borrow().conversation(key, 4, false);
        assert_eq!(skipped, 6);
        assert_eq!(events.first().unwrap().seq, 7);
        let other = ConvKey {
            endpoint: 2,
            conn: None,
        };
        assert!(state
            .log
            .borrow()
            .conversation(other, 4, false)
            .0
            .is_empty());
    }

    /// The events of a conversation (with its packets if `wire`), by their numbers.
    fn conversation_seqs(log: &Log, key: ConvKey, wire: bool) -> Vec<u64> {
        log.conversation(key, 10, wire)
            .0
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    #[test]
    fn packets_join_a_conversation_only_when_asked() {
        let packet = |seq| {
            event(
                seq,
                1,
                None,
                EventKind::Packet(Box::new(shared::PacketInfo {
                    proto: "tcp".into(),
                    dir: "out".into(),
                    // On the wire a little before the bridge read it.
                    wire_us: seq * 1000 - 10,
                    src: "127.0.0.1:5000".into(),
                    dst: "127.0.0.1:12000".into(),
                    flags: "ACK".into(),
                    tcp_seq: Some(1),
                    tcp_ack: Some(1),
                    window: Some(512),
                    options: String::new(),
                    data: Payload::from_bytes(b""),
                    detail: String::new(),
                })),
            )
        };
        let counters = |seq, segs_out| {
            event(
                seq,
                1,
                None,
                EventKind::TcpCounters(shared::TcpCounters {
                    segs_out,
                    ..Default::default()
                }),
            )
        };
        let state = State::default()
            .apply(welcome(vec![], vec![]))
            .apply(Action::Events(vec![
                event(1, 1, None, EventKind::Connect),
                packet(2),
                counters(3, 2),
                event(4, 1, None, EventKind::Waiting { op: "recv".into() }),
                packet(5),
                counters(6, 3),
            ]));
        let log = state.log.borrow();
        let key = ConvKey {
            endpoint: 1,
            conn: None,
        };
        let seqs = |wire| conversation_seqs(&log, key, wire);
        assert_eq!(seqs(false), [1, 4]);
        assert_eq!(seqs(true), [1, 2, 3, 4, 5, 6]);
        assert_eq!(log.conversation(key, 3, true).1, 3, "cut to the latest");
        // What it last did is still the call that waits.
        assert_eq!(log.last_of(key).unwrap().seq, 4);
        assert_eq!(log.counters(key).map(|(c, _)| c.segs_out), Some(3));
        assert!(log.packets);
        drop(log);
        // A packet the other side sent is this conversation's too: client 2 talks to
        // server 1's connection 7 (127.0.0.1:12000 ⇄ 127.0.0.1:50007).
        let mut from_peer = packet(8);
        from_peer.endpoint = 1;
        from_peer.conn = Some(7);
        from_peer.peer = Some("127.0.0.1:50007".into());
        let mut client_connect = event(7, 2, None, EventKind::Connect);
        client_connect.local = Some("127.0.0.1:50007".into());
        client_connect.peer = Some("127.0.0.1:12000".into());
        let state = state.apply(Action::Events(vec![client_connect, from_peer]));
        let log = state.log.borrow();
        let client = ConvKey {
            endpoint: 2,
            conn: None,
        };
        let seqs: Vec<u64> = log
            .conversation(client, 10, true)
            .0
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [7, 8], "the connection's packet reached its client");
    }

    /// A traced program's calls come in batches, so the packets a call caused can be read
    /// before it: its conversation and the sequence diagram put each where it happened.
    #[test]
    fn a_traced_call_comes_before_the_packets_it_caused() {
        let at = |call_us| {
            Some(Box::new(shared::CodeAt {
                file: "client.py".into(),
                line: 9,
                code: "s.send(b'hi')".into(),
                thread: "MainThread".into(),
                pid: 7,
                blocked_us: None,
                call_us,
            }))
        };
        let mut packet = event(
            2,
            1,
            None,
            EventKind::Packet(Box::new(shared::PacketInfo {
                proto: "tcp".into(),
                dir: "out".into(),
                wire_us: 1990,
                src: "127.0.0.1:5000".into(),
                dst: "127.0.0.1:12000".into(),
                flags: "PSH,ACK".into(),
                tcp_seq: Some(1),
                tcp_ack: Some(1),
                window: Some(512),
                options: String::new(),
                data: Payload::from_bytes(b"hi"),
                detail: String::new(),
            })),
        );
        packet.t_us = 2000;
        let mut connect = event(1, 1, None, EventKind::Connect);
        connect.at = at(Some(500));
        let mut send = event(
            3,
            1,
            None,
            EventKind::Send {
                data: Payload::from_bytes(b"hi"),
            },
        );
        send.at = at(Some(1900));
        // A call without its time (an older recording) counts from when it was read.
        let mut close = event(
            4,
            1,
            None,
            EventKind::Close {
                by: ClosedBy::Local,
                reason: String::new(),
            },
        );
        close.at = at(None);
        // Another program's line, read before the packet and shown after all of them.
        let printed = event(
            5,
            2,
            None,
            EventKind::Output {
                stream: "stdout".into(),
                data: Payload::from_bytes(b"sent\n"),
                read_us: Some(1950),
            },
        );
        let state = State::default()
            .apply(welcome(vec![], vec![]))
            .apply(Action::Events(vec![connect, packet, send, close, printed]));
        let log = state.log.borrow();
        let key = ConvKey {
            endpoint: 1,
            conn: None,
        };
        let seqs = |wire| conversation_seqs(&log, key, wire);
        assert_eq!(seqs(true), [1, 3, 2, 4]);
        assert_eq!(seqs(false), [1, 3, 4]);
        let mut all = Vec::new();
        for i in 0..log.events.len() {
            place_by_time(&mut all, i, &log.events);
        }
        let shown: Vec<u64> = all.iter().map(|&i| log.events[i].seq).collect();
        assert_eq!(shown, [1, 3, 5, 2, 4]);
        // The timeline lists them in that order too, whatever order they were read in.
        let rows: Vec<u64> = log
            .filtered(&Filter::default())
            .iter()
            .map(|&i| log.events[i].seq)
            .collect();
        assert_eq!(rows, [1, 3, 5, 2, 4]);
    }

    #[test]
    fn a_servers_line_merges_its_connections_in_order() {
        let spec = EndpointSpec::TcpServer(shared::TcpServerSpec::default());
        let state = State::default()
            .apply(welcome(Vec::new(), Vec::new()))
            .apply(Action::Events(vec![
                event(1, 1, None, EventKind::Socket { spec }),
                event(2, 1, Some(1), EventKind::Accept),
                event(3, 1, Some(2), EventKind::Accept),
                event(4, 1, Some(1), EventKind::Eof),
                event(5, 2, None, EventKind::Bind),
                event(6, 1, Some(2), EventKind::Eof),
            ]));
        let log = state.log.borrow();
        let (events, skipped) = log.server_conversation(1, 10, false);
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!((seqs, skipped), (vec![1, 2, 3, 4, 6], 0));
        let (last, skipped) = log.server_conversation(1, 2, false);
        assert_eq!((last.len(), skipped), (2, 3));
        let conns: Vec<u32> = log.connections_of(1).iter().map(|(c, _)| *c).collect();
        assert_eq!(conns, [1, 2]);
    }

    #[test]
    fn clear_empties_the_views_and_keeps_the_history_and_what_runs() {
        let spec = EndpointSpec::TcpServer(shared::TcpServerSpec::default());
        let state = State::default()
            .apply(welcome(Vec::new(), Vec::new()))
            .apply(Action::Events(vec![
                event(1, 1, None, EventKind::Socket { spec }),
                event(2, 1, None, EventKind::Bind),
            ]))
            .apply(Action::Select(Some(ConvKey {
                endpoint: 1,
                conn: None,
            })))
            .apply(Action::Clear)
            .apply(Action::Events(vec![event(3, 1, None, EventKind::Eof)]));
        let log = state.log.borrow();
        assert_eq!(
            log.events.len(),
            1,
            "only what came after the Clear is shown"
        );
        assert_eq!(log.earlier.len(), 2, "the rest stays for Export");
        assert_eq!(state.selected, None);
        assert!(state.endpoints.contains_key(&1), "what runs still runs");
        assert!(log.name(1).starts_with("TCP server"), "and keeps its name");
    }

    #[test]
    fn a_reset_starts_a_new_demo_numbered_from_one() {
        let client = EndpointSpec::TcpClient(shared::TcpClientSpec::to("127.0.0.1", 12000));
        let server = EndpointSpec::TcpServer(shared::TcpServerSpec::default());
        let state = State::default()
            .apply(welcome(Vec::new(), Vec::new()))
            .apply(Action::Events(vec![
                event(
                    1,
                    1,
                    None,
                    EventKind::Socket {
                        spec: server.clone(),
                    },
                ),
                event(2, 1, Some(4), EventKind::Accept),
                event(
                    3,
                    2,
                    None,
                    EventKind::Socket {
                        spec: client.clone(),
                    },
                ),
                event(4, 0, None, EventKind::Reset),
                event(5, 3, None, EventKind::Socket { spec: server }),
                event(6, 3, Some(5), EventKind::Accept),
                event(7, 4, None, EventKind::Socket { spec: client }),
            ]));
        let log = state.log.borrow();
        let seqs: Vec<u64> = log.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 5, 6, 7], "the views start at the Reset");
        assert_eq!(log.earlier.len(), 3, "what came before is kept for Export");
        assert_eq!(log.shown(3), 1, "the first endpoint after the Reset is #1");
        assert!(log.name(4).starts_with("TCP client #2"), "{}", log.name(4));
        assert_eq!(log.conn_name(5), "conn 1");
        assert!(
            log.name(2).starts_with("TCP client #"),
            "an old name still reads"
        );
    }

    #[test]
    fn welcome_replaces_everything_and_reconnect_is_reported() {
        let info = EndpointInfo {
            id: 4,
            spec: server_spec(),
            local: Some("127.0.0.1:12000".into()),
            peer: None,
            connections: vec![],
        };
        let mut state =
            State::default().apply(Action::Events(vec![event(1, 9, None, EventKind::Bind)]));
        state = state.apply(welcome(vec![info], vec![]));
        assert!(state.log.borrow().events.is_empty());
        assert_eq!(state.endpoints.keys().copied().collect::<Vec<_>>(), [4]);
        assert_eq!(state.log.borrow().name(4), "TCP server :12000");

        state = state.apply(Action::Retrying {
            attempt: 1,
            in_ms: 500,
        });
        assert_eq!(
            state.link,
            Link::Retrying {
                attempt: 1,
                in_ms: 500,
                was_open: true
            }
        );
        state = state.apply(Action::Connecting);
        assert!(
            matches!(state.link, Link::Retrying { .. }),
            "keeps saying it retries"
        );
    }

    #[test]
    fn replay_steps_rebuild_the_view_and_ignore_the_live_bridge() {
        let events = vec![
            event(
                1,
                1,
                None,
                EventKind::Socket {
                    spec: server_spec(),
                },
            ),
            event(2, 1, None, EventKind::Bind),
            event(3, 1, Some(7), EventKind::Accept),
        ];
        let recording = shared::Recording::new(0, events);
        let mut state = State::default().apply(Action::ReplayLoad(Box::new(recording)));
        assert!(state.log.borrow().events.is_empty());
        state = state.apply(Action::ReplayTo(3));
        assert_eq!(state.endpoints[&1].connections.len(), 1);
        state = state.apply(Action::ReplayTo(2));
        assert!(
            state.endpoints[&1].connections.is_empty(),
            "stepping back undoes the accept"
        );
        state = state.apply(Action::Events(vec![event(9, 5, None, EventKind::Bind)]));
        assert_eq!(
            state.log.borrow().events.len(),
            2,
            "live events wait while replaying"
        );
    }

    #[test]
    fn filter_by_endpoint_and_group() {
        let mut state = State::default().apply(welcome(vec![], vec![]));
        state = state.apply(Action::Events(vec![
            event(1, 1, None, EventKind::Bind),
            event(2, 2, None, EventKind::Eof),
            event(
                3,
                1,
                Some(1),
                EventKind::Send {
                    data: Payload::from_bytes(b"x"),
                },
            ),
        ]));
        let log = state.log.borrow();
        assert_eq!(log.filtered(&Filter::default()), [0, 1, 2]);
        let only_one = Filter {
            endpoint: Some(1),
            ..Filter::default()
        };
        assert_eq!(log.filtered(&only_one), [0, 2]);
        let data_only = Filter {
            groups: [Group::Data].into_iter().collect(),
            ..Filter::default()
        };
        assert_eq!(log.filtered(&data_only), [2]);
    }

    #[test]
    fn a_programs_own_close_after_its_exit_is_not_a_row() {
        let spec: EndpointSpec = serde_json::from_str(
            r#"{"type":"program","argv":["python3","c.py"],"from":"page","pid":7,"script":"c.py"}"#,
        )
        .unwrap();
        let ended = "exited normally (status 0)".to_string();
        let state = State::default()
            .apply(welcome(vec![], vec![]))
            .apply(Action::Events(vec![
                event(1, 1, None, EventKind::Socket { spec }),
                event(
                    2,
                    1,
                    None,
                    EventKind::Exit {
                        code: Some(0),
                        signal: None,
                        detail: ended.clone(),
                    },
                ),
                event(
                    3,
                    1,
                    None,
                    EventKind::Close {
                        by: ClosedBy::Local,
                        reason: ended,
                    },
                ),
                event(
                    4,
                    2,
                    None,
                    EventKind::Close {
                        by: ClosedBy::Local,
                        reason: "closed".into(),
                    },
                ),
            ]));
        assert_eq!(state.log.borrow().filtered(&Filter::default()), [0, 1, 3]);
    }

    #[test]
    fn new_client_is_selected_and_errors_are_kept_until_dismissed() {
        let spec: EndpointSpec =
            serde_json::from_str(r#"{"type":"tcp_client","port":12000}"#).unwrap();
        let mut state = State::default().apply(Action::Created(EndpointInfo {
            id: 5,
            spec,
            local: None,
            peer: None,
            connections: vec![],
        }));
        assert_eq!(
            state.selected,
            Some(ConvKey {
                endpoint: 5,
                conn: None
            })
        );
        let error = ErrorInfo::new(shared::ErrorKind::ConnectionRefused, "nothing listens");
        state = state.apply(Action::Failed {
            title: "Connect".into(),
            error,
        });
        assert!(state.notice.is_some());
        state = state.apply(Action::DismissNotice);
        assert!(state.notice.is_none());
    }
}
