//! Where the onnxruntime library is: `--onnxruntime PATH`, then `ORT_DYLIB_PATH`, then the
//! `onnxruntime` Python package of the environment serve runs from (its wheel ships
//! `onnxruntime/capi/libonnxruntime.so.1.x.y` since onnxruntime 1.19).
//!
//! Finding is only looking at files: nothing is loaded here, so the master may call it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable `ort` and onnxruntime's own tools read.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The library to load: the flag's path, the environment's, or the newest one of the Python
/// packages beside the executable or in the active virtual environment. The error names every
/// place tried and the fix.
pub fn find(flag: Option<&Path>) -> Result<PathBuf, String> {
    let env = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty());
    let exe = std::env::current_exe().ok();
    let venv = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from);
    find_in(
        flag,
        env.as_deref().map(Path::new),
        exe.as_deref(),
        venv.as_deref(),
    )
}

/// [`find`] with what it reads from the process given (tests).
fn find_in(
    flag: Option<&Path>,
    env: Option<&Path>,
    exe: Option<&Path>,
    venv: Option<&Path>,
) -> Result<PathBuf, String> {
    if let Some(path) = flag {
        return named(path, "--onnxruntime");
    }
    if let Some(path) = env {
        return named(path, ENV_VAR);
    }
    let mut tried = vec![
        "--onnxruntime (not set)".to_string(),
        format!("{ENV_VAR} (not set)"),
    ];
    // A wheel's binary is <env>/bin/serve; the package is <env>/lib/pythonX.Y/site-packages.
    let roots = exe
        .and_then(Path::parent)
        .and_then(Path::parent)
        .into_iter()
        .chain(venv);
    for root in roots {
        let lib = root.join("lib");
        let pattern = lib.join("python3.*/site-packages/onnxruntime/capi");
        match newest_library(&lib) {
            Some(found) => return Ok(found),
            None => tried.push(format!("{} (no libonnxruntime.so*)", pattern.display())),
        }
    }
    Err(format!(
        "the onnxruntime library was not found; looked at {}. Install it where serve runs \
         (`pip install onnxruntime`), or pass --onnxruntime PATH (or set {ENV_VAR}) naming \
         libonnxruntime.so",
        tried.join(", ")
    ))
}

/// A path the user named: it must be a file.
fn named(path: &Path, by: &str) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(format!(
            "{by} names {}, which is not a file; name the libonnxruntime.so file (the \
             `onnxruntime` Python package has it under onnxruntime/capi/)",
            path.display()
        ))
    }
}

/// The newest `libonnxruntime.so*` under `lib/python3.*/site-packages/onnxruntime/capi`.
fn newest_library(lib: &Path) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let name = python.file_name();
        if !name.to_string_lossy().starts_with("python3") {
            continue;
        }
        let capi = python.path().join("site-packages/onnxruntime/capi");
        let Ok(files) = std::fs::read_dir(&capi) else {
            continue;
        };
        for file in files.flatten() {
            if let Some(version) = library_version(&file.file_name()) {
                found.push((version, file.path()));
            }
        }
    }
    found.into_iter().max().map(|(_, path)| path)
}

/// The version of a file named `libonnxruntime.so[.1.31.1]` (empty for the bare name);
/// `None` for any other file (the providers' libraries beside it).
fn library_version(name: &OsStr) -> Option<Vec<u32>> {
    let rest = name.to_str()?.strip_prefix("libonnxruntime.so")?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    rest.strip_prefix('.')?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("serve-ort-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_flag_comes_first_then_the_environment() {
        let dir = temp("order");
        let (a, b) = (dir.join("a.so"), dir.join("b.so"));
        std::fs::write(&a, b"").unwrap();
        std::fs::write(&b, b"").unwrap();
        assert_eq!(find_in(Some(&a), Some(&b), None, None).unwrap(), a);
        assert_eq!(find_in(None, Some(&b), None, None).unwrap(), b);
        let e = find_in(Some(&dir.join("missing.so")), Some(&b), None, None).unwrap_err();
        assert!(e.starts_with("--onnxruntime names "), "{e}");
        assert!(e.contains("missing.so, which is not a file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_python_package_beside_the_executable_is_found_newest_first() {
        let dir = temp("wheel");
        let capi = dir.join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        for f in [
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(capi.join(f), b"").unwrap();
        }
        let exe = dir.join("bin/serve");
        let found = find_in(None, None, Some(&exe), None).unwrap();
        assert_eq!(found, capi.join("libonnxruntime.so.1.31.1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nothing_found_names_every_place_tried_and_the_fix() {
        let dir = temp("none");
        let exe = dir.join("bin/serve");
        let e = find_in(None, None, Some(&exe), None).unwrap_err();
        let place = dir.join("lib/python3.*/site-packages/onnxruntime/capi");
        assert_eq!(
            e,
            format!(
                "the onnxruntime library was not found; looked at --onnxruntime (not set), \
                 ORT_DYLIB_PATH (not set), {} (no libonnxruntime.so*). Install it where serve \
                 runs (`pip install onnxruntime`), or pass --onnxruntime PATH (or set \
                 ORT_DYLIB_PATH) naming libonnxruntime.so",
                place.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
