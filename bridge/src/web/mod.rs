//! The HTTP and WebSocket edge: routes and their guards (`server`), the page inside the binary
//! (`page`), room for peers that have
//! not shown the token yet (`admission`), one session per WebSocket (`session`), and what each
//! viewer is sent, through a queue of its own (`viewer`).

pub(crate) mod admission;
mod page;
pub(crate) mod server;
mod session;
mod viewer;
