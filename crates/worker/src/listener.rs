//! The sockets a worker accepts on: bound by the master, inherited across fork.

use std::io;
use std::net::TcpListener as StdTcpListener;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::PathBuf;

/// A listening socket, already bound and listening.
#[derive(Debug)]
pub enum Listener {
    /// TCP, IPv4 or IPv6.
    Tcp(StdTcpListener),
    /// A unix stream socket.
    Unix(StdUnixListener, PathBuf),
}

impl Listener {
    /// A duplicate sharing the same socket (one accept queue), for a worker to own.
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Unix(l, p) => Listener::Unix(l.try_clone()?, p.clone()),
        })
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => write!(f, "http://{a}"),
                Err(_) => f.write_str("http://?"),
            },
            Listener::Unix(_, p) => write!(f, "unix:{}", p.display()),
        }
    }
}
