//! Bearer tokens (`--auth-token-file`): who may call the API.
//!
//! The master reads the file at start and on every reload (and when it changes: a rotated
//! Kubernetes Secret sends no HUP), and hands the tokens to the workers it forks, as it does
//! certificates. Every request needs `Authorization: Bearer TOKEN` (gRPC's `authorization`
//! metadata is the same header) except the server's health, the front page and
//! `/openapi.json` (a browser opening them cannot send the header), and whatever reaches a
//! `--metrics-bind` listener. A request without a valid token is answered 401 with
//! `WWW-Authenticate: Bearer` (gRPC: UNAUTHENTICATED) and counted under its model and
//! protocol with that code. Tokens are compared in time that depends on the configured
//! token's length only, never on how much of it a guess got right, and never logged: the
//! access log's `%(u)s` names the line that matched instead.

use std::path::{Path, PathBuf};

use http::HeaderMap;

/// The tokens of one `--auth-token-file`.
pub struct Tokens {
    file: PathBuf,
    /// Each token and the name the access log shows for it.
    entries: Vec<(Vec<u8>, String)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("Tokens")
            .field("file", &self.file)
            .field("count", &self.entries.len())
            .finish()
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header, or not a bearer one.
    Missing,
    /// A bearer token that is not one of the file's.
    Wrong,
}

impl Refusal {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "this server needs a token: send Authorization: Bearer TOKEN (gRPC: the \
                 authorization metadata), with a token of its --auth-token-file"
            }
            Refusal::Wrong => {
                "the bearer token is not one of this server's (--auth-token-file); check it, \
                 or ask for a valid one"
            }
        }
    }
}

impl Tokens {
    /// Reads a token file: one token per line, optionally followed by a name for the access
    /// log (`TOKEN ci-runner`); blank lines and lines starting with `#` are skipped.
    pub fn read(file: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--auth-token-file {}: cannot read it: {e}", file.display()))?;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let token = words.next().unwrap_or_default();
            let name = words.collect::<Vec<_>>().join(" ");
            let name = if name.is_empty() {
                format!("line{}", i + 1)
            } else {
                name
            };
            entries.push((token.as_bytes().to_vec(), name));
        }
        if entries.is_empty() {
            return Err(format!(
                "--auth-token-file {}: no token in it (one per line; # starts a comment)",
                file.display()
            ));
        }
        Ok(Tokens {
            file: file.to_path_buf(),
            entries,
        })
    }

    /// The file they were read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The name of the token the request carries, or why it is refused.
    pub fn check(&self, headers: &HeaderMap) -> Result<&str, Refusal> {
        let given = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| {
                let v = v.as_bytes();
                // The scheme is case-insensitive (RFC 9110).
                (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
                    .then(|| v[7..].trim_ascii())
            })
            .ok_or(Refusal::Missing)?;
        // Every token is compared, whatever matched: the time says nothing of which.
        let mut found = None;
        for (token, name) in &self.entries {
            if same(given, token) {
                found = Some(name.as_str());
            }
        }
        found.ok_or(Refusal::Wrong)
    }
}

/// Whether `given` is `token`, in a time that depends on `token`'s length only.
fn same(given: &[u8], token: &[u8]) -> bool {
    let mut diff = u64::from(given.len() != token.len());
    for (i, t) in token.iter().enumerate() {
        diff |= u64::from(given.get(i).copied().unwrap_or(0) ^ t);
    }
    std::hint::black_box(diff) == 0
}

/// The paths open without a token: the server's health (REST and grpc.health.v1), the
/// front page and the OpenAPI document.
pub fn is_open(path: &str) -> bool {
    matches!(
        path,
        "/" | "/openapi.json" | "/v2/health/live" | "/v2/health/ready"
    ) || path.starts_with("/grpc.health.v1.Health/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn tokens_are_read_with_names_and_checked_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# who may call\n\nabc123 ci-runner\n  def456  \n").unwrap();
        let t = Tokens::read(&file).unwrap();
        assert_eq!(t.check(&headers("Bearer abc123")), Ok("ci-runner"));
        assert_eq!(t.check(&headers("bearer def456")), Ok("line4"));
        assert_eq!(t.check(&headers("Bearer abc12")), Err(Refusal::Wrong));
        assert_eq!(t.check(&headers("Bearer abc1234")), Err(Refusal::Wrong));
        assert_eq!(t.check(&headers("Basic abc123")), Err(Refusal::Missing));
        assert_eq!(t.check(&HeaderMap::new()), Err(Refusal::Missing));
        assert!(!format!("{t:?}").contains("abc123"));
        std::fs::write(&file, "# nothing\n").unwrap();
        let e = Tokens::read(&file).unwrap_err();
        assert!(e.contains("no token in it"), "{e}");
    }
}
