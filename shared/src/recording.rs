//! A recorded session: the events a page saw, saved as one JSON file so that a lecturer can
//! prepare a session once and replay it in class, without a bridge.

use serde::Serialize;

use crate::Event;

/// The `format` field of every recording.
pub const RECORDING_FORMAT: &str = "socket-playground-session";

/// What the page exports and replays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recording {
    /// Always [`RECORDING_FORMAT`]: tells a recording from any other JSON file.
    pub format: String,
    /// The protocol version of the events.
    pub protocol: u32,
    /// When the bridge's clock (`t_us`) was 0, in Unix milliseconds.
    pub started_unix_ms: u64,
    /// The events, oldest first.
    pub events: Vec<Event>,
}

impl Recording {
    pub fn new(started_unix_ms: u64, events: Vec<Event>) -> Self {
        Recording {
            format: RECORDING_FORMAT.to_string(),
            protocol: crate::PROTOCOL_VERSION,
            started_unix_ms,
            events,
        }
    }

    /// Reads a recording, saying plainly what is wrong with a file that is not one.
    pub fn parse(text: &str) -> Result<Recording, String> {
        let recording: Recording = crate::json::from_str(text)
            .map_err(|e| format!("this is not a Socket Playground recording ({e})"))?;
        if recording.format != RECORDING_FORMAT {
            return Err("this is not a Socket Playground recording".into());
        }
        Ok(recording)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn round_trip_and_refusal() {
        let event = Event {
            seq: 1,
            t_us: 5,
            endpoint: 1,
            conn: None,
            local: Some("127.0.0.1:1".into()),
            peer: None,
            at: None,
            kind: EventKind::Bind,
        };
        let recording = Recording::new(42, vec![event]);
        let text = serde_json::to_string(&recording).unwrap();
        assert_eq!(Recording::parse(&text).unwrap(), recording);
        assert!(Recording::parse("{}").is_err());
        assert!(Recording::parse(&text.replace(RECORDING_FORMAT, "other")).is_err());
    }
}
