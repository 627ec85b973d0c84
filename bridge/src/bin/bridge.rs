//! The bridge's command line: parse flags, set up logging, bind, print the URL to open, write
//! the runtime file, and run until Ctrl-C (or SIGTERM), then close every socket and exit. Or,
//! as `bridge trace -- python3 prog.py`, run a program in this terminal, traced, shown in the
//! running bridge.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bridge::{Config, Scope, Token};
use clap::{Parser, Subcommand};

/// Socket Playground bridge: real TCP and UDP sockets, watched from the browser.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Run the bridge (what `bridge` alone does).
    Serve(Args),
    /// Run a program in this terminal and show its every socket call in the running bridge:
    /// `bridge trace -- python3 tcp_server.py` (with the line of each call), or any other
    /// program, `bridge trace -- ./tcp_server 12000` (its system calls, Linux).
    Trace {
        /// The bridge to show it in, as it printed its URL (http://HOST:PORT/#token=...).
        /// Default: the one running on this machine (from its runtime file).
        #[arg(long)]
        url: Option<String>,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Check a student's program against a lab's handout: `bridge check
    /// kurose-uppercase-server --program TCPServer.py`, or `--target 127.0.0.1:12000` for a
    /// server running elsewhere. `bridge check --list` names the labs; docs/checks.md tells
    /// how to write one.
    Check {
        /// The lab (see --list), or a scenario file (.toml).
        lab: Option<String>,
        /// A server that is running already, as HOST:PORT.
        #[arg(long, value_name = "HOST:PORT")]
        target: Option<String>,
        /// The student's program: the checker runs it with python3, in its own folder.
        #[arg(long, value_name = "FILE")]
        program: Option<std::path::PathBuf>,
        /// Another port than the handout's (pass it to the program too, after --).
        #[arg(long)]
        port: Option<u16>,
        /// A folder of the course's own checks (*.toml), next to the built-in ones.
        #[arg(long, value_name = "DIR")]
        course: Option<std::path::PathBuf>,
        /// Write the result as Gradescope's results.json here.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Write what the checker's sockets did here, as a recording the page's Replay opens.
        #[arg(long, value_name = "FILE")]
        recording: Option<std::path::PathBuf>,
        /// List the checks.
        #[arg(long)]
        list: bool,
        /// Check every submission (*.py) in this folder, for a class.
        #[arg(long, value_name = "DIR")]
        programs: Option<std::path::PathBuf>,
        /// With --programs: write grades.csv and each submission's results.json here.
        #[arg(long, value_name = "DIR")]
        report: Option<std::path::PathBuf>,
        /// With --programs: the most seconds one submission may take (default 60).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// With --programs: how many at once (default: twice the cores; more than one needs
        /// network namespaces: root, or user namespaces).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run in a network namespace of one's own (what --programs asks of each submission).
        #[arg(long, hide = true)]
        isolated: bool,
        /// The program's arguments.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Address and port the bridge listens on. Anything but loopback exposes it to the network.
    #[arg(long, default_value = "127.0.0.1:7777")]
    listen: SocketAddr,
    /// Let servers bind all interfaces and clients reach private (LAN) addresses, for labs that
    /// use two machines. Loopback only without it.
    #[arg(long)]
    allow_lan: bool,
    /// Let clients connect to addresses on the internet (a web page fetched by hand over a TCP
    /// socket). Servers still bind loopback (or the LAN with --allow-lan); fetch_send reaches
    /// public addresses without this flag.
    #[arg(long)]
    allow_internet: bool,
    /// Point NAME:PORT at ADDRESS for this run instead of asking DNS (ADDRESS may carry a port
    /// of its own): for tests and offline classrooms with their own server.
    #[arg(long = "resolve", value_name = "NAME:PORT:ADDRESS", value_parser = bridge::parse_resolve)]
    resolve: Vec<(String, u16, SocketAddr)>,
    /// A PEM file of certificates that fetches trust besides the usual roots (a classroom's
    /// own server, or a test's).
    #[arg(long = "extra-root-cert", value_name = "FILE")]
    extra_root_certs: Vec<PathBuf>,
    /// Let servers bind ports below 1024 (the OS may still refuse without privileges).
    #[arg(long)]
    allow_privileged_ports: bool,
    /// Another exact origin (such as http://192.168.1.5:8080) allowed to open sessions.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Use this token instead of a random one (for scripts and tests; at least 16 characters).
    #[arg(long)]
    token: Option<String>,
    /// Serve the page from this folder (trunk's dist) instead of the one inside the binary:
    /// for working on the page.
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// Most connections one server keeps open at once (a chat room for a load test may need
    /// thousands; each costs a file descriptor).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_connections: u32,
    /// Where servers keep their logs and received files, and clients find files to send.
    #[arg(long, value_name = "DIR", default_value = "playground-data")]
    data_dir: PathBuf,
    /// Largest file a transfer or an upload may write into the data directory, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = bridge::DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Let the page run programs even though the bridge listens beyond loopback (anyone with
    /// the token could then run code on this machine). Always allowed on loopback.
    #[arg(long)]
    allow_programs: bool,
    /// Do not capture packets, even where the bridge may (root or CAP_NET_RAW).
    #[arg(long)]
    no_capture: bool,
    /// The Python the page runs `.py` files with: a command on PATH or a path (`py` or
    /// `C:\Python313\python.exe` on Windows, where the default is `python`).
    #[arg(long, value_name = "PROGRAM", default_value = bridge::PYTHON)]
    python: String,
}

/// Event payloads are copied into buffers of tens of kilobytes, many per second under load.
/// glibc serves those from its heaps and, by default, keeps raising the size it serves from
/// heaps as such buffers are freed; the heaps then hold on to freed memory. A fixed threshold
/// gives payload-sized buffers their own mappings, returned to the system when freed. One
/// arena for all threads: an event is made on whichever worker runs its socket's task and
/// freed on whichever evicts it, and with an arena per thread the freed room sat in one
/// arena while the other mapped new memory (measured: a page that stops reading while 256 MiB
/// stream in peaked at 31 MiB or 47 MiB, depending on the thread; with one, at 31 to 36 MiB).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy, before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Log directives that win over RUST_LOG (see `run`).
const QUIET_LIBRARIES: [&str; 5] = [
    "tungstenite=debug",
    "tokio_tungstenite=debug",
    "hyper=debug",
    "hyper_util=debug",
    "axum=debug",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::Trace { url, command }) = cli.command {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        return match runtime {
            Ok(runtime) => {
                let code = runtime.block_on(bridge::trace(bridge::TraceArgs { url, command }));
                ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
            }
            Err(e) => {
                eprintln!("bridge trace: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Sub::Check {
        lab,
        target,
        program,
        port,
        course,
        json,
        recording,
        list,
        programs,
        report,
        timeout,
        jobs,
        isolated,
        args,
    }) = cli.command
    {
        // Before any thread: a user namespace refuses a multithreaded process.
        if isolated {
            if let Err(why) = bridge::checks::netns::enter() {
                eprintln!("bridge check: {why}");
                return ExitCode::from(3);
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build();
        return match runtime {
            Ok(runtime) => {
                let code = runtime.block_on(bridge::checks::check_cmd::run(
                    bridge::checks::check_cmd::CheckArgs {
                        lab,
                        target,
                        program,
                        args,
                        port,
                        course,
                        json,
                        list,
                        recording,
                        programs,
                        report,
                        timeout_s: timeout,
                        jobs,
                        python: None,
                    },
                ));
                ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
            }
            Err(e) => {
                eprintln!("bridge check: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = match cli.command {
        Some(Sub::Serve(args)) => args,
        _ => cli.serve,
    };
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_or_else(
            |e| {
                eprintln!("bridge: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            },
            |runtime| runtime.block_on(run(args)),
        )
}

async fn run(args: Args) -> ExitCode {
    let mut filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // Whatever RUST_LOG asks for, the libraries that see the WebSocket's frames and the HTTP
    // headers never log them: the hello carries the token, a download its bearer header.
    for quiet in QUIET_LIBRARIES {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bridge: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let token = match &args.token {
        Some(text) => Token::fixed(text)?,
        None => Token::generate().map_err(|e| format!("cannot make a random token: {e}"))?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let listen = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    if !listen.ip().is_loopback() {
        tracing::warn!(
            %listen,
            "the bridge listens beyond loopback: other machines can reach it (they still need the token)"
        );
    }
    let mut config = Config::new(token.clone());
    config.extra_origins = args.allow_origins;
    config.allow_privileged_ports = args.allow_privileged_ports;
    config.data_dir = args.data_dir;
    config.max_file_bytes = args.max_file_bytes;
    config.allow_internet = args.allow_internet;
    config.resolve = args.resolve;
    config.extra_root_certs = args.extra_root_certs;
    if config.allow_internet {
        tracing::warn!("--allow-internet: clients may connect to addresses on the internet");
    }
    config.max_connections_per_server = args.max_connections as usize;
    raise_open_files_limit(args.max_connections);
    config.static_dir = match args.dist {
        Some(dir) if dir.join("index.html").is_file() => Some(dir),
        Some(dir) => {
            return Err(format!(
                "{} holds no index.html: build the page first",
                dir.display()
            ))
        }
        // The page inside the binary (the repository's dist/, read from disk, in debug builds).
        None => None,
    };
    config.allow_programs = listen.ip().is_loopback() || args.allow_programs;
    config.capture = !args.no_capture;
    config.python = args.python;
    if args.allow_programs && !listen.ip().is_loopback() {
        tracing::warn!("--allow-programs: anyone with the token can run programs on this machine");
    }
    if args.allow_lan {
        config.scope = Scope::Lan;
        tracing::warn!("--allow-lan: servers and clients may use addresses on the local network");
    }
    let host = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    // `bridge trace` finds this bridge through it (written before the URL is printed, so it
    // is there once the URL is); removed when this function returns.
    let data_dir =
        std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let runtime_file = bridge::RuntimeFile::write(&bridge::RuntimeInfo {
        url: format!("http://{host}/"),
        token: token.expose().to_string(),
        pid: std::process::id(),
        data_dir: data_dir.display().to_string(),
        started_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    });
    match &runtime_file {
        Ok(file) => {
            tracing::info!(path = %file.path().display(), "wrote the runtime file for `bridge trace`")
        }
        Err(e) => tracing::warn!("no runtime file for `bridge trace` ({e}): it will need --url"),
    }
    // The one place the token is shown: in the URL's fragment, which browsers never send.
    println!("Socket Playground bridge is running. Open this URL:");
    println!("URL: http://{host}/#token={}", token.expose());
    let _ = std::io::stdout().flush();
    bridge::run(listener, config, stop_signal())
        .await
        .map_err(|e| format!("the server failed: {e}"))?;
    tracing::info!("every socket closed; bye");
    Ok(())
}

/// Raises the open-files limit (see [`bridge::raise_open_files_limit`]) and warns when even
/// the hard limit is short of what `--max-connections` asks for (accept() would then fail with
/// "too many open files", reported as such).
fn raise_open_files_limit(connections: u32) {
    let Some(open_files) = bridge::raise_open_files_limit() else {
        return;
    };
    let wanted = u64::from(connections) + 256;
    if open_files < wanted {
        tracing::warn!(
            open_files,
            "--max-connections {connections} needs about {wanted} open files; raise the limit (ulimit -Hn)"
        );
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping: closing every socket");
}
