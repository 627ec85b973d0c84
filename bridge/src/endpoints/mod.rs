//! The four kinds of endpoint the bridge runs on real OS sockets, one file each, and the checks
//! every spec passes before a socket is made.

mod chat;
pub(crate) mod tcp_client;
pub(crate) mod tcp_server;
pub(crate) mod tcp_state;
mod tcp_stream;
pub(crate) mod udp_client;
pub(crate) mod udp_server;

use shared::{ErrorInfo, ErrorKind, MAX_RECV_BUFFER};

use crate::hub::Hub;

/// Longest connect() timeout and UDP reply wait a spec may ask for.
pub(crate) const MAX_WAIT_MS: u64 = 120_000;

fn invalid(explanation: String) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::InvalidRequest, explanation)
}

/// A recv() buffer must hold at least one byte and stay within the bridge's limit.
pub(crate) fn check_recv_buffer(size: usize) -> Result<(), ErrorInfo> {
    if (1..=MAX_RECV_BUFFER).contains(&size) {
        Ok(())
    } else {
        Err(invalid(format!(
            "A recv() buffer of {size} bytes is not possible here: pick 1 to {MAX_RECV_BUFFER}."
        )))
    }
}

pub(crate) fn check_wait(name: &str, ms: u64) -> Result<(), ErrorInfo> {
    if (1..=MAX_WAIT_MS).contains(&ms) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{name} must be between 1 and {MAX_WAIT_MS} milliseconds, not {ms}."
        )))
    }
}

/// Servers stay off the ports below 1024 unless the bridge was started with
/// `--allow-privileged-ports`: they belong to system services (and a bridge running as root
/// could otherwise take them over).
pub(crate) fn check_server_port(hub: &Hub, port: u16) -> Result<(), ErrorInfo> {
    if port == 0 || port >= 1024 || hub.config.allow_privileged_ports {
        return Ok(());
    }
    Err(ErrorInfo::new(
        ErrorKind::NotAllowed,
        format!(
            "Port {port} is below 1024: those ports are reserved for system services and need \
             administrator rights."
        ),
    )
    .with_hint("Pick a port above 1024, such as 12000."))
}

/// File names in a spec must be acceptable before any socket is made.
pub(crate) fn check_files(
    behaviour: &shared::Behaviour,
    log_file: Option<&str>,
) -> Result<(), ErrorInfo> {
    if let shared::Behaviour::SaveToFile { file } = behaviour {
        crate::files::datadir::check_name(file)?;
    }
    log_file.map_or(Ok(()), crate::files::datadir::check_name)
}

/// A client needs to know where its server is.
pub(crate) fn check_client_port(port: u16) -> Result<(), ErrorInfo> {
    if port == 0 {
        return Err(invalid(
            "Port 0 means 'any free port' when binding; a client needs the server's real port."
                .into(),
        ));
    }
    Ok(())
}
