//! The lab's encryption and authentication. Encryption is Fernet, byte-compatible with Python
//! `cryptography`'s `Fernet`, so a student's script with the same key talks to the bridge.
//! Authentication is a challenge-response: the server sends a random nonce, the client answers
//! with HMAC-SHA256(secret, nonce), so the secret never crosses the network.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::{ErrorInfo, ErrorKind};

/// The first characters of every Fernet token (version byte 0x80, base64).
const TOKEN_START: &str = "gAAAAA";

/// A fresh random key, as `Fernet.generate_key()` makes.
pub(crate) fn new_key() -> String {
    fernet::Fernet::generate_key()
}

/// The cipher for `key`, or why the key is unusable.
pub(crate) fn cipher(key: &str) -> Result<fernet::Fernet, ErrorInfo> {
    fernet::Fernet::new(key.trim()).ok_or_else(|| {
        ErrorInfo::new(
            ErrorKind::InvalidRequest,
            "That is not a Fernet key: it must be 32 bytes in URL-safe base64 (44 characters).",
        )
        .with_hint("Generate one in the page, or with Fernet.generate_key() in Python.")
    })
}

/// Decrypts a token, explaining a rejection.
pub(crate) fn decrypt(cipher: &fernet::Fernet, token: &str) -> Result<Vec<u8>, ErrorInfo> {
    cipher.decrypt(token.trim()).map_err(|_| {
        ErrorInfo::new(
            ErrorKind::InvalidRequest,
            "The Fernet token was rejected: its signature does not match, so it was changed on \
             the way or made with another key. Nothing of it is shown as plaintext.",
        )
        .with_hint("Check that both sides use the same key.")
    })
}

/// The last word of a line, if it looks like a Fernet token (chat lines are `nick: token`).
pub(crate) fn token_in(line: &str) -> Option<&str> {
    line.split_whitespace()
        .last()
        .filter(|word| word.starts_with(TOKEN_START))
}

/// Changes one character in the middle of a token to another valid base64 character: still a
/// well-formed token, but its HMAC no longer matches.
pub(crate) fn tamper(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("base64 stays ASCII")
}

/// A random challenge, 16 bytes in hex.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}

/// The answer to a challenge: hex HMAC-SHA256 with the secret as key and the nonce text as
/// message, as Python's `hmac.new(secret.encode(), nonce.encode(), "sha256").hexdigest()`.
pub(crate) fn proof(secret: &str, nonce: &str) -> String {
    hex::encode(mac(secret, nonce).finalize().into_bytes())
}

/// Checks an answer in constant time.
pub(crate) fn verify(secret: &str, nonce: &str, answer: &str) -> bool {
    hex::decode(answer.trim()).is_ok_and(|bytes| mac(secret, nonce).verify_slice(&bytes).is_ok())
}

fn mac(secret: &str, nonce: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(nonce.as_bytes());
    mac
}

/// Longest line kept while waiting for its newline: a Fernet token of a 48 KiB message, far
/// more than a lab sends. A peer that sends more without a newline is cut off instead of
/// filling the bridge's memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Bytes received until their newline, for line-based protocols (Fernet tokens, the
/// challenge-response). Each byte is looked at once, however the line arrives in pieces.
#[derive(Default)]
pub(crate) struct Lines {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already searched for a newline.
    scanned: usize,
}

/// A peer sent a line longer than [`MAX_LINE`] without its newline.
#[derive(Debug, PartialEq)]
pub(crate) struct LineTooLong;

impl LineTooLong {
    /// Why the connection is closed, in words.
    pub(crate) fn reason() -> String {
        format!("a line longer than {MAX_LINE} bytes arrived without its newline")
    }
}

impl Lines {
    /// Adds received bytes; returns the lines now complete (the `\n` removed, a `\r` before
    /// it too), or [`LineTooLong`] once an unfinished line is over the limit.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
        self.buffer.extend_from_slice(chunk);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(at) = self.buffer[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + at;
            let line = String::from_utf8_lossy(&self.buffer[start..end]);
            lines.push(line.trim_end_matches('\r').to_string());
            start = end + 1;
            self.scanned = start;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_LINE {
            self.buffer = Vec::new();
            self.scanned = 0;
            return Err(LineTooLong);
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fernet_round_trip_and_tampering() {
        let key = new_key();
        let cipher = cipher(&key).unwrap();
        let token = cipher.encrypt(b"secret message");
        assert!(token.starts_with(TOKEN_START));
        assert_eq!(decrypt(&cipher, &token).unwrap(), b"secret message");
        assert!(decrypt(&cipher, &tamper(&token)).is_err());
        assert!(decrypt(&super::cipher(&new_key()).unwrap(), &token).is_err());
        assert_eq!(token_in(&format!("alice: {token}")), Some(token.as_str()));
        assert!(super::cipher("not a key").is_err());
    }

    #[test]
    fn challenge_response() {
        let nonce = nonce();
        let answer = proof("s3cret", &nonce);
        assert!(verify("s3cret", &nonce, &answer));
        assert!(!verify("wrong", &nonce, &answer));
        assert!(!verify("s3cret", &nonce, "zz"));
        // A known answer, as Python computes it.
        assert_eq!(
            proof("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn lines_are_split_and_kept_until_complete() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(b"one\r\ntwo\nthr").unwrap(), ["one", "two"]);
        assert_eq!(lines.push(b"ee").unwrap(), Vec::<String>::new());
        assert_eq!(lines.push(b"\n").unwrap(), ["three"]);
        assert_eq!(lines.buffer, b"");
    }

    #[test]
    fn a_line_without_end_is_cut_off_at_the_limit() {
        let mut lines = Lines::default();
        for _ in 0..MAX_LINE / 1024 {
            assert!(lines.push(&[b'x'; 1024]).unwrap().is_empty());
        }
        assert_eq!(lines.push(b"x"), Err(LineTooLong));
        assert_eq!(lines.push(b"ok\n").unwrap(), ["ok"], "it starts afresh");
    }
}
