//! What the bridge allows and how much it keeps: the command line's settings, with safe
//! defaults for everything ([`Config::new`]).

use std::time::Duration;

use shared::{Limits, Scope};

use crate::security::{Reach, Token};

/// Largest received file by default: far above any lab's, far below a disk.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;

/// The Python a `.py` file runs with: `python3` where Python 3 is installed under that name,
/// `python` on Windows (python.org's installer names it so; `python3` there is the Store's
/// stand-in).
pub const PYTHON: &str = if cfg!(windows) { "python" } else { "python3" };

/// What the bridge allows and how much it keeps. [`Config::new`] gives the safe defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which addresses endpoints may use.
    pub scope: Scope,
    /// Whether clients may connect to public (internet) addresses (`--allow-internet`).
    pub allow_internet: bool,
    /// Names pointed at other addresses for this run (`--resolve`), for tests and offline
    /// classrooms.
    pub resolve: Vec<(String, u16, std::net::SocketAddr)>,
    /// More certificates (PEM) that fetches trust besides the usual roots
    /// (`--extra-root-cert`), for tests and classrooms with their own server.
    pub extra_root_certs: Vec<std::path::PathBuf>,
    /// The secret every session must present.
    pub token: Token,
    /// Origins allowed besides the bridge's own and `trunk serve`'s.
    pub extra_origins: Vec<String>,
    /// Whether servers may bind ports below 1024.
    pub allow_privileged_ports: bool,
    /// Whether the page may run programs (`program_run`). On by default; the command line
    /// turns it off when the bridge listens beyond loopback, unless `--allow-programs`.
    pub allow_programs: bool,
    /// Whether to capture the endpoints' packets where the bridge may (`--no-capture` turns
    /// it off).
    pub capture: bool,
    /// The Python the page's programs run with ([`PYTHON`]).
    pub python: String,
    /// Most programs running at once (from the page and from terminals together).
    pub max_programs: usize,
    /// Most endpoints alive at once.
    pub max_endpoints: usize,
    /// Most accepted connections per server at once.
    pub max_connections_per_server: usize,
    /// Most WebSocket sessions at once.
    pub max_sessions: usize,
    /// Events kept for viewers that connect later.
    pub history_events: usize,
    /// Memory the payloads kept in that history may take (their base64 and preview text).
    pub history_bytes: usize,
    /// Largest WebSocket message accepted.
    pub max_message_bytes: usize,
    /// Largest WebSocket frame accepted.
    pub max_frame_bytes: usize,
    /// The built frontend (trunk's `dist/`) to serve; `None` serves a note instead.
    pub static_dir: Option<std::path::PathBuf>,
    /// Where server logs and transferred files are kept.
    pub data_dir: std::path::PathBuf,
    /// Largest file a transfer or an upload writes into the data directory.
    pub max_file_bytes: u64,
    /// Memory the events waiting for one viewer may take; beyond it the oldest are dropped and
    /// the viewer is told how many it missed.
    pub viewer_bytes: usize,
    /// Sockets (servers and clients) one session may run at once; `max_endpoints` bounds all
    /// sessions together.
    pub max_endpoints_per_session: usize,
    /// A session that has sent nothing for this long is pinged; one that answers nothing for
    /// three times this long is closed as dead (a laptop lid shut, a network gone).
    pub ping_every: Duration,
}

impl Config {
    /// Loopback only, no privileged ports, and limits that keep memory bounded.
    pub fn new(token: Token) -> Self {
        Config {
            scope: Scope::Loopback,
            allow_internet: false,
            resolve: Vec::new(),
            extra_root_certs: Vec::new(),
            token,
            extra_origins: Vec::new(),
            allow_privileged_ports: false,
            allow_programs: true,
            capture: true,
            python: PYTHON.into(),
            max_programs: 8,
            max_endpoints: 64,
            max_connections_per_server: 64,
            max_sessions: 32,
            history_events: 10_000,
            history_bytes: 24 << 20,
            max_message_bytes: 1 << 20,
            max_frame_bytes: 256 << 10,
            static_dir: None,
            data_dir: std::path::PathBuf::from("playground-data"),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            ping_every: Duration::from_secs(20),
            max_endpoints_per_session: 32,
            viewer_bytes: 8 << 20,
        }
    }

    /// Where endpoints and fetches may go.
    pub(crate) fn reach(&self) -> Reach {
        Reach {
            internet: self.allow_internet,
            names: self.resolve.clone(),
            ..Reach::new(self.scope)
        }
    }

    /// The limits as clients see them.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_message_bytes: self.max_message_bytes,
            max_frame_bytes: self.max_frame_bytes,
            max_endpoints: self.max_endpoints,
            max_connections_per_server: self.max_connections_per_server,
            history_events: self.history_events,
        }
    }
}
