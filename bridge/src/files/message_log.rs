//! The log a server keeps of what it receives (`log_file`): one line per message, with the
//! time and the sender, written through at once.

use std::io::Write as _;

use shared::{ErrorInfo, EventKind};

use super::datadir::DataDir;
use super::disk_error;
use crate::core::ctx::Ctx;

/// The log a server keeps of what it receives: one line per message, written through at once
/// so that a crash loses nothing already shown.
pub(crate) struct MessageLog {
    file: std::fs::File,
    name: String,
}

impl MessageLog {
    /// The log a server spec asks for, if any; a file that cannot be opened is reported as an
    /// error event and the server runs without its log.
    pub(crate) fn for_spec(ctx: &Ctx, data: &DataDir, name: Option<&str>) -> Option<MessageLog> {
        match MessageLog::open(data, name?) {
            Ok(log) => Some(log),
            Err(error) => {
                ctx.emit(EventKind::Error {
                    op: "log".into(),
                    error,
                });
                None
            }
        }
    }

    pub(crate) fn open(data: &DataDir, name: &str) -> Result<MessageLog, ErrorInfo> {
        Ok(MessageLog {
            file: data.append(name)?,
            name: name.to_string(),
        })
    }

    /// Appends `2026-11-22T00:19:01.123Z 127.0.0.1:50770 hello` (control characters escaped).
    pub(crate) fn write(&mut self, ctx: &Ctx, peer: &str, data: &[u8]) {
        let text: String = String::from_utf8_lossy(data)
            .trim_end_matches(['\r', '\n'])
            .escape_debug()
            .collect();
        let line = format!("{} {peer} {text}\n", utc_now());
        if let Err(err) = self.file.write_all(line.as_bytes()) {
            let error = disk_error(&self.name, &err);
            ctx.emit(EventKind::Error {
                op: "log".into(),
                error,
            });
        }
    }
}

/// The time now as `2026-11-22T00:19:01.123Z`.
fn utc_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
    }
}
