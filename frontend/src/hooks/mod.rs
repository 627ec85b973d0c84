//! Custom hooks: `use_bridge` owns the WebSocket to the bridge (with `files`, its commands
//! for the data directory); `use_replay` plays a recording back step by step.

mod files;
mod use_bridge;
mod use_replay;

pub use use_bridge::{use_bridge, Bridge};
pub use use_replay::use_replay;
