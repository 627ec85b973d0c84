//! Files put into the data directory from the browser, chunk by chunk over the WebSocket: each
//! chunk goes straight to a `.part` file, so a large file is never held in memory, and the
//! file keeps its real name only once every byte has arrived.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use shared::{ErrorInfo, ErrorKind, MAX_UPLOAD_CHUNK};

use crate::datadir::{self, DataDir};

/// Uploads open at once.
const MAX_OPEN: usize = 8;

struct Upload {
    file: String,
    part: PathBuf,
    out: std::fs::File,
    hasher: Sha256,
    bytes: u64,
    size: u64,
}

/// The uploads in progress.
#[derive(Default)]
pub(crate) struct Uploads {
    open: Mutex<HashMap<u64, Upload>>,
    next: Mutex<u64>,
}

fn unknown(id: u64) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        format!("There is no upload #{id} in progress."),
    )
}

impl Uploads {
    pub(crate) fn start(&self, data: &DataDir, file: &str, size: u64) -> Result<u64, ErrorInfo> {
        let mut open = self.open.lock().expect("uploads lock");
        if open.len() >= MAX_OPEN {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("{MAX_OPEN} uploads are already in progress."),
            ));
        }
        let (out, part) = data.create_part(file)?;
        let mut next = self.next.lock().expect("uploads lock");
        *next += 1;
        open.insert(
            *next,
            Upload {
                file: file.to_string(),
                part,
                out,
                hasher: Sha256::new(),
                bytes: 0,
                size,
            },
        );
        Ok(*next)
    }

    pub(crate) fn chunk(&self, id: u64, base64: &str) -> Result<u64, ErrorInfo> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .map_err(|_| {
                ErrorInfo::new(ErrorKind::InvalidRequest, "The chunk is not valid base64.")
            })?;
        if bytes.len() > MAX_UPLOAD_CHUNK {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("A chunk may hold at most {MAX_UPLOAD_CHUNK} bytes."),
            ));
        }
        let mut open = self.open.lock().expect("uploads lock");
        let upload = open.get_mut(&id).ok_or_else(|| unknown(id))?;
        if upload.bytes + bytes.len() as u64 > upload.size {
            let upload = open.remove(&id).expect("just found");
            return Err(ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!(
                    "More bytes arrived than the {} announced; the upload was dropped.",
                    upload.size
                ),
            ));
        }
        upload.out.write_all(&bytes).map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Other,
                format!("Writing '{}' failed: {e}.", upload.file),
            )
        })?;
        upload.hasher.update(&bytes);
        upload.bytes += bytes.len() as u64;
        Ok(upload.bytes)
    }

    /// Keeps the file if it is complete; returns its size and SHA-256.
    pub(crate) fn finish(&self, id: u64) -> Result<(u64, String), ErrorInfo> {
        let upload = self
            .open
            .lock()
            .expect("uploads lock")
            .remove(&id)
            .ok_or_else(|| unknown(id))?;
        if upload.bytes != upload.size {
            return Err(ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!(
                    "Only {} of {} bytes arrived; '{}' keeps its .part name.",
                    upload.bytes, upload.size, upload.file
                ),
            ));
        }
        upload
            .out
            .sync_all()
            .and_then(|()| datadir::finish(&upload.part))
            .map_err(|e| {
                ErrorInfo::new(
                    ErrorKind::Other,
                    format!("Keeping '{}' failed: {e}.", upload.file),
                )
            })?;
        Ok((upload.bytes, hex::encode(upload.hasher.finalize())))
    }
}
