//! Entry point of the WebAssembly build: trunk builds this binary; everything lives in the lib.

/// Talc instead of the default dlmalloc: a smaller allocator in the page's wasm (the page's
/// size budget, docs/benchmarks.md), and a faster one.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

fn main() {
    frontend::start();
}
