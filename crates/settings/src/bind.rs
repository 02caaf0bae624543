//! An address to listen on, as gunicorn's `--bind` takes it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::path::PathBuf;

/// One `--bind` address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    /// A TCP address; port 0 picks a free port.
    Tcp(SocketAddr),
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `fd://N`: a listening socket inherited from whoever started serve.
    Fd(RawFd),
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Tcp(a) => write!(f, "{a}"),
            Bind::Unix(p) => write!(f, "unix:{}", p.display()),
            Bind::Fd(n) => write!(f, "fd://{n}"),
        }
    }
}

/// Why an address given to `--bind` cannot be used; each says what form is expected.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// `unix:` with nothing after it.
    #[error("bind {0:?}: a unix socket needs a path, as unix:/run/serve.sock")]
    UnixWithoutPath(String),
    /// `fd://` without a descriptor number.
    #[error("bind {0:?}: expected fd://N with N a file descriptor number")]
    BadFd(String),
    /// Nothing at all.
    #[error("bind: empty address; expected HOST:PORT, :PORT, unix:PATH or fd://N")]
    Empty,
    /// A port that is not a number from 0 to 65535.
    #[error("bind {given:?}: {port:?} is not a port number (0-65535)")]
    BadPort {
        /// The address as given.
        given: String,
        /// Its port part.
        port: String,
    },
    /// A host name the resolver does not know.
    #[error("bind {given:?}: cannot resolve {host:?}: {source}")]
    Unresolved {
        /// The address as given.
        given: String,
        /// Its host part.
        host: String,
        /// The resolver's answer.
        source: std::io::Error,
    },
    /// A host name with no address.
    #[error("bind {given:?}: {host:?} has no address")]
    NoAddress {
        /// The address as given.
        given: String,
        /// Its host part.
        host: String,
    },
    /// `[` without `]`.
    #[error("bind {0:?}: missing ] after an IPv6 address")]
    UnclosedBracket(String),
    /// Something other than `:PORT` after `[ADDRESS]`.
    #[error("bind {0:?}: expected [ADDRESS]:PORT")]
    AfterBracket(String),
}

/// The port used when an address names none, as gunicorn.
pub const DEFAULT_PORT: u16 = 8000;

impl Bind {
    /// Parses gunicorn's address forms: `HOST:PORT`, `:PORT` (all IPv4 interfaces), `HOST`
    /// (port 8000), `[V6]:PORT`, `unix:PATH`, `fd://N`. A host name resolves to every address
    /// it has.
    pub fn parse(s: &str) -> Result<Vec<Bind>, BindError> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(BindError::UnixWithoutPath(s.into()));
            }
            return Ok(vec![Bind::Unix(PathBuf::from(path))]);
        }
        if let Some(n) = s.strip_prefix("fd://") {
            return match n.parse::<RawFd>() {
                Ok(fd) if fd >= 0 => Ok(vec![Bind::Fd(fd)]),
                _ => Err(BindError::BadFd(s.into())),
            };
        }
        if s.is_empty() {
            return Err(BindError::Empty);
        }
        let (host, port) = split_host_port(s)?;
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| BindError::BadPort {
                given: s.into(),
                port: p.into(),
            })?,
        };
        if host.is_empty() {
            return Ok(vec![Bind::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            ))]);
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Bind::Tcp(SocketAddr::new(ip, port))]);
        }
        let mut addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|source| BindError::Unresolved {
                given: s.into(),
                host: host.into(),
                source,
            })?
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(BindError::NoAddress {
                given: s.into(),
                host: host.into(),
            });
        }
        Ok(addrs.into_iter().map(Bind::Tcp).collect())
    }
}

fn split_host_port(s: &str) -> Result<(&str, Option<&str>), BindError> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| BindError::UnclosedBracket(s.into()))?;
        return match after {
            "" => Ok((host, None)),
            p if p.starts_with(':') => Ok((host, Some(&p[1..]))),
            _ => Err(BindError::AfterBracket(s.into())),
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').unwrap();
            Ok((h, Some(p)))
        }
        // A bare IPv6 address.
        _ => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Bind {
        let mut v = Bind::parse(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.remove(0)
    }

    #[test]
    fn parses_gunicorn_address_forms() {
        assert_eq!(one(":8080"), Bind::Tcp("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(
            one("127.0.0.1:0"),
            Bind::Tcp("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            one("127.0.0.1"),
            Bind::Tcp("127.0.0.1:8000".parse().unwrap())
        );
        assert_eq!(one("[::1]:9000"), Bind::Tcp("[::1]:9000".parse().unwrap()));
        assert_eq!(one("[::]"), Bind::Tcp("[::]:8000".parse().unwrap()));
        assert_eq!(one("::1"), Bind::Tcp("[::1]:8000".parse().unwrap()));
        assert_eq!(one("unix:/tmp/s.sock"), Bind::Unix("/tmp/s.sock".into()));
        assert_eq!(one("unix:///tmp/s.sock"), Bind::Unix("/tmp/s.sock".into()));
        assert_eq!(one("fd://3"), Bind::Fd(3));
        assert!(!Bind::parse("localhost:8000").unwrap().is_empty());
    }

    #[test]
    fn bad_addresses_say_what_is_expected() {
        let err = |s: &str| Bind::parse(s).unwrap_err();
        assert!(matches!(err("1.2.3.4:http"), BindError::BadPort { port, .. } if port == "http"));
        assert!(matches!(err("1.2.3.4:70000"), BindError::BadPort { .. }));
        assert!(err("1.2.3.4:70000").to_string().contains("not a port"));
        assert!(matches!(err("unix:"), BindError::UnixWithoutPath(_)));
        assert!(err("unix:").to_string().contains("needs a path"));
        assert!(err("fd://x").to_string().contains("fd://N"));
        assert!(matches!(err("[::1"), BindError::UnclosedBracket(_)));
        assert!(matches!(err("[::1]x"), BindError::AfterBracket(_)));
        assert!(matches!(err(" "), BindError::Empty));
    }
}
