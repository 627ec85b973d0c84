//! The session token: taken from the URL fragment the bridge printed (`#token=…`), kept in this
//! tab's sessionStorage so a reload still works, and removed from the address bar so it is not
//! shown on a projector or copied along with the URL.

use wasm_bindgen::JsValue;

const KEY: &str = "socket-playground-token";

/// The token for this tab, if it has one.
pub(crate) fn load() -> Option<String> {
    let window = web_sys::window()?;
    let location = window.location();
    let storage = window.session_storage().ok().flatten();
    let hash = location.hash().unwrap_or_default();
    if let Some(token) = hash.strip_prefix("#token=").filter(|t| !t.is_empty()) {
        if let Some(storage) = &storage {
            let _ = storage.set_item(KEY, token);
        }
        let clean = format!(
            "{}{}",
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default()
        );
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&clean));
        }
        return Some(token.to_string());
    }
    storage?.get_item(KEY).ok().flatten()
}

/// A new Fernet key from the browser's random source: 32 bytes, URL-safe base64, as Python's
/// `Fernet.generate_key()` makes them.
pub(crate) fn random_fernet_key() -> Option<String> {
    let mut bytes = [0u8; 32];
    web_sys::window()?
        .crypto()
        .ok()?
        .get_random_values_with_u8_array(&mut bytes)
        .ok()?;
    Some(base64(&bytes)?.replace('+', "-").replace('/', "_"))
}

/// Standard base64 (with padding) by the browser's own `btoa`, which reads a string of
/// characters U+0000 to U+00FF as bytes: the page then carries no base64 encoder of its own.
pub(crate) fn base64(bytes: &[u8]) -> Option<String> {
    let latin1: String = bytes.iter().map(|&b| char::from(b)).collect();
    web_sys::window()?.btoa(&latin1).ok()
}
