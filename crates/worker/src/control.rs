//! Repository control's channel between the workers and the master (`--model-control
//! explicit`): a worker asks, the master answers once a new generation serves the change.
//!
//! The master makes one datagram socket pair before it forks anything and keeps one end;
//! every worker inherits the other. A worker asks by sending one datagram (the change, as
//! JSON) with the write end of a fresh pipe attached (`SCM_RIGHTS`): the master keeps that
//! descriptor while the change waits its turn and a reload makes it, then writes its answer,
//! one JSON line, into it. Datagrams never interleave, whichever workers send at once, and
//! each answer goes to the request that asked, with no identifier to match. The answer ends
//! at its newline, not at end of file: children forked while a change is under way (the
//! new generation's workers, a proof) hold copies of its pipe until they close them.
//!
//! No signal is involved, and nothing here knows models: the change is
//! [`serve_app::ModelChange`], which the model app asks for and the master hands to the
//! reload.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use nix::fcntl::OFlag;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serve_app::{ChangeRefused, ModelChange, Repository};
use tokio::io::AsyncBufReadExt;

/// The largest change a worker sends (the configuration a load gives is most of it); the
/// master reads datagrams of this size.
pub const MAX_REQUEST: usize = 256 * 1024;

/// The change as the master reads it.
pub fn encode_change(change: &ModelChange) -> Vec<u8> {
    let value = match change {
        ModelChange::Load { model, config } => {
            serde_json::json!({ "verb": "load", "model": model, "config": config })
        }
        ModelChange::Unload { model } => serde_json::json!({ "verb": "unload", "model": model }),
    };
    value.to_string().into_bytes()
}

/// The change a worker sent.
pub fn decode_change(bytes: &[u8]) -> Result<ModelChange, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not a change: {e}"))?;
    let text = |key: &str| value.get(key).and_then(serde_json::Value::as_str);
    let model = text("model").ok_or("a change names its model")?.to_owned();
    match text("verb") {
        Some("load") => Ok(ModelChange::Load {
            model,
            config: text("config").map(str::to_owned),
        }),
        Some("unload") => Ok(ModelChange::Unload { model }),
        other => Err(format!("unknown verb {other:?}")),
    }
}

/// The master's answer: one JSON line.
pub fn encode_answer(answer: &Result<(), ChangeRefused>) -> Vec<u8> {
    let value = match answer {
        Ok(()) => serde_json::json!({ "status": 200 }),
        Err(r) => serde_json::json!({ "status": r.status.as_u16(), "error": r.message }),
    };
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line
}

fn decode_answer(line: &str) -> Result<(), ChangeRefused> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ChangeRefused {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("the master's answer cannot be read: {e}"),
    })?;
    let status = value
        .get("status")
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::OK {
        return Ok(());
    }
    Err(ChangeRefused {
        status,
        message: value
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the master refused the change")
            .to_owned(),
    })
}

/// The handle the worker gives its app ([`serve_app::Context::repository`]): each change
/// asks the master through `socket` and waits at most `timeout` for its answer.
pub(crate) fn repository(socket: OwnedFd, timeout: Duration) -> Repository {
    let socket = Arc::new(socket);
    Repository::new(move |change| {
        let socket = Arc::clone(&socket);
        Box::pin(async move { ask(&socket, change, timeout).await })
    })
}

async fn ask(
    socket: &OwnedFd,
    change: ModelChange,
    timeout: Duration,
) -> Result<(), ChangeRefused> {
    let what = format!("{} of model \"{}\"", change.verb(), change.model());
    let refused = |status, message: String| ChangeRefused { status, message };
    let request = encode_change(&change);
    if request.len() > MAX_REQUEST {
        return Err(refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{what}: the request is {} bytes, more than the {MAX_REQUEST} a change may take",
                request.len()
            ),
        ));
    }
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| {
        refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what}: cannot make a pipe for the master's answer: {e}"),
        )
    })?;
    let fds = [write.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(&request)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(|e| {
        refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what}: cannot reach the master ({e}); retry"),
        )
    })?;
    // The master holds its own copy now.
    drop(write);
    let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read).map_err(|e| {
        refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what}: cannot wait for the master's answer: {e}"),
        )
    })?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(pipe);
    match tokio::time::timeout(timeout, reader.read_line(&mut line)).await {
        Err(_) => Err(refused(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "{what}: not served yet after {} s (--model-load-timeout); the change goes on: \
                 GET /v2/models/{}/ready or the repository index tells when it is done",
                timeout.as_secs_f64(),
                change.model()
            ),
        )),
        Ok(Err(e)) => Err(refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what}: cannot read the master's answer: {e}"),
        )),
        Ok(Ok(_)) if !line.ends_with('\n') => Err(refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what}: the master ended without answering (is the server stopping?)"),
        )),
        Ok(Ok(_)) => decode_answer(&line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_answers_read_back() {
        for change in [
            ModelChange::Load {
                model: "iris".into(),
                config: Some("{\"max_batch_size\": 4}\n".into()),
            },
            ModelChange::Load {
                model: "iris".into(),
                config: None,
            },
            ModelChange::Unload {
                model: "wine".into(),
            },
        ] {
            assert_eq!(decode_change(&encode_change(&change)).unwrap(), change);
        }
        assert!(decode_change(b"{\"verb\":\"reload\",\"model\":\"x\"}").is_err());
        let line = |a| String::from_utf8(encode_answer(&a)).unwrap();
        assert_eq!(decode_answer(&line(Ok(()))), Ok(()));
        let refused = ChangeRefused {
            status: StatusCode::BAD_REQUEST,
            message: "model x: no such operator\nFoo".into(),
        };
        let l = line(Err(refused.clone()));
        assert_eq!(l.matches('\n').count(), 1, "one line: {l}");
        assert_eq!(decode_answer(&l), Err(refused));
    }
}
