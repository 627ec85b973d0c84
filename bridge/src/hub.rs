//! The hub: what a running bridge holds, put together once at start. The web edge and the
//! commands take it; endpoint start functions take it to create their socket. A running
//! socket task holds only its [`Handle`](crate::core::registry::Handle) (and through it a
//! [`Ctx`](crate::core::ctx::Ctx)) plus what its job needs (the data directory, the task
//! tracker), never the hub.

use std::sync::{Arc, Mutex};

use shared::{ClosedBy, EventKind};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::core::event_log::{EventLog, Origin};
use crate::core::lifeline::Lifeline;
use crate::core::registry::Registry;
use crate::files::datadir::DataDir;
use crate::files::upload::Uploads;

/// See the module header.
pub(crate) struct Hub {
    pub(crate) config: Config,
    pub(crate) log: Arc<EventLog>,
    /// The endpoints and connections alive now.
    pub(crate) registry: Arc<Registry>,
    /// Where logs and transferred files live.
    pub(crate) data: DataDir,
    /// Files on their way in from browsers.
    pub(crate) uploads: Uploads,
    /// Stopped when the bridge shuts down; every endpoint's lifeline descends from it.
    pub(crate) root: Lifeline,
    /// Every endpoint and connection task, so shutdown can wait for all of them.
    pub(crate) tasks: TaskTracker,
    /// Cancelled by the next reset (and shutdown): work that is not an endpoint, such as a
    /// comparison, stops with it.
    work: Mutex<CancellationToken>,
    /// One comparison at a time: its sockets are outside the endpoint caps.
    pub(crate) comparing: tokio::sync::Semaphore,
    /// One check (`check_run`) at a time: it runs a program on the lab's port.
    pub(crate) checking: tokio::sync::Semaphore,
    /// Makes `fetch_send`'s requests (where they may go, whom TLS trusts).
    pub(crate) fetcher: crate::fetch::Fetcher,
    /// The person's programs running now, traced.
    pub(crate) programs: crate::programs::Programs,
    /// The packets of the endpoints' sockets, where the bridge may capture them.
    pub(crate) capture: crate::wire::Capture,
}

impl Hub {
    /// Whether packets are captured, as the welcome says it: when they are not, with what
    /// the page shows instead on this system (or that it shows no TCP states either).
    pub(crate) fn capture_status(&self) -> shared::CaptureStatus {
        let mut status = self.capture.status();
        if !status.on {
            status.detail = format!("{} {}", status.detail, crate::endpoints::tcp_state::note());
        }
        status
    }

    /// Puts the bridge together; fails only on an unreadable `--extra-root-cert`.
    pub(crate) fn new(config: Config) -> Result<Arc<Hub>, String> {
        let log = Arc::new(EventLog::new(config.history_events, config.history_bytes));
        let root = Lifeline::root();
        let fetcher = crate::fetch::Fetcher::new(config.reach(), &config.extra_root_certs)?;
        let registry = Registry::new(log.clone(), config.max_endpoints, root.clone());
        let capture = if config.capture {
            crate::wire::Capture::open(&registry, config.scope == shared::Scope::Lan)
        } else {
            crate::wire::Capture::off(
                "Packets are not captured: the bridge was started with --no-capture.",
            )
        };
        if !capture.status().on {
            log.show_counters();
            // Found out now, not while a page waits for its welcome.
            let _ = crate::endpoints::tcp_state::note();
        }
        Ok(Arc::new(Hub {
            fetcher,
            capture,
            registry,
            work: Mutex::new(root.token.child_token()),
            comparing: tokio::sync::Semaphore::new(1),
            checking: tokio::sync::Semaphore::new(1),
            data: DataDir::new(config.data_dir.clone(), config.max_file_bytes),
            uploads: Default::default(),
            programs: crate::programs::Programs::new(config.max_programs),
            config,
            log,
            root,
            tasks: TaskTracker::new(),
        }))
    }

    /// Records a bridge-level event (endpoint 0).
    pub(crate) fn emit_bridge(&self, kind: EventKind) {
        self.log.emit(&Origin::endpoint(0), kind);
    }

    /// The token that the next reset cancels.
    pub(crate) fn work(&self) -> CancellationToken {
        self.work.lock().expect("work lock").clone()
    }

    /// Stops every endpoint and all other work; returns the endpoints' finished tokens.
    pub(crate) fn stop_all(&self, by: ClosedBy, reason: &str) -> Vec<CancellationToken> {
        let next = self.root.token.child_token();
        std::mem::replace(&mut *self.work.lock().expect("work lock"), next).cancel();
        self.registry.stop_all(by, reason)
    }
}
