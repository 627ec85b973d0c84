//! Every message the bridge or the page reads from the other, from arbitrary bytes: reading
//! may fail, but never panic, and what reads back writes out and reads back the same
//! (`shared::check_protocol`, also run on the kept inputs by every test run).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        shared::check_protocol(text);
    }
});
