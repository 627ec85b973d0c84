//! Socket Playground bridge: runs real TCP and UDP servers and clients on this machine and
//! streams every socket call to browsers over a WebSocket.
//!
//! The binary (`src/bin/bridge.rs`) parses the command line and calls [`run`]; tests call
//! [`run`] too, with a listener on `127.0.0.1:0` and a fixed token.
//!
//! The folders follow the way a command travels, and imports point one way, down this list:
//! - `web/`: the HTTP and WebSocket edge (routes and guards, admission of peers without the
//!   token, sessions, each viewer's queue);
//! - `commands`: one command in, one outcome out; `hub`: what a running bridge holds;
//! - `endpoints/`: the playground's own sockets, one file per kind, and the chat room;
//! - `programs/`: the person's own programs, run from the page or a terminal and traced
//!   (the Python shim, its channel, the tracer, `bridge trace`, the runtime file, and the
//!   system-call tracer for programs in any language);
//! - `wire/`: packets on the wire (capture on loopback, pcapng);
//! - `files/`: the data directory, uploads, file transfers and message logs;
//! - `core/`: what runs now (the registry), lifelines, the event log, simulated trouble;
//! - leaves: `config`, `security` (token, address policy), `explain` (OS errors in plain
//!   words), `crypto`, `fetch`, `compare`, `python` (the Python mirror of each endpoint);
//! - `checks/`: `bridge check`, a lab's scenario played against a student's program.

pub mod checks;
mod commands;
mod compare;
mod config;
mod core;
mod crypto;
mod endpoints;
mod explain;
mod fetch;
mod files;
mod hub;
mod programs;
mod python;
mod security;
mod web;
#[cfg(target_os = "linux")]
mod wire;
/// Elsewhere packets are not captured, and the page says so (`wire/elsewhere.rs`).
#[cfg(not(target_os = "linux"))]
#[path = "wire/elsewhere.rs"]
mod wire;

use std::future::Future;
use std::time::Duration;

pub use config::{Config, DEFAULT_MAX_FILE_BYTES, PYTHON};
pub use files::datadir::check_confined;
pub use programs::runtime::{RuntimeFile, RuntimeInfo};
pub use programs::trace_cmd::{run as trace, TraceArgs};
pub use python::{file_name as python_file_name, program as python_program};
pub use security::{parse_resolve, Token, MIN_TOKEN_LEN};
use shared::ClosedBy;
pub use shared::Scope;
pub use web::server::{HEADER_TIMEOUT, MAX_HEAD_BYTES, MAX_HTTP_CONNECTIONS};

/// How long shutdown waits for sockets and sessions to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Every socket is a file descriptor, and the usual soft limit (1024) is below what many
/// connections need: raises it to the hard limit, as servers do. Returns the limit now in force
/// (None if it cannot be read, or on Windows, whose sockets have no such limit).
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// See the other [`raise_open_files_limit`].
#[cfg(unix)]
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Serves the bridge on `listener` until `shutdown` resolves, then closes every socket and
/// session and returns.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    let mut origins = security::default_origins(listen);
    origins.extend(config.extra_origins.iter().cloned());
    let hub = hub::Hub::new(config).map_err(std::io::Error::other)?;
    // The page's own traffic is never captured (first: this port is always left out), while
    // the bridge serves.
    let _page = hub.capture.leave_out(listen.port());
    {
        let hub = hub.clone();
        let stop = hub.root.token.clone();
        hub.tasks.clone().spawn(async move {
            hub.capture
                .run(hub.registry.clone(), hub.log.clone(), stop)
                .await
        });
    }
    let app = web::server::router(hub.clone(), listen, origins);
    let root = hub.root.clone();
    let stopping = async move {
        shutdown.await;
        root.stop(ClosedBy::Bridge, "the bridge is shutting down");
    };
    let served = web::server::serve(listener, app, stopping).await;
    hub.root
        .stop(ClosedBy::Bridge, "the bridge is shutting down");
    hub.tasks.close();
    if tokio::time::timeout(SHUTDOWN_WAIT, hub.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some sockets did not close in time");
    }
    served
}
