//! The data directory (`--data-dir`): where servers log and save files and where clients send
//! files from. Every name that comes from a page is confined to it: one plain file name, no
//! separators, no `..`, no hidden files, no control characters, and links are never followed.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use shared::{ErrorInfo, ErrorKind, FileInfo};

/// Longest file name accepted.
const MAX_NAME: usize = 128;

/// Suffix of a file still being written (or left incomplete).
pub(crate) const PART: &str = ".part";

/// The folder, created on first use.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub(crate) fn new(root: PathBuf) -> Self {
        DataDir { root }
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

    /// The path for `name`, or why that name is refused.
    pub(crate) fn path(&self, name: &str) -> Result<PathBuf, ErrorInfo> {
        check_name(name)?;
        self.ensure()?;
        Ok(self.root.join(name))
    }

    /// Opens an existing file for reading, refusing links.
    pub(crate) fn open(&self, name: &str) -> Result<(std::fs::File, u64), ErrorInfo> {
        let path = self.path(name)?;
        let file = open_no_follow(&path, false).map_err(|e| io_error(name, &e))?;
        let meta = file.metadata().map_err(|e| io_error(name, &e))?;
        if !meta.is_file() {
            return Err(ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!("'{name}' is not a regular file."),
            ));
        }
        Ok((file, meta.len()))
    }

    /// Creates (truncating) `name.part` for writing; [`finish`] renames it to `name`.
    pub(crate) fn create_part(&self, name: &str) -> Result<(std::fs::File, PathBuf), ErrorInfo> {
        let path = self.path(name)?;
        let part = part_path(&path);
        let file = open_no_follow(&part, true).map_err(|e| io_error(name, &e))?;
        Ok((file, part))
    }

    /// Appends to `name`, creating it, refusing links.
    pub(crate) fn append(&self, name: &str) -> Result<std::fs::File, ErrorInfo> {
        let path = self.path(name)?;
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        no_follow(&mut options);
        options.open(&path).map_err(|e| io_error(name, &e))
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

/// `name` with `.part` added.
pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(PART);
    PathBuf::from(part)
}

/// Renames a finished `.part` file to its real name.
pub(crate) fn finish(part: &Path) -> std::io::Result<PathBuf> {
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

fn open_no_follow(path: &Path, write: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    if write {
        options.write(true).create(true).truncate(true);
    } else {
        options.read(true);
    }
    no_follow(&mut options);
    options.open(path)
}

fn no_follow(options: &mut std::fs::OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
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
        let dir = DataDir::new(root.clone());
        let (file, part) = dir.create_part("out.bin").unwrap();
        drop(file);
        assert!(part.ends_with("out.bin.part"));
        assert_eq!(finish(&part).unwrap(), root.join("out.bin"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/hostname", root.join("link.txt")).unwrap();
            assert!(dir.open("link.txt").is_err(), "a link is refused");
            assert!(dir.list().unwrap().iter().all(|f| f.name != "link.txt"));
        }
        assert_eq!(dir.list().unwrap()[0].name, "out.bin");
        let _ = std::fs::remove_dir_all(root);
    }
}
