//! Hostile peers speaking WebSocket by hand, for the hostile-peer tests and the soak test: no
//! library in between that would answer pings or read for them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{TOKEN, WAIT};

/// A TCP connection to `addr` whose receive buffer is tiny, so that a peer that never reads
/// fills it at once.
pub async fn stingy_connection(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// The WebSocket opening handshake by hand (no library that would answer pings for us); the
/// stream is left just after the 101 response.
pub async fn handshake(stream: &mut TcpStream, addr: SocketAddr) {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(WAIT, stream.read_exact(&mut byte))
            .await
            .expect("a handshake answer in time")
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// A client frame (masked with a zero key, which leaves the payload as it is).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

pub fn hello_json() -> String {
    json!({"type": "hello", "protocol": shared::PROTOCOL_VERSION, "token": TOKEN}).to_string()
}

pub fn hello_frame() -> Vec<u8> {
    frame(0x1, hello_json().as_bytes())
}

/// Floods pings at `stream` for up to `limit`, never reading; returns whether the bridge
/// closed the connection first.
pub async fn flood_pings(stream: &mut TcpStream, limit: Duration) -> bool {
    let ping = frame(0x9, &[b'p'; 125]).repeat(64);
    let until = Instant::now() + limit;
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&ping)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return true,
            // Our own send buffer is full: the bridge stopped reading us. Go on trying.
            Err(_) => {}
        }
    }
    false
}
