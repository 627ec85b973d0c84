//! Custom hooks: `use_bridge` owns the WebSocket to the bridge (with `files`, its commands
//! for the data directory, and `programs`, for the person's own programs); `use_replay` plays a recording back step by step;
//! `use_slow_motion` turns lecture mode's slow motion on and off.

mod files;
mod programs;
mod use_bridge;
mod use_replay;
mod use_slow_motion;

pub use use_bridge::{use_bridge, Bridge};
pub use use_replay::use_replay;
pub use use_slow_motion::{use_slow_motion, SlowMotion};
