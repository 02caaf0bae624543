//! The access log: gunicorn's `access_log_format` atoms, compiled once, rendered per request.
//!
//! Atoms: `h` remote address, `l` `-`, `u` user (the name of the `--auth-token-file` line
//! whose token the request carried, or its line number; `-` without one), `t` time, `r` request line, `m` method,
//! `U` path, `q` query, `H` protocol, `s` status, `B` body length, `b` body length or `-`,
//! `f` referer, `a` user agent, `T` seconds, `D` microseconds, `M` milliseconds, `L` decimal
//! seconds, `p` pid, `{x-request-id}i` a request header, `{content-type}o` a response header.
//! serve's own, in letters gunicorn does not use: `N` the model's name, `I` the model call's
//! time in microseconds, `R` the rows of that call (after merging requests); each `-` when
//! the request ran no model. Credentials never reach the log: the `Authorization`,
//! `Proxy-Authorization` and `Cookie` request headers are written `[redacted]`.

use std::fmt::Write;
use std::time::Duration;

use http::HeaderMap;

use crate::time::Utc;

/// gunicorn's default access log format.
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// What the worker knows of a finished request.
pub struct AccessRecord<'a> {
    /// The client's address, or `-` on a unix socket.
    pub remote: &'a str,
    /// `GET`, `POST`...
    pub method: &'a str,
    /// The path.
    pub path: &'a str,
    /// The query string, without `?`, empty when none.
    pub query: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: &'a str,
    /// The response status.
    pub status: u16,
    /// The response body's length in bytes.
    pub bytes: u64,
    /// Time from the request head to the response.
    pub duration: Duration,
    /// The request's headers.
    pub request_headers: &'a HeaderMap,
    /// The response's headers.
    pub response_headers: &'a HeaderMap,
    /// The request id, given by the client or made by the server (also the response's
    /// `X-Request-Id`, so `%({x-request-id}o)s` shows it in text lines).
    pub request_id: &'a str,
    /// The model the request was for, empty when none.
    pub model: &'a str,
    /// The model call that answered it: its rows (every merged request's) and its time.
    pub call: Option<(usize, Duration)>,
    /// Who the request's bearer token says it is (`--auth-token-file`), if it carried one.
    pub user: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Text(String),
    Remote,
    Dash,
    User,
    Time,
    RequestLine,
    Method,
    Path,
    Query,
    Protocol,
    Status,
    Bytes,
    BytesOrDash,
    Referer,
    UserAgent,
    Seconds,
    Micros,
    Millis,
    DecimalSeconds,
    Pid,
    Model,
    InferenceMicros,
    BatchRows,
    RequestHeader(http::HeaderName),
    ResponseHeader(http::HeaderName),
}

/// A compiled access log format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFormat {
    source: String,
    atoms: Vec<Atom>,
}

impl std::fmt::Display for AccessFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// Why an access log format cannot be compiled; each names the atom and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// `%(` without `)s`.
    #[error("access log format: unterminated atom at {0:?}; atoms look like %(h)s")]
    Unterminated(String),
    /// `%({...)s` without the closing brace.
    #[error("access log format: bad atom %({0})s")]
    BadAtom(String),
    /// A header atom whose name is not a header name.
    #[error("access log format: {0:?} is not a header name")]
    NotAHeader(String),
    /// A header atom that is neither `i` (request) nor `o` (response).
    #[error("access log format: %({0})s: expected {{header}}i (request) or {{header}}o (response)")]
    HeaderSide(String),
    /// An atom gunicorn does not have.
    #[error(
        "access log format: unknown atom %({0})s; known: h l u t r m U q H s B b f a T D M L p {{header}}i {{header}}o"
    )]
    UnknownAtom(String),
}

impl std::str::FromStr for AccessFormat {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        AccessFormat::parse(s)
    }
}

impl AccessFormat {
    /// Compiles a format; an unknown atom is an error that names it.
    pub fn parse(source: &str) -> Result<AccessFormat, FormatError> {
        let mut atoms = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(start) = rest.find("%(") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find(")s") else {
                return Err(FormatError::Unterminated(rest[start..].to_string()));
            };
            let name = &after[..end];
            if !text.is_empty() {
                atoms.push(Atom::Text(std::mem::take(&mut text)));
            }
            atoms.push(atom(name)?);
            rest = &after[end + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            atoms.push(Atom::Text(text));
        }
        Ok(AccessFormat {
            source: source.to_string(),
            atoms,
        })
    }

    /// Renders one line (without the newline).
    pub fn render(&self, rec: &AccessRecord<'_>, out: &mut String) {
        for atom in &self.atoms {
            match atom {
                Atom::Text(t) => out.push_str(t),
                Atom::Remote => out.push_str(rec.remote),
                Atom::Dash => out.push('-'),
                Atom::User => match rec.user {
                    Some(u) => push_clean(out, u),
                    None => out.push('-'),
                },
                Atom::Time => {
                    out.push('[');
                    Utc::now().write_access_log(out);
                    out.push(']');
                }
                Atom::RequestLine => {
                    let _ = write!(out, "{} {}", rec.method, rec.path);
                    if !rec.query.is_empty() {
                        out.push('?');
                        out.push_str(rec.query);
                    }
                    out.push(' ');
                    out.push_str(rec.protocol);
                }
                Atom::Method => out.push_str(rec.method),
                Atom::Path => out.push_str(rec.path),
                Atom::Query => out.push_str(rec.query),
                Atom::Protocol => out.push_str(rec.protocol),
                Atom::Status => push_num(out, rec.status),
                Atom::Bytes => push_num(out, rec.bytes),
                Atom::BytesOrDash if rec.bytes == 0 => out.push('-'),
                Atom::BytesOrDash => push_num(out, rec.bytes),
                Atom::Referer => push_header(out, rec.request_headers, "referer"),
                Atom::UserAgent => push_header(out, rec.request_headers, "user-agent"),
                Atom::Seconds => push_num(out, rec.duration.as_secs()),
                Atom::Micros => push_num(out, rec.duration.as_micros() as u64),
                Atom::Millis => push_num(out, rec.duration.as_millis() as u64),
                Atom::DecimalSeconds => {
                    let _ = write!(out, "{:.6}", rec.duration.as_secs_f64());
                }
                Atom::Pid => push_num(out, std::process::id()),
                Atom::Model if rec.model.is_empty() => out.push('-'),
                Atom::Model => out.push_str(rec.model),
                Atom::InferenceMicros => match rec.call {
                    Some((_, took)) => push_num(out, took.as_micros() as u64),
                    None => out.push('-'),
                },
                Atom::BatchRows => match rec.call {
                    Some((rows, _)) => push_num(out, rows),
                    None => out.push('-'),
                },
                Atom::RequestHeader(h) => push_header(out, rec.request_headers, h.as_str()),
                Atom::ResponseHeader(h) => push_header(out, rec.response_headers, h.as_str()),
            }
        }
    }
}

fn atom(name: &str) -> Result<Atom, FormatError> {
    if let Some(header) = name.strip_prefix('{') {
        let (header, kind) = header
            .rsplit_once('}')
            .ok_or_else(|| FormatError::BadAtom(name.to_string()))?;
        let header = http::HeaderName::from_bytes(header.to_ascii_lowercase().as_bytes())
            .map_err(|_| FormatError::NotAHeader(header.to_string()))?;
        return match kind {
            "i" => Ok(Atom::RequestHeader(header)),
            "o" => Ok(Atom::ResponseHeader(header)),
            _ => Err(FormatError::HeaderSide(name.to_string())),
        };
    }
    Ok(match name {
        "h" => Atom::Remote,
        "l" => Atom::Dash,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::Bytes,
        "b" => Atom::BytesOrDash,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "D" => Atom::Micros,
        "M" => Atom::Millis,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        "N" => Atom::Model,
        "I" => Atom::InferenceMicros,
        "R" => Atom::BatchRows,
        _ => {
            return Err(FormatError::UnknownAtom(name.to_string()));
        }
    })
}

fn push_num(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Request headers that carry credentials: written `[redacted]`, whatever the format asks.
const SECRET_HEADERS: [&str; 3] = ["authorization", "proxy-authorization", "cookie"];

fn push_header(out: &mut String, headers: &HeaderMap, name: &str) {
    match headers.get(name).and_then(|v| v.to_str().ok()) {
        Some(_) if SECRET_HEADERS.contains(&name) => out.push_str("[redacted]"),
        Some(v) => push_clean(out, v),
        None => out.push('-'),
    }
}

/// Quotes and control characters would let a client forge log lines.
fn push_clean(out: &mut String, v: &str) {
    out.extend(
        v.chars()
            .map(|c| if c == '"' || c.is_control() { '_' } else { c }),
    );
}

/// Renders a record as one JSON object.
pub fn render_json(rec: &AccessRecord<'_>, out: &mut String) {
    let mut time = String::with_capacity(24);
    Utc::now().write_rfc3339(&mut time);
    let header = |name: &str| {
        rec.request_headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let v = serde_json::json!({
        "time": time,
        "pid": std::process::id(),
        "remote": rec.remote,
        "method": rec.method,
        "path": rec.path,
        "query": rec.query,
        "protocol": rec.protocol,
        "status": rec.status,
        "bytes": rec.bytes,
        "duration_us": rec.duration.as_micros() as u64,
        "referer": header("referer"),
        "user_agent": header("user-agent"),
        "request_id": rec.request_id,
        "model": (!rec.model.is_empty()).then_some(rec.model),
        "inference_us": rec.call.map(|(_, took)| took.as_micros() as u64),
        "batch_rows": rec.call.map(|(rows, _)| rows),
        "user": rec.user,
    });
    out.push_str(&v.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(req: &'a HeaderMap, res: &'a HeaderMap) -> AccessRecord<'a> {
        AccessRecord {
            remote: "127.0.0.1",
            method: "POST",
            path: "/v2/models/iris/infer",
            query: "a=1",
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 123,
            duration: Duration::from_micros(1500),
            request_headers: req,
            response_headers: res,
            request_id: "r-1",
            model: "iris",
            call: Some((3, Duration::from_micros(42))),
            user: None,
        }
    }

    #[test]
    fn credentials_never_reach_the_log_and_u_is_the_token_s_name() {
        let mut req = HeaderMap::new();
        req.insert("authorization", "Bearer s3cret".parse().unwrap());
        req.insert("cookie", "session=s3cret".parse().unwrap());
        let res = HeaderMap::new();
        let format =
            AccessFormat::parse("%(u)s %({authorization}i)s %({cookie}i)s %({Authorization}i)s")
                .unwrap();
        let mut rec = record(&req, &res);
        let mut line = String::new();
        format.render(&rec, &mut line);
        assert_eq!(line, "- [redacted] [redacted] [redacted]");
        rec.user = Some("ci-runner");
        line.clear();
        format.render(&rec, &mut line);
        assert!(line.starts_with("ci-runner "), "{line}");
        line.clear();
        render_json(&rec, &mut line);
        assert!(
            !line.contains("s3cret") && line.contains("\"user\":\"ci-runner\""),
            "{line}"
        );
    }

    #[test]
    fn renders_the_default_format_like_gunicorn() {
        let mut req = HeaderMap::new();
        req.insert("user-agent", "curl/8.0".parse().unwrap());
        let res = HeaderMap::new();
        let mut line = String::new();
        AccessFormat::parse(DEFAULT_FORMAT)
            .unwrap()
            .render(&record(&req, &res), &mut line);
        let (head, tail) = line.split_once(" [").unwrap();
        assert_eq!(head, "127.0.0.1 - -");
        let tail = tail.split_once("] ").unwrap().1;
        assert_eq!(
            tail,
            r#""POST /v2/models/iris/infer?a=1 HTTP/1.1" 200 123 "-" "curl/8.0""#
        );
    }

    #[test]
    fn renders_headers_and_durations() {
        let mut req = HeaderMap::new();
        req.insert("x-request-id", "abc\"def".parse().unwrap());
        let mut res = HeaderMap::new();
        res.insert("content-type", "application/json".parse().unwrap());
        let f = AccessFormat::parse("%({X-Request-Id}i)s %({content-type}o)s %(D)s %(M)s %(s)s")
            .unwrap();
        let mut line = String::new();
        f.render(&record(&req, &res), &mut line);
        assert_eq!(line, "abc_def application/json 1500 1 200");
    }

    #[test]
    fn renders_the_model_call_or_dashes() {
        let (req, res) = (HeaderMap::new(), HeaderMap::new());
        let f = AccessFormat::parse("%(N)s %(I)s %(R)s").unwrap();
        let mut line = String::new();
        f.render(&record(&req, &res), &mut line);
        assert_eq!(line, "iris 42 3");
        let mut none = record(&req, &res);
        none.model = "";
        none.call = None;
        line.clear();
        f.render(&none, &mut line);
        assert_eq!(line, "- - -");
        line.clear();
        render_json(&record(&req, &res), &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (
                v["model"].as_str(),
                v["inference_us"].as_u64(),
                v["batch_rows"].as_u64()
            ),
            (Some("iris"), Some(42), Some(3))
        );
    }

    #[test]
    fn rejects_unknown_atoms_by_name() {
        let e = AccessFormat::parse("%(zz)s").unwrap_err();
        assert_eq!(e, FormatError::UnknownAtom("zz".into()));
        assert!(e.to_string().contains("%(zz)s"), "{e}");
        let e = AccessFormat::parse("%(h").unwrap_err();
        assert!(matches!(e, FormatError::Unterminated(_)), "{e}");
        assert!(e.to_string().contains("unterminated"), "{e}");
    }
}
