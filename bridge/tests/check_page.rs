//! The checker as the page runs it, over the real WebSocket: `check_list`, then `check_run`
//! against a student's program in the data directory (run traced, on the lab's port) and
//! against a server that runs already. The steps come as `check_started` and `check_step`
//! events, the checker's clients are endpoints whose calls are in the log between them, and
//! the traced program's calls carry the student's lines. Bad requests are refused in words.
//! (Its own test binary: the program runs on the handout's port, 65432, which no test before
//! it uses, so no connection of theirs lingers there in TIME_WAIT.)

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::json;
use shared::{EndpointSpec, ErrorKind, EventKind, ReplyData};

fn fixture(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

#[tokio::test]
async fn a_check_runs_from_the_page_step_by_step_beside_the_programs_calls() {
    let data = TempDir::new("check-page");
    std::fs::copy(
        fixture("checks", "kurose_no_upper.py"),
        data.0.join("TCPServer.py"),
    )
    .unwrap();
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let mut page = bridge.client().await;

    let ReplyData::Checks { checks } = page.ok(cmd(json!({"op": "check_list"}))).await else {
        panic!("check_list replies with the checks");
    };
    let uppercase = checks
        .iter()
        .find(|c| c.lab == "kurose-uppercase-server")
        .expect("the uppercase check is listed");
    assert_eq!(
        (uppercase.port, uppercase.program.as_str()),
        (12000, "server")
    );
    assert!(checks.iter().any(|c| c.lab == "goldsmiths-hmac-server"));

    // The student's server echoes without the "ACK: " of Goldsmiths' exercise 1 (the lab's
    // port, 65432, is given as its argument): step 3 fails, with the words the command line
    // uses, and the rest are skipped.
    let reply = page
        .ok(cmd(
            json!({"op": "check_run", "lab": "goldsmiths-ack-server",
                        "program": "TCPServer.py", "args": ["65432"]}),
        ))
        .await;
    let ReplyData::Check { passed, total, .. } = reply else {
        panic!("check_run replies with the summary, got {reply:?}");
    };
    assert_eq!(passed, 2);
    let started = page
        .wait_for("check_started", |e| {
            matches!(e.kind, EventKind::CheckStarted { .. })
        })
        .await;
    let EventKind::CheckStarted { steps, lab, .. } = &started.kind else {
        unreachable!()
    };
    assert_eq!(lab, "goldsmiths-ack-server");
    assert_eq!(steps.len() as u32, total);
    assert_eq!(steps[2], "a gets \"ACK: hello\" back");
    // The events may come after the reply: they travel on the page's feed.
    page.wait_until("a check_step event for every step", |events| {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::CheckStep { .. }))
            .count() as u32
            == total
    })
    .await;
    let verdicts: Vec<(u32, String, String, u64)> = page
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CheckStep {
                index,
                verdict,
                explanation,
            } => Some((*index, verdict.clone(), explanation.clone(), e.seq)),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts.len() as u32, total, "one check_step event a step");
    assert_eq!(
        verdicts
            .iter()
            .map(|v| v.1.as_str())
            .take(4)
            .collect::<Vec<_>>(),
        ["passed", "passed", "failed", "skipped"]
    );
    assert!(
        verdicts[2]
            .2
            .contains("expected \"ACK: hello\" back, got \"hello\": the server echoed without the \"ACK: \" prefix"),
        "{}",
        verdicts[2].2
    );
    // Between step 2's event and step 3's: the checker's client received the wrong reply,
    // and the traced program's recv and send carry its lines.
    let (after, upto) = (verdicts[1].3, verdicts[2].3);
    let during: Vec<_> = page
        .events
        .iter()
        .filter(|e| e.seq > after && e.seq < upto)
        .collect();
    let checker_clients: Vec<u32> = page
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Socket {
                spec: EndpointSpec::TcpClient(_),
            } => Some(e.endpoint),
            _ => None,
        })
        .collect();
    assert!(
        during.iter().any(|e| checker_clients.contains(&e.endpoint)
            && matches!(e.kind, EventKind::Recv { .. })
            && text(e) == "hello"),
        "the checker's recv of the wrong reply is in step 3's events: {during:#?}"
    );
    page.wait_for("the program's send, traced with its line", |e| {
        matches!(e.kind, EventKind::Send { .. })
            && e.at.as_ref().is_some_and(|at| at.code.contains("send"))
    })
    .await;
    // The program is stopped after the check, and the checker's clients are closed.
    page.wait_for("the program's exit", |e| {
        matches!(e.kind, EventKind::Exit { .. })
    })
    .await;
    for client in &checker_clients {
        page.wait_for("a checker client's close", |e| {
            e.endpoint == *client && is_close(e)
        })
        .await;
    }

    // Against a server that runs already, on any port: the handout's correct server passes.
    let port = free_tcp_port();
    let mut server = tokio::process::Command::new("python3")
        .arg(fixture("programs", "kurose_tcp_server.py"))
        .arg(port.to_string())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(&target).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the server listens");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // That probe was a client of the one-at-a-time server: it has been served and closed.
    let reply = page
        .ok(cmd(
            json!({"op": "check_run", "lab": "kurose-uppercase-server",
                        "target": target}),
        ))
        .await;
    let ReplyData::Check { passed, total, .. } = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(passed, total, "the handout's server passes every step");
    server.kill().await.unwrap();

    // Refused, in words: no such lab (a path is not a lab), neither target nor program, a
    // client check given an address.
    for (request, words) in [
        (
            json!({"op": "check_run", "lab": "../../etc/x.toml", "target": "127.0.0.1:1"}),
            "There is no check called",
        ),
        (
            json!({"op": "check_run", "lab": "kurose-uppercase-server"}),
            "Give either target",
        ),
        (
            json!({"op": "check_run", "lab": "kurose-uppercase-client", "target": "127.0.0.1:1"}),
            "checks a client program",
        ),
    ] {
        let error = page.err(cmd(request)).await;
        assert_eq!(error.kind, ErrorKind::InvalidRequest);
        assert!(error.explanation.contains(words), "{error:?}");
    }
    bridge.shutdown().await;
}
