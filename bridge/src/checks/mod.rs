//! Check my lab: the playground tests a student's program against the handout. A check is a
//! lab's scenario (`scenario`), kept in a TOML file a lecturer can read, copy and change; the
//! built-in ones, one per seed task, are embedded from `builtin/`; a course's own sit in a
//! folder given with `--course`. `run` plays a scenario against the program with real sockets
//! and judges each step; `report` turns the verdicts into the terminal's table and a
//! Gradescope `results.json`; `check_cmd` is `bridge check`, which can also start the
//! student's program itself, and check a class's submissions several at once, each in a
//! network namespace of its own (`netns`).

pub mod check_cmd;
pub mod netns;
pub(crate) mod page;
pub mod report;
pub mod run;
pub mod scenario;

use scenario::Check;

/// The built-in checks: (name, scenario text).
const BUILTIN: &[(&str, &str)] = &[
    (
        "kurose-uppercase-server",
        include_str!("builtin/kurose-uppercase-server.toml"),
    ),
    (
        "kurose-uppercase-client",
        include_str!("builtin/kurose-uppercase-client.toml"),
    ),
    ("thanks-server", include_str!("builtin/thanks-server.toml")),
    (
        "elen-print-server",
        include_str!("builtin/elen-print-server.toml"),
    ),
    (
        "elen-echo-server",
        include_str!("builtin/elen-echo-server.toml"),
    ),
    (
        "elen-exit-server",
        include_str!("builtin/elen-exit-server.toml"),
    ),
    (
        "elen-udp-echo-server",
        include_str!("builtin/elen-udp-echo-server.toml"),
    ),
    (
        "elen-udp-echo-client",
        include_str!("builtin/elen-udp-echo-client.toml"),
    ),
    (
        "goldsmiths-ack-server",
        include_str!("builtin/goldsmiths-ack-server.toml"),
    ),
    (
        "goldsmiths-log-server",
        include_str!("builtin/goldsmiths-log-server.toml"),
    ),
    (
        "goldsmiths-file-server",
        include_str!("builtin/goldsmiths-file-server.toml"),
    ),
    (
        "goldsmiths-empty-file-server",
        include_str!("builtin/goldsmiths-empty-file-server.toml"),
    ),
    (
        "goldsmiths-chat-server",
        include_str!("builtin/goldsmiths-chat-server.toml"),
    ),
    (
        "goldsmiths-concurrent-server",
        include_str!("builtin/goldsmiths-concurrent-server.toml"),
    ),
    (
        "goldsmiths-fernet-server",
        include_str!("builtin/goldsmiths-fernet-server.toml"),
    ),
    (
        "goldsmiths-hmac-server",
        include_str!("builtin/goldsmiths-hmac-server.toml"),
    ),
];

/// Every check there is: the built-in ones, then those of `course` (its `*.toml` files; one
/// with a built-in's name replaces it). A bad file is an error naming the file and the step.
pub fn all(course: Option<&std::path::Path>) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    for (name, text) in BUILTIN {
        checks.push(Check::parse(text, name)?);
    }
    if let Some(dir) = course {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the course folder {}: {e}", dir.display()))?;
        let mut files: Vec<std::path::PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
            .collect();
        files.sort();
        for path in files {
            let check = load(&path)?;
            checks.retain(|c| c.lab != check.lab);
            checks.push(check);
        }
    }
    Ok(checks)
}

/// Reads one scenario file (at most 1 MiB).
pub fn load(path: &std::path::Path) -> Result<Check, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err(format!(
            "{}: not a scenario file (a regular file of at most 1 MiB)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("check");
    Check::parse(&text, name)
}

/// The check called `lab`, or the scenario file at that path.
pub fn find(lab: &str, course: Option<&std::path::Path>) -> Result<Check, String> {
    if lab.ends_with(".toml") {
        return load(std::path::Path::new(lab));
    }
    let checks = all(course)?;
    let names: Vec<&str> = checks.iter().map(|c| c.lab.as_str()).collect();
    match checks.iter().find(|c| c.lab == lab) {
        Some(check) => Ok(check.clone()),
        None => Err(format!(
            "there is no check called '{lab}'. The checks are: {}",
            names.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_built_in_check_reads_and_is_named_after_its_file() {
        let checks = super::all(None).unwrap();
        assert_eq!(checks.len(), super::BUILTIN.len());
        for (check, (name, _)) in checks.iter().zip(super::BUILTIN) {
            assert_eq!(check.lab, *name);
        }
    }
}
