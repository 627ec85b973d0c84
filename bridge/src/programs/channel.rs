//! The channel a traced program's shim reports on: a TCP listener on 127.0.0.1 of this
//! process's own, one per program, named to the program in [`VAR`] with a one-time secret
//! (`127.0.0.1:PORT SECRET`). Each process of the program (the program, and each child it
//! forks) connects once, sends the secret as its first line, then its records as JSON lines,
//! so the records of several processes never interleave.
//!
//! Why TCP on loopback and not a socket the program inherits: Windows' Python cannot take a
//! Unix socket from its parent, and every system has loopback TCP. One channel everywhere also
//! means the one Linux's tests exercise is the one Windows and macOS use.
//!
//! Backpressure: the records read wait in a bounded queue for the tracer; when it is full the
//! readers stop reading, TCP's windows fill and the program's next report waits, as under
//! strace: nothing is lost and nothing grows without bound.
//!
//! Safety: any local process can connect to the port. A connection that does not present the
//! secret within [`SECRET_WAIT`] (in one short line) is closed, at most [`MAX_CONNECTIONS`] are
//! open at once, and a line longer than [`MAX_LINE`] ends its connection. Nothing a
//! connection without the secret sends is parsed.
//!
//! The shim batches records (a write per call woke this reader for each, which cost more than
//! the calls) and sends them when the program is about to block, every 100 ms, before a fork
//! and at exit. A call still blocked after 100 ms is reported by the shim's watcher as a
//! `wait`, so a student sees "accept() waiting" where the program is stuck, not before every
//! recv(); the call's own record then says when it began and returned.
//!
//! Used by the bridge for the programs it runs and by `bridge trace` for a terminal's.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::TraceRecord;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// The environment variable that tells the program where to report, and its secret.
pub(crate) const VAR: &str = "SOCKET_PLAYGROUND_TRACE";
/// Longest line read: the shim's batches are at most 32 KiB plus one record, and a record
/// keeps at most 64 KiB of data (87 KiB in base64).
const MAX_LINE: usize = 256 * 1024;
/// How long a new connection has to present the secret.
const SECRET_WAIT: Duration = Duration::from_secs(2);
/// Connections open at once (the program's processes, and those still to present the secret).
const MAX_CONNECTIONS: usize = 64;
/// Batches of records read and not yet taken by the tracer.
const QUEUE: usize = 64;

/// The channel: [`Channel::address`] goes to the program, the rest stays here. Dropping it
/// closes the listener and every connection.
pub(crate) struct Channel {
    address: String,
    /// The listener's port (also in `address`).
    port: u16,
    records: mpsc::Receiver<Vec<TraceRecord>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Channel {
    /// A listener on a free loopback port, and its secret. Must be called inside the runtime.
    pub(crate) async fn new() -> io::Result<Channel> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(io::Error::other)?;
        let secret = hex::encode(random);
        let (tx, records) = mpsc::channel(QUEUE);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(listener, secret.clone(), tx, stopped));
        Ok(Channel {
            address: format!("127.0.0.1:{port} {secret}"),
            port,
            records,
            stop: Some(stop),
            task,
        })
    }

    /// The value of [`VAR`] for the program.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The listener's port (the packet capture leaves the channel's traffic out).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The next records, in the order each process sent them. Cancel-safe. An error once the
    /// channel has ended (after [`Channel::rest`]).
    pub(crate) async fn next(&mut self) -> io::Result<Vec<TraceRecord>> {
        self.records
            .recv()
            .await
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    /// What the program's processes still send once it has ended (what was on its way, and
    /// what its children did as they were killed): no new connection is taken, and the open
    /// ones are read until they close, until `within` has passed, or for `limit` records.
    pub(crate) async fn rest(&mut self, within: Duration, limit: usize) -> Vec<TraceRecord> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = tokio::time::Instant::now() + within;
        let mut shown = Vec::new();
        while shown.len() < limit {
            match tokio::time::timeout_at(deadline, self.records.recv()).await {
                Ok(Some(records)) => shown.extend(records),
                Ok(None) | Err(_) => break,
            }
        }
        shown
    }
}

/// Takes connections until told to stop, then waits for the open ones to close.
async fn serve(
    listener: TcpListener,
    secret: String,
    tx: mpsc::Sender<Vec<TraceRecord>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let secret: Arc<str> = secret.into();
    let open = Arc::new(AtomicUsize::new(0));
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors, say: not a loop that spins until there are some.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (secret, tx, open) = (secret.clone(), tx.clone(), open.clone());
                readers.spawn(async move {
                    read(stream, &secret, &tx).await;
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
    drop(listener);
    drop(tx);
    while readers.join_next().await.is_some() {}
}

/// Reads one process's records: the secret first, then one JSON line each; lines that are
/// not the shim's records are skipped (the program could write anything there).
async fn read(stream: TcpStream, secret: &str, tx: &mpsc::Sender<Vec<TraceRecord>>) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::new();
    let mut first = (&mut reader).take(secret.len() as u64 + 2);
    match tokio::time::timeout(SECRET_WAIT, first.read_until(b'\n', &mut line)).await {
        Ok(Ok(_)) if same(line.trim_ascii_end(), secret.as_bytes()) => {}
        _ => return,
    }
    let mut batch = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) if line.last() != Some(&b'\n') && line.len() >= MAX_LINE => break,
            Ok(_) => {}
        }
        if let Ok(record) = serde_json::from_slice::<TraceRecord>(&line) {
            batch.push(record);
        }
        // What has arrived goes to the tracer together: one wake-up per batch, not per call.
        if reader.buffer().is_empty()
            && !batch.is_empty()
            && tx.send(std::mem::take(&mut batch)).await.is_err()
        {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
}

/// Compares the secret in time that does not depend on where it differs.
fn same(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len()
        && given
            .iter()
            .zip(secret)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    fn record(op: &str, len: u64) -> String {
        let record = TraceRecord {
            op: op.into(),
            sock: Some("1:1".into()),
            len: Some(len),
            ..TraceRecord::default()
        };
        serde_json::to_string(&record).unwrap()
    }

    async fn connect(channel: &Channel) -> (TcpStream, String) {
        let (addr, secret) = channel.address().split_once(' ').unwrap();
        (TcpStream::connect(addr).await.unwrap(), secret.to_string())
    }

    #[tokio::test]
    async fn records_of_each_process_arrive_in_order() {
        let mut channel = Channel::new().await.unwrap();
        let (mut parent, secret) = connect(&channel).await;
        let (mut child, _) = connect(&channel).await;
        parent
            .write_all(format!("{secret}\n{}\n", record("send", 0)).as_bytes())
            .await
            .unwrap();
        let got = channel.next().await.unwrap();
        assert_eq!(got[0].len, Some(0));
        // A batch: two records, and a line that is not one; and a second process's.
        let batch = format!(
            "{}\nnot a record\n{}\n",
            record("send", 1),
            record("send", 2)
        );
        parent.write_all(batch.as_bytes()).await.unwrap();
        child
            .write_all(format!("{secret}\n{}\n", record("recv", 9)).as_bytes())
            .await
            .unwrap();
        drop((parent, child));
        let rest = channel.rest(Duration::from_secs(5), 100).await;
        let sends: Vec<_> = rest
            .iter()
            .filter(|r| r.op == "send")
            .map(|r| r.len)
            .collect();
        assert_eq!(sends, [Some(1), Some(2)]);
        assert!(rest.iter().any(|r| r.op == "recv" && r.len == Some(9)));
    }

    #[tokio::test]
    async fn a_connection_without_the_secret_is_not_read() {
        let mut channel = Channel::new().await.unwrap();
        let (mut stranger, secret) = connect(&channel).await;
        let wrong = "0".repeat(secret.len());
        stranger
            .write_all(format!("{wrong}\n{}\n", record("send", 7)).as_bytes())
            .await
            .unwrap();
        // The channel closes it: reading it ends.
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        // A silent one is closed after SECRET_WAIT.
        let (mut silent, _) = connect(&channel).await;
        let closed = tokio::time::timeout(SECRET_WAIT * 3, silent.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(channel
            .rest(Duration::from_millis(200), 10)
            .await
            .is_empty());
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_ends_its_connection() {
        let mut channel = Channel::new().await.unwrap();
        let (mut peer, secret) = connect(&channel).await;
        peer.write_all(format!("{secret}\n").as_bytes())
            .await
            .unwrap();
        let long = vec![b'x'; MAX_LINE + 10];
        // The channel stops reading and closes; the write may fail part way.
        let _ = peer.write_all(&long).await;
        let _ = peer
            .write_all(format!("\n{}\n", record("send", 3)).as_bytes())
            .await;
        let rest = channel.rest(Duration::from_secs(5), 10).await;
        assert!(rest.is_empty(), "{rest:?}");
    }
}
