//! `bridge check` against real Python programs: the handouts' correct programs pass every step,
//! and programs with the typical mistakes fail at the step a lecturer would name, with words a
//! student understands. Each program gets a free port of its own (`--port P -- P`).

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::*;
use tokio::io::AsyncBufReadExt;

fn fixture(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// Runs `bridge check LAB --program PROGRAM` on a free port; returns (exit status, output).
async fn check_program(lab: &str, program: PathBuf, udp: bool, extra: &[&str]) -> (i32, String) {
    let port = if udp {
        free_udp_port()
    } else {
        free_tcp_port()
    }
    .to_string();
    let mut command = tokio::process::Command::new(bridge_binary());
    command
        .args(["check", lab, "--program"])
        .arg(&program)
        .args(["--port", &port])
        .args(extra)
        .args(["--", &port])
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("the check ends in time")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The first failing step's line and its explanation.
fn failure(report: &str) -> String {
    let mut lines = report.lines().skip_while(|l| !l.starts_with("FAIL"));
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.take_while(|l| l.starts_with("         ")));
    out.join("\n")
}

#[tokio::test]
async fn the_handouts_servers_pass_their_checks() {
    let programs = |name: &str| fixture("programs", name);
    let mut passed = std::collections::BTreeSet::new();
    for (lab, program, udp) in [
        (
            "kurose-uppercase-server",
            programs("kurose_tcp_server.py"),
            false,
        ),
        ("elen-exit-server", programs("elen_echo_server.py"), false),
        ("elen-echo-server", programs("elen_echo_server.py"), false),
        ("thanks-server", programs("antony_server.py"), false),
        (
            "goldsmiths-log-server",
            programs("goldsmiths_log_server.py"),
            false,
        ),
        (
            "goldsmiths-file-server",
            programs("goldsmiths_log_server.py"),
            false,
        ),
        (
            "goldsmiths-empty-file-server",
            programs("goldsmiths_log_server.py"),
            false,
        ),
        (
            "kurose-uppercase-client",
            programs("kurose_tcp_client.py"),
            false,
        ),
        ("elen-udp-echo-client", programs("elen_udp_client.py"), true),
        ("elen-udp-echo-server", programs("elen_udp_server.py"), true),
        (
            "goldsmiths-ack-server",
            programs("goldsmiths_server.py"),
            false,
        ),
        (
            "goldsmiths-concurrent-server",
            fixture("checks", "goldsmiths_threaded.py"),
            false,
        ),
        (
            "elen-print-server",
            fixture("checks", "elen_print_server.py"),
            false,
        ),
        (
            "goldsmiths-chat-server",
            fixture("checks", "goldsmiths_chat_server.py"),
            false,
        ),
        (
            "goldsmiths-fernet-server",
            fixture("checks", "goldsmiths_fernet_server.py"),
            false,
        ),
        (
            "goldsmiths-hmac-server",
            fixture("checks", "goldsmiths_hmac_server.py"),
            false,
        ),
    ] {
        let (code, report) = check_program(lab, program.clone(), udp, &[]).await;
        assert_eq!(code, 0, "{lab}:\n{report}");
        assert!(report.contains("PASSED"), "{report}");
        // The program ran in a folder of its own: nothing it wrote lands beside it.
        assert!(!program.with_file_name("received_file.txt").exists());
        passed.insert(lab.to_string());
    }
    // Every built-in check has a correct program that passes it.
    let list = std::process::Command::new(bridge_binary())
        .args(["check", "--list"])
        .output()
        .unwrap();
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(passed, listed, "a correct program for each built-in check");
}

#[tokio::test]
async fn typical_mistakes_fail_at_the_right_step_in_plain_words() {
    let mistakes = |name: &str| fixture("checks", name);
    for (lab, program, udp, step, words) in [
        (
            "kurose-uppercase-server",
            "kurose_no_upper.py",
            false,
            "FAIL  3. a gets \"HELLO WORLD\" back",
            "sent \"hello world\", expected \"HELLO WORLD\" back, got \"hello world\": the server echoed without upper-casing",
        ),
        (
            "kurose-uppercase-server",
            "kurose_never_closes.py",
            false,
            "FAIL  4. the server closes a's connection",
            "the connection is still open after 3000 ms: the handout's server closes each connection",
        ),
        (
            "kurose-uppercase-server",
            "kurose_crash_on_empty.py",
            false,
            "FAIL 18. connect client a-again",
            "IndexError",
        ),
        (
            "elen-exit-server",
            "elen_exit_closes_early.py",
            false,
            "FAIL  4. the server keeps a's connection open",
            "the server closed the connection: it must keep the connection open until \"exit\" arrives",
        ),
        (
            "goldsmiths-concurrent-server",
            "goldsmiths_one_at_a_time.py",
            false,
            "FAIL  6. second gets a reply containing",
            "not served while the first stayed connected: serve each client in its own thread",
        ),
        (
            "goldsmiths-log-server",
            "goldsmiths_log_at_exit.py",
            false,
            "FAIL  4. the program's file received_file.txt contains \"a line for the log\"",
            "does not contain \"a line for the log\" (it has 0 bytes)",
        ),
        (
            "kurose-uppercase-client",
            "kurose_client_no_print.py",
            false,
            "FAIL  5. the program prints \"HELLO WORLD\"",
            "the program did not print \"HELLO WORLD\"",
        ),
        (
            "goldsmiths-chat-server",
            "chat_echoes_sender.py",
            false,
            "FAIL  9. a does not get \"hello from a\" back",
            "the server sent the line back to its sender: broadcast to the others only",
        ),
        (
            "elen-udp-echo-server",
            "elen_udp_wrong_sender.py",
            true,
            "FAIL  6. b gets \"from b\" back",
            "reply to the address recvfrom() returned",
        ),
        (
            "goldsmiths-fernet-server",
            "fernet_plain_reply.py",
            false,
            "FAIL  3. a gets \"meet at noon\" back, encrypted",
            "got \"meet at noon\", which the lab's key does not decrypt: the reply is in clear",
        ),
        (
            "goldsmiths-fernet-server",
            "fernet_crash_on_tamper.py",
            false,
            "FAIL  5. a gets a line with one of \"error\", \"invalid\"",
            "the server closed the connection: a tampered token must be refused with an error line: catch cryptography.fernet.InvalidToken",
        ),
        (
            "goldsmiths-hmac-server",
            "hmac_lets_anyone_in.py",
            false,
            "FAIL  8. intruder gets a reply containing \"DENIED\"",
            "got \"OK\\n\": a client with the wrong secret was let in",
        ),
    ] {
        let (code, report) = check_program(lab, mistakes(program), udp, &[]).await;
        assert_eq!(code, 1, "{program} must fail:\n{report}");
        let failed = failure(&report);
        assert!(failed.starts_with(step), "{program}: {failed}\n\n{report}");
        assert!(failed.contains(words), "{program}: {failed}");
        let after: Vec<&str> = report.lines().skip_while(|l| !l.starts_with("FAIL")).skip(1).collect();
        assert!(
            !after.iter().any(|l| l.starts_with("PASS ") || l.starts_with("FAIL ")),
            "the steps after the first failure are not run: {after:?}"
        );
    }
}

#[tokio::test]
async fn a_running_server_is_checked_by_address_and_graded_for_gradescope() {
    let port = free_tcp_port().to_string();
    let mut server = tokio::process::Command::new("python3")
        .arg("-u")
        .arg(fixture("programs", "kurose_tcp_server.py"))
        .arg(&port)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.contains("ready"));
    let dir = TempDir::new("check-json");
    let json = dir.0.join("results.json");
    let out = tokio::process::Command::new(bridge_binary())
        .args(["check", "kurose-uppercase-server", "--target"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(results["score"], results["max_score"]);
    let tests = results["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 25, "one test a step, robustness included");
    assert!(tests
        .iter()
        .all(|t| t["status"] == "passed" && t["max_score"] == 1));
    // Against an address, what a program prints cannot be seen: that step is skipped, and
    // does not count.
    let out = tokio::process::Command::new(bridge_binary())
        .args(["check", "elen-print-server", "--target"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("skipped: what a program prints"),
        "{report}"
    );
    assert!(report.contains("2 of 2 steps passed"), "{report}");
}

#[tokio::test]
async fn a_courses_own_checks_are_read_and_bad_ones_explained() {
    let dir = TempDir::new("course");
    std::fs::write(
        dir.0.join("my-echo.toml"),
        "title = \"Our echo\"\nabout = \"echo\"\nprogram = \"server\"\ntransport = \"tcp\"\nport = 12000\n\n[[step]]\ndo = \"connect\"\nclient = \"a\"\n\n[[step]]\ndo = \"send\"\nclient = \"a\"\ntext = \"ping\"\n\n[[step]]\ndo = \"expect\"\nclient = \"a\"\ntext = \"PING\"\n",
    )
    .unwrap();
    let list = tokio::process::Command::new(bridge_binary())
        .args(["check", "--list", "--course"])
        .arg(&dir.0)
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("my-echo") && listed.contains("kurose-uppercase-server"),
        "{listed}"
    );
    let (code, report) = check_program(
        "my-echo",
        fixture("programs", "kurose_tcp_server.py"),
        false,
        &["--course", dir.0.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{report}");
    // A mistake in a course's file: said with the file and the step, nothing runs.
    std::fs::write(
        dir.0.join("broken.toml"),
        "title = \"t\"\nabout = \"a\"\nprogram = \"server\"\ntransport = \"tcp\"\nport = 1\n\n[[step]]\ndo = \"send\"\nclient = \"x\"\ntext = \"hi\"\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(bridge_binary())
        .args(["check", "--list", "--course"])
        .arg(&dir.0)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        said.contains("broken: step 1 (send): client 'x' is used before a connect step opens it"),
        "{said}"
    );
    let out = tokio::process::Command::new(bridge_binary())
        .args(["check", "no-such-lab", "--target", "127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no check called 'no-such-lab'"));
}

/// A class: every submission in a folder, several at once in network namespaces, or one after
/// another on the same port (the checker leaves no TIME_WAIT on it, so even servers without
/// SO_REUSEADDR bind it again); a table, a CSV and each submission's results.json.
#[tokio::test]
async fn a_folder_of_submissions_is_graded() {
    let class = TempDir::new("class");
    for (student, program) in [
        ("alice", fixture("programs", "goldsmiths_server.py")),
        ("bob", fixture("checks", "kurose_no_upper.py")),
        ("carol", fixture("programs", "goldsmiths_server.py")),
    ] {
        std::fs::copy(program, class.0.join(format!("{student}.py"))).unwrap();
    }
    // Several at once where network namespaces are allowed (each on the handout's port in its
    // own), else one after another; and one after another when asked, on one shared port.
    let port = free_tcp_port().to_string();
    for (jobs, mode) in [("4", ""), ("1", "one after another")] {
        let report = TempDir::new("class-report");
        let out = tokio::process::Command::new(bridge_binary())
            .args(["check", "goldsmiths-ack-server", "--programs"])
            .arg(&class.0)
            .arg("--report")
            .arg(&report.0)
            .args(["--jobs", jobs, "--port", &port, "--", &port])
            .output()
            .await
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "one submission fails:\n{table}");
        assert!(table.contains("3 submissions,"), "{table}");
        assert!(table.contains(mode), "{table}");
        let csv = std::fs::read_to_string(report.0.join("grades.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], "student,score,max_score,passed,first_failure");
        assert!(rows[1].starts_with("alice,17,17,true,"), "{csv}");
        assert!(rows[2].starts_with("bob,2,17,false,\"step 3"), "{csv}");
        assert!(
            rows[2].contains("without the \"\"ACK: \"\" prefix"),
            "{csv}"
        );
        assert!(
            rows[3].starts_with("carol,17,17,true,"),
            "the port was free again: {csv}"
        );
        let bob: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(report.0.join("bob.json")).unwrap())
                .unwrap();
        assert_eq!(bob["score"], 2);
        assert_eq!(bob["tests"][2]["status"], "failed");
        // What happened, as a recording the page replays: bob's echo is in it.
        let recording = shared::Recording::parse(
            &std::fs::read_to_string(report.0.join("bob.recording.json")).unwrap(),
        )
        .unwrap();
        assert!(recording.events.iter().any(|e| matches!(&e.kind,
            shared::EventKind::Recv { data, .. } if data.preview == "hello")));
    }
}

/// A submission that takes too long is stopped at its time limit, its program with it, and the
/// next one is checked as usual (in both modes).
#[tokio::test]
async fn a_submission_over_its_time_limit_is_stopped() {
    let class = TempDir::new("class-slow");
    let slow = format!("hangs_{}.py", std::process::id());
    std::fs::copy(
        fixture("checks", "kurose_never_closes.py"),
        class.0.join(&slow),
    )
    .unwrap();
    std::fs::copy(
        fixture("programs", "kurose_tcp_server.py"),
        class.0.join("later.py"),
    )
    .unwrap();
    let port = free_tcp_port().to_string();
    for jobs in ["4", "1"] {
        let out = tokio::process::Command::new(bridge_binary())
            .args(["check", "kurose-uppercase-server", "--programs"])
            .arg(&class.0)
            .args([
                "--timeout",
                "2",
                "--jobs",
                jobs,
                "--port",
                &port,
                "--",
                &port,
            ])
            .output()
            .await
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("hangs_") || l.starts_with("later"))
            .collect();
        assert_eq!(rows.len(), 2, "{table}");
        assert!(
            rows[0].contains("finish within the time for one submission"),
            "{table}"
        );
        assert!(
            rows[1].contains("25/25") && rows[1].contains("passed"),
            "{table}"
        );
        let left = std::process::Command::new("pgrep")
            .args(["-f", &slow])
            .output()
            .unwrap();
        assert!(
            left.stdout.is_empty(),
            "the slow program was left running ({jobs} at a time)"
        );
    }
}
