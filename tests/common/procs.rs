//! The process tree, read from /proc.

use std::fs;

/// (pid, ppid, comm) of every process.
pub fn all() -> Vec<(i32, i32, String)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may contain spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 2..].split_whitespace();
        let state = rest.next().unwrap_or("");
        if state == "Z" {
            continue; // a zombie is dead, only not yet reaped
        }
        let ppid = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, comm));
    }
    out
}

/// Live children of `parent` whose name is `comm`.
pub fn children_named(parent: i32, comm: &str) -> Vec<i32> {
    let mut v: Vec<i32> = all()
        .into_iter()
        .filter(|(_, ppid, c)| *ppid == parent && c == comm)
        .map(|(pid, _, _)| pid)
        .collect();
    v.sort();
    v
}

/// Every live descendant of `root`, and `root` itself when alive.
pub fn descendants(root: i32) -> Vec<i32> {
    let procs = all();
    let mut out: Vec<i32> = procs.iter().filter(|p| p.0 == root).map(|p| p.0).collect();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (pid, ppid, _) in &procs {
            if *ppid == p && !out.contains(pid) {
                out.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    out
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    all().iter().any(|p| p.0 == pid)
}

/// Whether `pid` is running, read from its own stat alone (cheaper than [`alive`] when polled).
pub fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|close| stat[close + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// The process's name.
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}
