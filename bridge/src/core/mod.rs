//! What runs now, and what every socket task records through: the event log, lifelines, the
//! registry of live endpoints and connections, the requests a command sends to a running
//! socket, and simulated network trouble. Nothing here knows about files, commands or the web.

pub(crate) mod control;
pub(crate) mod ctx;
pub(crate) mod event_log;
pub(crate) mod impair;
pub(crate) mod lifeline;
pub(crate) mod registry;
