//! Custom hooks: `use_bridge` owns the WebSocket to the bridge.

pub(crate) mod token;
mod use_bridge;

pub use use_bridge::{use_bridge, Bridge};
