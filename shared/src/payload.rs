//! Bytes on the wire: [`Payload`] carries what a socket sent or received (lossless base64 plus a
//! readable preview), [`DataInput`] what a person typed (text or hex).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// How many bytes of a payload the text preview shows. The full bytes are always in `base64`.
pub const PREVIEW_BYTES: usize = 256;

/// Bytes that went through a socket, exactly, with a preview a person can read.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// Number of bytes.
    pub len: usize,
    /// The bytes, standard base64: lossless whatever the content.
    pub base64: String,
    /// The first [`PREVIEW_BYTES`] bytes as text; bytes that are not UTF-8 show as U+FFFD.
    pub preview: String,
    /// Whether the whole payload is valid UTF-8 (a view may then show it as text, else as hex).
    pub utf8: bool,
    /// Whether the preview stops before the end of the payload.
    pub truncated: bool,
    /// Bytes at the end that `base64` does not carry, so that `len` stays exact: a traced
    /// program's send or recv of more than 64 KiB keeps its first 64 KiB (0 everywhere else).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Payload {
    /// Roughly what keeping it costs in memory: its text forms (base64 is 4/3 of the bytes) and
    /// a little more. Bounds on kept events count this, not `len`.
    pub fn kept_bytes(&self) -> usize {
        64 + self.base64.len() + self.preview.len()
    }

    /// Wraps bytes for the wire.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let cut = bytes.len().min(PREVIEW_BYTES);
        Payload {
            len: bytes.len(),
            base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            preview: String::from_utf8_lossy(&bytes[..cut]).into_owned(),
            utf8: std::str::from_utf8(bytes).is_ok(),
            truncated: cut < bytes.len(),
            omitted: 0,
        }
    }

    /// The first bytes of `len` (a call's data kept only in part): `base64` carries `head`,
    /// `len` counts them all.
    pub fn from_head(head: &[u8], len: usize) -> Self {
        let mut payload = Payload::from_bytes(head);
        if len > head.len() {
            payload.omitted = len - head.len();
            payload.len = len;
            payload.truncated = true;
        }
        payload
    }

    /// The exact bytes back; `None` if `base64` is not valid base64.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.base64)
            .ok()
    }
}

/// Shows length and preview only: an event log full of base64 helps nobody.
impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} B, {:?})", self.len, self.preview)
    }
}

/// Data a person wants to send: text as typed, or bytes written in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataInput {
    /// UTF-8 text, sent as its bytes (no line ending is added).
    Text(String),
    /// Hex digits, two per byte; spaces, colons and a leading `0x` are allowed (`"68 69 0a"`).
    Hex(String),
}

impl DataInput {
    /// The bytes to send, or a sentence saying what is wrong with the hex.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            DataInput::Text(text) => Ok(text.as_bytes().to_vec()),
            DataInput::Hex(hex) => parse_hex(hex),
        }
    }
}

fn parse_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = hex
        .split_whitespace()
        .flat_map(|word| word.strip_prefix("0x").unwrap_or(word).chars())
        .filter(|c| *c != ':' && *c != '-')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "hex needs two digits per byte, and {} digits is an odd number",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text: String = pair.iter().collect();
            u8::from_str_radix(&text, 16).map_err(|_| format!("'{text}' is not a hex byte"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_lossless_for_any_bytes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let payload = Payload::from_bytes(&bytes);
        assert_eq!(payload.len, 256);
        assert!(!payload.utf8);
        assert_eq!(payload.bytes().unwrap(), bytes);
    }

    #[test]
    fn preview_is_cut_and_marked() {
        let text = "a".repeat(PREVIEW_BYTES + 10);
        let payload = Payload::from_bytes(text.as_bytes());
        assert!(payload.truncated);
        assert!(payload.utf8);
        assert_eq!(payload.preview.len(), PREVIEW_BYTES);
    }

    #[test]
    fn hex_input_accepts_common_spellings() {
        let input = DataInput::Hex("0x68 69:0A".into());
        assert_eq!(input.to_bytes().unwrap(), b"hi\n");
        assert!(DataInput::Hex("abc".into()).to_bytes().is_err());
        assert!(DataInput::Hex("zz".into()).to_bytes().is_err());
    }
}
