//! Builds the frontend for release with trunk, offline (every tool it needs is installed by
//! `tools`), gzips the files next to the originals (zopfli) (the bridge serves those to browsers that
//! accept gzip), and checks the size budget.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{self, root};

/// Most bytes the page's wasm and JavaScript may take, gzipped: 200 KB, as issues 3 and 17
/// ask (docs/benchmarks.md, "Page size"; it was 225 and 226 KB while issues 16 to 20 added
/// views, until the page's own `std` ([`SMALL_STD`]) made room). Counted in thousands, the
/// stricter reading.
pub(crate) const BUDGET_GZIP_BYTES: u64 = 200 * 1000;

/// How the page's standard library is built: from source, for size, with a panic that stops
/// at once (no message, no formatting machinery, no file and line of each panic). Rust's
/// prebuilt `std` for wasm32 carries all of that: about 20 KB of the page gzipped, 10% of the
/// budget (docs/benchmarks.md, "Page size"). `-Zbuild-std` and `-Cpanic=immediate-abort` are
/// unstable; `RUSTC_BOOTSTRAP` lets the pinned stable toolchain use them, for this one build
/// only (the bridge, the tests and `trunk serve` use the ordinary std). A panic in the page
/// still stops it, as before: the browser's console says "unreachable" instead of the message.
const SMALL_STD: [(&str, &str); 4] = [
    ("RUSTC_BOOTSTRAP", "1"),
    ("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort"),
    ("CARGO_UNSTABLE_BUILD_STD_FEATURES", "optimize_for_size"),
    (
        "RUSTFLAGS",
        "-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none",
    ),
];

/// Where trunk puts the built page.
pub(crate) fn dist() -> PathBuf {
    root().join("dist")
}

/// `trunk build --release --offline`, then gzip and the size check. Returns the gzipped size
/// of wasm + JS.
pub(crate) fn build() -> Result<u64, String> {
    let wasm_opt_dir = tools::ensure_build()?;
    eprintln!("$ trunk build --release --offline");
    let mut trunk = Command::new("trunk");
    trunk
        .args(["build", "--release", "--offline"])
        .current_dir(root())
        .env("PATH", tools::path_with(&wasm_opt_dir))
        .env_remove("NO_COLOR")
        .envs(SMALL_STD);
    let status = trunk
        .status()
        .map_err(|e| format!("cannot start trunk: {e}"))?;
    if !status.success() {
        return Err(format!("trunk build failed ({status})"));
    }
    minify_glue(&wasm_opt_dir)?;
    let mut shipped = 0;
    for entry in std::fs::read_dir(dist()).map_err(|e| format!("cannot read dist/: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "wasm" | "js" | "css" | "html") {
            continue;
        }
        let size = gzip(&path)?;
        if matches!(ext, "wasm" | "js") {
            shipped += size;
        }
    }
    eprintln!(
        "xtask: frontend built: wasm + JS are {:.1} KB gzipped ({shipped} bytes; budget {} KB)",
        shipped as f64 / 1000.0,
        BUDGET_GZIP_BYTES / 1000
    );
    if shipped > BUDGET_GZIP_BYTES {
        return Err(format!(
            "the page's wasm + JS are {shipped} bytes gzipped, over the {BUDGET_GZIP_BYTES}-byte budget"
        ));
    }
    Ok(shipped)
}

/// Minifies the JavaScript glue with terser, in place, and gives `index.html` the new file's
/// subresource-integrity hash (trunk wrote the old one): trunk's own minifier gives up on
/// wasm-bindgen's output, and the glue is part of the size budget (45 KB as written, 20 KB
/// minified; 7.8 and 6.0 KB gzipped).
fn minify_glue(tools_bin: &Path) -> Result<(), String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let index = dist().join("index.html");
    let mut html =
        std::fs::read_to_string(&index).map_err(|e| format!("no dist/index.html: {e}"))?;
    for entry in std::fs::read_dir(dist()).map_err(|e| format!("cannot read dist/: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("js") {
            continue;
        }
        let hash = |bytes: &[u8]| {
            let digest = sha2::Sha384::digest(bytes);
            format!(
                "sha384-{}",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        let before = std::fs::read(&path).map_err(|e| e.to_string())?;
        let status = Command::new(tools_bin.join("terser"))
            .arg(&path)
            .args(["--module", "--compress", "--mangle", "-o"])
            .arg(&path)
            .status()
            .map_err(|e| format!("cannot run terser: {e}"))?;
        if !status.success() {
            return Err(format!("terser {} failed ({status})", path.display()));
        }
        let after = std::fs::read(&path).map_err(|e| e.to_string())?;
        let (old, new) = (hash(&before), hash(&after));
        if !html.contains(&old) {
            return Err(format!(
                "dist/index.html has no integrity {old} for {}",
                path.display()
            ));
        }
        html = html.replace(&old, &new);
    }
    std::fs::write(&index, html).map_err(|e| format!("cannot write dist/index.html: {e}"))
}

/// Writes `file.gz` beside `file` and returns its size. zopfli, not `gzip -9`: its output is
/// ordinary gzip (any browser inflates it) and 4-5% smaller, for the price of a second or two.
fn gzip(path: &Path) -> Result<u64, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut packed = Vec::with_capacity(data.len() / 2);
    zopfli::compress(
        zopfli::Options::default(),
        zopfli::Format::Gzip,
        &data[..],
        &mut packed,
    )
    .map_err(|e| format!("cannot gzip {}: {e}", path.display()))?;
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = PathBuf::from(gz);
    std::fs::write(&gz, &packed).map_err(|e| format!("cannot write {}: {e}", gz.display()))?;
    Ok(packed.len() as u64)
}
