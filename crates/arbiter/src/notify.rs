//! systemd's readiness protocol (`sd_notify`): with `Type=notify`, systemd waits for READY=1
//! before it counts the service as started, and shows STATUS= in `systemctl status`.

use std::os::unix::net::UnixDatagram;

/// Sends a state line to `$NOTIFY_SOCKET`, when systemd (or anything speaking its protocol)
/// set one. Failures are ignored: notification is a courtesy, never a reason to stop.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::debug!("sd_notify {state:?}: {e}");
    }
}
