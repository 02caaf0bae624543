//! Process plumbing: fork, the pid file, privileges, names, limits, re-exec.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{ForkResult, Gid, Pid, Uid, User};

/// Forks. The caller's closure runs in the child and never returns into the caller: the
/// child exits with the closure's code through `_exit`, so no destructor or buffered output
/// of the master runs twice. The child starts with default signal dispositions and nothing
/// blocked; signals are blocked across the fork itself (see `signals::block_all`).
pub fn fork_child(child: impl FnOnce() -> i32) -> io::Result<Pid> {
    let threads = thread_count();
    if threads != 1 {
        return Err(io::Error::other(format!(
            "the master has {threads} threads and forking it would be unsafe; \
             something started a thread in the master (a preloaded app must not)"
        )));
    }
    let mask = crate::signals::block_all()?;
    // SAFETY: the process is single-threaded (checked just above), so the child inherits no
    // lock held by another thread and may run ordinary Rust code.
    let forked = unsafe { nix::unistd::fork() };
    match forked.map_err(io::Error::from) {
        Err(e) => {
            crate::signals::restore(&mask);
            Err(e)
        }
        Ok(ForkResult::Parent { child }) => {
            crate::signals::restore(&mask);
            Ok(child)
        }
        Ok(ForkResult::Child) => {
            crate::signals::reset_in_child();
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(1);
            serve_log::quiesce();
            // SAFETY: _exit ends the process at once; nothing after it runs, and skipping
            // atexit handlers and destructors is the point (they belong to the master).
            unsafe { libc::_exit(code) }
        }
    }
}

/// Makes glibc's allocator give memory back. By default glibc raises its mmap threshold each
/// time a large block is freed, so after a model is parsed and optimized (tens of megabytes of
/// temporary buffers) later large blocks come from the heap, which fragments and never
/// shrinks: a worker that loaded a model lazily kept about twice the memory of one that
/// inherited it. A fixed threshold keeps every block of 256 KiB or more in its own mapping,
/// returned to the system when freed; two arenas per process are enough for a worker's event
/// loop and its blocking pool. Called once in the master, before anything large is allocated;
/// workers inherit the setting.
pub fn tune_allocator() {
    // SAFETY: mallopt only changes glibc's allocator parameters; it is called while the
    // master is single-threaded, before any worker exists, with valid parameter values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Threads of this process, from /proc (1 when it cannot be read: nothing better is known).
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}

/// Names the process as `ps` and `top` show it (15 bytes at most).
pub fn set_name(name: &str) {
    let short: String = name.chars().take(15).collect();
    if let Ok(c) = CString::new(short) {
        let _ = nix::sys::prctl::set_name(&c);
    }
}

/// In a worker: die with the master (SIGTERM, so the worker still drains), and catch the
/// race where the master died before this was set.
pub fn follow_parent(master: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    if nix::unistd::getppid() != master {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGTERM);
    }
}

/// Switches to the configured group and user (in workers, after the master bound its sockets).
pub fn drop_privileges(user: Option<Uid>, group: Option<Gid>) -> Result<(), String> {
    if let Some(gid) = group {
        nix::unistd::setgid(gid).map_err(|e| format!("cannot switch to group {gid}: {e}"))?;
    }
    if let Some(uid) = user {
        let gid = group.unwrap_or_else(nix::unistd::getgid);
        if let Ok(Some(u)) = User::from_uid(uid) {
            if let Ok(name) = CString::new(u.name) {
                let _ = nix::unistd::initgroups(&name, gid);
            }
        } else {
            let _ = nix::unistd::setgroups(&[gid]);
        }
        nix::unistd::setuid(uid).map_err(|e| format!("cannot switch to user {uid}: {e}"))?;
    }
    Ok(())
}

/// Raises the soft open-files limit to what `needed` descriptors require; warns when the hard
/// limit is lower.
pub fn raise_nofile(needed: u64) {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= needed {
        return;
    }
    let want = needed.min(hard);
    if setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
        tracing::debug!("raised the open files limit from {soft} to {want}");
    }
    if hard < needed {
        tracing::warn!(
            "--worker-connections needs {needed} open files per worker but the hard limit is {hard}; \
             connections past it will wait. Raise it (ulimit -n, LimitNOFILE= in systemd, \
             --ulimit nofile= in a container)"
        );
    }
}

/// The pid file, written at start and removed at exit (only if it still names us).
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid. Refuses when the file names another live process.
    pub fn create(path: &Path) -> Result<PidFile, String> {
        let recorded = std::fs::read_to_string(path)
            .ok()
            .and_then(|old| old.trim().parse::<i32>().ok());
        let me = std::process::id() as i32;
        let alive = |pid: i32| nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok();
        if let Some(pid) = recorded.filter(|&pid| pid != me && pid > 0 && alive(pid)) {
            return Err(format!(
                "pid file {} names process {pid}, which is running; is another serve running? \
                 stop it, or pass -p to choose another pid file",
                path.display()
            ));
        }
        let pidfile = PidFile {
            path: path.to_path_buf(),
        };
        pidfile.write()?;
        Ok(pidfile)
    }

    fn write(&self) -> Result<(), String> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|_| std::fs::rename(&tmp, &self.path))
            .map_err(|e| serve_log::unwritable("--pid", &self.path, &e))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file (upgrade: `NAME.oldbin`, `NAME.2`, and back).
    pub fn rename(&mut self, to: PathBuf) {
        if std::fs::rename(&self.path, &to).is_err() {
            // The file may have been removed by hand: write it afresh at its new name.
            let _ = std::fs::write(&to, format!("{}\n", std::process::id()));
        }
        self.path = to;
    }

    /// Removes the file if it still names this process.
    pub fn remove(&self) {
        let mine = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            == Some(std::process::id());
        if mine {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A path with a suffix appended to its file name: `serve.pid` + `.2`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// In the upgrade child: make the listeners survive exec, then exec the new binary with the
/// same arguments and `SERVE_FDS` naming them. Returns only on failure.
pub fn exec_upgrade(exe: &CStr, argv: &[CString], fds: &[RawFd], old_master: Pid) -> io::Error {
    for &fd in fds {
        // SAFETY (of borrow_raw): the listeners are open in this child for as long as this
        // call runs; they are owned by the master's listener table that the child inherited.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        if let Err(e) = fcntl(borrowed.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())) {
            return io::Error::from(e);
        }
    }
    let list: Vec<String> = fds.iter().map(ToString::to_string).collect();
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| {
            !matches!(
                k.to_str(),
                Some(
                    "SERVE_FDS"
                        | "SERVE_MASTER_PID"
                        | "LISTEN_FDS"
                        | "LISTEN_PID"
                        | "LISTEN_FDNAMES"
                )
            )
        })
        .filter_map(|(k, v)| {
            use std::os::unix::ffi::OsStrExt;
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("SERVE_FDS={}", list.join(","))).expect("no NUL"));
    env.push(CString::new(format!("SERVE_MASTER_PID={old_master}")).expect("no NUL"));
    match nix::unistd::execve(exe, argv, &env) {
        Ok(never) => match never {},
        Err(e) => io::Error::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_refuses_a_live_owner_and_removes_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.pid");
        // PID 1 is always alive.
        std::fs::write(&path, "1\n").unwrap();
        let e = PidFile::create(&path).err().unwrap();
        assert!(e.contains("is another serve running"), "{e}");
        // A dead pid is stale and replaced.
        std::fs::write(&path, "999999999\n").unwrap();
        let mut pf = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        let moved = with_suffix(&path, ".2");
        pf.rename(moved.clone());
        assert!(moved.exists() && !path.exists());
        pf.remove();
        assert!(!moved.exists());
    }

    #[test]
    fn refuses_to_fork_a_process_with_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(thread_count() > 1);
        let e = fork_child(|| 0).unwrap_err();
        assert!(e.to_string().contains("threads"), "{e}");
        drop(tx);
        let _ = t.join();
    }
}
