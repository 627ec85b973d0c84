//! Replays every input kept in `fuzz/regressions/` through what its fuzz target checks, so an
//! input that once crashed (or that was worth keeping) stays fixed. New crashes found by
//! `cargo xtask fuzz` are copied there from `fuzz/artifacts/`.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no inputs in {}", dir.display());
    found
}

#[test]
fn protocol_inputs_read_or_fail_without_panicking() {
    for (name, data) in inputs("protocol") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(message) = serde_json::from_str::<shared::ClientMessage>(text) {
            let again = serde_json::to_string(&message).unwrap();
            let back: shared::ClientMessage = serde_json::from_str(&again).unwrap();
            assert_eq!(back, message, "{name}");
        }
        let _ = serde_json::from_str::<shared::ServerMessage>(text);
        let _ = serde_json::from_str::<shared::Event>(text);
        let _ = serde_json::from_str::<shared::Recording>(text);
    }
}

#[test]
fn data_names_stay_confined() {
    for (_, data) in inputs("data_names") {
        if let Ok(name) = std::str::from_utf8(&data) {
            bridge::check_confined(name);
        }
    }
}
