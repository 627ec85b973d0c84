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
    for (_, data) in inputs("protocol") {
        if let Ok(text) = std::str::from_utf8(&data) {
            shared::check_protocol(text);
        }
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
