//! The student's own programs, traced: the four handouts' server and client programs (Python
//! 3 versions, in `fixtures/programs/`) run from the page and from `bridge trace`, and every
//! socket call shows up in order with the line that made it; `input()` is answered from the
//! page; programs that crash, loop, flood their console or fork are handled; the limits hold.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use serde_json::json;
use shared::{EndpointSpec, ErrorKind, Event, EventKind};
use tokio::io::AsyncWriteExt as _;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/programs")
}

/// A data directory holding every fixture program.
fn data_dir(tag: &str) -> TempDir {
    let data = TempDir::new(tag);
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, data.0.join(path.file_name().unwrap())).unwrap();
    }
    data
}

async fn bridge_for(data: &TempDir) -> Bridge {
    let dir = data.0.clone();
    Bridge::start_with(move |c| c.data_dir = dir).await
}

fn exit_of(events: &[Event], program: u32) -> Option<(Option<i32>, Option<i32>, String)> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Exit {
            code,
            signal,
            detail,
        } if e.endpoint == program => Some((*code, *signal, detail.clone())),
        _ => None,
    })
}

/// Whether process `pid` stops running within the wait: gone, or a zombie its new parent (the
/// system's init, once its own parent was killed) has yet to reap.
async fn stops_running(pid: u32) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    false
}

async fn wait_exit(c: &mut Client, program: u32) -> (Option<i32>, Option<i32>, String) {
    c.wait_until("the program's exit", |ev| exit_of(ev, program).is_some())
        .await;
    exit_of(&c.events, program).unwrap()
}

/// Waits until program `program` has made call `kind` (at `line`).
async fn wait_call(c: &mut Client, program: u32, kind: &str, line: u32) {
    c.wait_until(&format!("{kind} at line {line}"), |ev| {
        calls(ev, program).contains(&(kind_name(kind), line))
    })
    .await;
}

fn kind_name(kind: &str) -> &'static str {
    [
        "socket",
        "bind",
        "listen",
        "accept",
        "connect",
        "send",
        "recv",
        "send_to",
        "recv_from",
        "eof",
        "close",
        "error",
        "call",
        "shutdown",
        "timeout",
    ]
    .into_iter()
    .find(|k| *k == kind)
    .unwrap_or("unknown")
}

/// One handout's pair of programs and what each must show.
struct Lab {
    server: &'static str,
    client: &'static str,
    /// The prompt the client prints and the line typed in answer, if it asks.
    input: Option<(&'static str, &'static str)>,
    /// The call the server is ready after (its listen, or a UDP bind), and its line.
    ready: (&'static str, u32),
    server_calls: &'static [(&'static str, u32)],
    client_calls: &'static [(&'static str, u32)],
    /// What the client prints.
    prints: &'static str,
}

const LABS: &[Lab] = &[
    // Kurose & Ross (seed 000): the uppercase server and its client, with input().
    Lab {
        server: "kurose_tcp_server.py",
        client: "kurose_tcp_client.py",
        input: Some(("Input lowercase sentence: ", "hello world\n")),
        ready: ("listen", 10),
        server_calls: &[
            ("socket", 4),
            ("bind", 7),
            ("listen", 10),
            ("accept", 15),
            ("recv", 19),
            ("send", 26),
            ("close", 29),
        ],
        client_calls: &[
            ("socket", 7),
            ("connect", 10),
            ("send", 16),
            ("recv", 19),
            ("close", 25),
        ],
        prints: "From Server: HELLO WORLD",
    },
    // "Thanks for connecting" (seed 001).
    Lab {
        server: "antony_server.py",
        client: "antony_client.py",
        input: None,
        ready: ("listen", 9),
        server_calls: &[
            ("socket", 3),
            ("bind", 7),
            ("listen", 9),
            ("accept", 12),
            ("recv", 13),
            ("send", 16),
            ("close", 17),
        ],
        client_calls: &[
            ("socket", 3),
            ("connect", 7),
            ("send", 8),
            ("recv", 9),
            ("close", 11),
        ],
        prints: "Thanks_for_connecting",
    },
    // ELEN 4017 (seed 002): echo until "exit" over TCP, then UDP.
    Lab {
        server: "elen_echo_server.py",
        client: "elen_echo_client.py",
        input: Some(("Input sentence: ", "one\ntwo\nexit\n")),
        ready: ("listen", 7),
        server_calls: &[
            ("socket", 5),
            ("bind", 6),
            ("listen", 7),
            ("accept", 9),
            ("recv", 11),
            ("send", 14),
            ("recv", 11),
            ("send", 14),
            ("recv", 11),
            ("close", 15),
            ("close", 16),
        ],
        client_calls: &[
            ("socket", 5),
            ("connect", 6),
            ("send", 9),
            ("recv", 12),
            ("send", 9),
            ("recv", 12),
            ("send", 9),
            ("close", 14),
        ],
        prints: "From Server: two",
    },
    Lab {
        server: "elen_udp_server.py",
        client: "elen_udp_client.py",
        input: Some(("Input lowercase sentence: ", "over udp\n")),
        ready: ("bind", 6),
        server_calls: &[
            ("socket", 5),
            ("bind", 6),
            ("recv_from", 9),
            ("send_to", 10),
        ],
        client_calls: &[
            ("socket", 5),
            ("send_to", 7),
            ("recv_from", 8),
            ("close", 10),
        ],
        prints: "over udp",
    },
    // Goldsmiths (seed 004): the "ACK: " server and its client.
    Lab {
        server: "goldsmiths_server.py",
        client: "goldsmiths_client.py",
        input: Some(("Enter message: ", "hi there\n")),
        ready: ("listen", 7),
        server_calls: &[
            ("socket", 5),
            ("bind", 6),
            ("listen", 7),
            ("accept", 12),
            ("recv", 15),
            ("send", 19),
            ("close", 20),
        ],
        client_calls: &[
            ("socket", 4),
            ("connect", 6),
            ("send", 10),
            ("recv", 12),
            ("close", 16),
        ],
        prints: "Server response: ACK: hi there",
    },
];

fn port_for(lab: &Lab) -> u16 {
    if lab.server.contains("udp") {
        free_udp_port()
    } else {
        free_tcp_port()
    }
}

/// Checks that `lab`'s client made exactly its calls and its server (which goes on waiting)
/// began with its own, once they have been seen.
async fn check_lab_calls(c: &mut Client, lab: &Lab, server: u32, client: u32) {
    assert_eq!(
        calls(&c.events, client),
        lab.client_calls,
        "the calls of {}",
        lab.client
    );
    let n = lab.server_calls.len();
    c.wait_until(&format!("the calls of {}", lab.server), |ev| {
        calls(ev, server).len() >= n
    })
    .await;
    assert_eq!(
        first(calls(&c.events, server), n),
        lab.server_calls,
        "the calls of {}",
        lab.server
    );
}

/// The first `n` calls, to compare with what a lab expects (a server goes on to wait).
fn first(calls: Vec<(&'static str, u32)>, n: usize) -> Vec<(&'static str, u32)> {
    calls.into_iter().take(n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handouts_programs_run_from_the_page_call_by_call() {
    let data = data_dir("programs-page");
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    for lab in LABS {
        let port = port_for(lab).to_string();
        let server = run_program(&mut c, lab.server, &[&port]).await;
        wait_call(&mut c, server, lab.ready.0, lab.ready.1).await;
        let client = run_program(&mut c, lab.client, &[&port]).await;
        if let Some((prompt, answer)) = lab.input {
            c.wait_until(&format!("the prompt of {}", lab.client), |ev| {
                console(ev, client).contains(prompt)
            })
            .await;
            c.ok(cmd(
                json!({"op": "program_input", "program": client, "text": answer}),
            ))
            .await;
        }
        let (code, _, _) = wait_exit(&mut c, client).await;
        assert_eq!(
            code,
            Some(0),
            "{}: {}",
            lab.client,
            console(&c.events, client)
        );
        assert!(
            console(&c.events, client).contains(lab.prints),
            "{} printed {:?}",
            lab.client,
            console(&c.events, client)
        );
        check_lab_calls(&mut c, lab, server, client).await;
        // Two programs, one order: what the client sent comes before what the server got.
        let first_seq = |program: u32, kind: &str| {
            let socks = sockets_of(&c.events, program);
            c.events
                .iter()
                .find(|e| socks.contains(&e.endpoint) && e.kind.name() == kind)
                .map(|e| e.seq)
                .unwrap_or_else(|| panic!("no {kind} of #{program}"))
        };
        let (sent, got) = if lab.server.contains("udp") {
            ("send_to", "recv_from")
        } else {
            assert!(
                first_seq(client, "connect") < first_seq(server, "accept"),
                "{}",
                lab.server
            );
            ("send", "recv")
        };
        assert!(
            first_seq(client, sent) < first_seq(server, got),
            "{}: the client's {sent} is shown before the server's {got}",
            lab.server
        );
        // A server that ends by itself (ELEN's, after "exit") may have ended by now.
        c.request(shared::Command::close(server, None)).await;
        wait_exit(&mut c, server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_says_where_the_program_is_stuck() {
    let data = data_dir("programs-wait");
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let port = free_tcp_port().to_string();
    let server = run_program(&mut c, "kurose_tcp_server.py", &[&port]).await;
    let waiting = c
        .wait_for(
            "accept() waiting",
            |e| matches!(&e.kind, EventKind::Waiting { op } if op == "accept"),
        )
        .await;
    let at = waiting.at.expect("the line that waits");
    assert_eq!(at.line, 15);
    assert_eq!(
        at.code,
        "connectionSocket, clientAddress = serverSocket.accept()"
    );
    assert_eq!(at.thread, "MainThread");
    assert!(sockets_of(&c.events, server).contains(&waiting.endpoint));
    // A client comes: accept() returns, saying how long it waited.
    let port = calls(&c.events, server);
    assert!(port.contains(&("listen", 10)));
    let listening = c
        .events
        .iter()
        .find(|e| e.kind.name() == "listen" && sockets_of(&c.events, server).contains(&e.endpoint))
        .and_then(|e| e.local.clone())
        .expect("the server's address");
    python(
        "import socket, sys\nh, p = sys.argv[1].rsplit(':', 1)\ns = socket.create_connection((h, int(p)))\ns.sendall(b'abc')\nprint(s.recv(10))",
        &[&listening],
    )
    .await;
    let accepted = c
        .wait_for("accept()", |e| {
            e.kind.name() == "accept" && e.at.as_ref().is_some_and(|at| at.line == 15)
        })
        .await;
    let blocked = accepted.at.unwrap().blocked_us.expect("how long it waited");
    assert!(blocked >= 100_000, "waited {blocked} us");
    c.ok(shared::Command::close(server, None)).await;
    let (_, signal, detail) = wait_exit(&mut c, server).await;
    assert_eq!(signal, Some(libc::SIGTERM), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_explained_with_its_line_and_traceback() {
    let data = data_dir("programs-crash");
    std::fs::write(
        data.0.join("refused.py"),
        format!(
            "import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {}))\n",
            free_tcp_port()
        ),
    )
    .unwrap();
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let program = run_program(&mut c, "refused.py", &[]).await;
    let (code, _, _) = wait_exit(&mut c, program).await;
    assert_eq!(code, Some(1));
    // The failed call, on its socket, with its line and the bridge's own explanation.
    let failed = c
        .events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::Error { op, .. } if op == "connect"))
        .expect("connect() failed");
    assert_eq!(failed.at.as_ref().unwrap().line, 3);
    let EventKind::Error { error, .. } = &failed.kind else {
        unreachable!()
    };
    assert_eq!(error.kind, ErrorKind::ConnectionRefused);
    assert!(
        error.explanation.contains("nothing is listening"),
        "{error:?}"
    );
    // Then the exception that ended the program, explained the same way, with its traceback.
    let uncaught = c
        .events
        .iter()
        .find(|e| {
            e.endpoint == program
                && matches!(&e.kind, EventKind::Error { op, .. } if op == "uncaught ConnectionRefusedError")
        })
        .expect("the uncaught exception");
    let EventKind::Error { error, .. } = &uncaught.kind else {
        unreachable!()
    };
    assert!(
        error.explanation.contains("nothing is listening"),
        "{error:?}"
    );
    assert!(error
        .hint
        .as_deref()
        .unwrap_or("")
        .contains("Start the server first"));
    assert!(error
        .os_message
        .as_deref()
        .unwrap_or("")
        .contains("Traceback (most recent call last)"));
    assert!(console(&c.events, program).contains("ConnectionRefusedError"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_loops_ignores_sigterm_or_floods_is_stopped_and_bounded() {
    let data = data_dir("programs-loop");
    std::fs::write(
        data.0.join("stubborn.py"),
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('looping', flush=True)\nwhile True:\n    pass\n",
    )
    .unwrap();
    std::fs::write(
        data.0.join("flood.py"),
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nwhile True:\n    print('x' * 1000)\n    s.sendto(b'y', ('127.0.0.1', 9))\n",
    )
    .unwrap();
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let stubborn = run_program(&mut c, "stubborn.py", &[]).await;
    c.wait_until("it loops", |ev| console(ev, stubborn).contains("looping"))
        .await;
    let flood = run_program(&mut c, "flood.py", &[]).await;
    // A loaded machine runs the flood slowly: give it time to pass both rates.
    c.wait_until_within("console and calls beyond the rate are counted", 6 * WAIT, |ev| {
        let dropped = |what: &str| {
            ev.iter().any(|e| {
                e.endpoint == flood
                    && matches!(&e.kind, EventKind::Dropped { what: w, count } if w == what && *count > 0)
            })
        };
        dropped("console") && dropped("calls")
    })
    .await;
    let pid = |program: u32, events: &[Event]| {
        events
            .iter()
            .find_map(|e| match &e.kind {
                EventKind::Socket {
                    spec: EndpointSpec::Program(p),
                } if e.endpoint == program => Some(p.pid),
                _ => None,
            })
            .unwrap()
    };
    let pids = [pid(stubborn, &c.events), pid(flood, &c.events)];
    // A reset stops both: SIGTERM, and SIGKILL for the one that ignores it.
    c.ok(cmd(json!({"op": "reset"}))).await;
    let (_, signal, detail) = wait_exit(&mut c, stubborn).await;
    assert_eq!(signal, Some(libc::SIGKILL), "{detail}");
    let (_, signal, _) = wait_exit(&mut c, flood).await;
    assert_eq!(signal, Some(libc::SIGTERM));
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is gone, not a zombie"
        );
    }
    assert!(stops_running(pids[0]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_child_is_traced_and_stopped_with_its_parent() {
    let data = data_dir("programs-fork");
    std::fs::write(
        data.0.join("forks.py"),
        "import os, socket, time\npid = os.fork()\nif pid == 0:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.bind(('127.0.0.1', 0))\n    print('child', os.getpid(), flush=True)\n    time.sleep(600)\nelse:\n    time.sleep(600)\n",
    )
    .unwrap();
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let program = run_program(&mut c, "forks.py", &[]).await;
    c.wait_until("the child's bind and its pid", |ev| {
        calls(ev, program).contains(&("bind", 5))
            && console(ev, program)
                .lines()
                .any(|l| l.starts_with("child "))
            && console(ev, program).ends_with('\n')
    })
    .await;
    let child: u32 = console(&c.events, program)
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the child's pid in {:?}", console(&c.events, program)));
    let bind = c
        .events
        .iter()
        .find(|e| e.kind.name() == "bind" && e.at.as_ref().is_some_and(|a| a.line == 5))
        .unwrap();
    assert_eq!(bind.at.as_ref().unwrap().pid, child, "the child's own pid");
    assert!(c
        .events
        .iter()
        .any(|e| e.endpoint == program
            && matches!(&e.kind, EventKind::Call { op, .. } if op == "fork")));
    c.ok(shared::Command::close(program, None)).await;
    wait_exit(&mut c, program).await;
    assert!(stops_running(child).await, "the child is gone too");
}

#[tokio::test]
async fn programs_are_limited_and_their_environment_is_their_own() {
    let data = data_dir("programs-limits");
    std::fs::write(
        data.0.join("env.py"),
        "import os, sys\nprint(sorted(os.environ))\nprint(os.environ.get('PYTHONPATH', ''))\nprint(sys.path)\nimport time\ntime.sleep(600)\n",
    )
    .unwrap();
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let mut running = Vec::new();
    for _ in 0..8 {
        running.push(run_program(&mut c, "env.py", &[]).await);
    }
    let error = c
        .err(cmd(json!({"op": "program_run", "file": "env.py"})))
        .await;
    assert_eq!(error.kind, ErrorKind::LimitReached, "{error:?}");
    c.wait_until("the environment", |ev| {
        console(ev, running[0]).contains("]\n")
    })
    .await;
    let env = console(&c.events, running[0]);
    assert!(!env.contains("SOCKET_PLAYGROUND_TRACE"), "{env}");
    assert!(!env.contains(TOKEN), "{env}");
    assert!(!env.contains("socket-playground-shim"), "{env}");
    // What is not a program is refused with a reason.
    for file in ["missing.py", "../x.py"] {
        let error = c.err(cmd(json!({"op": "program_run", "file": file}))).await;
        assert!(error.explanation.contains(file), "{file}: {error:?}");
    }
    std::fs::write(data.0.join("notes.txt"), "not a program").unwrap();
    let error = c
        .err(cmd(json!({"op": "program_run", "file": "notes.txt"})))
        .await;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    // A traced socket belongs to its program: the playground does not close it.
    c.ok(cmd(json!({"op": "reset"}))).await;
    for program in running {
        wait_exit(&mut c, program).await;
    }
}

#[tokio::test]
async fn the_editor_saves_and_reads_a_program() {
    let data = TempDir::new("programs-editor");
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let source = "print('hello from the editor')\n";
    c.ok(cmd(
        json!({"op": "program_save", "file": "mine.py", "source": source}),
    ))
    .await;
    assert_eq!(
        std::fs::read_to_string(data.0.join("mine.py")).unwrap(),
        source
    );
    match c
        .ok(cmd(json!({"op": "file_read", "file": "mine.py"})))
        .await
    {
        shared::ReplyData::Program { file, code } => {
            assert_eq!(file, "mine.py");
            assert_eq!(code, source);
        }
        other => panic!("{other:?}"),
    }
    let program = run_program(&mut c, "mine.py", &[]).await;
    match c
        .ok(cmd(json!({"op": "program_source", "program": program})))
        .await
    {
        shared::ReplyData::Program { code, .. } => assert_eq!(code, source),
        other => panic!("{other:?}"),
    }
    let (code, _, _) = wait_exit(&mut c, program).await;
    assert_eq!(code, Some(0));
    assert!(console(&c.events, program).contains("hello from the editor"));
    let error = c
        .err(cmd(
            json!({"op": "program_save", "file": "mine.txt", "source": "x"}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
}

/// `bridge trace` on a fixture, in the given runtime directory, with `url` if given.
fn trace_command(
    runtime: &Path,
    url: Option<&str>,
    program: &str,
    args: &[&str],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bridge_binary());
    command.arg("trace");
    if let Some(url) = url {
        command.args(["--url", url]);
    }
    command
        .arg("--")
        .arg("python3")
        .arg(fixtures().join(program))
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_trace_shows_a_terminals_programs_found_through_the_runtime_file() {
    let runtime = TempDir::new("programs-runtime");
    let data = TempDir::new("programs-trace-data");
    let mut command = tokio::process::Command::new(bridge_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--data-dir"])
        .arg(&data.0)
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .stderr(Stdio::null());
    let bridge = BridgeProcess::spawn(command).await;
    let file = runtime
        .0
        .join(format!("socket-playground/bridge-{}.json", bridge.pid()));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("the runtime file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only its user reads the token");
    }
    let mut c = bridge.client().await;
    let port = free_tcp_port().to_string();
    let mut server = trace_command(&runtime.0, None, "kurose_tcp_server.py", &[&port])
        .spawn()
        .unwrap();
    let program_of = |name: &'static str| {
        move |events: &[Event]| {
            events.iter().find_map(|e| match &e.kind {
                EventKind::Socket {
                    spec: EndpointSpec::Program(p),
                } if p.script.as_deref().is_some_and(|s| s.ends_with(name)) => Some(e.endpoint),
                _ => None,
            })
        }
    };
    c.wait_until("the terminal's server", |ev| {
        program_of("kurose_tcp_server.py")(ev).is_some()
    })
    .await;
    let server_id = program_of("kurose_tcp_server.py")(&c.events).unwrap();
    wait_call(&mut c, server_id, "listen", 10).await;
    // The client asks its question in the terminal, and takes the answer from there.
    let mut client = trace_command(&runtime.0, None, "kurose_tcp_client.py", &[&port])
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"from a terminal\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(WAIT, client.wait_with_output())
        .await
        .expect("the client ends")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("Input lowercase sentence: From Server: FROM A TERMINAL"),
        "{printed}"
    );
    c.wait_until("the terminal's client", |ev| {
        program_of("kurose_tcp_client.py")(ev).is_some()
    })
    .await;
    let client_id = program_of("kurose_tcp_client.py")(&c.events).unwrap();
    wait_exit(&mut c, client_id).await;
    assert_eq!(
        calls(&c.events, client_id),
        LABS[0].client_calls,
        "the client's calls"
    );
    c.wait_until("the server's calls", |ev| calls(ev, server_id).len() >= 7)
        .await;
    assert_eq!(first(calls(&c.events, server_id), 7), LABS[0].server_calls);
    // The source view has the terminal's script.
    match c
        .ok(cmd(json!({"op": "program_source", "program": server_id})))
        .await
    {
        shared::ReplyData::Program { code, .. } => assert!(code.contains("serverSocket.accept()")),
        other => panic!("{other:?}"),
    }
    // The sequence diagram can face the two: the server's accepted connection has the
    // client's address, and the client's connect the server's.
    let connect = c
        .events
        .iter()
        .find(|e| {
            e.kind.name() == "connect" && sockets_of(&c.events, client_id).contains(&e.endpoint)
        })
        .unwrap();
    let accept = c
        .events
        .iter()
        .find(|e| {
            e.kind.name() == "accept" && sockets_of(&c.events, server_id).contains(&e.endpoint)
        })
        .unwrap();
    assert_eq!(connect.local, accept.peer);
    assert_eq!(connect.peer, accept.local);
    // Stopping the terminal's server there: its end is shown, and the exit status passed on.
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    wait_exit(&mut c, server_id).await;
    drop(bridge);
}

#[tokio::test]
async fn bridge_trace_without_a_bridge_says_how_to_start_one() {
    let runtime = TempDir::new("programs-nobridge");
    let out = trace_command(&runtime.0, None, "antony_client.py", &["1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no Socket Playground bridge is running"),
        "{said}"
    );
    assert!(said.contains("cargo xtask run"), "{said}");
    // Any other program would run under the system-call tracer: without a bridge, the same.
    let out = tokio::process::Command::new(bridge_binary())
        .args(["trace", "--", "ls"])
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Socket Playground bridge is running"));
    // Nothing to run: said so.
    let out = tokio::process::Command::new(bridge_binary())
        .args(["trace", "--"])
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<COMMAND>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_trace_with_a_url_and_a_program_that_exits_with_an_error() {
    let data = TempDir::new("programs-url");
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let runtime = TempDir::new("programs-url-runtime");
    let url = format!("http://{}/#token={TOKEN}", bridge.addr);
    // The Antony client with no server: connect() is refused, the exception ends it.
    let port = free_tcp_port().to_string();
    let out = trace_command(&runtime.0, Some(&url), "antony_client.py", &[&port])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ConnectionRefusedError"));
    c.wait_until("the exit", |ev| {
        ev.iter()
            .any(|e| matches!(&e.kind, EventKind::Exit { code: Some(1), .. }))
    })
    .await;
    let refused = c
        .events
        .iter()
        .find(|e| matches!(&e.kind, EventKind::Error { op, .. } if op == "connect"))
        .expect("the refused connect");
    assert_eq!(refused.at.as_ref().unwrap().line, 7);
    assert_eq!(
        refused.peer.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    // A wrong token: refused, and the program still runs (untraced).
    let wrong = format!("http://{}/#token=wrong-token-0123456789", bridge.addr);
    let out = trace_command(&runtime.0, Some(&wrong), "antony_client.py", &[&port])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("untraced"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_select_makefile_and_create_connection_are_traced() {
    let data = data_dir("programs-threads");
    std::fs::write(
        data.0.join("threads.py"),
        r#"import select, socket, threading
srv = socket.create_server(("127.0.0.1", 0))
port = srv.getsockname()[1]
def serve():
    conn, _ = srv.accept()
    f = conn.makefile("rwb")
    line = f.readline()
    f.write(line.upper())
    f.flush()
    conn.close()
t = threading.Thread(target=serve, name="handler")
t.start()
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"hi\n")
select.select([c], [], [], 5)
print(c.recv(10))
t.join()
"#,
    )
    .unwrap();
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let program = run_program(&mut c, "threads.py", &[]).await;
    let (code, _, _) = wait_exit(&mut c, program).await;
    assert_eq!(code, Some(0), "{}", console(&c.events, program));
    assert!(console(&c.events, program).contains("b'HI\\n'"));
    let socks = sockets_of(&c.events, program);
    let find = |kind: &str, line: u32| {
        c.events
            .iter()
            .find(|e| {
                socks.contains(&e.endpoint)
                    && e.kind.name() == kind
                    && e.at.as_ref().is_some_and(|at| at.line == line)
            })
            .unwrap_or_else(|| panic!("no {kind} at line {line}: {:?}", calls(&c.events, program)))
            .clone()
    };
    // create_server and create_connection: their calls are the lines that called them.
    find("listen", 2);
    find("connect", 13);
    // The handler thread's calls say so; makefile's reads and writes are recv and send.
    let accept = find("accept", 5);
    assert_eq!(accept.at.unwrap().thread, "handler");
    assert_eq!(text(&find("recv", 7)), "hi\n");
    assert_eq!(text(&find("send", 9)), "HI\n");
    // select() and getaddrinfo() are calls of the program.
    assert!(c.events.iter().any(|e| {
        e.at.as_ref().is_some_and(|at| at.line == 15)
            && matches!(&e.kind, EventKind::Call { op, detail } if op == "select" && detail.contains("1 ready"))
    }));
    assert!(c.events.iter().any(|e| {
        e.at.as_ref().is_some_and(|at| at.line == 13)
            && matches!(&e.kind, EventKind::Call { op, .. } if op == "getaddrinfo")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handouts_programs_run_traced_from_a_terminal() {
    let data = TempDir::new("programs-terminal");
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let runtime = TempDir::new("programs-terminal-runtime");
    let url = format!("http://{}/#token={TOKEN}", bridge.addr);
    let program_of = |events: &[Event], name: &str| {
        events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Socket {
                spec: EndpointSpec::Program(p),
            } if p.script.as_deref().is_some_and(|s| s.ends_with(name)) => Some(e.endpoint),
            _ => None,
        })
    };
    for lab in LABS {
        let port = port_for(lab).to_string();
        let mut server = trace_command(&runtime.0, Some(&url), lab.server, &[&port])
            .spawn()
            .unwrap();
        c.wait_until(&format!("{} in the bridge", lab.server), |ev| {
            program_of(ev, lab.server)
                .is_some_and(|p| calls(ev, p).contains(&(kind_name(lab.ready.0), lab.ready.1)))
        })
        .await;
        let server_id = program_of(&c.events, lab.server).unwrap();
        let mut client = trace_command(&runtime.0, Some(&url), lab.client, &[&port])
            .spawn()
            .unwrap();
        let mut stdin = client.stdin.take().unwrap();
        if let Some((_, answer)) = lab.input {
            stdin.write_all(answer.as_bytes()).await.unwrap();
        }
        drop(stdin);
        let out = tokio::time::timeout(WAIT, client.wait_with_output())
            .await
            .expect("the client ends")
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {printed}", lab.client);
        assert!(printed.contains(lab.prints), "{}: {printed}", lab.client);
        c.wait_until(&format!("{} ends in the bridge", lab.client), |ev| {
            program_of(ev, lab.client).is_some_and(|p| exit_of(ev, p).is_some())
        })
        .await;
        let client_id = program_of(&c.events, lab.client).unwrap();
        check_lab_calls(&mut c, lab, server_id, client_id).await;
        let _ = server.start_kill();
        server.wait().await.unwrap();
        wait_exit(&mut c, server_id).await;
    }
}

#[tokio::test]
async fn beyond_loopback_the_page_runs_programs_only_when_allowed() {
    let data = data_dir("programs-off");
    let dir = data.0.clone();
    // What the command line sets when the bridge listens beyond loopback without
    // --allow-programs.
    let bridge = Bridge::start_with(move |c| {
        c.data_dir = dir;
        c.allow_programs = false;
    })
    .await;
    let mut c = bridge.client().await;
    let error = c
        .err(cmd(
            json!({"op": "program_run", "file": "antony_client.py", "args": ["1"]}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::NotAllowed, "{error:?}");
    assert!(error.hint.unwrap_or_default().contains("--allow-programs"));
    // A terminal's program is still shown: it runs there, as its user.
    let attached = c
        .endpoint(cmd(
            json!({"op": "trace_attach", "argv": ["python3", "x.py"], "pid": 1}),
        ))
        .await;
    c.ok(cmd(
        json!({"op": "trace_exit", "program": attached.id, "code": 0}),
    ))
    .await;
    wait_exit(&mut c, attached.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multiprocessing_child_reports_before_it_ends() {
    let data = data_dir("programs-mp");
    std::fs::write(
        data.0.join("mp.py"),
        r#"import multiprocessing, os, socket
def child(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"from the child", ("127.0.0.1", port))
if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    p = multiprocessing.Process(target=child, args=(r.getsockname()[1],))
    p.start()
    print(r.recvfrom(100)[0], os.getpid(), p.pid)
    p.join()
"#,
    )
    .unwrap();
    let bridge = bridge_for(&data).await;
    let mut c = bridge.client().await;
    let program = run_program(&mut c, "mp.py", &[]).await;
    let (code, _, _) = wait_exit(&mut c, program).await;
    assert_eq!(code, Some(0), "{}", console(&c.events, program));
    let printed = console(&c.events, program);
    let pids: Vec<u32> = printed
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [parent, child] = pids[..] else {
        panic!("two pids in {printed:?}")
    };
    let sent = c
        .events
        .iter()
        .find(|e| e.kind.name() == "send_to")
        .expect("the child's sendto, reported before it ended");
    let at = sent.at.as_ref().unwrap();
    assert_eq!((at.pid, at.line), (child, 4));
    let got = c
        .events
        .iter()
        .find(|e| e.kind.name() == "recv_from")
        .expect("the parent's recvfrom");
    assert_eq!(got.at.as_ref().unwrap().pid, parent);
    assert_eq!(text(got), "from the child");
}

/// The shim must load on every Python the labs use (3.8 to 3.13); this machine has one, so
/// at least its syntax is held to 3.8's grammar.
#[tokio::test]
async fn the_shim_is_written_in_python_3_8() {
    let shim = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/programs/shim/sitecustomize.py");
    let out = python(
        "import ast, sys\nast.parse(open(sys.argv[1]).read(), feature_version=(3, 8))\nprint('ok')",
        &[shim.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.trim(), "ok");
}
