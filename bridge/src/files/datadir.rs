//! The data directory (`--data-dir`): where servers log and save files and where clients send
//! files from. Every name that comes from a page is confined to it: one plain file name, no
//! separators, no `..`, no hidden files, no control characters, and links are never followed.
//!
//! Only regular files are used: a FIFO, socket or device put there under an accepted name is
//! refused, and opening one never waits (`O_NONBLOCK` until the type is checked). A file being
//! received is written as `NAME.part`, created exclusively and claimed for that one transfer:
//! a second transfer to the same name is refused while the first runs, so two streams never
//! share one file. Received files are bounded in size (`--max-file-bytes`) and refused when
//! the disk is nearly full.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use shared::{ErrorInfo, ErrorKind, FileInfo};

/// Longest file name accepted.
const MAX_NAME: usize = 128;

/// Suffix of a file still being written (or left incomplete).
pub(crate) const PART: &str = ".part";

/// Free space below which the bridge writes no more received data (the rest of the machine
/// needs the disk too).
pub(crate) const MIN_FREE_BYTES: u64 = 64 << 20;

/// The folder, created on first use.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    root: PathBuf,
    /// Largest file a transfer or an upload may write.
    pub(crate) max_file_bytes: u64,
    /// Names being received now.
    claimed: Arc<Mutex<HashSet<String>>>,
}

/// A `.part` file being written by one transfer, with its claim on the name: dropping it
/// releases the name (the file stays, as `.part`, unless [`finish`]ed).
pub(crate) struct PartFile {
    pub(crate) file: std::fs::File,
    pub(crate) path: PathBuf,
    _claim: Claim,
}

#[derive(Debug)]
struct Claim {
    claimed: Arc<Mutex<HashSet<String>>>,
    name: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claimed.lock().expect("claims lock").remove(&self.name);
    }
}

impl DataDir {
    pub(crate) fn new(root: PathBuf, max_file_bytes: u64) -> Self {
        DataDir {
            root,
            max_file_bytes,
            claimed: Arc::default(),
        }
    }

    fn ensure(&self) -> Result<(), ErrorInfo> {
        std::fs::create_dir_all(&self.root).map_err(|e| {
            ErrorInfo::new(
                ErrorKind::PermissionDenied,
                format!(
                    "The data directory {} cannot be created: {e}.",
                    self.root.display()
                ),
            )
            .with_hint("Start the bridge with --data-dir pointing at a folder you can write.")
        })
    }

    /// The folder itself (created if need be): where programs run.
    pub(crate) fn root(&self) -> Result<&Path, ErrorInfo> {
        self.ensure()?;
        Ok(&self.root)
    }

    /// Reads a small text file (a program), at most `max` bytes of it; refuses links and
    /// anything but a regular file.
    pub(crate) fn read_text(&self, name: &str, max: usize) -> Result<String, ErrorInfo> {
        use std::io::Read as _;
        let (file, len) = self.open(name)?;
        if len > max as u64 {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("'{name}' is {len} bytes long; at most {max} are shown as text."),
            ));
        }
        let mut bytes = Vec::new();
        file.take(max as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(name, &e))?;
        String::from_utf8(bytes).map_err(|_| {
            ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!("'{name}' is not text (UTF-8), so it cannot be shown or edited."),
            )
        })
    }

    /// Writes a small file whole (a program from the editor): into `name.part`, then renamed,
    /// so a reader never sees half of it.
    pub(crate) fn write_whole(&self, name: &str, bytes: &[u8]) -> Result<(), ErrorInfo> {
        use std::io::Write as _;
        let mut part = self.create_part(name, Some(bytes.len() as u64))?;
        part.file
            .write_all(bytes)
            .and_then(|()| part.file.sync_all())
            .map_err(|e| io_error(name, &e))?;
        finish(part).map_err(|e| io_error(name, &e))?;
        Ok(())
    }

    /// The path for `name`, or why that name is refused.
    pub(crate) fn path(&self, name: &str) -> Result<PathBuf, ErrorInfo> {
        check_name(name)?;
        self.ensure()?;
        Ok(self.root.join(name))
    }

    /// Opens an existing regular file for reading, refusing links and every other kind.
    pub(crate) fn open(&self, name: &str) -> Result<(std::fs::File, u64), ErrorInfo> {
        let path = self.path(name)?;
        let file = open_regular(&path, Open::Read).map_err(|e| io_error(name, &e))?;
        let len = file.metadata().map_err(|e| io_error(name, &e))?.len();
        Ok((file, len))
    }

    /// Creates `name.part` for one transfer, exclusively; [`finish`] renames it to `name`.
    /// Refused while another transfer writes `name`; a `.part` left by an earlier, broken
    /// transfer is replaced. `size`, when known, must fit the limits.
    pub(crate) fn create_part(&self, name: &str, size: Option<u64>) -> Result<PartFile, ErrorInfo> {
        let path = self.path(name)?;
        if let Some(size) = size {
            self.check_size(name, size)?;
        }
        self.check_room(name, size.unwrap_or(0))?;
        let claim = {
            let mut claimed = self.claimed.lock().expect("claims lock");
            if !claimed.insert(name.to_string()) {
                return Err(ErrorInfo::new(
                    ErrorKind::LimitReached,
                    format!(
                        "'{name}' is being received already, by another transfer: two streams \
                         never go into one file."
                    ),
                )
                .with_hint("Wait for the first transfer to end, or save to another name."));
            }
            Claim {
                claimed: self.claimed.clone(),
                name: name.to_string(),
            }
        };
        let part = part_path(&path);
        // Nobody writes it now (the claim says so): what is there is an earlier leftover.
        match std::fs::symlink_metadata(&part) {
            Ok(meta) if meta.is_dir() => {
                return Err(ErrorInfo::new(
                    ErrorKind::NotAllowed,
                    format!("'{name}{PART}' is a folder in the data directory."),
                ))
            }
            Ok(_) => std::fs::remove_file(&part).map_err(|e| io_error(name, &e))?,
            Err(_) => {}
        }
        let file = open_regular(&part, Open::CreateNew).map_err(|e| io_error(name, &e))?;
        Ok(PartFile {
            file,
            path: part,
            _claim: claim,
        })
    }

    /// Refuses a file larger than `--max-file-bytes`.
    pub(crate) fn check_size(&self, name: &str, size: u64) -> Result<(), ErrorInfo> {
        if size <= self.max_file_bytes {
            return Ok(());
        }
        Err(ErrorInfo::new(
            ErrorKind::LimitReached,
            format!(
                "'{name}' would be {size} bytes; the bridge keeps files of at most {} bytes.",
                self.max_file_bytes
            ),
        )
        .with_hint("Start the bridge with a larger --max-file-bytes to allow it."))
    }

    /// Refuses to write `more` bytes when that would leave the disk nearly full.
    pub(crate) fn check_room(&self, name: &str, more: u64) -> Result<(), ErrorInfo> {
        let Some(free) = free_bytes(&self.root) else {
            return Ok(());
        };
        if free >= more.saturating_add(MIN_FREE_BYTES) {
            return Ok(());
        }
        Err(ErrorInfo::new(
            ErrorKind::LimitReached,
            format!(
                "The disk holding the data directory has {} MiB free: too little to write \
                 '{name}' (the bridge leaves at least {} MiB).",
                free >> 20,
                MIN_FREE_BYTES >> 20
            ),
        )
        .with_hint("Free some space, or start the bridge with --data-dir on another disk."))
    }

    /// Appends to `name`, creating it, refusing links and anything but a regular file.
    pub(crate) fn append(&self, name: &str) -> Result<std::fs::File, ErrorInfo> {
        let path = self.path(name)?;
        open_regular(&path, Open::Append).map_err(|e| io_error(name, &e))
    }

    /// The regular files in the directory, by name.
    pub(crate) fn list(&self) -> Result<Vec<FileInfo>, ErrorInfo> {
        self.ensure()?;
        let entries =
            std::fs::read_dir(&self.root).map_err(|e| io_error("the data directory", &e))?;
        let mut files: Vec<FileInfo> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let meta = entry.metadata().ok()?; // does not follow links
                (meta.is_file() && check_name(&name).is_ok()).then(|| FileInfo {
                    name,
                    bytes: meta.len(),
                    modified_unix_ms: meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as u64),
                })
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}

/// Bytes an unprivileged writer may still put on the disk holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs writes only into the struct given, and `path` is NUL-terminated.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return None;
        }
        // The fields are u64 on Linux, narrower on other systems.
        #[allow(clippy::useless_conversion)]
        let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
        Some(blocks.saturating_mul(size))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// `name` with `.part` added.
pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(PART);
    PathBuf::from(part)
}

/// Renames a finished `.part` file to its real name (replacing an older file of that name);
/// the claim on the name ends with it.
pub(crate) fn finish(part: PartFile) -> std::io::Result<PathBuf> {
    let part = &part.path;
    let name = part
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(PART))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a .part file"))?;
    let done = part.with_file_name(name);
    std::fs::rename(part, &done)?;
    Ok(done)
}

/// For the fuzzer (`fuzz/`): panics if `name` is accepted but would not name a file directly
/// inside the data directory, or its `.part` would not.
#[doc(hidden)]
pub fn check_confined(name: &str) {
    if check_name(name).is_err() {
        return;
    }
    let root = Path::new("/data-dir");
    for path in [root.join(name), part_path(&root.join(name))] {
        let parts: Vec<_> = path.components().collect();
        assert_eq!(path.parent(), Some(root), "{name:?} leaves the directory");
        assert!(
            matches!(parts.last(), Some(std::path::Component::Normal(_))),
            "{name:?} is not a plain file name"
        );
        assert_eq!(parts.len(), 3, "{name:?} has more than one component");
    }
}

/// Accepts one plain file name: letters, digits, `.`, `-`, `_` and spaces; not hidden, not `..`.
pub(crate) fn check_name(name: &str) -> Result<(), ErrorInfo> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.ends_with(' ')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '));
    if ok {
        Ok(())
    } else {
        Err(ErrorInfo::new(
            ErrorKind::NotAllowed,
            format!(
                "'{}' is not a file name the bridge accepts.",
                name.escape_debug()
            ),
        )
        .with_hint(
            "Use a plain name such as received.txt: letters, digits, '.', '-', '_' and spaces, \
             no folders.",
        ))
    }
}

/// How a data-directory file is opened.
#[derive(Clone, Copy)]
enum Open {
    Read,
    Append,
    CreateNew,
}

/// Opens a regular file, never following a link and never waiting: a FIFO opened for reading
/// would wait for a writer (and for writing, for a reader), so the file is opened with
/// `O_NONBLOCK`, its type checked, and only then made blocking again.
fn open_regular(path: &Path, how: Open) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    match how {
        Open::Read => options.read(true),
        Open::Append => options.append(true).create(true),
        // Read too: a UDP receiver reads back datagrams that came early, to hash them.
        Open::CreateNew => options.read(true).write(true).create_new(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a folder, pipe, socket or device)",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns, changing only its status flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok(file)
}

fn io_error(name: &str, err: &std::io::Error) -> ErrorInfo {
    if err.raw_os_error() == Some(libc::ELOOP) {
        return ErrorInfo::new(
            ErrorKind::NotAllowed,
            format!(
                "'{name}' is a link, and the bridge never follows links out of the data directory."
            ),
        );
    }
    if err.kind() == std::io::ErrorKind::InvalidInput {
        return ErrorInfo::new(
            ErrorKind::NotAllowed,
            format!("'{name}' is not a regular file (a folder, pipe, socket or device)."),
        );
    }
    let kind = match err.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::UnknownEndpoint,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    };
    let mut info = ErrorInfo::new(kind, format!("The file '{name}' cannot be used: {err}."));
    info.os_message = Some(err.to_string());
    info.errno = err.raw_os_error();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_directory() {
        for bad in [
            "",
            "..",
            ".",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            ".hidden",
            "x\0y",
            "%2e%2e",
            "a:b",
            "line\nbreak",
            "trailing ",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["received.txt", "big file 1.bin", "log_2024-01-01.txt"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn links_are_not_followed_and_parts_finish() {
        let root = std::env::temp_dir().join(format!("sp-datadir-{}", std::process::id()));
        let dir = DataDir::new(root.clone(), 1 << 30);
        let part = dir.create_part("out.bin", None).unwrap();
        assert!(part.path.ends_with("out.bin.part"));
        assert!(
            dir.create_part("out.bin", None).is_err(),
            "one transfer at a time per name"
        );
        assert_eq!(finish(part).unwrap(), root.join("out.bin"));
        let again = dir.create_part("out.bin", None).expect("the claim ended");
        drop(again);
        let stale = dir
            .create_part("out.bin", None)
            .expect("a leftover .part is replaced");
        drop(stale);
        assert!(
            dir.create_part("big.bin", Some(2 << 30)).is_err(),
            "over the size limit"
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", root.join("link.txt")).unwrap();
            assert!(dir.open("link.txt").is_err(), "a link is refused");
            let fifo = std::ffi::CString::new(root.join("pipe.txt").to_str().unwrap()).unwrap();
            // SAFETY: mkfifo reads the NUL-terminated path only.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
            let refused = dir
                .open("pipe.txt")
                .expect_err("a FIFO is refused, at once");
            assert_eq!(refused.kind, ErrorKind::NotAllowed);
            assert!(dir.append("pipe.txt").is_err(), "and never written");
            std::fs::remove_file(root.join("pipe.txt")).unwrap();
            assert!(dir.list().unwrap().iter().all(|f| f.name != "link.txt"));
        }
        assert_eq!(dir.list().unwrap()[0].name, "out.bin");
        let _ = std::fs::remove_dir_all(root);
    }
}
