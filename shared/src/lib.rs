//! The Socket Playground wire protocol, shared by the native bridge and the WASM frontend.
//!
//! Everything here is plain serde data so that both sides agree on the JSON by construction;
//! what the page reads is read by [`json`], one reader per type for both sides.
//! Messages are grouped by flow and named by direction:
//! - [`ClientMessage`]: browser (or any WebSocket client) to bridge: a [`Hello`] first, then
//!   [`Request`]s that each carry an id and get exactly one [`Reply`].
//! - [`ServerMessage`]: bridge to browser: the [`Welcome`] with a snapshot, replies, batches of
//!   [`Event`]s and "missed N events" markers.
//!
//! `docs/protocol.md` shows a real example of every message.

pub(crate) mod commands;
mod compare;
mod errors;
mod event_wire;
mod events;
pub mod json;
pub mod json_out;
mod message_wire;
mod messages;
mod packets;
mod payload;
mod programs;
mod recording;
mod spec_wire;
mod specs;

pub use commands::*;
pub use compare::*;
pub use errors::*;
pub use events::*;
pub use messages::*;
pub use packets::*;
pub use payload::*;
pub use programs::*;
pub use recording::*;
pub use specs::*;

/// For the fuzzer (`fuzz/`) and its kept inputs: the page's JSON reader agrees with
/// serde_json, and `text` is read as every message either side reads. Reading may fail, never panic; a client message that reads writes back and reads
/// back the same (panics otherwise).
#[doc(hidden)]
pub fn check_protocol(text: &str) {
    json::check_against_serde_json(text);
    if let Ok(message) = serde_json::from_str::<ClientMessage>(text) {
        let again = serde_json::to_string(&message).expect("a read message writes");
        let back: ClientMessage = serde_json::from_str(&again).expect("and reads back");
        assert_eq!(back, message);
    }
    if let Ok(message) = serde_json::from_str::<ServerMessage>(text) {
        let again = serde_json::to_string(&message).expect("a read message writes");
        let _: ServerMessage = serde_json::from_str(&again).expect("and reads back");
    }
    let _ = serde_json::from_str::<Event>(text);
    let _ = serde_json::from_str::<Recording>(text);
}

/// `units` of 10^-`places` as a decimal number without trailing zeros: `decimal(250, 3)` is
/// `0.25`, `decimal(200, 2)` is `2`. Integer arithmetic, so that the page carries no
/// float-formatting code.
pub fn decimal(units: u64, places: u32) -> String {
    let scale = 10u64.pow(places);
    let fraction = format!("{:0width$}", units % scale, width = places as usize);
    match fraction.trim_end_matches('0') {
        "" => (units / scale).to_string(),
        fraction => format!("{}.{fraction}", units / scale),
    }
}

/// Version of this protocol. The bridge refuses a [`Hello`] that names another one, so an old
/// page never misreads a newer bridge.
pub const PROTOCOL_VERSION: u32 = 1;

/// Path of the WebSocket endpoint on the bridge.
pub const WS_PATH: &str = "/ws";

/// Close codes the bridge uses when it ends a WebSocket session, beside the standard ones
/// (1001 going away on shutdown, 1009 message too big).
pub mod close_code {
    /// The first message was not a hello with the right token.
    pub const UNAUTHORIZED: u16 = 4401;
    /// No hello arrived in time.
    pub const HELLO_TIMEOUT: u16 = 4408;
    /// The hello named a protocol version this bridge does not speak.
    pub const VERSION_MISMATCH: u16 = 4426;
    /// The bridge has too many sessions open already.
    pub const TOO_MANY_SESSIONS: u16 = 4429;
}
