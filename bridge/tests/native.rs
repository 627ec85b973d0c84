//! Programs in any language (issue 20): C programs written the textbook way, compiled with
//! Debian's gcc, run under `bridge trace` (the system-call tracer) and shown in a real bridge
//! call by call, with the right bytes and addresses.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use shared::{EndpointSpec, Event, EventKind};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/c")
}

/// `name.c` compiled into `dir`; `None` (the test says it skipped) without gcc.
fn compile(dir: &Path, name: &str) -> Option<PathBuf> {
    let out = dir.join(name);
    let status = std::process::Command::new("gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(fixtures().join(format!("{name}.c")))
        .status();
    match status {
        Ok(status) if status.success() => Some(out),
        Ok(status) => panic!("gcc failed on {name}.c: {status}"),
        Err(e) => {
            eprintln!("skipped: gcc cannot run ({e}); cargo xtask test installs it");
            None
        }
    }
}

fn trace(runtime: &Path, program: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bridge_binary());
    command
        .args(["trace", "--"])
        .arg(program)
        .args(args)
        .env("XDG_RUNTIME_DIR", runtime)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The program endpoint whose command line ran `name`.
fn program(events: &[Event], name: &str) -> Option<u32> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Socket {
            spec: EndpointSpec::Program(p),
        } if p.argv.first().is_some_and(|a| a.ends_with(name)) => Some(e.endpoint),
        _ => None,
    })
}

/// The sockets of a program (their endpoints).
fn sockets_of(events: &[Event], program: u32) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Socket {
                spec: EndpointSpec::Traced(t),
            } if t.program == program => Some(e.endpoint),
            _ => None,
        })
        .collect()
}

/// The calls on a program's sockets, in order: kind, and the bytes of a send or recv.
fn calls(events: &[Event], program: u32) -> Vec<(String, String)> {
    calls_on(events, &sockets_of(events, program))
}

/// The calls on some sockets, in order: kind, and the bytes of a send or recv.
fn calls_on(events: &[Event], mine: &[u32]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| mine.contains(&e.endpoint))
        .filter(|e| !matches!(e.kind, EventKind::Socket { .. } | EventKind::Packet(_)))
        .map(|e| {
            let data = match &e.kind {
                EventKind::Send { .. }
                | EventKind::Recv { .. }
                | EventKind::SendTo { .. }
                | EventKind::RecvFrom { .. } => text(e),
                _ => String::new(),
            };
            (e.kind.name().to_string(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_client_and_server_are_traced_call_by_call() {
    let build = TempDir::new("native-build");
    let (Some(server_bin), Some(client_bin)) = (
        compile(&build.0, "uppercase_server"),
        compile(&build.0, "uppercase_client"),
    ) else {
        return;
    };
    let runtime = TempDir::new("native-runtime");
    let data = TempDir::new("native-data");
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let port = free_tcp_port().to_string();
    let mut server = trace(&runtime.0, &server_bin, &[&port]).spawn().unwrap();
    c.wait_until("the C server listens", |ev| {
        program(ev, "uppercase_server")
            .is_some_and(|p| calls(ev, p).iter().any(|(kind, _)| kind == "listen"))
    })
    .await;
    let out = tokio::time::timeout(
        WAIT,
        trace(&runtime.0, &client_bin, &[&port, "hello from c"]).output(),
    )
    .await
    .expect("the client ends")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "From Server: HELLO FROM C\n",
        "the program's own output is the terminal's"
    );
    let status = tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("the server ends")
        .unwrap();
    assert!(status.success());
    c.wait_until("both programs ended", |ev| {
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Exit { .. }))
            .count()
            >= 2
    })
    .await;
    let server_id = program(&c.events, "uppercase_server").unwrap();
    let client_id = program(&c.events, "uppercase_client").unwrap();
    let kinds = |calls: Vec<(String, String)>| -> Vec<String> {
        calls.into_iter().map(|(k, _)| k).collect()
    };
    let server_calls = calls(&c.events, server_id);
    assert_eq!(
        kinds(server_calls.clone()),
        ["call", "bind", "listen", "accept", "recv", "send", "close", "close"],
        "{server_calls:#?}"
    );
    assert!(server_calls.contains(&("recv".into(), "hello from c".into())));
    assert!(server_calls.contains(&("send".into(), "HELLO FROM C".into())));
    let client_calls = calls(&c.events, client_id);
    assert_eq!(
        kinds(client_calls.clone()),
        ["connect", "send", "recv", "close"],
        "{client_calls:#?}"
    );
    // Addresses: the server bound its port; the client's connect and the accept agree.
    let listen_addr = format!("127.0.0.1:{port}");
    let connect = c
        .events
        .iter()
        .find(|e| {
            sockets_of(&c.events, client_id).contains(&e.endpoint) && e.kind.name() == "connect"
        })
        .unwrap()
        .clone();
    assert_eq!(connect.peer.as_deref(), Some(listen_addr.as_str()));
    let accept = c
        .events
        .iter()
        .find(|e| {
            sockets_of(&c.events, server_id).contains(&e.endpoint) && e.kind.name() == "accept"
        })
        .unwrap()
        .clone();
    assert_eq!(
        accept.peer, connect.local,
        "the accepted peer is the client's address"
    );
}

/// A bridge to trace into, found through its runtime file.
async fn bridge_in(runtime: &Path, data: &Path) -> BridgeProcess {
    let mut command = tokio::process::Command::new(bridge_binary());
    command
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--no-capture",
            "--data-dir",
        ])
        .arg(data)
        .env("XDG_RUNTIME_DIR", runtime)
        .stderr(Stdio::null());
    BridgeProcess::spawn(command).await
}

/// Waits until the program made by `name` has made call `kind`.
async fn wait_call(c: &mut Client, name: &str, kind: &str) -> u32 {
    c.wait_until(&format!("{name}'s {kind}()"), |ev| {
        program(ev, name).is_some_and(|p| calls(ev, p).iter().any(|(k, _)| k == kind))
    })
    .await;
    program(&c.events, name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_udp_echo_server_shows_each_datagram_and_its_sender() {
    let build = TempDir::new("native-udp-build");
    let Some(server_bin) = compile(&build.0, "udp_echo_server") else {
        return;
    };
    let (runtime, data) = (
        TempDir::new("native-udp-rt"),
        TempDir::new("native-udp-data"),
    );
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let port = free_udp_port();
    let mut server = trace(&runtime.0, &server_bin, &[&port.to_string()])
        .spawn()
        .unwrap();
    let server_id = wait_call(&mut c, "udp_echo_server", "bind").await;
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap().to_string();
    for word in ["one", "two"] {
        peer.send_to(word.as_bytes(), ("127.0.0.1", port))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = tokio::time::timeout(WAIT, peer.recv_from(&mut buf))
            .await
            .expect("the echo")
            .unwrap();
        assert_eq!(&buf[..n], word.as_bytes());
    }
    peer.send_to(b"exit", ("127.0.0.1", port)).await.unwrap();
    assert!(tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("the server ends")
        .unwrap()
        .success());
    c.wait_until("the server's close", |ev| {
        calls(ev, server_id).iter().any(|(k, _)| k == "close")
    })
    .await;
    let got = calls(&c.events, server_id);
    let expected: Vec<(String, String)> = [
        ("bind", ""),
        ("recv_from", "one"),
        ("send_to", "one"),
        ("recv_from", "two"),
        ("send_to", "two"),
        ("recv_from", "exit"),
        ("close", ""),
    ]
    .iter()
    .map(|(k, d)| (k.to_string(), d.to_string()))
    .collect();
    assert_eq!(got, expected);
    let mine = sockets_of(&c.events, server_id);
    for e in c.events.iter().filter(|e| mine.contains(&e.endpoint)) {
        if matches!(
            e.kind,
            EventKind::RecvFrom { .. } | EventKind::SendTo { .. }
        ) {
            assert_eq!(e.peer.as_deref(), Some(me.as_str()), "{e:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_c_server_shows_its_childrens_calls() {
    let build = TempDir::new("native-fork-build");
    let Some(server_bin) = compile(&build.0, "forking_server") else {
        return;
    };
    let (runtime, data) = (
        TempDir::new("native-fork-rt"),
        TempDir::new("native-fork-data"),
    );
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let port = free_tcp_port();
    let mut server = trace(&runtime.0, &server_bin, &[&port.to_string(), "2"])
        .spawn()
        .unwrap();
    let server_id = wait_call(&mut c, "forking_server", "listen").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for word in ["first", "second"] {
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        client.write_all(word.as_bytes()).await.unwrap();
        let mut echo = Vec::new();
        tokio::time::timeout(WAIT, client.read_to_end(&mut echo))
            .await
            .expect("the child echoes and closes")
            .unwrap();
        assert_eq!(echo, word.as_bytes());
    }
    assert!(tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("the server ends")
        .unwrap()
        .success());
    c.wait_until("both children's echoes", |ev| {
        let got = calls(ev, server_id);
        ["first", "second"].iter().all(|w| {
            got.contains(&("recv".into(), w.to_string()))
                && got.contains(&("send".into(), w.to_string()))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_start_is_said_so() {
    let (runtime, data) = (
        TempDir::new("native-none-rt"),
        TempDir::new("native-none-data"),
    );
    let _bridge = bridge_in(&runtime.0, &data.0).await;
    let out = trace(&runtime.0, Path::new("/nonexistent/server"), &[])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cannot trace /nonexistent/server"), "{said}");
}

/// Two clients at once: each sends `word`, reads the echo, and closes.
async fn two_clients(port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut a = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut b = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    for (client, word) in [(&mut a, "alpha"), (&mut b, "bravo")] {
        client.write_all(word.as_bytes()).await.unwrap();
        let mut echo = vec![0u8; word.len()];
        tokio::time::timeout(WAIT, client.read_exact(&mut echo))
            .await
            .expect("the echo")
            .unwrap();
        assert_eq!(echo, word.as_bytes());
    }
}

/// Runs a compiled fixture server under `bridge trace` with two clients at once, and waits
/// until both echoes are shown; the events.
async fn serve_two(name: &str) -> Option<(Vec<Event>, u32)> {
    let build = TempDir::new("native-two-build");
    let server_bin = compile(&build.0, name)?;
    let (runtime, data) = (
        TempDir::new("native-two-rt"),
        TempDir::new("native-two-data"),
    );
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let port = free_tcp_port();
    let mut server = trace(&runtime.0, &server_bin, &[&port.to_string(), "2"])
        .spawn()
        .unwrap();
    let server_id = wait_call(&mut c, name, "listen").await;
    two_clients(port).await;
    assert!(tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("the server ends")
        .unwrap()
        .success());
    c.wait_until("both echoes and the program's end", |ev| {
        let got = calls(ev, server_id);
        ["alpha", "bravo"].iter().all(|w| {
            got.contains(&("recv".into(), w.to_string()))
                && got.contains(&("send".into(), w.to_string()))
        }) && ev
            .iter()
            .any(|e| e.endpoint == server_id && matches!(e.kind, EventKind::Exit { .. }))
    })
    .await;
    Some((c.events.clone(), server_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_server_shows_its_waits_and_both_clients() {
    let Some((events, server)) = serve_two("select_server").await else {
        return;
    };
    let waits: Vec<&str> = events
        .iter()
        .filter(|e| e.endpoint == server)
        .filter_map(|e| match &e.kind {
            EventKind::Call { op, detail } if op == "select" => Some(detail.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        waits.len() >= 3,
        "select() before each accept and recv: {waits:?}"
    );
    assert!(waits.iter().all(|d| d.contains("ready")), "{waits:?}");
    let accepts = calls(&events, server)
        .iter()
        .filter(|(k, _)| k == "accept")
        .count();
    assert_eq!(accepts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threaded_server_shows_each_threads_connection() {
    let Some((events, server)) = serve_two("threaded_server").await else {
        return;
    };
    // Each connection's recv, send and close, made by its own thread.
    let closes = calls(&events, server)
        .iter()
        .filter(|(k, _)| k == "close")
        .count();
    assert_eq!(closes, 3, "two connections and the listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_crashes_mid_connection_ends_with_its_signal() {
    let build = TempDir::new("native-crash-build");
    let Some(server_bin) = compile(&build.0, "crashing_server") else {
        return;
    };
    let (runtime, data) = (
        TempDir::new("native-crash-rt"),
        TempDir::new("native-crash-data"),
    );
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let port = free_tcp_port();
    let mut server = trace(&runtime.0, &server_bin, &[&port.to_string()])
        .spawn()
        .unwrap();
    let server_id = wait_call(&mut c, "crashing_server", "listen").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    client.write_all(b"boom").await.unwrap();
    // The kernel closes the crashed program's connection: the client reads its end.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, client.read_to_end(&mut rest))
        .await
        .expect("the connection ends with the program");
    let status = tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("bridge trace ends")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGSEGV),
        "it exits as its program did"
    );
    c.wait_until("the program's end, by its signal", |ev| {
        ev.iter().any(|e| {
            e.endpoint == server_id
                && matches!(e.kind, EventKind::Exit { signal: Some(s), .. } if s == libc::SIGSEGV)
        })
    })
    .await;
    c.wait_until("its sockets closed with it", |ev| {
        let got = calls(ev, server_id);
        got.contains(&("recv".into(), "boom".into()))
            && got.iter().filter(|(k, _)| k == "close").count() == 2
    })
    .await;
}

/// What a program printed (its console), in order.
fn console(events: &[Event], program: u32) -> String {
    events
        .iter()
        .filter(|e| e.endpoint == program)
        .filter_map(|e| match &e.kind {
            EventKind::Output { data, stream, .. } if stream != "stdin" => {
                String::from_utf8(data.bytes()?).ok()
            }
            _ => None,
        })
        .collect()
}

/// A program's exit status, once it has one.
fn exit_code(events: &[Event], program: u32) -> Option<Option<i32>> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Exit { code, .. } if e.endpoint == program => Some(*code),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_a_c_program_and_shows_every_kind_of_call() {
    let runtime = TempDir::new("native-page-runtime");
    let data = TempDir::new("native-page-data");
    let Some(_) = compile(&data.0, "page_calls") else {
        return;
    };
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let program = run_program(&mut c, "./page_calls", &[]).await;
    // Printed without fflush, shown before the program ends: its output is line-buffered.
    c.wait_until("the prompt", |ev| console(ev, program).contains("type go"))
        .await;
    c.ok(cmd(
        serde_json::json!({"op": "program_input", "program": program, "text": "go\n"}),
    ))
    .await;
    c.wait_until("the program ended", |ev| exit_code(ev, program).is_some())
        .await;
    let ev = &c.events;
    assert_eq!(
        exit_code(ev, program),
        Some(Some(0)),
        "{}",
        console(ev, program)
    );
    assert!(console(ev, program).ends_with("done\n"));
    let socks = sockets_of(ev, program);
    assert_eq!(socks.len(), 4, "two UDP, a listener, a client: {socks:?}");
    let of = |sock: u32| calls_on(ev, &[sock]);
    let pair = |kind: &str, data: &str| (kind.to_string(), data.to_string());
    // sendmmsg: two datagrams to the receiver; recvmmsg: both, with their sender.
    let (rx, tx, listener, client) = (socks[0], socks[1], socks[2], socks[3]);
    // The accepted connection's calls are the listener's, on its connection.
    let on_conn = |e: &&Event| e.endpoint == listener && e.conn.is_some();
    let sent: Vec<_> = of(tx).into_iter().filter(|(k, _)| k == "send_to").collect();
    assert_eq!(sent, [pair("send_to", "one"), pair("send_to", "two")]);
    let got: Vec<_> = of(rx)
        .into_iter()
        .filter(|(k, _)| k == "recv_from")
        .collect();
    assert_eq!(got, [pair("recv_from", "one"), pair("recv_from", "two")]);
    let rx_port = ev.iter().find_map(|e| match &e.kind {
        EventKind::Bind if e.endpoint == rx => e.local.clone(),
        _ => None,
    });
    let to_rx = ev
        .iter()
        .filter(|e| e.endpoint == tx && matches!(e.kind, EventKind::SendTo { .. }));
    for e in to_rx {
        assert_eq!(e.peer, rx_port, "sendmmsg's destination is the receiver");
    }
    // writev, sendfile (the file's bytes), splice (only the count: the bytes never left the
    // kernel).
    let client_sends: Vec<&Event> = ev
        .iter()
        .filter(|e| e.endpoint == client && matches!(e.kind, EventKind::Send { .. }))
        .collect();
    assert_eq!(client_sends.len(), 3, "{client_sends:?}");
    assert_eq!(text(client_sends[0]), "hello");
    assert_eq!(text(client_sends[1]), "file bytes");
    assert_eq!(client_sends[2].kind.data().unwrap().len, 5);
    // readv, and the connection's other reads.
    let received: String = ev
        .iter()
        .filter(on_conn)
        .filter(|e| matches!(e.kind, EventKind::Recv { .. }))
        .map(text)
        .collect();
    assert_eq!(received, "hellofile bytespiped");
    let getsockopt = ev.iter().filter(on_conn).find_map(|e| match &e.kind {
        EventKind::Call { op, detail } if op == "getsockopt" => Some(detail.clone()),
        _ => None,
    });
    assert!(
        getsockopt
            .as_deref()
            .is_some_and(|d| d.starts_with("getsockopt(SOL_SOCKET, SO_RCVBUF) = ")),
        "{getsockopt:?}"
    );
    // The file and the pipe are not sockets: nothing of theirs is shown.
    assert!(
        !ev.iter().any(|e| e.kind.data().is_some_and(|d| d.len == 10)
            && e.endpoint != client
            && e.endpoint != listener)
    );
    // Each call names its thread and process; a program without source has no line.
    let pid = ev.iter().find_map(|e| match &e.kind {
        EventKind::Socket {
            spec: EndpointSpec::Program(p),
        } if e.endpoint == program => Some(p.pid),
        _ => None,
    });
    for e in ev
        .iter()
        .filter(|e| socks.contains(&e.endpoint) && !is_close(e))
    {
        let at =
            e.at.as_ref()
                .unwrap_or_else(|| panic!("{e:?} says where it was made"));
        assert_eq!((at.line, at.thread.as_str()), (0, "main thread"));
        assert_eq!(Some(at.pid), pid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_runs_programs_of_other_languages_against_a_c_server() {
    let runtime = TempDir::new("native-lang-runtime");
    let data = TempDir::new("native-lang-data");
    let Some(_) = compile(&data.0, "uppercase_server") else {
        return;
    };
    std::fs::write(
        data.0.join("upper_client.js"),
        "const net = require('net');\n\
         const [port, text] = process.argv.slice(2);\n\
         const s = net.connect(Number(port), '127.0.0.1', () => s.write(text));\n\
         s.on('data', (d) => { console.log('From Server: ' + d); s.end(); });\n",
    )
    .unwrap();
    std::fs::write(
        data.0.join("UpperClient.java"),
        "import java.net.Socket;\n\
         public class UpperClient {\n\
           public static void main(String[] a) throws Exception {\n\
             try (Socket s = new Socket(\"127.0.0.1\", Integer.parseInt(a[0]))) {\n\
               s.getOutputStream().write(a[1].getBytes());\n\
               byte[] b = new byte[1024];\n\
               int n = s.getInputStream().read(b);\n\
               System.out.println(\"From Server: \" + new String(b, 0, n));\n\
             }\n\
           }\n\
         }\n",
    )
    .unwrap();
    let java = std::process::Command::new("javac")
        .arg("UpperClient.java")
        .current_dir(&data.0)
        .status()
        .is_ok_and(|s| s.success());
    // Go's runtime makes its own system calls (no libc), on threads of its own, with
    // non-blocking sockets and epoll: the tracer must see through all of that too.
    std::fs::write(
        data.0.join("upper_client.go"),
        "package main\n\
         import (\"fmt\"; \"net\"; \"os\")\n\
         func main() {\n\
           conn, err := net.Dial(\"tcp\", \"127.0.0.1:\"+os.Args[1])\n\
           if err != nil { fmt.Println(err); os.Exit(1) }\n\
           defer conn.Close()\n\
           conn.Write([]byte(os.Args[2]))\n\
           buf := make([]byte, 1024)\n\
           n, _ := conn.Read(buf)\n\
           fmt.Println(\"From Server: \" + string(buf[:n]))\n\
         }\n",
    )
    .unwrap();
    let go = std::process::Command::new("go")
        .args(["build", "-o", "upper_client_go", "upper_client.go"])
        .current_dir(&data.0)
        .env("GOCACHE", data.0.join(".gocache"))
        .env("GOPATH", data.0.join(".gopath"))
        .status()
        .is_ok_and(|s| s.success());
    let node = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let bridge = bridge_in(&runtime.0, &data.0).await;
    let mut c = bridge.client().await;
    let mut peers: Vec<(&str, Vec<&str>, &str)> = Vec::new();
    if node {
        peers.push(("node", vec!["upper_client.js"], "hello from node"));
    } else {
        eprintln!("skipped the Node client: node is not installed (Debian's nodejs)");
    }
    if java {
        peers.push(("java", vec!["-cp", ".", "UpperClient"], "hello from java"));
    } else {
        eprintln!("skipped the Java client: javac is not installed (Debian's openjdk)");
    }
    if go {
        peers.push(("./upper_client_go", vec![], "hello from go"));
    } else {
        eprintln!("skipped the Go client: go is not installed (Debian's golang-go)");
    }
    assert!(
        !peers.is_empty() || std::env::var_os("CI").is_none(),
        "CI installs node, java and go: none of them ran"
    );
    for (command, first, sentence) in peers {
        eprintln!("the {command} client against the C server");
        let port = free_tcp_port().to_string();
        let server = run_program(&mut c, "uppercase_server", &[&port]).await;
        c.wait_until("the C server listens", |ev| {
            calls(ev, server).iter().any(|(kind, _)| kind == "listen")
        })
        .await;
        let mut args = first.clone();
        args.extend([port.as_str(), sentence]);
        let client = run_program(&mut c, command, &args).await;
        c.wait_until_within(
            &format!("the {command} client and the server ended"),
            std::time::Duration::from_secs(60),
            |ev| exit_code(ev, client).is_some() && exit_code(ev, server).is_some(),
        )
        .await;
        let ev = &c.events;
        let upper = sentence.to_uppercase();
        assert_eq!(
            console(ev, client),
            format!("From Server: {upper}\n"),
            "{command}"
        );
        assert_eq!(exit_code(ev, client), Some(Some(0)), "{command}");
        // The same bytes on both sides: what the client sent, the server received.
        let server_calls = calls(ev, server);
        assert!(
            server_calls.contains(&("recv".into(), sentence.into())),
            "{server_calls:?}"
        );
        assert!(
            server_calls.contains(&("send".into(), upper.clone())),
            "{server_calls:?}"
        );
        let client_calls = calls(ev, client);
        let sent: String = client_calls
            .iter()
            .filter(|(k, _)| k == "send")
            .map(|(_, d)| d.as_str())
            .collect();
        let got: String = client_calls
            .iter()
            .filter(|(k, _)| k == "recv")
            .map(|(_, d)| d.as_str())
            .collect();
        assert_eq!(
            (sent.as_str(), got.as_str()),
            (sentence, upper.as_str()),
            "{command}: {client_calls:?}"
        );
        let connect = ev.iter().find(|e| {
            sockets_of(ev, client).contains(&e.endpoint) && matches!(e.kind, EventKind::Connect)
        });
        let peer = connect.and_then(|e| e.peer.clone()).unwrap_or_default();
        assert!(
            peer.ends_with(&format!(":{port}")),
            "{command} connected to {peer}"
        );
    }
}
