//! Socket Playground's benchmarks and load, kept out of the product crate: the chat load
//! generator (`src/bin/chat_load.rs`), the benchmarks that compare the bridge with its anchors
//! (`tests/*_bench.rs`, run by `cargo xtask bench`; their `smoke_*` versions run in every
//! `cargo xtask test`) and the soak test (`tests/soak.rs`, `cargo xtask soak`). The tests share
//! the bridge's own test harness (`bridge/tests/common`).
