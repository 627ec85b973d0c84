//! The runtime file: how `bridge trace` finds the running bridge and its token, as Jupyter's
//! clients find its server (`jpserver-PID.json` in its runtime directory). The bridge writes
//! `bridge-PID.json` at start into a directory only its user can enter, readable only by that
//! user, and removes it at exit; a file whose bridge is gone (killed) is ignored and removed.
//!
//! The directory is `$XDG_RUNTIME_DIR/socket-playground` where the system provides one (it is
//! the user's own, and emptied at logout), else `~/.local/share/socket-playground/runtime`;
//! on Windows `%LOCALAPPDATA%\socket-playground\runtime`, inside the user's profile, which
//! Windows keeps to its user.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The page's URL, without the token.
    pub url: String,
    /// The token every session presents.
    pub token: String,
    /// The bridge's process id.
    pub pid: u32,
    /// Its data directory, absolute.
    pub data_dir: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
}

/// The directory the runtime files are in.
#[cfg(windows)]
pub fn runtime_dir() -> Option<PathBuf> {
    let local = std::env::var_os("LOCALAPPDATA").filter(|d| !d.is_empty())?;
    Some(
        PathBuf::from(local)
            .join("socket-playground")
            .join("runtime"),
    )
}

/// The directory the runtime files are in.
#[cfg(not(windows))]
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("socket-playground"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".local/share/socket-playground/runtime"))
}

/// Creates the directory (0700) or checks that the existing one is this user's and closed to
/// everyone else: a file with the token must not land where others can read it.
#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.permissions().mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to another user or is open to others",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Creates the directory, inside the user's profile (whose access list is the user's).
#[cfg(not(unix))]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// The file, removed when dropped (the bridge's normal exit).
pub struct RuntimeFile {
    path: PathBuf,
}

impl Drop for RuntimeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl RuntimeFile {
    /// Writes `info` for this process.
    pub fn write(info: &RuntimeInfo) -> std::io::Result<RuntimeFile> {
        let dir = runtime_dir().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "neither XDG_RUNTIME_DIR nor HOME is set",
            )
        })?;
        private_dir(&dir)?;
        let path = dir.join(format!("bridge-{}.json", info.pid));
        let _ = std::fs::remove_file(&path);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        file.write_all(&serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?)?;
        Ok(RuntimeFile { path })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether process `pid` is alive.
#[cfg(windows)]
fn alive(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: opens a handle only to query it, and closes it; `code` is a local.
    unsafe {
        let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if process.is_null() {
            return false;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(process, &mut code);
        CloseHandle(process);
        ok != 0 && code == STILL_ACTIVE as u32
    }
}

/// Whether process `pid` is alive.
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The bridges running now, newest first; files of bridges that are gone are removed.
pub fn running() -> Vec<RuntimeInfo> {
    let Some(dir) = runtime_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<RuntimeInfo> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("bridge-") && name.ends_with(".json")
        })
        .filter_map(|e| {
            let info: RuntimeInfo = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            if alive(info.pid) {
                Some(info)
            } else {
                let _ = std::fs::remove_file(e.path());
                None
            }
        })
        .collect();
    found.sort_by_key(|info| std::cmp::Reverse(info.started_unix_ms));
    found
}
