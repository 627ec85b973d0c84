//! The system-call tracer where there is no Linux ptrace (macOS, and the BSDs): the same
//! interface as `ptrace.rs`, whose `run` says at once that programs in other languages than
//! Python are traced on Linux only. Python programs keep their shim, which works here.

use shared::TraceRecord;

/// Said where a program cannot be traced here.
pub(crate) const NOT_PERMITTED_HINT: &str = "Programs in other languages than Python are \
    traced through Linux's ptrace: on this system only Python programs (through their shim) \
    show their calls.";

/// What the tracer reports (see `ptrace.rs`).
#[allow(dead_code)] // the same reports as on Linux; here only `run`'s error comes
pub(crate) enum Report {
    Started(u32),
    Failed(String),
    Call(Box<TraceRecord>),
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// A program to run traced (see `ptrace.rs`).
#[allow(dead_code)] // filled in as on Linux; nothing here runs it
pub(crate) struct Launch<'a> {
    pub(crate) argv: &'a [String],
    pub(crate) name: &'a str,
    pub(crate) dir: &'a std::path::Path,
    pub(crate) stdio: Option<[std::os::fd::RawFd; 3]>,
}

/// Refuses: no system-call tracer on this system.
pub(crate) fn run(_launch: &Launch<'_>, _report: impl FnMut(Report)) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "programs in other languages than Python are traced on Linux only",
    ))
}
