//! The Python shim on disk: `sitecustomize.py` (embedded in the binary) written once into a
//! new directory of this process's own (mode 0700, so no other user can put code on the
//! program's path), put first on the program's PYTHONPATH, and removed when the bridge (or
//! `bridge trace`) exits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use shared::{ErrorInfo, ErrorKind};

/// The shim's source.
pub(crate) const SITECUSTOMIZE: &str = include_str!("shim/sitecustomize.py");

/// The directory, made at first use. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Shim {
    dir: Arc<Mutex<Option<ShimDir>>>,
}

/// Removes the directory when the last clone goes.
struct ShimDir(PathBuf);

impl Drop for ShimDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Shim {
    /// The directory to put first on PYTHONPATH.
    pub(crate) fn dir(&self) -> Result<PathBuf, ErrorInfo> {
        let mut dir = self.dir.lock().expect("shim lock");
        if let Some(dir) = &*dir {
            return Ok(dir.0.clone());
        }
        let made = write().map_err(|e| {
            ErrorInfo::new(
                ErrorKind::Other,
                format!("The tracer for Python could not be written to a temporary folder: {e}."),
            )
        })?;
        let path = made.0.clone();
        *dir = Some(made);
        Ok(path)
    }
}

fn write() -> std::io::Result<ShimDir> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let path = std::env::temp_dir().join(format!(
        "socket-playground-shim-{}-{}",
        std::process::id(),
        hex::encode(random)
    ));
    // `create` fails if the path exists: the directory is new, and this process's.
    crate::security::create_private_dir(&path)?;
    let dir = ShimDir(path);
    std::fs::write(dir.0.join("sitecustomize.py"), SITECUSTOMIZE)?;
    Ok(dir)
}
