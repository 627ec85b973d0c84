//! The student's own programs where the bridge cannot run them traced yet (Windows): the
//! Python shim reports over a Unix datagram socket, which Windows' Python cannot inherit, and
//! the system-call tracer is Linux's ptrace. The Programs tab and `bridge trace` say so in one
//! line instead of failing; a program run in a terminal still talks to the playground's
//! endpoints as any peer does.

use std::sync::Arc;

use shared::{EndpointInfo, ErrorInfo, ErrorKind};

use crate::hub::Hub;

/// What the page and `bridge trace` say here.
const NOT_HERE: &str = "Running and tracing your own programs is not available on Windows in \
                        this version (it needs Linux or macOS). Run your program in a terminal: \
                        it talks to the playground's servers and clients as any peer does.";

/// `program_run`: refused, with the reason.
pub(crate) async fn run(
    _hub: &Arc<Hub>,
    _file: String,
    _args: Vec<String>,
    _tee: Option<crate::checks::run::Output>,
) -> Result<EndpointInfo, ErrorInfo> {
    Err(ErrorInfo::new(ErrorKind::Unsupported, NOT_HERE))
}

/// What `bridge trace` was asked to do.
#[derive(Debug, Clone)]
pub struct TraceArgs {
    /// The bridge's URL with its token.
    pub url: Option<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// `bridge trace`: says why it cannot, and exits with status 2.
pub async fn trace(_args: TraceArgs) -> i32 {
    eprintln!("bridge trace: {NOT_HERE}");
    2
}
