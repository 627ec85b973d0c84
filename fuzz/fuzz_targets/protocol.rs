//! Every message the bridge or the page reads from the other, from arbitrary bytes: reading
//! may fail, but never panic, and what reads back writes out and reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = serde_json::from_str::<shared::ClientMessage>(text) {
        let again = serde_json::to_string(&message).expect("a read message writes");
        let back: shared::ClientMessage = serde_json::from_str(&again).expect("and reads back");
        assert_eq!(back, message);
    }
    if let Ok(message) = serde_json::from_str::<shared::ServerMessage>(text) {
        let again = serde_json::to_string(&message).expect("a read message writes");
        let _: shared::ServerMessage = serde_json::from_str(&again).expect("and reads back");
    }
    let _ = serde_json::from_str::<shared::Event>(text);
    let _ = serde_json::from_str::<shared::Recording>(text);
});
