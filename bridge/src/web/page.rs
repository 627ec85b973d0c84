//! The built page, served from inside the binary: trunk's `dist/` (with the `.gz` copies that
//! `cargo xtask` writes beside each file) is embedded when the bridge is built in release mode,
//! so the one executable is the whole playground (issue 21). Debug builds read the same folder
//! from disk on each request instead (rust-embed's behaviour), so `cargo run -p bridge` next to
//! `trunk serve` needs no rebuild of the bridge; `--dist DIR` serves another folder
//! (`server::frontend`). A bridge built before the page exists embeds nothing and says how to
//! build it.
//!
//! Caching: trunk names every file but `index.html` after a hash of its contents, so those are
//! cached for a year (`immutable`); `index.html` is checked each time (`no-cache`, with an ETag),
//! so a new bridge's page is seen at the next load.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// trunk's output, as it was when the bridge was built.
#[derive(rust_embed::Embed)]
#[folder = "$CARGO_MANIFEST_DIR/../dist"]
#[allow_missing = true]
#[include = "*.html"]
#[include = "*.js"]
#[include = "*.wasm"]
#[include = "*.css"]
#[include = "*.gz"]
struct Dist;

/// The embedded page's `index.html`, if the bridge was built with one.
pub(crate) fn index_html() -> Option<String> {
    Dist::get("index.html").map(|f| String::from_utf8_lossy(&f.data).into_owned())
}

/// Whether the bridge carries a page.
pub(crate) fn embedded() -> bool {
    Dist::get("index.html").is_some()
}

/// One file of the embedded page; any other path gets `index.html` (a single-page app: a
/// link into it still opens it). The gzipped copy goes to browsers that accept gzip.
pub(crate) async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    // No way out of the folder (debug builds read it from disk), and the gzipped copies only
    // as an encoding of their file.
    let own = !(path.contains("..") || path.contains('\\') || path.ends_with(".gz"));
    let found = own
        .then(|| Dist::get(path))
        .flatten()
        .map(|file| (path, file));
    let Some((name, file)) = found.or_else(|| Dist::get("index.html").map(|f| ("index.html", f)))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = if name == "index.html" {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    let mut response = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let gzipped = accepts_gzip(&headers)
            .then(|| Dist::get(&format!("{name}.gz")))
            .flatten();
        let mut response = match gzipped {
            Some(gz) => {
                let mut r = gz.data.into_owned().into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            None => file.data.into_owned().into_response(),
        };
        if let Ok(kind) = HeaderValue::from_str(file.metadata.mimetype()) {
            response.headers_mut().insert(header::CONTENT_TYPE, kind);
        }
        response
    };
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, etag);
    }
    response
}

/// The items of a comma-separated header, over all its lines.
fn items(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// Whether the request names this version of the file (`If-None-Match`).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    items(headers, header::IF_NONE_MATCH)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// Whether the browser takes gzip (every browser does; a script may not).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    items(headers, header::ACCEPT_ENCODING).any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn a_matching_etag_is_not_sent_again() {
        let tag = "\"abc\"";
        assert!(if_none_match(
            &headers(&[("if-none-match", "\"x\", \"abc\"")]),
            tag
        ));
        assert!(if_none_match(
            &headers(&[("if-none-match", "W/\"abc\"")]),
            tag
        ));
        assert!(!if_none_match(
            &headers(&[("if-none-match", "\"abd\"")]),
            tag
        ));
        assert!(!if_none_match(&headers(&[]), tag));
    }
}
