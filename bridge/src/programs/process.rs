//! Ending a program the bridge started, and everything it started in turn, per system.
//!
//! - Unix: the program leads a process group of its own ([`Group::prepare`]). A stop is
//!   SIGTERM to the group (the Python shim sends what it still holds, then the program ends
//!   by the signal), SIGKILL after `runner::KILL_AFTER`, and once the program has ended,
//!   SIGKILL for whatever it forked.
//! - Windows: there is no signal a program could catch, and no process group to signal. The
//!   program is put into a job object that is closed with it, so its children end with it; a
//!   stop terminates the job at once (what the shim held, at most 100 ms of calls, is lost).
//!   The program runs briefly before it joins its job; a Python program starts no process in
//!   that time.

/// A started program and what it starts, to be ended together.
pub(crate) struct Group {
    #[cfg(unix)]
    pid: u32,
    #[cfg(windows)]
    job: Option<windows::Job>,
}

impl Group {
    /// Lets `command` start its program as the leader of a group of its own.
    pub(crate) fn prepare(command: &mut tokio::process::Command) {
        #[cfg(unix)]
        command.process_group(0);
        #[cfg(not(unix))]
        let _ = command;
    }

    /// The group of a program started from a command given to [`Group::prepare`].
    pub(crate) fn of(child: &tokio::process::Child) -> Group {
        #[cfg(unix)]
        return Group {
            pid: child.id().unwrap_or(0),
        };
        #[cfg(windows)]
        return Group {
            job: child.raw_handle().and_then(windows::Job::with),
        };
        #[cfg(not(any(unix, windows)))]
        {
            let _ = child;
            Group {}
        }
    }

    /// The group a program leads (one the system-call tracer started).
    #[cfg(unix)]
    pub(crate) fn led_by(pid: u32) -> Group {
        Group { pid }
    }

    /// Asks the program to end (SIGTERM); Windows ends it at once.
    pub(crate) fn stop(&self) {
        #[cfg(unix)]
        self.signal(libc::SIGTERM);
        #[cfg(not(unix))]
        self.kill();
    }

    /// Ends the program and what it started, at once.
    pub(crate) fn kill(&self) {
        #[cfg(unix)]
        self.signal(libc::SIGKILL);
        #[cfg(windows)]
        if let Some(job) = &self.job {
            job.terminate();
        }
    }

    /// Sends `signal` to the group.
    #[cfg(unix)]
    fn signal(&self, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            if pid > 0 {
                // SAFETY: kill only sends a signal; a negative pid names the process group.
                unsafe {
                    libc::kill(-pid, signal);
                }
            }
        }
    }
}

/// The signal that [`Group::kill`] ends a program with, as its exit reports it.
#[cfg(unix)]
pub(crate) const KILLED: Option<i32> = Some(libc::SIGKILL);
/// The signal that [`Group::kill`] ends a program with: none on Windows.
#[cfg(not(unix))]
pub(crate) const KILLED: Option<i32> = None;

/// How a program ended: its status, or the signal that ended it (Unix).
pub(crate) fn ended(status: &std::process::ExitStatus) -> (Option<i32>, Option<i32>) {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        (status.code(), status.signal())
    }
    #[cfg(not(unix))]
    (status.code(), None)
}

#[cfg(windows)]
mod windows {
    //! The job object a program runs in (windows-sys: the Win32 calls, nothing more).

    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };

    /// A job whose processes end when it is closed (when the bridge lets go of it, or exits).
    pub(super) struct Job(HANDLE);

    // SAFETY: a job handle may be used and closed from any thread.
    unsafe impl Send for Job {}
    unsafe impl Sync for Job {}

    impl Job {
        /// A new job holding `process`; `None` if Windows refuses (the program then runs
        /// on, and ends alone when stopped).
        pub(super) fn with(process: std::os::windows::io::RawHandle) -> Option<Job> {
            // SAFETY: plain Win32 calls on a new job and on the child's process handle, which
            // the caller holds open; every pointer is to a local of the right type and size.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return None;
                }
                let job = Job(job);
                let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
                limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
                let set = SetInformationJobObject(
                    job.0,
                    JobObjectExtendedLimitInformation,
                    std::ptr::addr_of!(limits).cast(),
                    std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
                );
                if set == 0 || AssignProcessToJobObject(job.0, process as HANDLE) == 0 {
                    return None;
                }
                Some(job)
            }
        }

        /// Ends every process of the job.
        pub(super) fn terminate(&self) {
            // SAFETY: the handle is this job's, open until drop.
            unsafe {
                TerminateJobObject(self.0, 1);
            }
        }
    }

    impl Drop for Job {
        fn drop(&mut self) {
            // SAFETY: closed once, here; with KILL_ON_JOB_CLOSE what is left in it ends.
            unsafe {
                CloseHandle(self.0);
            }
        }
    }
}
