//! TCP against UDP, measured for real on loopback: echo round trips of the same messages over
//! each protocol, and optionally the same bytes sent one way over each. The sockets are the
//! bridge's own (not endpoints of the page) and close when the measurement ends.

use std::time::{Duration, Instant};

use shared::{
    CompareReport, CompareSpec, ErrorInfo, ErrorKind, FileRace, RoundTrips, Spread,
    MAX_COMPARE_COUNT, MAX_COMPARE_FILE, MAX_DATAGRAM,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How long a UDP round trip may take before the message counts as lost.
const UDP_PATIENCE: Duration = Duration::from_secs(1);
/// How long the UDP file receiver waits after the last datagram.
const UDP_QUIET: Duration = Duration::from_millis(300);
/// Samples kept for charts.
const CHART_SAMPLES: usize = 1000;

fn io(context: &str, err: std::io::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        ErrorKind::Other,
        format!("The comparison failed while {context}: {err}."),
    );
    info.os_message = Some(err.to_string());
    info
}

/// Runs the comparison.
pub(crate) async fn run(spec: CompareSpec) -> Result<CompareReport, ErrorInfo> {
    if !(1..=MAX_COMPARE_COUNT).contains(&spec.count)
        || !(1..=MAX_DATAGRAM).contains(&spec.size)
        || spec.file_bytes > MAX_COMPARE_FILE
        || !(1..=MAX_DATAGRAM - 8).contains(&spec.datagram_size)
    {
        return Err(ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!(
                "Compare 1 to {MAX_COMPARE_COUNT} messages of 1 to {MAX_DATAGRAM} bytes, and at \
                 most {MAX_COMPARE_FILE} bytes of file in datagrams of at most {} bytes.",
                MAX_DATAGRAM - 8
            ),
        ));
    }
    let tcp = tcp_round_trips(spec.count, spec.size).await?;
    let udp = udp_round_trips(spec.count, spec.size).await?;
    let file = if spec.file_bytes > 0 {
        Some(file_race(spec.file_bytes, spec.datagram_size).await?)
    } else {
        None
    };
    Ok(CompareReport { tcp, udp, file })
}

fn summary(count: u32, size: usize, samples: Vec<u32>, started: Instant) -> RoundTrips {
    let duration = started.elapsed();
    let answered = samples.len();
    let step = answered.div_ceil(CHART_SAMPLES).max(1);
    RoundTrips {
        messages: count,
        size,
        lost: count - answered as u32,
        rtt_us: Spread::of(&samples),
        samples_us: samples.iter().step_by(step).copied().collect(),
        duration_us: duration.as_micros() as u64,
        bytes_per_second: ((2 * answered * size) as f64 / duration.as_secs_f64().max(1e-9)) as u64,
    }
}

async fn tcp_round_trips(count: u32, size: usize) -> Result<RoundTrips, ErrorInfo> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("binding TCP", e))?;
    let addr = listener.local_addr().map_err(|e| io("binding TCP", e))?;
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    });
    let mut client = TcpStream::connect(addr)
        .await
        .map_err(|e| io("connecting TCP", e))?;
    client
        .set_nodelay(true)
        .map_err(|e| io("connecting TCP", e))?;
    let message = vec![b'x'; size];
    let mut reply = vec![0u8; size];
    let mut samples = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        client
            .write_all(&message)
            .await
            .map_err(|e| io("sending over TCP", e))?;
        client
            .read_exact(&mut reply)
            .await
            .map_err(|e| io("receiving over TCP", e))?;
        samples.push(t.elapsed().as_micros() as u32);
    }
    let report = summary(count, size, samples, started);
    drop(client);
    let _ = echo.await;
    Ok(report)
}

async fn udp_round_trips(count: u32, size: usize) -> Result<RoundTrips, ErrorInfo> {
    let server = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("binding UDP", e))?;
    let addr = server.local_addr().map_err(|e| io("binding UDP", e))?;
    let echo = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = server.recv_from(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            server.send_to(&buf[..n], from).await?;
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("binding UDP", e))?;
    client
        .connect(addr)
        .await
        .map_err(|e| io("connecting UDP", e))?;
    let mut message = vec![b'x'; size];
    let mut reply = vec![0u8; MAX_DATAGRAM];
    let mut samples = Vec::with_capacity(count as usize);
    let started = Instant::now();
    for i in 0..count {
        // Number each message so a late echo of an earlier one is not taken for this one.
        let tag = i.to_be_bytes();
        let tagged = size.min(4);
        message[..tagged].copy_from_slice(&tag[..tagged]);
        let t = Instant::now();
        client
            .send(&message)
            .await
            .map_err(|e| io("sending over UDP", e))?;
        let deadline = tokio::time::Instant::now() + UDP_PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, client.recv(&mut reply)).await {
                Ok(Ok(n)) if n == size && reply[..tagged] == tag[..tagged] => {
                    samples.push(t.elapsed().as_micros() as u32);
                    break;
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(io("receiving over UDP", e)),
                Err(_) => break,
            }
        }
    }
    let report = summary(count, size, samples, started);
    let _ = client.send(&[]).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), echo).await;
    Ok(report)
}

async fn file_race(bytes: u64, datagram_size: usize) -> Result<FileRace, ErrorInfo> {
    let chunk = vec![b'f'; 64 * 1024];
    // TCP: a sink that answers one byte once it has everything.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("binding TCP", e))?;
    let addr = listener.local_addr().map_err(|e| io("binding TCP", e))?;
    let sink = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        while got < bytes {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        stream.write_all(b"k").await?;
        Ok::<_, std::io::Error>(got)
    });
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| io("connecting TCP", e))?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream
            .write_all(&chunk[..n])
            .await
            .map_err(|e| io("sending over TCP", e))?;
        left -= n as u64;
    }
    let mut ack = [0u8; 1];
    stream
        .read_exact(&mut ack)
        .await
        .map_err(|e| io("receiving over TCP", e))?;
    let tcp_duration = started.elapsed();
    let _ = sink.await;

    // UDP: a counter that stops after a quiet spell.
    let receiver = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("binding UDP", e))?;
    let to = receiver.local_addr().map_err(|e| io("binding UDP", e))?;
    let counter = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let (mut datagrams, mut got) = (0u32, 0u64);
        while let Ok(Ok(n)) = tokio::time::timeout(UDP_QUIET, receiver.recv(&mut buf)).await {
            datagrams += 1;
            got += n as u64;
        }
        (datagrams, got)
    });
    let sender = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| io("binding UDP", e))?;
    let started = Instant::now();
    let mut sent = 0u32;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(datagram_size as u64) as usize;
        sender
            .send_to(&chunk[..n.min(chunk.len())], to)
            .await
            .map_err(|e| io("sending over UDP", e))?;
        sent += 1;
        left -= n as u64;
    }
    let udp_duration = started.elapsed();
    let (received, got) = counter.await.unwrap_or((0, 0));
    let per_second = |b: u64, d: Duration| (b as f64 / d.as_secs_f64().max(1e-9)) as u64;
    Ok(FileRace {
        bytes,
        tcp_duration_us: tcp_duration.as_micros() as u64,
        tcp_bytes_per_second: per_second(bytes, tcp_duration),
        udp_duration_us: udp_duration.as_micros() as u64,
        udp_datagrams_sent: sent,
        udp_datagrams_received: received,
        udp_bytes_received: got,
        udp_bytes_per_second: per_second(got, udp_duration),
    })
}
