//! Files put into the data directory from the browser, chunk by chunk over the WebSocket: each
//! chunk goes straight to a `.part` file, so a large file is never held in memory, and the
//! file keeps its real name only once every byte has arrived.
//!
//! An upload announces its size first, and that size must fit `--max-file-bytes` and the
//! disk's free space. Chunks are written on a blocking thread (never a runtime worker), in
//! the order they arrive (the session carries out upload commands one after another), and a
//! chunk that names another `offset` than where the upload stands is refused. Uploads belong
//! to the session that started them and are dropped, as `.part`, when it ends.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use shared::{ErrorInfo, ErrorKind, MAX_UPLOAD_CHUNK};

use super::datadir::{self, DataDir, PartFile};

/// Uploads open at once.
const MAX_OPEN: usize = 8;

struct Upload {
    file: String,
    part: PartFile,
    hasher: Sha256,
    bytes: u64,
    size: u64,
}

type Shared = Arc<Mutex<Upload>>;

/// The uploads in progress.
#[derive(Default)]
pub(crate) struct Uploads {
    open: Mutex<HashMap<u64, Shared>>,
    next: AtomicU64,
}

fn unknown(id: u64) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        format!("There is no upload #{id} in progress."),
    )
}

fn failed(what: &str, err: impl std::fmt::Display) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Other, format!("{what} failed: {err}."))
        .with_hint("Check that the disk has room and the data directory is writable.")
}

/// Runs disk work on a blocking thread.
async fn on_disk<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ErrorInfo> + Send + 'static,
) -> Result<T, ErrorInfo> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(failed("The upload", e)))
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
        let part = data.create_part(file, Some(size))?;
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        open.insert(
            id,
            Arc::new(Mutex::new(Upload {
                file: file.to_string(),
                part,
                hasher: Sha256::new(),
                bytes: 0,
                size,
            })),
        );
        Ok(id)
    }

    fn get(&self, id: u64) -> Result<Shared, ErrorInfo> {
        let open = self.open.lock().expect("uploads lock");
        open.get(&id).cloned().ok_or_else(|| unknown(id))
    }

    /// Drops an upload (its file keeps the `.part` name).
    pub(crate) fn abort(&self, id: u64) {
        self.open.lock().expect("uploads lock").remove(&id);
    }

    /// Writes the next chunk; returns the bytes received so far.
    pub(crate) async fn chunk(
        &self,
        id: u64,
        offset: Option<u64>,
        base64: &str,
    ) -> Result<u64, ErrorInfo> {
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
        let upload = self.get(id)?;
        // Outer error: the upload cannot go on and is dropped; inner: only this chunk is refused.
        let written = on_disk(move || {
            let mut upload = upload.lock().expect("upload lock");
            if let Some(offset) = offset.filter(|o| *o != upload.bytes) {
                return Ok(Err(ErrorInfo::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "A chunk for offset {offset} arrived, but the upload stands at {}: \
                         chunks must come in order.",
                        upload.bytes
                    ),
                )
                .with_hint("Send each chunk after the reply to the one before.")));
            }
            if upload.bytes + bytes.len() as u64 > upload.size {
                return Err(ErrorInfo::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "More bytes arrived than the {} announced; the upload was dropped.",
                        upload.size
                    ),
                ));
            }
            let upload = &mut *upload;
            (&upload.part.file)
                .write_all(&bytes)
                .map_err(|e| failed(&format!("Writing '{}'", upload.file), e))?;
            upload.hasher.update(&bytes);
            upload.bytes += bytes.len() as u64;
            Ok(Ok(upload.bytes))
        })
        .await;
        match written {
            Ok(refused_or_done) => refused_or_done,
            Err(error) => {
                self.abort(id);
                Err(error)
            }
        }
    }

    /// Keeps the file if it is complete; returns its size and SHA-256.
    pub(crate) async fn finish(&self, id: u64) -> Result<(u64, String), ErrorInfo> {
        let upload = self
            .open
            .lock()
            .expect("uploads lock")
            .remove(&id)
            .ok_or_else(|| unknown(id))?;
        on_disk(move || {
            let upload = Arc::into_inner(upload)
                .ok_or_else(|| failed("The upload", "a chunk is still being written"))?
                .into_inner()
                .expect("upload lock");
            if upload.bytes != upload.size {
                return Err(ErrorInfo::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "Only {} of {} bytes arrived; '{}' keeps its .part name.",
                        upload.bytes, upload.size, upload.file
                    ),
                ));
            }
            let file = upload.file.clone();
            upload
                .part
                .file
                .sync_all()
                .and_then(|()| datadir::finish(upload.part).map(drop))
                .map_err(|e| failed(&format!("Keeping '{file}'"), e))?;
            Ok((upload.bytes, hex::encode(upload.hasher.finalize())))
        })
        .await
    }
}
