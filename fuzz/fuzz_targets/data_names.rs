//! File names from the page: whatever the bridge accepts must name a file directly inside the
//! data directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        bridge::check_confined(name);
    }
});
