//! A network of one's own for one submission's check (Linux): submissions hard-code the
//! handout's port, so a class can be checked several at once only if each runs where that
//! port is free: its own network namespace, whose loopback the checker and the program share.
//! As root that is `unshare(CLONE_NEWNET)`; otherwise a user namespace first (mapping this
//! user to root inside it), where the kernel allows that. Then `lo` is brought up (a new
//! namespace starts with it down).
//!
//! Written by hand on `libc`: two system calls and one ioctl, which no maintained crate wraps
//! more simply. Must run before any thread starts (`unshare` of a user namespace refuses a
//! multithreaded process), so `bridge check --isolated` calls it before the async runtime.

/// `struct ifreq` for the flags requests: the name, then the flags (the rest of the union
/// unused).
#[cfg(target_os = "linux")]
#[repr(C)]
struct IfFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _rest: [u8; 22],
}

#[cfg(target_os = "linux")]
fn last_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Moves this process (and what it starts afterwards) into a network namespace of its own
/// with loopback up.
#[cfg(target_os = "linux")]
pub fn enter() -> Result<(), String> {
    // SAFETY: plain system calls on this process; the files written are this process's own.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            let (uid, gid) = (libc::geteuid(), libc::getegid());
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(last_error(
                    "no network namespace (neither as root nor through a user namespace)",
                ));
            }
            let write = |file: &str, text: String| {
                std::fs::write(file, text).map_err(|e| format!("{file}: {e}"))
            };
            write("/proc/self/setgroups", "deny".into())?;
            write("/proc/self/uid_map", format!("0 {uid} 1"))?;
            write("/proc/self/gid_map", format!("0 {gid} 1"))?;
        }
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(last_error("socket"));
        }
        let mut req = IfFlags {
            name: [0; 16],
            flags: 0,
            _rest: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        let result = if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) != 0 {
            Err(last_error("reading lo's flags"))
        } else {
            req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut req) != 0 {
                Err(last_error("bringing lo up"))
            } else {
                Ok(())
            }
        };
        libc::close(fd);
        result
    }
}

/// Network namespaces are Linux's: elsewhere submissions are checked one after another.
#[cfg(not(target_os = "linux"))]
pub fn enter() -> Result<(), String> {
    Err("a network of one's own for each submission needs Linux (network namespaces)".into())
}
