//! `bridge check LAB --target HOST:PORT` or `bridge check LAB --program server.py`: runs a
//! lab's check against a server someone started, or starts the student's program itself
//! (`python3 -u FILE ARGS` in the file's folder, in its own process group), waits until it
//! listens on the lab's port (read from the kernel's socket tables, so that no probe
//! connection counts as a client), runs the scenario, stops the program and prints the table.
//! Exit status: 0 all steps passed, 1 a step failed, 2 the check could not run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::report::Report;
use super::run::{self, Context, Listen, Output, Printed};
use super::scenario::{Check, Role, Transport};

/// How long a started program has to start listening.
const START_WAIT: Duration = Duration::from_secs(10);

/// What `bridge check` was asked.
#[derive(Debug, Default)]
pub struct CheckArgs {
    /// The lab's name, or a scenario file (`.toml`); none with `list`.
    pub lab: Option<String>,
    /// A server already running.
    pub target: Option<String>,
    /// The student's program, to run.
    pub program: Option<PathBuf>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Another port than the handout's (the program must then be told it, in `args`).
    pub port: Option<u16>,
    /// A course's own scenarios.
    pub course: Option<PathBuf>,
    /// Where to write Gradescope's `results.json`.
    pub json: Option<PathBuf>,
    /// List the checks instead.
    pub list: bool,
    /// Where to write what the checker's sockets did, as a recording the page replays.
    pub recording: Option<PathBuf>,
    /// Every submission (`*.py`) in this folder, for a class.
    pub programs: Option<PathBuf>,
    /// Where a class's grades go: `grades.csv` and one `NAME.json` (Gradescope's
    /// results.json) per submission.
    pub report: Option<PathBuf>,
    /// How long one submission may take, in seconds (a class run).
    pub timeout_s: Option<u64>,
    /// How many submissions at once (a class run; several need network namespaces).
    pub jobs: Option<usize>,
    pub python: Option<String>,
}

/// Runs the command; returns the exit status.
pub async fn run(args: CheckArgs) -> i32 {
    match check(args).await {
        Ok(code) => code,
        Err(why) => {
            eprintln!("bridge check: {why}");
            2
        }
    }
}

async fn check(args: CheckArgs) -> Result<i32, String> {
    if args.list {
        for check in super::all(args.course.as_deref())? {
            println!("{:<32} {}", check.lab, check.title);
        }
        return Ok(0);
    }
    let lab = args
        .lab
        .as_deref()
        .ok_or("name a lab (bridge check --list shows them) or a scenario file")?;
    let check = super::find(lab, args.course.as_deref())?;
    if let Some(dir) = &args.programs {
        return class(&args, &check, dir).await;
    }
    let (steps, subject) = match (&args.target, &args.program) {
        (None, Some(program)) => (
            {
                // With a time limit (a class's submission), a program that hangs is stopped:
                // dropping the run kills it (`kill_on_drop`).
                let run = run_program(&args, &check, program);
                let ran = match args.timeout_s {
                    Some(s) => tokio::time::timeout(Duration::from_secs(s), run)
                        .await
                        .map_err(|_| format!("the check did not finish within {s} s"))?,
                    None => run.await,
                };
                let (steps, recording) = ran?;
                save_recording(args.recording.as_deref(), &recording)?;
                steps
            },
            format!("python3 {}", program.display()),
        ),
        (Some(_), None) if check.program == Role::Client => {
            return Err(format!(
                "{} checks a client program: the checker is its server and runs it, so give --program FILE",
                check.lab
            ))
        }
        (Some(target), None) => {
            let addr = resolve(target).await?;
            let mut ctx = Context::default();
            let began_unix_ms = unix_ms();
            let steps = run::run(&check, addr, &mut ctx).await;
            save_recording(args.recording.as_deref(), &ctx.recorder.recording(began_unix_ms))?;
            (steps, target.clone())
        }
        _ => return Err("give exactly one of --target HOST:PORT and --program FILE".into()),
    };
    let report = Report {
        check: &check,
        subject,
        steps,
    };
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report.gradescope()).unwrap_or_default();
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if report.passed() { 0 } else { 1 })
}

/// Runs `program` (a copy, in a fresh folder) and the check against it.
async fn run_program(
    args: &CheckArgs,
    check: &Check,
    program: &std::path::Path,
) -> Result<(Vec<run::StepResult>, shared::Recording), String> {
    let port = args.port.unwrap_or(check.port);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let output: Output = Arc::new(Printed::default());
    // A client program finds its server listening when it starts.
    let listen = match (check.program, check.transport) {
        (Role::Server, _) => None,
        (Role::Client, Transport::Tcp) => Some(Listen::Tcp(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} as the program's server: {e}"))?,
        )),
        (Role::Client, Transport::Udp) => Some(Listen::Udp(Arc::new(
            tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|e| format!("cannot bind {addr} as the program's server: {e}"))?,
        ))),
    };
    // The program runs in a fresh folder of its own, with a copy of itself: what it
    // writes is checked there, and nothing of one run is seen by the next.
    let dir = Workdir::new(program)?;
    let mut child = start(args, &dir.program, check, port, &output).await?;
    let mut ctx = Context {
        output: Some(output),
        stdin: child.stdin.take(),
        listen,
        dir: Some(dir.path.clone()),
        child: Some(child),
        ..Context::default()
    };
    let began_unix_ms = unix_ms();
    let steps = run::run(check, addr, &mut ctx).await;
    let recording = ctx.recorder.recording(began_unix_ms);
    if let Some(mut child) = ctx.child.take() {
        drop(ctx);
        stop(&mut child).await;
    }
    drop(dir);
    Ok((steps, recording))
}

/// Every submission in `dir`, each within the timeout; a table, and with `--report` a CSV and
/// each one's results.json. Several at once, each in a network namespace of its own (where the
/// handout's port is free for it), when this machine allows that and `--jobs` is not 1; else
/// one after another on the lab's port, which each run leaves free for the next (the checker
/// resets what it saw closed, so no TIME_WAIT stays on it), and the table says so.
async fn class(args: &CheckArgs, check: &Check, dir: &std::path::Path) -> Result<i32, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("py") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{} holds no .py files", dir.display()));
    }
    if let Some(report) = &args.report {
        std::fs::create_dir_all(report)
            .map_err(|e| format!("cannot create {}: {e}", report.display()))?;
    }
    let limit = Duration::from_secs(args.timeout_s.unwrap_or(60));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() * 2));
    let isolated = if jobs > 1 {
        isolation().await
    } else {
        Err("--jobs 1".into())
    };
    let how = match &isolated {
        Ok(()) => format!("{jobs} at a time, each in a network namespace of its own"),
        Err(why) => format!(
            "one after another on port {} (several at once needs network namespaces: {why})",
            args.port.unwrap_or(check.port)
        ),
    };
    println!(
        "Check: {} ({}), {} submissions, {how}\n",
        check.title,
        check.lab,
        files.len()
    );
    let results: Vec<serde_json::Value> = if isolated.is_ok() {
        let gate = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut running = Vec::new();
        for file in &files {
            let (gate, file) = (gate.clone(), file.clone());
            let child_args = isolated_args(args, check, &file);
            running.push(tokio::spawn(async move {
                let _turn = gate.acquire_owned().await;
                isolated_run(child_args, &file, limit).await
            }));
        }
        let mut results = Vec::new();
        for run in running {
            results.push(
                run.await
                    .unwrap_or_else(|e| failed("run the check", &e.to_string())),
            );
        }
        results
    } else {
        let mut results = Vec::new();
        for file in &files {
            let value = match tokio::time::timeout(limit, run_program(args, check, file)).await {
                Ok(Ok((steps, recording))) => {
                    if let Some(dir) = &args.report {
                        save_recording(Some(&recording_path(dir, file)), &recording)?;
                    }
                    Report {
                        check,
                        subject: format!("python3 {}", file.display()),
                        steps,
                    }
                    .gradescope()
                }
                Ok(Err(why)) if why.contains("did not finish within") => {
                    failed("finish within the time for one submission", &why)
                }
                Ok(Err(why)) => failed("start the program", &why),
                Err(_) => failed(
                    "finish within the time for one submission",
                    &format!("the check did not finish within {} s", limit.as_secs()),
                ),
            };
            results.push(value);
        }
        results
    };
    let mut csv = String::from("student,score,max_score,passed,first_failure\n");
    let mut all_passed = true;
    for (file, result) in files.iter().zip(&results) {
        let student = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        let (passed, counted) = (
            result["score"].as_u64().unwrap_or(0),
            result["max_score"].as_u64().unwrap_or(0),
        );
        let ok = counted > 0 && passed == counted;
        let first = result["tests"]
            .as_array()
            .and_then(|tests| tests.iter().find(|t| t["status"] != "passed"))
            .map(|t| {
                let output = t["output"].as_str().unwrap_or("");
                format!(
                    "step {}: {}",
                    t["name"].as_str().unwrap_or(""),
                    output.lines().next().unwrap_or("")
                )
            })
            .unwrap_or_default();
        all_passed &= ok;
        println!(
            "{student:<24} {passed:>3}/{counted:<3} {}{}",
            if ok { "passed" } else { "FAILED " },
            first
        );
        csv.push_str(&format!(
            "{},{passed},{counted},{ok},{}\n",
            csv_field(&student),
            csv_field(&first)
        ));
        if let Some(dir) = &args.report {
            let json = serde_json::to_string_pretty(result).unwrap_or_default();
            let path = dir.join(format!("{student}.json"));
            std::fs::write(&path, json)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    if let Some(dir) = &args.report {
        let path = dir.join("grades.csv");
        std::fs::write(&path, csv).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("\nGrades: {}", path.display());
    }
    Ok(if all_passed { 0 } else { 1 })
}

/// A submission that could not be checked, as Gradescope reads it: one failed test.
fn failed(what: &str, why: &str) -> serde_json::Value {
    serde_json::json!({
        "score": 0,
        "max_score": 1,
        "tests": [{"name": format!("1. {what}"), "score": 0, "max_score": 1, "status": "failed", "output": why}],
    })
}

/// Whether this machine lets a check run in a network namespace of its own (tried once, with a
/// child that only enters one).
async fn isolation() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new(exe)
        .args(["check", "--isolated", "--list"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&out.stderr);
        Err(said.trim().trim_start_matches("bridge check: ").to_string())
    }
}

/// The command line of one submission's isolated check.
fn isolated_args(
    args: &CheckArgs,
    check: &Check,
    file: &std::path::Path,
) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = vec!["check".into(), "--isolated".into()];
    match (&args.lab, &args.course) {
        (Some(lab), _) if lab.ends_with(".toml") => out.push(lab.into()),
        _ => out.push(check.lab.clone().into()),
    }
    if let Some(course) = &args.course {
        out.push("--course".into());
        out.push(course.into());
    }
    out.push("--program".into());
    out.push(file.into());
    // The child keeps the time limit itself, so that it stops its program when it runs out.
    out.push("--timeout".into());
    out.push(args.timeout_s.unwrap_or(60).to_string().into());
    if let Some(report) = &args.report {
        out.push("--recording".into());
        out.push(recording_path(report, file).into());
    }
    if let Some(port) = args.port {
        out.push("--port".into());
        out.push(port.to_string().into());
    }
    if !args.args.is_empty() {
        out.push("--".into());
        out.extend(args.args.iter().map(Into::into));
    }
    out
}

/// Runs one submission's check in a child in its own network namespace; its results.json.
async fn isolated_run(
    mut command: Vec<std::ffi::OsString>,
    file: &std::path::Path,
    limit: Duration,
) -> serde_json::Value {
    let Ok(exe) = std::env::current_exe() else {
        return failed("run the check", "the bridge's own program cannot be found");
    };
    let out = match tempfile_path() {
        Ok(path) => path,
        Err(why) => return failed("run the check", &why),
    };
    // `--json FILE` goes before `--` (the program's arguments).
    let at = command
        .iter()
        .position(|a| a == "--")
        .unwrap_or(command.len());
    command.insert(at, out.clone().into());
    command.insert(at, "--json".into());
    let child = tokio::process::Command::new(exe)
        .args(&command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let Ok(child) = child else {
        return failed("run the check", "the check's own process did not start");
    };
    // A little longer than the child's own limit: it reports that itself, this is a backstop.
    let value = match tokio::time::timeout(limit + Duration::from_secs(5), child.wait_with_output())
        .await
    {
        Err(_) => failed(
            "finish within the time for one submission",
            &format!(
                "the check of {} did not finish within {} s",
                file.display(),
                limit.as_secs()
            ),
        ),
        Ok(Err(e)) => failed("run the check", &e.to_string()),
        Ok(Ok(done)) => match std::fs::read_to_string(&out) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| failed("run the check", &e.to_string())),
            Err(_) => {
                let said = String::from_utf8_lossy(&done.stderr);
                let said = said.trim().trim_start_matches("bridge check: ");
                let what = if said.contains("did not finish within") {
                    "finish within the time for one submission"
                } else {
                    "start the program"
                };
                failed(what, said)
            }
        },
    };
    let _ = std::fs::remove_file(&out);
    value
}

/// A fresh file name in the temporary folder for a child's results.
fn tempfile_path() -> Result<PathBuf, String> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
    Ok(std::env::temp_dir().join(format!("bridge-check-{}.json", hex::encode(nonce))))
}

/// Now, in Unix milliseconds (a recording's `started_unix_ms`).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a class run keeps a submission's recording: `REPORT/STUDENT.recording.json`.
fn recording_path(report: &std::path::Path, file: &std::path::Path) -> PathBuf {
    let student = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("submission");
    report.join(format!("{student}.recording.json"))
}

/// Writes a run's recording (the page's Replay… opens it), when asked for one.
fn save_recording(
    path: Option<&std::path::Path>,
    recording: &shared::Recording,
) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let text = serde_json::to_string(recording).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `HOST:PORT`, resolved.
pub(crate) async fn resolve(target: &str) -> Result<SocketAddr, String> {
    let mut addrs = tokio::net::lookup_host(target).await.map_err(|e| {
        format!("'{target}' is not an address with a port, such as 127.0.0.1:12000: {e}")
    })?;
    addrs
        .next()
        .ok_or_else(|| format!("'{target}' resolves to no address"))
}

/// Starts the program and waits until it listens on `port`.
async fn start(
    args: &CheckArgs,
    program: &std::path::Path,
    check: &Check,
    port: u16,
    output: &Output,
) -> Result<tokio::process::Child, String> {
    let tcp = check.transport == Transport::Tcp;
    let server = check.program == Role::Server;
    // The previous submission's program may still be going away (a class run that stopped it
    // at its time limit): give the port a moment to come free.
    let free_by = tokio::time::Instant::now() + Duration::from_secs(2);
    while server && listening(port, tcp) && tokio::time::Instant::now() < free_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if server && listening(port, tcp) {
        return Err(format!(
            "something listens on port {port} already: stop it first (ss -lntup 'sport = :{port}' shows what)"
        ));
    }
    if !program.is_file() {
        return Err(format!("{}: no such program", program.display()));
    }
    let dir = program
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let file = program.file_name().unwrap_or_default();
    let python = args.python.as_deref().unwrap_or(crate::config::PYTHON);
    let mut command = tokio::process::Command::new(python);
    command
        .arg("-u")
        .arg(file)
        .args(&args.args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A group of its own, so that `stop` ends whatever it started too.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        tokio::spawn(async move {
            let mut pipe = pipe;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                output.push(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
    }
    if !server {
        // A client connects when it is ready: its check's accept step waits for it.
        return Ok(child);
    }
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        if listening(port, tcp) {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let printed = output.text();
            // The usual reason when a check runs again at once.
            let hint = if printed.contains("Address already in use") {
                format!("\nPort {port} is still held by the last run's connections (TIME_WAIT, about a minute): wait, or let the server set SO_REUSEADDR before bind().")
            } else {
                String::new()
            };
            return Err(format!(
                "{} ended ({status}) before it listened on port {port}. It printed:\n{printed}{hint}",
                program.display(),
            ));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "{} did not listen on port {port} within {} s (does it use the handout's port, or the one given with --port?)",
                program.display(),
                START_WAIT.as_secs()
            ));
        }
        // The kernel's tables are read again shortly: there is nothing to wait on for a
        // socket another process binds.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temporary working folder (0700) holding a copy of the program; removed when dropped.
struct Workdir {
    path: PathBuf,
    program: PathBuf,
}

impl Workdir {
    fn new(program: &std::path::Path) -> Result<Workdir, String> {
        if !program.is_file() {
            return Err(format!("{}: no such program", program.display()));
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let path = std::env::temp_dir().join(format!("bridge-check-{}", hex::encode(nonce)));
        crate::security::create_private_dir(&path)
            .map_err(|e| format!("cannot make a working folder: {e}"))?;
        let name = program.file_name().unwrap_or_default();
        let copy = path.join(name);
        std::fs::copy(program, &copy)
            .map_err(|e| format!("cannot copy {}: {e}", program.display()))?;
        Ok(Workdir {
            path,
            program: copy,
        })
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Stops the program and everything it started: SIGTERM, then SIGKILL after a second.
#[cfg(unix)]
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill() with a process group id only sends a signal.
        unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(1), child.wait())
            .await
            .is_err()
        {
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            let _ = child.wait().await;
        }
    }
}

/// Windows: the program ends at once (it has no process group of its own here).
#[cfg(not(unix))]
async fn stop(child: &mut tokio::process::Child) {
    let _ = child.kill().await;
}

/// Whether some socket on this machine listens on `port` (TCP) or is bound to it (UDP): the
/// system's tables, read the way each system allows (`endpoints/tcp_state.rs`).
pub(crate) use crate::endpoints::tcp_state::listening;
