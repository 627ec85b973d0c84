//! Socket Playground frontend: a yew app that talks to the bridge over one WebSocket and shows
//! every socket call as it happens.
//!
//! Laid out like yew's `function_todomvc`: `state.rs` holds the state, its `Action`s and the
//! reducer (plain Rust, tested natively); `hooks/` owns the WebSocket and the replay player;
//! `components/` are leaf views that get data and callbacks and never change state
//! themselves; `app.rs` holds the state and lays the page out; `format.rs` and `labs.rs` are
//! pure helpers, `token.rs` reads the session token from the URL.

pub mod format;
pub mod labs;
pub mod state;
pub mod vec_map;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod hooks;
#[cfg(target_arch = "wasm32")]
mod token;

/// Mounts the app on the page's body.
#[cfg(target_arch = "wasm32")]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}

/// The app only runs in a browser; natively this crate is built for its unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub fn start() {
    eprintln!("the Socket Playground frontend runs in a browser: build it with trunk");
}
