//! The student's own programs, traced: the ones the page runs (`runner`) and the ones a
//! terminal runs under `bridge trace` (`terminal` here, `trace_cmd` on the other side), the
//! Python shim both inject (`shim/sitecustomize.py`), the channel it reports on (`channel`),
//! how a program and what it started are ended on each system (`process`), the one order for
//! several programs' calls (`merge`), and the tracer that turns reports into events
//! (`tracer`).
//!
//! Only the token's holder can start or attach a program; at most `Config::max_programs` run
//! at once. A program's own sockets are its own: the address policy applies to the
//! playground's endpoints, not to what a person's program does (docs/security.md).

pub(crate) mod channel;
pub(crate) mod merge;
pub(crate) mod process;
#[cfg(target_os = "linux")]
pub(crate) mod ptrace;
/// Other Unix systems: no system-call tracer, the same interface (`ptrace_elsewhere.rs`).
#[cfg(all(unix, not(target_os = "linux")))]
#[path = "ptrace_elsewhere.rs"]
pub(crate) mod ptrace;
pub(crate) mod runner;
pub mod runtime;
pub(crate) mod shim;
pub mod trace_cmd;
pub(crate) mod tracer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shared::{
    EndpointId, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, ProgramFrom, ProgramSpec,
    TraceRecord, MAX_PROGRAM_SOURCE,
};
use tokio::sync::mpsc;

use crate::hub::Hub;
use merge::{Item, Merger, Shared};
use tracer::Tracer;

/// A running program, as the commands that act on it find it.
struct Entry {
    /// Where `program_input` goes (programs the page runs).
    stdin: Option<mpsc::Sender<Vec<u8>>>,
    /// The script's name and text, for the source view.
    source: Option<(String, String)>,
    /// The program's tracer.
    tracer: Shared,
    /// Whether it runs in a terminal (fed by `trace_records`).
    terminal: bool,
    /// The port of its shim's channel (the page's, or its `bridge trace` command's), left
    /// out of the packet capture while the program is shown (held for its drop).
    _left_out: Option<crate::wire::LeftOut>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<EndpointId, Entry>,
    /// Programs being started, counted against the limit.
    starting: usize,
    /// The scripts of the last programs that ended (at most [`ENDED_SOURCES`], each at most
    /// 256 KiB): a check's failing step points at a line of a program already stopped.
    ended: std::collections::VecDeque<(EndpointId, (String, String))>,
}

/// How many ended programs' scripts are kept for the source view.
const ENDED_SOURCES: usize = 8;

/// The running programs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Programs {
    table: Arc<Mutex<Table>>,
    max: usize,
    shim: shim::Shim,
    /// Where every program's reports are put in one order.
    pub(crate) merger: Merger,
}

/// A place among the running programs, given back if the program never starts.
pub(crate) struct Slot {
    programs: Programs,
    taken: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.taken {
            self.programs.table().starting -= 1;
        }
    }
}

impl Slot {
    fn fill(mut self, id: EndpointId, entry: Entry) {
        self.taken = true;
        let mut table = self.programs.table();
        table.starting -= 1;
        table.entries.insert(id, entry);
    }
}

impl Programs {
    pub(crate) fn new(max: usize) -> Self {
        Programs {
            table: Arc::default(),
            max,
            shim: shim::Shim::default(),
            merger: Merger::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("programs lock")
    }

    /// A place for one more program, unless as many as allowed run.
    pub(crate) fn reserve(&self) -> Result<Slot, ErrorInfo> {
        let mut table = self.table();
        if table.entries.len() + table.starting >= self.max {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("{} programs run already, the most at once.", self.max),
            )
            .with_hint("Stop one of them first."));
        }
        table.starting += 1;
        Ok(Slot {
            programs: self.clone(),
            taken: false,
        })
    }

    /// The program has ended.
    pub(crate) fn remove(&self, id: EndpointId) {
        let mut table = self.table();
        if let Some(source) = table.entries.remove(&id).and_then(|e| e.source) {
            if table.ended.len() == ENDED_SOURCES {
                table.ended.pop_front();
            }
            table.ended.push_back((id, source));
        }
    }

    /// The directory holding the shim, written at first use.
    pub(crate) fn shim_dir(&self) -> Result<std::path::PathBuf, ErrorInfo> {
        self.shim.dir()
    }

    /// Feeds a page program's stdin.
    pub(crate) fn input(&self, id: EndpointId, text: String) -> Result<(), ErrorInfo> {
        let table = self.table();
        let Some(entry) = table.entries.get(&id) else {
            return Err(not_running(id));
        };
        let Some(stdin) = &entry.stdin else {
            return Err(ErrorInfo::new(
                ErrorKind::Unsupported,
                format!("Program #{id} runs in a terminal: type its input there."),
            ));
        };
        stdin.try_send(text.into_bytes()).map_err(|_| {
            ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("Program #{id} is not reading its input (its stdin is full, or closed)."),
            )
        })
    }

    /// The source of a program's script, running or one of the last that ended.
    pub(crate) fn source(&self, id: EndpointId) -> Result<(String, String), ErrorInfo> {
        let table = self.table();
        if let Some((_, source)) = table.ended.iter().find(|(ended, _)| *ended == id) {
            return Ok(source.clone());
        }
        let entry = table.entries.get(&id).ok_or_else(|| not_running(id))?;
        entry.source.clone().ok_or_else(|| {
            ErrorInfo::new(
                ErrorKind::Unsupported,
                format!("The source of program #{id} was not sent to the bridge."),
            )
        })
    }

    /// The tracer of a terminal's program.
    fn terminal(&self, id: EndpointId) -> Result<Shared, ErrorInfo> {
        let table = self.table();
        table
            .entries
            .get(&id)
            .filter(|e| e.terminal)
            .map(|e| e.tracer.clone())
            .ok_or_else(|| not_running(id))
    }
}

fn not_running(id: EndpointId) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        format!("There is no running program #{id}: it ended, was reset, or never existed."),
    )
}

/// `trace_attach`: a terminal's program is shown from now on; its records follow in
/// `trace_records`. The program is shown as ended when the session that attached it ends, or
/// when a reset or the page stops it (the terminal's program itself goes on).
pub(crate) fn attach(
    hub: &Arc<Hub>,
    argv: Vec<String>,
    pid: u32,
    script: Option<String>,
    source: Option<String>,
    channel_port: Option<u16>,
) -> Result<EndpointInfo, ErrorInfo> {
    let slot = hub.programs.reserve()?;
    // The command's channel is left out of the capture before the program is registered (then
    // the filter widens), until the program is no longer shown (`Programs::remove`).
    let left_out = channel_port
        .filter(|&p| p != 0)
        .map(|p| hub.capture.leave_out(p));
    let spec = ProgramSpec {
        argv,
        from: ProgramFrom::Terminal,
        pid,
        script: script.clone(),
    };
    let handle = hub.registry.create_endpoint(EndpointSpec::Program(spec))?;
    let info = handle.info().ok_or_else(|| not_running(0))?;
    let life = handle.life().clone();
    let id = info.id;
    let tracer: Shared = Arc::new(std::sync::Mutex::new(Some(Tracer::new(
        hub.registry.clone(),
        handle,
    ))));
    slot.fill(
        id,
        Entry {
            stdin: None,
            source: script
                .clone()
                .zip(source.filter(|s| s.len() <= MAX_PROGRAM_SOURCE)),
            tracer: tracer.clone(),
            terminal: true,
            _left_out: left_out,
        },
    );
    hub.programs.merger.register(id);
    // A reset, the bridge stopping, or a close from the page: the program is no longer shown.
    let programs = hub.programs.clone();
    hub.tasks.spawn(async move {
        life.stopped().await;
        let (_, reason) = life.reason();
        programs.merger.push(
            id,
            &tracer,
            Item::Finish {
                code: None,
                signal: None,
                detail: format!("no longer traced: {reason}"),
            },
        );
        programs.remove(id);
    });
    Ok(info)
}

/// `trace_records`: shows what a terminal's program did, in order.
pub(crate) fn records(
    hub: &Hub,
    id: EndpointId,
    records: Vec<TraceRecord>,
) -> Result<(), ErrorInfo> {
    let tracer = hub.programs.terminal(id)?;
    for record in records {
        hub.programs
            .merger
            .push(id, &tracer, Item::Record(Box::new(record)));
    }
    Ok(())
}

/// `trace_exit` (or the end of the session that attached it): the terminal's program ended.
pub(crate) fn exited(
    hub: &Hub,
    id: EndpointId,
    code: Option<i32>,
    signal: Option<i32>,
    detail: Option<String>,
) -> Result<(), ErrorInfo> {
    let tracer = hub.programs.terminal(id)?;
    let detail = detail.unwrap_or_else(|| describe_exit(code, signal));
    hub.programs.merger.push(
        id,
        &tracer,
        Item::Finish {
            code,
            signal,
            detail,
        },
    );
    hub.programs.remove(id);
    Ok(())
}

/// Records a line of a page program's console (or what was typed into it), with when it was
/// read (or written to the program), if known now: the merge sets it for console output.
pub(crate) fn console_event(stream: &str, bytes: &[u8], read_us: Option<u64>) -> shared::EventKind {
    shared::EventKind::Output {
        stream: stream.into(),
        data: shared::Payload::from_bytes(bytes),
        read_us,
    }
}

/// Why the page may not run a program here.
pub(crate) fn check_allowed(hub: &Hub) -> Result<(), ErrorInfo> {
    if hub.config.allow_programs {
        return Ok(());
    }
    Err(ErrorInfo::new(
        ErrorKind::NotAllowed,
        "This bridge listens beyond this machine, so running programs from the page is off.",
    )
    .with_hint("Start the bridge with --allow-programs to allow it, or run `bridge trace -- python3 your_program.py` in a terminal."))
}

/// Closes the program endpoints of a session's terminals that went away without `trace_exit`.
pub(crate) fn detach_all(hub: &Hub, ids: &[EndpointId]) {
    for &id in ids {
        let _ = exited(
            hub,
            id,
            None,
            None,
            Some("no longer traced: `bridge trace` went away".into()),
        );
    }
}

/// How a program ended, in words.
pub(crate) fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(0), _) => "exited normally (status 0)".into(),
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was stopped by signal {signal} ({})", signal_name(signal)),
        (None, None) => "ended".into(),
    }
}

#[cfg(unix)]
fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        libc::SIGINT => "SIGINT, Ctrl-C",
        libc::SIGSEGV => "SIGSEGV, a crash",
        libc::SIGABRT => "SIGABRT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Windows ends programs without signals.
#[cfg(not(unix))]
fn signal_name(_signal: i32) -> &'static str {
    "a signal"
}
