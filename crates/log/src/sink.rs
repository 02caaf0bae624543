//! Where log lines go, and reopening files after rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A log destination as the user names it: `-` (stderr for the error log, stdout for the access
/// log, as in gunicorn), `stderr`, `stdout`, or a file path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The process's standard error.
    Stderr,
    /// The process's standard output.
    Stdout,
    /// A file, opened for appending and created with mode 0640 when missing.
    File(PathBuf),
}

impl Target {
    /// Parses a destination; `dash` is what `-` means for this log.
    pub fn parse(s: &str, dash: Target) -> Target {
        match s {
            "-" => dash,
            "stderr" => Target::Stderr,
            "stdout" => Target::Stdout,
            path => Target::File(PathBuf::from(path)),
        }
    }
}

impl FromStr for Target {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Target::parse(s, Target::Stderr))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stderr => f.write_str("stderr"),
            Target::Stdout => f.write_str("stdout"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// An open destination.
pub(crate) struct Sink {
    target: Target,
    file: Option<File>,
}

impl Sink {
    pub(crate) fn stderr() -> Sink {
        Sink {
            target: Target::Stderr,
            file: None,
        }
    }

    /// Opens the target of `flag` (`--error-logfile`, `--access-logfile`); the error says
    /// which flag, the path, the cause and the fix.
    pub(crate) fn open(target: &Target, flag: &str) -> io::Result<Sink> {
        let file = match target {
            Target::File(path) => Some(
                open_append(path)
                    .map_err(|e| io::Error::new(e.kind(), unwritable(flag, path, &e)))?,
            ),
            _ => None,
        };
        Ok(Sink {
            target: target.clone(),
            file,
        })
    }

    pub(crate) fn reopen(&mut self) -> io::Result<()> {
        if let Target::File(path) = &self.target {
            self.file = Some(open_append(path)?);
        }
        Ok(())
    }

    /// Writes a whole line with one `write(2)`; errors are dropped (a full disk must not take
    /// the server down, and there is nowhere left to report them).
    pub(crate) fn write_line(&self, line: &[u8]) {
        let _ = match (&self.target, &self.file) {
            (_, Some(f)) => (&mut &*f).write_all(line),
            (Target::Stdout, None) => io::stdout().lock().write_all(line),
            _ => io::stderr().lock().write_all(line),
        };
    }
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// Why the file a flag names cannot be written, and what to do, as one line:
/// `--pid /run/x/serve.pid: cannot write it: the directory /run/x does not exist; create it,
/// or pass --pid with a writable path`.
pub fn unwritable(flag: &str, path: &Path, e: &io::Error) -> String {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cause = match e.kind() {
        io::ErrorKind::NotFound if !dir.is_dir() => {
            format!("the directory {} does not exist; create it", dir.display())
        }
        io::ErrorKind::PermissionDenied => format!(
            "permission denied (serve runs as uid {}); make {} writable for it",
            uid(),
            if path.exists() {
                path.display().to_string()
            } else {
                dir.display().to_string()
            }
        ),
        io::ErrorKind::ReadOnlyFilesystem => format!(
            "{} is on a read-only file system; choose a writable place (a volume, /tmp)",
            dir.display()
        ),
        io::ErrorKind::IsADirectory => "it is a directory; name a file".to_string(),
        _ => e.to_string(),
    };
    format!(
        "{flag} {}: cannot write it: {cause}, or pass {flag} with a writable path",
        path.display()
    )
}

fn uid() -> String {
    // The owner of /proc/self is this process's effective uid (this crate has no libc).
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or_else(|_| "?".into(), |m| m.uid().to_string())
}
