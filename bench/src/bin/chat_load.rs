//! A chat load generator for the fan-out benchmark (`cargo xtask bench`), in a process of its
//! own so that it does not share the bridge's memory or runtime. It connects many TCP clients
//! to a line-based chat server (the bridge's chat room, or `ncat --broker`) from several
//! 127.0.0.x source addresses, makes sure every client hears the room, then measures:
//! - a paced phase: a fixed rate of lines, each stamped with its send time, and the delay until
//!   each member receives it (p50, p99);
//! - a burst: every sender writes its lines back to back, and the deliveries per second until
//!   the last member has the last line.
//!
//! Along the way every client checks that each speaker's lines reach it once and in order
//! (`misordered`, from the stamps: a speaker's only grow).
//!
//! It prints one `RESULT key=value ...` line. Loopback only: it refuses any other target.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpSocket;

/// Chat fan-out load: many clients, a few senders, stamped lines.
#[derive(Debug, Parser)]
struct Args {
    /// The chat server (loopback only).
    #[arg(long)]
    target: SocketAddr,
    /// Clients to connect.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Source addresses to spread them over: 127.0.0.1, 127.0.0.2, ...
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Send a nickname line first (the bridge's chat room wants one; ncat does not).
    #[arg(long)]
    nick: bool,
    /// Clients that send lines.
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Lines per second in the paced phase, all senders together.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Seconds of the paced phase.
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Lines each sender writes back to back in the burst.
    #[arg(long, default_value_t = 10)]
    burst: usize,
    /// Bursts, one after the other; the rate printed is their median.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Connections being set up at once: at most the server's listen backlog, or the kernel
    /// drops some, and a dropped connection looks connected until it is used.
    #[arg(long, default_value_t = 8)]
    connecting: usize,
    /// The longest any phase may wait for its deliveries.
    #[arg(long, default_value_t = 60)]
    patience: u64,
}

/// Delay buckets of 10 µs up to 2 s, the last one for everything slower.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_001;

/// Deliveries of one phase: a count and the time of the last one.
#[derive(Default)]
struct Phase {
    delivered: AtomicU64,
    last_ns: AtomicU64,
}

impl Phase {
    /// Adds `count` deliveries that arrived at `now_ns`.
    fn add(&self, count: u64, now_ns: u64) {
        if count == 0 {
            return;
        }
        self.last_ns.fetch_max(now_ns, Ordering::Relaxed);
        // Counted last, so that whoever sees the count sees the rest too.
        self.delivered.fetch_add(count, Ordering::Release);
    }
}

/// How long paced lines took to arrive: a count per [`BUCKET_US`].
struct Delays(Vec<AtomicU64>);

impl Delays {
    fn new() -> Self {
        Delays((0..BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    fn add(&self, delay_us: u64) {
        let bucket = ((delay_us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.0[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The delay (µs) under which `p` of the `total` deliveries came.
    fn percentile_us(&self, total: u64, p: f64) -> u64 {
        let wanted = ((total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, count) in self.0.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen >= wanted.max(1) {
                return (i as u64 + 1) * BUCKET_US;
            }
        }
        BUCKETS as u64 * BUCKET_US
    }
}

/// What every reader shares.
struct Stats {
    start: Instant,
    paced: Phase,
    /// Only the paced lines' delays are kept: the burst measures a rate.
    delays: Delays,
    burst: Phase,
    /// Clients that heard a warm-up line (each counted once).
    warmed: AtomicUsize,
    /// Clients whose connection ended early.
    dropped: AtomicUsize,
    /// Lines heard twice or out of their speaker's order (see [`LastHeard`]).
    misordered: AtomicU64,
}

impl Stats {
    fn new() -> Self {
        Stats {
            start: Instant::now(),
            paced: Phase::default(),
            delays: Delays::new(),
            burst: Phase::default(),
            warmed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            misordered: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.target.ip().is_loopback() {
        eprintln!("chat_load: only loopback targets ({} is not)", args.target);
        return std::process::ExitCode::FAILURE;
    }
    bridge::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(load(args)) {
        Ok(result) => {
            println!("RESULT {result}");
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("chat_load: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Bytes one reader takes per read(): a burst's lines for one client (about 2.5 KB) in one go.
const READ_BUFFER: usize = 4096;

/// What one read() held. The shared counters are touched, and the clock read, once per
/// read, not per line: the generator shares two cores with the server it measures, so it
/// spends as little as it can per delivery (the lines of one read arrived together anyway).
#[derive(Default)]
struct Tally {
    warm: bool,
    paced: u64,
    burst: u64,
    /// Lines heard twice, or before an earlier line of the same speaker.
    misordered: u64,
}

/// The last stamp a client heard from each speaker, by the prefix the server put before it
/// (`u3: `): a speaker's stamps only grow, so one that does not came twice or out of order.
type LastHeard = Vec<(Vec<u8>, u64)>;

impl Tally {
    /// Counts the stamped lines in `lines` (whole lines). Paced lines' delays go into the
    /// histogram, with `now_ns` as their arrival: the lines of one read() arrived together.
    fn of(lines: &[u8], now_ns: u64, stats: &Stats, heard: &mut LastHeard) -> Tally {
        let mut tally = Tally::default();
        for line in lines.split(|b| *b == b'\n') {
            // A stamped line: `m|<phase>|<sent ns>`, after whatever prefix the server adds.
            let Some(bar) = line.iter().position(|b| *b == b'|') else {
                continue;
            };
            if bar == 0 || line[bar - 1] != b'm' || line.get(bar + 2) != Some(&b'|') {
                continue;
            }
            let phase = line[bar + 1];
            if phase == b'w' {
                tally.warm = true;
                continue;
            }
            let Some(sent) = digits(&line[bar + 3..]) else {
                continue;
            };
            match phase {
                b'b' => tally.burst += 1,
                b'p' => {
                    stats.delays.add(now_ns.saturating_sub(sent) / 1000);
                    tally.paced += 1;
                }
                _ => continue,
            }
            // Without a prefix (ncat relays lines as they are) speakers cannot be told apart.
            let speaker = &line[..bar - 1];
            if speaker.is_empty() {
                continue;
            }
            match heard.iter_mut().find(|(who, _)| who == speaker) {
                Some((_, last)) => {
                    if sent <= *last {
                        tally.misordered += 1;
                    }
                    *last = sent;
                }
                None => heard.push((speaker.to_vec(), sent)),
            }
        }
        tally
    }
}

/// The decimal number at the start of `text`, if there is one.
fn digits(text: &[u8]) -> Option<u64> {
    let count = text.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[..count]).ok()?.parse().ok()
}

/// Reads one client's lines until its connection ends, counting stamped lines. `early` is
/// what was read before (while joining) and not used yet.
async fn read_lines(mut socket: OwnedReadHalf, early: Vec<u8>, stats: Arc<Stats>) {
    let mut buf = vec![0u8; READ_BUFFER.max(early.len() + 1)];
    buf[..early.len()].copy_from_slice(&early);
    // Bytes of an unfinished line, kept at the start of `buf`.
    let mut kept = early.len();
    let mut warmed = false;
    let mut heard = LastHeard::new();
    loop {
        let n = match socket.read(&mut buf[kept..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = stats.now_ns();
        let end = kept + n;
        let Some(last) = buf[..end].iter().rposition(|b| *b == b'\n') else {
            // No whole line yet. A line longer than the buffer is not one of ours: dropped.
            kept = if end == buf.len() { 0 } else { end };
            continue;
        };
        let counted = Tally::of(&buf[..last], now, &stats, &mut heard);
        buf.copy_within(last + 1..end, 0);
        kept = end - last - 1;
        if counted.warm && !warmed {
            warmed = true;
            stats.warmed.fetch_add(1, Ordering::Relaxed);
        }
        stats.paced.add(counted.paced, now);
        stats.burst.add(counted.burst, now);
        if counted.misordered > 0 {
            stats
                .misordered
                .fetch_add(counted.misordered, Ordering::Relaxed);
        }
    }
    stats.dropped.fetch_add(1, Ordering::Relaxed);
}

async fn stamp(writer: &mut OwnedWriteHalf, stats: &Stats, phase: &str) -> Result<(), String> {
    let line = format!("m|{phase}|{}\n", stats.now_ns());
    writer
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("a sender could not send: {e}"))
}

/// Waits until `done` holds, up to `patience`; returns whether it did.
async fn until(patience: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + patience;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn load(args: Args) -> Result<String, String> {
    let stats = Arc::new(Stats::new());
    let patience = Duration::from_secs(args.patience);
    let senders = args.senders.clamp(1, args.clients.saturating_sub(1).max(1));

    // Connect everyone from several source addresses.
    let connecting = Instant::now();
    let failure: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let mut writers: Vec<Option<OwnedWriteHalf>> = Vec::with_capacity(args.clients);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connecting.max(1)));
    let mut pending = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(args.sources.max(1))) as u8);
        let (gate, target, nick) = (gate.clone(), args.target, args.nick);
        pending.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open gate");
            let socket = TcpSocket::new_v4().map_err(|e| format!("socket(): {e}"))?;
            // Let connect() pick the port: bind() to port 0 would search for a port free on
            // every destination, which slows down as thousands are taken.
            let yes: libc::c_int = 1;
            // SAFETY: a plain setsockopt on a socket this task owns, with an int option.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    (&yes as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
            socket
                .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
                .map_err(|e| format!("bind({source}): {e}"))?;
            let stream = socket
                .connect(target)
                .await
                .map_err(|e| format!("client {i} could not connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (reader, mut writer) = stream.into_split();
            let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
            if nick {
                writer
                    .write_all(format!("u{i}\n").as_bytes())
                    .await
                    .map_err(|e| format!("client {i} could not send its nickname: {e}"))?;
                // Like a person, wait until the room says who you are before the next one
                // connects: the number of connections the server has not accepted yet stays
                // under its listen backlog (beyond it the kernel drops handshakes, and
                // clients wait seconds to retry).
                let mut line = String::new();
                while !line.contains("you are") {
                    line.clear();
                    let read =
                        tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line))
                            .await
                            .map_err(|_| format!("client {i} got no answer to its nickname"))?;
                    if read.map_err(|e| format!("client {i}: {e}"))? == 0 {
                        return Err(format!("client {i} was closed before it joined"));
                    }
                }
            }
            Ok::<_, String>((reader, writer))
        }));
    }
    for task in pending {
        match task.await {
            Ok(Ok((reader, writer))) => {
                let early = reader.buffer().to_vec();
                tokio::spawn(read_lines(reader.into_inner(), early, stats.clone()));
                writers.push(Some(writer));
            }
            Ok(Err(message)) => {
                let _ = failure.set(message);
                writers.push(None);
            }
            Err(e) => return Err(format!("a connecting task failed: {e}")),
        }
    }
    if let Some(message) = failure.get() {
        return Err(message.clone());
    }
    let connect_seconds = connecting.elapsed().as_secs_f64();
    eprintln!(
        "chat_load: {} clients connected in {connect_seconds:.2} s",
        args.clients
    );

    // Warm up: client 0 says something until every other client has heard it.
    let listeners = args.clients - 1;
    let mut first = writers[0].take().expect("client 0 connected");
    let warm_deadline = Instant::now() + patience;
    loop {
        stamp(&mut first, &stats, "w").await?;
        let all = until(Duration::from_millis(500), || {
            stats.warmed.load(Ordering::Relaxed) >= listeners
        })
        .await;
        if all {
            break;
        }
        if Instant::now() > warm_deadline {
            return Err(format!(
                "only {} of {listeners} clients heard the room within {} s",
                stats.warmed.load(Ordering::Relaxed),
                args.patience
            ));
        }
    }
    let warm_seconds = connecting.elapsed().as_secs_f64() - connect_seconds;
    let mut senders: Vec<OwnedWriteHalf> = writers[1..=senders]
        .iter_mut()
        .map(|w| w.take().expect("sender connected"))
        .collect();
    // Senders hear each other, so every line reaches every client but its sender.
    let per_line = (args.clients - 1) as u64;

    // Paced: `rate` lines a second, round robin over the senders.
    let lines = u64::from(args.rate) * u64::from(args.seconds);
    let every = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut tick = tokio::time::interval(every);
    for n in 0..lines {
        tick.tick().await;
        let which = n as usize % senders.len();
        let sender = &mut senders[which];
        stamp(sender, &stats, "p").await?;
    }
    let paced_expected = lines * per_line;
    until(patience, || {
        stats.paced.delivered.load(Ordering::Relaxed) >= paced_expected
    })
    .await;

    // Bursts: every sender writes its lines back to back, all at once; `rounds` times.
    let sender_count = senders.len();
    let per_burst = (args.burst * sender_count) as u64 * per_line;
    let mut rates = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let before = stats.burst.delivered.load(Ordering::Relaxed);
        let burst_start = stats.now_ns();
        let mut writing = Vec::new();
        for mut sender in senders.drain(..) {
            let (stats, count) = (stats.clone(), args.burst);
            writing.push(tokio::spawn(async move {
                for _ in 0..count {
                    stamp(&mut sender, &stats, "b").await?;
                }
                Ok::<_, String>(sender)
            }));
        }
        // Kept open to the end: a sender that closed would leave the room.
        for task in writing {
            senders.push(task.await.map_err(|e| format!("a sender failed: {e}"))??);
        }
        let expected = per_burst * round as u64;
        until(patience, || {
            stats.burst.delivered.load(Ordering::Relaxed) >= expected
        })
        .await;
        let delivered = stats.burst.delivered.load(Ordering::Relaxed) - before;
        let seconds = (stats
            .burst
            .last_ns
            .load(Ordering::Relaxed)
            .saturating_sub(burst_start)) as f64
            / 1e9;
        rates.push(delivered as f64 / seconds.max(1e-9));
    }
    rates.sort_by(f64::total_cmp);
    let burst_rate = rates[rates.len() / 2];
    let burst_expected = per_burst * args.rounds.max(1) as u64;
    let burst_delivered = stats.burst.delivered.load(Ordering::Relaxed);
    let paced = stats.paced.delivered.load(Ordering::Relaxed);
    Ok(format!(
        "clients={} connect_s={connect_seconds:.2} warm_s={warm_seconds:.2} \
         paced_delivered={} paced_expected={paced_expected} paced_p50_us={} paced_p99_us={} \
         burst_delivered={burst_delivered} burst_expected={burst_expected} \
         burst_per_s={burst_rate:.0} dropped={} misordered={}",
        args.clients,
        paced,
        stats.delays.percentile_us(paced, 0.5),
        stats.delays.percentile_us(paced, 0.99),
        stats.dropped.load(Ordering::Relaxed),
        stats.misordered.load(Ordering::Relaxed),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_stamped_lines_and_catches_disorder() {
        let stats = Stats::new();
        let mut heard = LastHeard::new();
        let text = b"* welcome\nu1: m|w|1\nu1: m|b|5\nu2: m|b|3\nu1: m|b|4\nu2: m|p|7\nu2: m|p|7\nm|b|1\nu3: m|b|x";
        let counted = Tally::of(text, 10_000, &stats, &mut heard);
        assert!(counted.warm);
        assert_eq!(counted.burst, 4, "the line without a number is not counted");
        assert_eq!(counted.paced, 2);
        // u1 went back from 5 to 4; u2's 7 came twice; the line without a prefix is not checked.
        assert_eq!(counted.misordered, 2);
        assert_eq!(
            stats.delays.percentile_us(2, 1.0),
            10,
            "10 µs late, in the first bucket"
        );
    }

    #[test]
    fn digits_read_the_leading_number() {
        assert_eq!(digits(b"123\r"), Some(123));
        assert_eq!(digits(b"x1"), None);
        assert_eq!(digits(b"99999999999999999999999"), None);
    }
}
