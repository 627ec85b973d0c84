//! Tracing a program in any language (issue 20, Linux x86-64): the program runs under a
//! tracer in the bridge that sees its socket system calls, whatever language made them, and
//! reports each as the same [`TraceRecord`] the Python shim sends, so the rest of the tracing
//! (events, the one order of several programs, the page) is shared.
//!
//! How, as strace does it, with one difference that makes it cheap: a seccomp filter installed
//! in the child before `execve` hands only the socket-related system calls to the tracer
//! (`SECCOMP_RET_TRACE`); every other call runs at full speed without a stop. At a call's
//! seccomp stop the tracer reads its arguments, asks for the stop at its return
//! (`PTRACE_SYSCALL`), and there reads the result and the bytes (`process_vm_readv`, at most
//! [`MAX_BYTES`] of them; the length is always exact). Addresses a call does not carry (the
//! local address after `connect`, both of an accepted socket) are read from a duplicate of the
//! program's descriptor (`pidfd_getfd`), closed at once. Threads, `fork`, `vfork`, `clone` and
//! `execve` are followed (`PTRACE_O_TRACE*`); the program dies with the tracer
//! (`PTRACE_O_EXITKILL`). `read`, `write` and `close` are reported only on sockets: a
//! descriptor is looked at once (`/proc/PID/fd/N`) and remembered until it is closed.
//!
//! Written on `nix` (ptrace, waitpid, process_vm_readv); the seccomp program is a few
//! instructions of classic BPF, written here like the capture's filter.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use shared::{CodeAt, TraceRecord};

/// Bytes of one call's data read from the program, at most (its `len` stays exact).
pub(crate) const MAX_BYTES: usize = 64 << 10;

/// What to change where ptrace is refused (a container, `kernel.yama.ptrace_scope` 3): said
/// by `bridge trace` and by the page's `program_run`.
pub(crate) const NOT_PERMITTED_HINT: &str = "This system does not allow ptrace here. In a \
    container, run it with --cap-add SYS_PTRACE; where kernel.yama.ptrace_scope is 3, `sudo \
    sysctl kernel.yama.ptrace_scope=1` allows tracing a program the bridge starts.";

/// The name of a process's first thread in its records.
const MAIN_THREAD: &str = "main thread";

/// How the child says it could not start the program (its exit status before exec).
const NO_DIRECTORY: i32 = 121;
const NO_PTRACE: i32 = 122;
const NO_SECCOMP: i32 = 123;
const NO_STDIO: i32 = 124;
const NO_PROGRAM: i32 = 127;

/// Why the program did not start, from the child's exit status.
fn not_started(program: &str, code: i32) -> std::io::Error {
    std::io::Error::other(match code {
        NO_DIRECTORY => "the folder to run it in cannot be entered".to_string(),
        NO_PTRACE => "ptrace is not permitted here (Operation not permitted)".to_string(),
        NO_SECCOMP => {
            "the kernel refused the seccomp filter that picks the socket calls".to_string()
        }
        NO_STDIO => "its console could not be set up".to_string(),
        _ => format!("no such program, or not executable: {program}"),
    })
}

/// The system calls handed to the tracer.
const TRACED: [libc::c_long; 28] = [
    libc::SYS_socket,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
    libc::SYS_sendmsg,
    libc::SYS_recvmsg,
    libc::SYS_shutdown,
    libc::SYS_close,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_setsockopt,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_sendmmsg,
    libc::SYS_recvmmsg,
    libc::SYS_getsockopt,
    libc::SYS_sendfile,
    libc::SYS_splice,
];

/// What the tracer reports as the program runs.
#[derive(Debug)]
pub(crate) enum Report {
    /// The program runs, with this process id (its first report).
    Started(u32),
    /// It could not be started under the tracer, or the tracer failed.
    Failed(String),
    /// A socket call, as the shim would report it.
    Call(Box<TraceRecord>),
    /// The program (its first process) ended: its status, or the signal that ended it.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// A call between its seccomp stop and its return.
struct Pending {
    nr: libc::c_long,
    args: [u64; 6],
    began_us: u64,
}

/// A socket the program has: the name its records give it (`PID:FD` where it was made; a
/// forked child's copy keeps its parent's name, as the same socket).
#[derive(Clone)]
struct Sock {
    id: String,
}

/// What the tracer knows of one process's descriptors.
#[derive(Default, Clone)]
struct Fds {
    /// Sockets, by descriptor.
    sockets: HashMap<i32, Sock>,
    /// Descriptors looked at and found not to be sockets.
    others: HashSet<i32>,
}

/// What to run under the tracer, and where.
pub(crate) struct Launch<'a> {
    /// The command line; its first word is looked up on `PATH` unless it holds a `/`.
    pub(crate) argv: &'a [String],
    /// What the records call the program (`CodeAt::file`).
    pub(crate) name: &'a str,
    /// The folder it runs in.
    pub(crate) dir: &'a std::path::Path,
    /// Its stdin, stdout and stderr, and a process group of its own (the page's programs);
    /// `None`: the bridge's own, in its group (a terminal's, which Ctrl-C reaches).
    pub(crate) stdio: Option<[std::os::fd::RawFd; 3]>,
}

/// Runs `launch` under the tracer, on the calling thread (ptrace wants every request from
/// the thread that started the tracee), and calls `report` with each call and at the end.
/// Returns once every traced process has ended.
pub(crate) fn run(launch: &Launch<'_>, mut report: impl FnMut(Report)) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt as _;
    let (program, dir) = (launch.name, launch.dir);
    let Some(first) = launch.argv.first() else {
        return Err(std::io::Error::other("no program to run"));
    };
    let text =
        |t: &[u8]| CString::new(t).map_err(|_| std::io::Error::other("a NUL in the command line"));
    let c_program = text(first.as_bytes())?;
    let c_args = launch
        .argv
        .iter()
        .map(|a| text(a.as_bytes()))
        .collect::<std::io::Result<Vec<CString>>>()?;
    let stdio = launch.stdio;
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let c_dir = text(dir.as_os_str().as_bytes())?;
    let filter = seccomp_program();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // Forked by hand, not with std's Command: the child stops for the tracer before exec, and
    // a failed exec must not wait on a parent that is busy being its tracer. Between fork and
    // exec the child makes only system calls, on memory prepared before the fork; how it
    // failed is its exit status (see [`not_started`]).
    // SAFETY: see above.
    let main = match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Child => unsafe {
            if libc::chdir(c_dir.as_ptr()) != 0 {
                libc::_exit(NO_DIRECTORY);
            }
            if let Some(fds) = stdio {
                // dup2 clears close-on-exec on the copies, so just these three stay open.
                for (to, from) in fds.into_iter().enumerate() {
                    if libc::dup2(from, to as libc::c_int) < 0 {
                        libc::_exit(NO_STDIO);
                    }
                }
                libc::setpgid(0, 0);
            }
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                libc::_exit(NO_PTRACE);
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                libc::_exit(NO_SECCOMP);
            }
            // The tracer sets its options now, before the program's first instruction.
            libc::raise(libc::SIGSTOP);
            libc::execvp(c_program.as_ptr(), argv.as_ptr());
            libc::_exit(NO_PROGRAM)
        },
        nix::unistd::ForkResult::Parent { child } => child,
    };
    report(Report::Started(main.as_raw() as u32));
    match waitpid(main, Some(WaitPidFlag::__WALL)).map_err(std::io::Error::from)? {
        WaitStatus::Stopped(_, Signal::SIGSTOP) => {}
        WaitStatus::Exited(_, code) => return Err(not_started(first, code)),
        other => {
            return Err(std::io::Error::other(format!(
                "the program did not start under the tracer: {other:?}"
            )))
        }
    }
    let options = ptrace::Options::PTRACE_O_TRACESECCOMP
        | ptrace::Options::PTRACE_O_TRACESYSGOOD
        | ptrace::Options::PTRACE_O_TRACEFORK
        | ptrace::Options::PTRACE_O_TRACEVFORK
        | ptrace::Options::PTRACE_O_TRACECLONE
        | ptrace::Options::PTRACE_O_TRACEEXEC
        | ptrace::Options::PTRACE_O_EXITKILL;
    ptrace::setoptions(main, options).map_err(std::io::Error::from)?;
    ptrace::cont(main, None).map_err(std::io::Error::from)?;
    // Whether the first process reached its program (exec); an exit before is a failure.
    let mut started = false;
    let mut pending: HashMap<Pid, Pending> = HashMap::new();
    // Each thread's process (its tgid), and each process's descriptors.
    let mut process_of: HashMap<Pid, i32> = HashMap::from([(main, main.as_raw())]);
    let mut fds: HashMap<i32, Fds> = HashMap::new();
    // How many processes hold each socket: a forked child's copy is the same socket, closed
    // only when the last copy is.
    let mut holders: HashMap<String, u32> = HashMap::new();
    // Each thread's name, looked up at its first call.
    let mut threads: HashMap<Pid, String> = HashMap::new();
    // A program of its own group is waited for by its group: the bridge has other children
    // (the Python programs it runs), whose ends are not this tracer's to collect. (A tracee
    // that leaves the group is then not seen; it is killed when the tracer ends, EXITKILL.)
    let whom = launch.stdio.map(|_| Pid::from_raw(-main.as_raw()));
    loop {
        let status = match waitpid(whom, Some(WaitPidFlag::__WALL)) {
            Ok(status) => status,
            Err(nix::errno::Errno::ECHILD) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        match status {
            WaitStatus::PtraceEvent(pid, _, event) if event == libc::PTRACE_EVENT_SECCOMP => {
                if let Ok(regs) = ptrace::getregs(pid) {
                    pending.insert(
                        pid,
                        Pending {
                            nr: regs.orig_rax as libc::c_long,
                            args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
                            began_us: monotonic_us(),
                        },
                    );
                }
                // On to the call's return.
                let _ = ptrace::syscall(pid, None);
            }
            WaitStatus::PtraceSyscall(pid) => {
                if let (Some(call), Ok(regs)) = (pending.remove(&pid), ptrace::getregs(pid)) {
                    let tgid = *process_of
                        .entry(pid)
                        .or_insert_with(|| tgid_of(pid).unwrap_or(pid.as_raw()));
                    let fds = fds.entry(tgid).or_default();
                    let records = finish(tgid, fds, &mut holders, &call, regs.rax as i64);
                    // Most stops are reads and writes of files: named only when shown.
                    if !records.is_empty() {
                        let thread = threads.entry(pid).or_insert_with(|| thread_name(tgid, pid));
                        let at = code_at(program, thread, tgid);
                        for mut record in records {
                            record.at = Some(at.clone());
                            report(Report::Call(Box::new(record)));
                        }
                    }
                }
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::PtraceEvent(pid, _, event) => {
                // A new thread or process is traced from its start (it stops with SIGSTOP,
                // seen below); a fork's child has its parent's descriptors.
                if event == libc::PTRACE_EVENT_FORK || event == libc::PTRACE_EVENT_VFORK {
                    if let Ok(child) = ptrace::getevent(pid) {
                        let parent = process_of.get(&pid).copied().unwrap_or(pid.as_raw());
                        let copy = fds.get(&parent).cloned().unwrap_or_default();
                        for sock in copy.sockets.values() {
                            *holders.entry(sock.id.clone()).or_insert(0) += 1;
                        }
                        fds.insert(child as i32, copy);
                        process_of.insert(Pid::from_raw(child as i32), child as i32);
                        let now = monotonic_us();
                        report(Report::Call(Box::new(TraceRecord {
                            op: "fork".into(),
                            detail: Some(parent.to_string()),
                            at: Some(code_at(program, MAIN_THREAD, child as i32)),
                            t_us: Some(now),
                            end_us: Some(now),
                            ..Default::default()
                        })));
                    }
                } else if event == libc::PTRACE_EVENT_CLONE {
                    if let Ok(thread) = ptrace::getevent(pid) {
                        let tid = Pid::from_raw(thread as i32);
                        let tgid = tgid_of(tid).unwrap_or(thread as i32);
                        process_of.insert(tid, tgid);
                    }
                } else if event == libc::PTRACE_EVENT_EXEC {
                    started |= pid == main;
                    // A new program in the same process: descriptors marked close-on-exec
                    // are gone, so what is known is looked at again.
                    let tgid = process_of.get(&pid).copied().unwrap_or(pid.as_raw());
                    fds.insert(tgid, Fds::default());
                }
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Stopped(pid, Signal::SIGSTOP) if !pending.contains_key(&pid) => {
                // A new tracee's first stop (or a SIGSTOP sent to it, delivered on).
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::Stopped(pid, signal) => {
                // A signal for the program: delivered as if nobody watched.
                let _ = ptrace::cont(pid, Some(signal));
            }
            WaitStatus::Exited(pid, code) if pid == main && !started => {
                return Err(not_started(first, code));
            }
            WaitStatus::Exited(pid, code) => {
                pending.remove(&pid);
                threads.remove(&pid);
                for record in ended(program, pid, &mut process_of, &mut fds, &mut holders) {
                    report(Report::Call(Box::new(record)));
                }
                if pid == main {
                    report(Report::Exit {
                        code: Some(code),
                        signal: None,
                    });
                }
            }
            WaitStatus::Signaled(pid, signal, _) => {
                pending.remove(&pid);
                threads.remove(&pid);
                for record in ended(program, pid, &mut process_of, &mut fds, &mut holders) {
                    report(Report::Call(Box::new(record)));
                }
                if pid == main {
                    report(Report::Exit {
                        code: None,
                        signal: Some(signal as i32),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Where a call of `program` was made: no source line (0), the thread and the process.
fn code_at(program: &str, thread: &str, tgid: i32) -> CodeAt {
    CodeAt {
        file: program.to_string(),
        line: 0,
        code: String::new(),
        thread: thread.to_string(),
        pid: tgid as u32,
        blocked_us: None,
        call_us: None,
    }
}

/// An int the program's memory holds at `address` (a length the kernel wrote back); 0 if it
/// cannot be read.
fn read_u32(pid: Pid, address: u64) -> usize {
    let bytes = read_bytes(pid, address, 4);
    u32::from_ne_bytes(bytes.try_into().unwrap_or([0; 4])) as usize
}

/// What the thread that made the calls is called: the process's first thread is
/// [`MAIN_THREAD`]; another is its id, with the name it gave itself where that differs from
/// the program's (`/proc/PID/task/TID/comm`).
fn thread_name(tgid: i32, tid: Pid) -> String {
    if tid.as_raw() == tgid {
        return MAIN_THREAD.into();
    }
    let comm = |path: String| std::fs::read_to_string(path).map(|t| t.trim().to_string());
    match (
        comm(format!("/proc/{tgid}/task/{tid}/comm")),
        comm(format!("/proc/{tgid}/comm")),
    ) {
        (Ok(name), Ok(main)) if name != main && !name.is_empty() => {
            format!("thread {tid} ({name})")
        }
        _ => format!("thread {tid}"),
    }
}

/// The records of a call that returned `ret` (a negative errno when it failed): none for
/// what is not about a socket, one per message for `sendmmsg` and `recvmmsg`, else one.
fn finish(
    tgid: i32,
    fds: &mut Fds,
    holders: &mut HashMap<String, u32>,
    call: &Pending,
    ret: i64,
) -> Vec<TraceRecord> {
    let failed = (-4095..0).contains(&ret);
    match call.nr {
        libc::SYS_sendmmsg | libc::SYS_recvmmsg if !failed => {
            let Some(one) = finish_one(tgid, fds, holders, call, ret) else {
                return Vec::new();
            };
            let pid = Pid::from_raw(tgid);
            let send = call.nr == libc::SYS_sendmmsg;
            // struct mmsghdr on x86-64: a msghdr (56 bytes), then msg_len; 64 bytes each.
            (0..ret.clamp(0, 1024) as u64)
                .map(|i| {
                    let header = call.args[1] + i * 64;
                    let len = read_u32(pid, header + 56);
                    let mut record = one.clone();
                    record.len = Some(len as u64);
                    record.data = read_msg(pid, header, len)
                        .map(|d| base64::engine::general_purpose::STANDARD.encode(d));
                    if let Some(peer) = msg_name(pid, header) {
                        record.op = if send { "sendto" } else { "recvfrom" }.into();
                        record.peer = Some(peer);
                    }
                    record
                })
                .collect()
        }
        _ => finish_one(tgid, fds, holders, call, ret)
            .into_iter()
            .collect(),
    }
}

/// The record of a call that returned `ret` (a negative errno when it failed), or `None`
/// for what is not about a socket. `sendmmsg` and `recvmmsg` get one to copy per message.
fn finish_one(
    tgid: i32,
    fds: &mut Fds,
    holders: &mut HashMap<String, u32>,
    call: &Pending,
    ret: i64,
) -> Option<TraceRecord> {
    let pid = Pid::from_raw(tgid);
    let [a0, a1, a2, _, a4, _] = call.args;
    let fd = a0 as i32;
    // A non-blocking socket's "not now" is how an event loop (Node, Java's NIO, Go) asks, not
    // a failure: a read or write that would block is not shown, and a connect in progress is
    // shown as the connect it is.
    let would_block = ret == -(libc::EAGAIN as i64);
    let ret = if matches!(call.nr, libc::SYS_connect) && ret == -(libc::EINPROGRESS as i64) {
        0
    } else {
        ret
    };
    let failed = (-4095..0).contains(&ret);
    let mut record = TraceRecord {
        sock: Some(
            fds.sockets
                .get(&fd)
                .map_or_else(|| format!("{tgid}:{fd}"), |s| s.id.clone()),
        ),
        t_us: Some(call.began_us),
        end_us: Some(monotonic_us()),
        ..Default::default()
    };
    if failed {
        // As the shim names a failure: the error's name and the system's words for it.
        let errno = nix::errno::Errno::from_raw(-ret as i32);
        record.errno = Some(-ret as i32);
        record.error = Some(format!("{errno:?}"));
        record.message = Some(errno.desc().to_string());
    }
    let mut hold = |id: &str| *holders.entry(id.to_string()).or_insert(0) += 1;
    let is_socket = |fds: &mut Fds, hold: &mut dyn FnMut(&str), fd: i32| -> bool {
        if fds.sockets.contains_key(&fd) {
            return true;
        }
        if fds.others.contains(&fd) {
            return false;
        }
        if is_inet_socket(tgid, fd) {
            let id = format!("{tgid}:{fd}");
            hold(&id);
            fds.sockets.insert(fd, Sock { id });
            true
        } else {
            fds.others.insert(fd);
            false
        }
    };
    match call.nr {
        libc::SYS_socket => {
            let family = match a0 as i32 {
                libc::AF_INET => "ipv4",
                libc::AF_INET6 => "ipv6",
                libc::AF_UNIX => "unix",
                _ => return None,
            };
            let transport = match a1 as i32 & 0xf {
                libc::SOCK_STREAM => "tcp",
                libc::SOCK_DGRAM => "udp",
                _ => return None,
            };
            record.op = "socket".into();
            record.family = Some(family.into());
            record.transport = Some(transport.into());
            if failed {
                record.sock = None;
            } else {
                let id = format!("{tgid}:{ret}");
                record.sock = Some(id.clone());
                hold(&id);
                fds.sockets.insert(ret as i32, Sock { id });
                fds.others.remove(&(ret as i32));
            }
        }
        libc::SYS_bind | libc::SYS_connect => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            let address = read_sockaddr(pid, a1, a2 as usize);
            if call.nr == libc::SYS_bind {
                record.op = "bind".into();
                // The address it got (the port the system chose for port 0).
                record.local = (!failed)
                    .then(|| names_of(tgid, fd).map(|(local, _)| local))
                    .flatten()
                    .or(address);
            } else {
                record.op = "connect".into();
                record.peer = address;
                if !failed {
                    record.local = names_of(tgid, fd).map(|(local, _)| local);
                }
            }
        }
        libc::SYS_listen => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            record.op = "listen".into();
            record.backlog = Some(a1 as u32);
            record.local = names_of(tgid, fd).map(|(local, _)| local);
        }
        libc::SYS_accept | libc::SYS_accept4 => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            if would_block {
                return None;
            }
            record.op = "accept".into();
            if !failed {
                let new = ret as i32;
                let id = format!("{tgid}:{new}");
                hold(&id);
                fds.sockets.insert(new, Sock { id: id.clone() });
                fds.others.remove(&new);
                record.new = Some(id);
                if let Some((local, peer)) = names_of(tgid, new) {
                    record.local = Some(local);
                    record.peer = peer;
                }
            }
        }
        libc::SYS_sendto
        | libc::SYS_write
        | libc::SYS_sendmsg
        | libc::SYS_writev
        | libc::SYS_sendmmsg => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            if would_block {
                return None;
            }
            let data = match call.nr {
                _ if failed => None,
                libc::SYS_sendmsg => read_msg(pid, a1, ret as usize),
                libc::SYS_writev => read_iov(pid, a1, a2, ret as usize),
                libc::SYS_sendmmsg => None,
                _ => Some(read_bytes(pid, a1, ret as usize)),
            };
            record.op = "send".into();
            let peer = match call.nr {
                libc::SYS_sendto if a4 != 0 => read_sockaddr(pid, a4, call.args[5] as usize),
                libc::SYS_sendmsg => msg_name(pid, a1),
                _ => None,
            };
            if peer.is_some() {
                record.op = "sendto".into();
                record.peer = peer;
            }
            if !failed {
                record.len = Some(ret as u64);
                record.data = data.map(|d| base64::engine::general_purpose::STANDARD.encode(d));
            }
        }
        libc::SYS_recvfrom
        | libc::SYS_read
        | libc::SYS_recvmsg
        | libc::SYS_readv
        | libc::SYS_recvmmsg => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            if would_block {
                return None;
            }
            record.op = "recv".into();
            if !failed {
                let data = match call.nr {
                    libc::SYS_recvmsg => read_msg(pid, a1, ret as usize),
                    libc::SYS_readv => read_iov(pid, a1, a2, ret as usize),
                    libc::SYS_recvmmsg => None,
                    _ => Some(read_bytes(pid, a1, ret as usize)),
                };
                record.len = Some(ret as u64);
                record.data = data.map(|d| base64::engine::general_purpose::STANDARD.encode(d));
                let peer = match call.nr {
                    libc::SYS_recvfrom if a4 != 0 => {
                        read_sockaddr(pid, a4, read_u32(pid, call.args[5]))
                    }
                    libc::SYS_recvmsg => msg_name(pid, a1),
                    _ => None,
                };
                if peer.is_some() {
                    record.op = "recvfrom".into();
                    record.peer = peer;
                }
            }
        }
        libc::SYS_sendfile => {
            // sendfile(socket, file, offset, count): the bytes go from the file, not from
            // the program's memory; they are read from the file where the call read them.
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            record.op = "send".into();
            if !failed {
                record.len = Some(ret as u64);
                record.data = file_bytes(tgid, a1 as i32, a2, ret as usize)
                    .map(|d| base64::engine::general_purpose::STANDARD.encode(d));
                record.detail = Some("sendfile()".into());
            }
        }
        libc::SYS_splice => {
            // splice(in, _, out, _, len, _) between a pipe and a socket: the bytes move
            // inside the kernel and are never in the program's memory, so only their count
            // is known.
            let (fd_in, fd_out) = (a0 as i32, a2 as i32);
            let fd = if is_socket(fds, &mut hold, fd_out) {
                record.op = "send".into();
                fd_out
            } else if is_socket(fds, &mut hold, fd_in) {
                record.op = "recv".into();
                fd_in
            } else {
                return None;
            };
            record.sock = fds.sockets.get(&fd).map(|s| s.id.clone());
            if !failed {
                record.len = Some(ret as u64);
                record.detail = Some("splice(): the bytes moved inside the kernel".into());
            }
        }
        libc::SYS_shutdown => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            record.op = "shutdown".into();
            record.detail = Some(
                match a1 as i32 {
                    libc::SHUT_RD => "SHUT_RD",
                    libc::SHUT_WR => "SHUT_WR",
                    _ => "SHUT_RDWR",
                }
                .into(),
            );
        }
        libc::SYS_close => {
            fds.others.remove(&fd);
            let sock = fds.sockets.remove(&fd)?;
            // Another process's copy keeps the socket open: nothing closed yet.
            if release(holders, &sock.id) > 0 {
                return None;
            }
            record.sock = Some(sock.id);
            record.op = "close".into();
        }
        libc::SYS_select
        | libc::SYS_pselect6
        | libc::SYS_poll
        | libc::SYS_ppoll
        | libc::SYS_epoll_wait
        | libc::SYS_epoll_pwait => {
            // Waiting for sockets (and maybe other descriptors) to be ready: a call of the
            // program's, with how many were.
            let name = match call.nr {
                libc::SYS_select | libc::SYS_pselect6 => "select",
                libc::SYS_poll | libc::SYS_ppoll => "poll",
                _ => "epoll_wait",
            };
            record.op = "call".into();
            record.sock = None;
            record.call = Some(name.into());
            record.detail = Some(if failed {
                format!("{name}() failed")
            } else {
                match ret {
                    0 => format!("{name}(): nothing ready (timed out)"),
                    1 => format!("{name}(): 1 descriptor ready"),
                    n => format!("{name}(): {n} descriptors ready"),
                }
            });
        }
        libc::SYS_setsockopt | libc::SYS_getsockopt => {
            if !is_socket(fds, &mut hold, fd) {
                return None;
            }
            let set = call.nr == libc::SYS_setsockopt;
            let name = if set { "setsockopt" } else { "getsockopt" };
            // An int option's value: what was set, or (after getsockopt) what was read.
            let optlen = if set {
                call.args[4] as usize
            } else {
                read_u32(pid, call.args[4])
            };
            let value = (optlen == 4 && !failed)
                .then(|| read_bytes(pid, call.args[3], 4).try_into().ok())
                .flatten()
                .map(i32::from_ne_bytes);
            let option = option_name(a1 as i32, a2 as i32);
            record.op = "call".into();
            record.call = Some(name.into());
            record.detail = Some(match value {
                Some(v) if set => format!("{name}({option}, {v})"),
                Some(v) => format!("{name}({option}) = {v}"),
                None => format!("{name}({option})"),
            });
        }
        _ => return None,
    }
    Some(record)
}

/// One holder fewer for a socket; how many are left (its count is gone at none).
fn release(holders: &mut HashMap<String, u32>, id: &str) -> u32 {
    let left = holders.get_mut(id).map_or(0, |n| {
        *n = n.saturating_sub(1);
        *n
    });
    if left == 0 {
        holders.remove(id);
    }
    left
}

/// A traced thread or process ended: a process's sockets that no other process holds are
/// closed with it (the kernel closes them), as `close` records.
fn ended(
    program: &str,
    pid: Pid,
    process_of: &mut HashMap<Pid, i32>,
    fds: &mut HashMap<i32, Fds>,
    holders: &mut HashMap<String, u32>,
) -> Vec<TraceRecord> {
    let tgid = process_of.remove(&pid).unwrap_or(pid.as_raw());
    if tgid != pid.as_raw() {
        return Vec::new();
    }
    let Some(mine) = fds.remove(&tgid) else {
        return Vec::new();
    };
    let now = monotonic_us();
    mine.sockets
        .into_values()
        .filter(|sock| release(holders, &sock.id) == 0)
        .map(|sock| TraceRecord {
            op: "close".into(),
            sock: Some(sock.id),
            detail: Some(format!("closed when process {tgid} ended")),
            at: Some(code_at(program, MAIN_THREAD, tgid)),
            t_us: Some(now),
            end_us: Some(now),
            ..Default::default()
        })
        .collect()
}

/// The seccomp program: the traced calls go to the tracer, every other call runs. A program
/// of another architecture's calls (x32, i386) runs untraced rather than misread.
fn seccomp_program() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut p = vec![
        // seccomp_data: nr at 0, arch at 4.
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        op(LD_W_ABS, 0, 0, 0),
    ];
    for nr in TRACED {
        p.push(op(JEQ_K, 0, 1, nr as u32));
        p.push(op(RET_K, 0, 0, libc::SECCOMP_RET_TRACE));
    }
    p.push(op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    p
}

/// Microseconds of the monotonic clock, the shim's clock too.
fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

/// A thread's process (`Tgid:` of /proc/TID/status).
fn tgid_of(tid: Pid) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Whether a process's descriptor is an IPv4, IPv6 or Unix stream or datagram socket, read
/// from a duplicate of it.
fn is_inet_socket(tgid: i32, fd: i32) -> bool {
    let kind = || -> Option<()> {
        let link = std::fs::read_link(format!("/proc/{tgid}/fd/{fd}")).ok()?;
        link.to_string_lossy()
            .starts_with("socket:")
            .then_some(())?;
        let dup = Duplicate::of(tgid, fd)?;
        let int = |option| -> Option<i32> {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `value`.
            let done = unsafe {
                libc::getsockopt(
                    dup.0,
                    libc::SOL_SOCKET,
                    option,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            (done == 0).then_some(value)
        };
        let family = int(libc::SO_DOMAIN)?;
        let transport = int(libc::SO_TYPE)?;
        ([libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].contains(&family)
            && [libc::SOCK_STREAM, libc::SOCK_DGRAM].contains(&transport))
        .then_some(())
    };
    kind().is_some()
}

/// A copy of one of the program's descriptors in the bridge, closed when dropped.
struct Duplicate(i32);

impl Duplicate {
    fn of(tgid: i32, fd: i32) -> Option<Duplicate> {
        // SAFETY: plain system calls on numbers; the descriptors they return are owned here.
        unsafe {
            let pidfd = libc::syscall(libc::SYS_pidfd_open, tgid, 0) as i32;
            if pidfd < 0 {
                return None;
            }
            let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
            libc::close(pidfd);
            (dup >= 0).then_some(Duplicate(dup))
        }
    }
}

impl Drop for Duplicate {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's own.
        unsafe { libc::close(self.0) };
    }
}

/// A socket's own address and its peer's (none for an unconnected one).
fn names_of(tgid: i32, fd: i32) -> Option<(String, Option<String>)> {
    let dup = Duplicate::of(tgid, fd)?;
    let name = |peer: bool| -> Option<String> {
        // SAFETY: an all-zero sockaddr_storage is valid; the call writes at most `len` bytes.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let at = (&mut storage as *mut libc::sockaddr_storage).cast();
        let done = unsafe {
            if peer {
                libc::getpeername(dup.0, at, &mut len)
            } else {
                libc::getsockname(dup.0, at, &mut len)
            }
        };
        if done != 0 {
            return None;
        }
        // SAFETY: `storage` holds `len` bytes of a socket address.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&storage as *const libc::sockaddr_storage).cast::<u8>(),
                len as usize,
            )
        };
        sockaddr_text(bytes)
    };
    Some((name(false)?, name(true)))
}

/// `len` bytes of the program's memory at `address` (at most [`MAX_BYTES`]).
fn read_bytes(pid: Pid, address: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len.min(MAX_BYTES)];
    if buf.is_empty() || address == 0 {
        return Vec::new();
    }
    let remote = [nix::sys::uio::RemoteIoVec {
        base: address as usize,
        len: buf.len(),
    }];
    let read =
        nix::sys::uio::process_vm_readv(pid, &mut [std::io::IoSliceMut::new(&mut buf)], &remote)
            .unwrap_or(0);
    buf.truncate(read);
    buf
}

/// The first `len` bytes a `msghdr`'s buffers hold (sendmsg, recvmsg), at most
/// [`MAX_BYTES`].
fn read_msg(pid: Pid, msghdr: u64, len: usize) -> Option<Vec<u8>> {
    // struct msghdr on x86-64: name, namelen(+pad), iov at 16, iovlen at 24.
    let header = read_bytes(pid, msghdr, 56);
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(header.get(at..at + 8)?.try_into().ok()?))
    };
    read_iov(pid, word(16)?, word(24)?, len)
}

/// The address a `msghdr` names (sendmsg's destination, recvmsg's sender), if any.
fn msg_name(pid: Pid, msghdr: u64) -> Option<String> {
    let header = read_bytes(pid, msghdr, 16);
    let name = u64::from_ne_bytes(header.get(0..8)?.try_into().ok()?);
    let len = u32::from_ne_bytes(header.get(8..12)?.try_into().ok()?) as usize;
    (name != 0 && len > 0)
        .then(|| read_sockaddr(pid, name, len))
        .flatten()
}

/// The first `len` bytes of an array of `count` iovecs (writev, readv, a msghdr's), at most
/// [`MAX_BYTES`] (and at most 64 buffers are looked at).
fn read_iov(pid: Pid, iov: u64, count: u64, len: usize) -> Option<Vec<u8>> {
    let count = count.min(64);
    let mut out = Vec::new();
    let wanted = len.min(MAX_BYTES);
    for i in 0..count {
        if out.len() >= wanted {
            break;
        }
        let entry = read_bytes(pid, iov + i * 16, 16);
        let base = u64::from_ne_bytes(entry.get(0..8)?.try_into().ok()?);
        let size = u64::from_ne_bytes(entry.get(8..16)?.try_into().ok()?) as usize;
        out.extend(read_bytes(pid, base, size.min(wanted - out.len())));
    }
    Some(out)
}

/// A socket address in the program's memory, as text.
fn read_sockaddr(pid: Pid, address: u64, len: usize) -> Option<String> {
    sockaddr_text(&read_bytes(pid, address, len.min(128)))
}

/// `127.0.0.1:12000`, `[::1]:5000`, or a Unix socket's path.
fn sockaddr_text(bytes: &[u8]) -> Option<String> {
    let family = u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?) as i32;
    let port = || -> Option<u16> { Some(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)) };
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(std::net::SocketAddr::from((ip, port()?)).to_string())
        }
        libc::AF_INET6 => {
            let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            Some(std::net::SocketAddr::from((ip, port()?)).to_string())
        }
        libc::AF_UNIX => {
            let path = bytes.get(2..)?;
            let end = path.iter().position(|b| *b == 0).unwrap_or(path.len());
            Some(String::from_utf8_lossy(&path[..end]).into_owned())
        }
        _ => None,
    }
}

/// A socket option by the name a textbook gives it (`SOL_SOCKET, SO_REUSEADDR`), or its
/// numbers for one that is not common.
fn option_name(level: i32, option: i32) -> String {
    let name = match (level, option) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => "SOL_SOCKET, SO_REUSEADDR",
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => "SOL_SOCKET, SO_REUSEPORT",
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => "SOL_SOCKET, SO_KEEPALIVE",
        (libc::SOL_SOCKET, libc::SO_BROADCAST) => "SOL_SOCKET, SO_BROADCAST",
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => "SOL_SOCKET, SO_RCVBUF",
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => "SOL_SOCKET, SO_SNDBUF",
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => "SOL_SOCKET, SO_RCVTIMEO",
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => "SOL_SOCKET, SO_SNDTIMEO",
        (libc::SOL_SOCKET, libc::SO_LINGER) => "SOL_SOCKET, SO_LINGER",
        (libc::SOL_SOCKET, libc::SO_ERROR) => "SOL_SOCKET, SO_ERROR",
        (libc::SOL_SOCKET, libc::SO_TYPE) => "SOL_SOCKET, SO_TYPE",
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => "IPPROTO_TCP, TCP_NODELAY",
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) => "IPPROTO_IPV6, IPV6_V6ONLY",
        (libc::IPPROTO_IP, libc::IP_TTL) => "IPPROTO_IP, IP_TTL",
        _ => return format!("level {level}, option {option}"),
    };
    name.into()
}

/// The `len` bytes (at most [`MAX_BYTES`]) a `sendfile` just sent from the program's
/// descriptor `fd`: from `*offset` before the call when it gave one (the kernel moved it on
/// by `len`), else from before the file's position (which the call moved on). Read with
/// `pread` on a duplicate, which leaves the program's position alone.
fn file_bytes(tgid: i32, fd: i32, offset: u64, len: usize) -> Option<Vec<u8>> {
    let dup = Duplicate::of(tgid, fd)?;
    let end = if offset != 0 {
        let at = read_bytes(Pid::from_raw(tgid), offset, 8);
        i64::from_ne_bytes(at.try_into().ok()?)
    } else {
        // SAFETY: lseek on a descriptor owned here.
        unsafe { libc::lseek(dup.0, 0, libc::SEEK_CUR) }
    };
    let start = end.checked_sub(len as i64).filter(|s| *s >= 0)?;
    let mut buf = vec![0u8; len.min(MAX_BYTES)];
    // SAFETY: pread writes at most `buf.len()` bytes into `buf`.
    let read = unsafe { libc::pread(dup.0, buf.as_mut_ptr().cast(), buf.len(), start) };
    buf.truncate(usize::try_from(read).ok()?);
    Some(buf)
}
