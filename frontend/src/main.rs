//! Entry point of the WebAssembly build: trunk builds this binary; everything lives in the lib.

fn main() {
    frontend::start();
}
