//! `serve --probe`: a health check with no curl in the image.
//!
//! It asks `GET /v2/health/ready` of the server listening at the first address the same
//! configuration binds (flags, `SERVE_CMD_ARGS`, the config file, `$PORT`), so a container's
//! `HEALTHCHECK CMD ["serve", "--probe"]` follows wherever `-e PORT=...` moved the server:
//! the first `--metrics-bind` address when there is one (cleartext, and open to a probe even
//! when clients must present certificates), else the first `--bind` one, over TLS when the
//! server speaks it there (the certificate of `--certfile` is expected, its name not
//! checked). A wildcard address (`0.0.0.0`, `[::]`) is asked on the loopback address of its
//! family. Exit 0 when the answer is 200; 1 otherwise, with one line on stderr saying why.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use serve_tls::rustls::pki_types::ServerName;
use serve_tls::rustls::{ClientConfig, ClientConnection, StreamOwned};

use serve_settings::Bind;

/// How long the probe waits to connect, and then for the whole answer.
const TIMEOUT: Duration = Duration::from_secs(5);

const REQUEST: &[u8] =
    b"GET /v2/health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Runs the probe; the process's exit code.
pub fn run(config: &serve_settings::Config) -> i32 {
    let asked = match config.metrics_bind.as_deref() {
        Some(metrics) if !metrics.is_empty() => ask(metrics, None),
        _ => serve_tls::probe_client(&config.values).and_then(|tls| ask(&config.binds, tls)),
    };
    match asked {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("serve --probe: {why}");
            1
        }
    }
}

fn ask(binds: &[Bind], tls: Option<Arc<ClientConfig>>) -> Result<(), String> {
    let bind = binds.first().ok_or("the configuration binds no address")?;
    let answer = match bind {
        Bind::Tcp(addr) => {
            let addr = reachable(*addr);
            let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let _ = s.set_write_timeout(Some(TIMEOUT));
            match tls {
                None => exchange(&mut s, &addr.to_string())?,
                Some(config) => {
                    let name = ServerName::IpAddress(addr.ip().into());
                    let conn = ClientConnection::new(config, name)
                        .map_err(|e| format!("cannot start TLS with {addr}: {e}"))?;
                    let mut tls = StreamOwned::new(conn, s);
                    exchange(&mut tls, &format!("https://{addr}"))?
                }
            }
        }
        Bind::Unix(path) => {
            let mut s = UnixStream::connect(path)
                .map_err(|e| format!("cannot connect to unix:{}: {e}", path.display()))?;
            let _ = s.set_read_timeout(Some(TIMEOUT));
            let _ = s.set_write_timeout(Some(TIMEOUT));
            exchange(&mut s, &format!("unix:{}", path.display()))?
        }
        Bind::Fd(n) => {
            return Err(format!(
                "fd://{n} is a socket the server inherited, which a probe cannot reach; pass \
                 -b with the address the server listens at"
            ));
        }
    };
    let status = answer
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("");
    if status == "200" {
        return Ok(());
    }
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    Err(format!("{bind} is not ready: {status} {body}"))
}

/// The address to ask for a bind address: the loopback one for a wildcard.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Sends the request and reads the whole answer (the server closes after it).
fn exchange<S: Read + Write>(stream: &mut S, at: &str) -> Result<String, String> {
    stream
        .write_all(REQUEST)
        .map_err(|e| format!("cannot ask {at}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(64 << 10)
        .read_to_end(&mut answer)
        .map_err(|e| format!("no answer from {at}: {e}"))?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_asked_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(v4), "127.0.0.1:8080".parse().unwrap());
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(v6), "[::1]:8080".parse().unwrap());
        let there: SocketAddr = "10.1.2.3:80".parse().unwrap();
        assert_eq!(reachable(there), there);
    }

    #[test]
    fn an_inherited_socket_cannot_be_probed() {
        let e = ask(&[Bind::Fd(3)], None).unwrap_err();
        assert!(e.contains("pass -b"), "{e}");
        assert!(ask(&[], None).unwrap_err().contains("no address"));
    }
}
