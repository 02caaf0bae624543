//! Repository control in the master (`--model-control explicit`): the load and unload
//! requests workers pass on (the channel is `serve_worker::control`), queued and made one at
//! a time, each by a reload whose only difference is the set of models loaded.
//!
//! A change is proven like any reload (the new app is built and warmed in a short-lived
//! child), served by a new generation, and answered once every worker of that generation is
//! ready and every worker of the previous one has stopped accepting (it drains: the worker
//! that asked, which belongs to it, still answers the request it holds), so that no request
//! sent after the answer reaches a generation without the change. A change that cannot be proven is
//! answered with the proof's error and the running generation serves on. A HUP keeps the
//! set of loaded models: the reload reads the configuration and the files again, not
//! `--load-model`.

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};
use serve_app::http::StatusCode;
use serve_app::{ChangeRefused, ModelChange};
use serve_settings::kinds::ModelControlMode;
use serve_worker::control::{MAX_REQUEST, decode_change, encode_answer};

use nix::unistd::Pid;
use serve_worker::State;

use crate::arbiter::{Arbiter, Phase};
use crate::upgrade::Reload;

/// How long an answer waits for the old workers to stop accepting.
const RETIRE_WAIT: Duration = Duration::from_secs(5);

/// The models a generation serves under explicit control, which a reload keeps: handed to
/// the [`crate::Reloader`], which makes the new configuration with them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The models' names.
    pub models: Vec<String>,
    /// The configurations load requests gave, by model.
    pub configs: std::collections::BTreeMap<String, String>,
}

/// A change a worker asked for, and where its answer goes.
struct Pending {
    change: ModelChange,
    reply: OwnedFd,
}

/// The master's side of the channel, and the changes waiting.
pub(crate) struct Control {
    /// Where the workers' requests arrive.
    socket: OwnedFd,
    /// The end each worker inherits.
    workers_end: OwnedFd,
    queue: VecDeque<Pending>,
    /// The change the reload under way makes.
    current: Option<Pending>,
    /// A change its generation serves, answered once these old workers no longer accept
    /// (draining or gone), so that no request after the answer reaches a model it removed.
    answering: Option<(Pending, Vec<Pid>, Instant)>,
    buf: Vec<u8>,
}

impl Control {
    /// The socket pair, made before any fork.
    pub(crate) fn new() -> std::io::Result<Control> {
        let (socket, workers_end) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        Ok(Control {
            socket,
            workers_end,
            queue: VecDeque::new(),
            current: None,
            answering: None,
            buf: vec![0; MAX_REQUEST],
        })
    }

    /// What the master's loop waits on besides signals.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// In a forked worker: its end of the channel; the rest (the master's end, the answers
    /// owed) is dropped with `self`.
    pub(crate) fn into_workers_end(self) -> OwnedFd {
        self.workers_end
    }

    /// Reads every request waiting; those that cannot be read are answered at once.
    fn receive(&mut self) {
        loop {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            let mut space = nix::cmsg_space!([RawFd; 4]);
            let received = recvmsg::<()>(
                std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            );
            let (len, truncated, fds) = match received {
                Ok(msg) => {
                    let mut fds: Vec<RawFd> = Vec::new();
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(list) = c {
                                fds.extend(list);
                            }
                        }
                    }
                    (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC), fds)
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    tracing::error!("Repository control: cannot read a worker's request: {e}");
                    return;
                }
            };
            let mut fds = fds.into_iter().map(|fd| {
                // SAFETY: the kernel just installed this descriptor in this process for the
                // message (SCM_RIGHTS); nothing else owns it, and it is wrapped once.
                unsafe { OwnedFd::from_raw_fd(fd) }
            });
            let Some(reply) = fds.next() else {
                tracing::error!("Repository control: a request came with no answer pipe; ignored");
                continue;
            };
            // A request carries one pipe; any other descriptor is closed here.
            drop(fds.collect::<Vec<_>>());
            let change = if truncated {
                Err(ChangeRefused {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("a change may take {MAX_REQUEST} bytes"),
                })
            } else {
                decode_change(&self.buf[..len]).map_err(|e| ChangeRefused {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("the master cannot read the change: {e}"),
                })
            };
            match change {
                Ok(change) => self.queue.push_back(Pending { change, reply }),
                Err(refused) => answer(reply, &Err(refused)),
            }
        }
    }
}

/// Writes the answer; a requester that left (its worker gone, the wait timed out) is not
/// an error.
fn answer(reply: OwnedFd, result: &Result<(), ChangeRefused>) {
    let line = encode_answer(result);
    if let Err(e) = nix::unistd::write(&reply, &line) {
        tracing::debug!("Repository control: the answer found no one waiting ({e})");
    }
}

impl Arbiter {
    /// What this generation serves under explicit control (`None` without it), which a
    /// reload keeps.
    pub(crate) fn loaded_now(&self) -> Option<Loaded> {
        (self.settings.model_control == ModelControlMode::Explicit).then(|| Loaded {
            models: self.settings.app.models(),
            configs: self.settings.model_configs.clone(),
        })
    }

    /// Reads the workers' requests and starts the next change when nothing else is under
    /// way; while the server stops, answers every request waiting.
    pub(crate) fn advance_control(&mut self) {
        let Some(control) = self.control.as_mut() else {
            return;
        };
        control.receive();
        if matches!(self.phase, Phase::Stopping { .. }) {
            let stopping = Err(ChangeRefused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the server is stopping; no model is loaded or unloaded".into(),
            });
            if let Some((p, _, _)) = control.answering.take() {
                answer(p.reply, &Ok(()));
            }
            for p in control
                .current
                .take()
                .into_iter()
                .chain(control.queue.drain(..))
            {
                answer(p.reply, &stopping);
            }
            return;
        }
        if let Some((_, old, since)) = &control.answering {
            let accepting = old.iter().any(|pid| {
                self.workers
                    .get(pid)
                    .is_some_and(|w| self.board.slot(w.slot).state() == State::Ready)
            });
            // A worker that takes longer than this to see its TERM is stuck; its
            // heartbeat's timeout will see to it.
            if accepting && since.elapsed() < RETIRE_WAIT {
                return;
            }
            if let Some((p, _, _)) = control.answering.take() {
                answer(p.reply, &Ok(()));
            }
        }
        let busy = !matches!(self.reload, Reload::Idle) || matches!(self.phase, Phase::Booting(_));
        if busy || control.current.is_some() {
            return;
        }
        let Some(next) = control.queue.pop_front() else {
            return;
        };
        let what = format!(
            "{} of model \"{}\"",
            next.change.verb(),
            next.change.model()
        );
        let Some(mut loaded) = self.loaded_now() else {
            // A reload turned explicit control off since the worker asked.
            return answer(
                next.reply,
                &Err(ChangeRefused {
                    status: StatusCode::NOT_IMPLEMENTED,
                    message: format!(
                        "{what}: the server no longer runs under --model-control explicit"
                    ),
                }),
            );
        };
        match &next.change {
            ModelChange::Load { model, config } => {
                if !loaded.models.contains(model) {
                    loaded.models.push(model.clone());
                }
                match config {
                    Some(c) => loaded.configs.insert(model.clone(), c.clone()),
                    None => loaded.configs.remove(model),
                };
            }
            ModelChange::Unload { model } => {
                if !loaded.models.contains(model) {
                    tracing::info!("Repository control: {what}: not loaded; nothing to do");
                    return answer(next.reply, &Ok(()));
                }
                loaded.models.retain(|m| m != model);
                loaded.configs.remove(model);
            }
        }
        tracing::info!(
            "Repository control: {what}; the models served will be [{}]",
            loaded.models.join(", ")
        );
        if let Some(control) = self.control.as_mut() {
            control.current = Some(next);
        }
        self.reload_with(Some(loaded));
    }

    /// Whether repository control has work under way (the master's loop then ticks fast).
    pub(crate) fn control_busy(&self) -> bool {
        self.control
            .as_ref()
            .is_some_and(|c| c.current.is_some() || c.answering.is_some() || !c.queue.is_empty())
    }

    /// The current change's generation serves; `retiring` are the workers it replaces, sent
    /// TERM: the answer waits until they no longer accept.
    pub(crate) fn change_served(&mut self, retiring: Vec<Pid>) {
        if let Some(c) = self.control.as_mut()
            && let Some(p) = c.current.take()
        {
            c.answering = Some((p, retiring, Instant::now()));
        }
    }

    /// The reload that makes the current change was given up: answers why.
    pub(crate) fn change_ended(&mut self, result: Result<(), ChangeRefused>) {
        let Some(p) = self.control.as_mut().and_then(|c| c.current.take()) else {
            return;
        };
        let result = result.map_err(|r| ChangeRefused {
            status: r.status,
            message: format!(
                "{} of model \"{}\" failed: {}; the models served before serve on",
                p.change.verb(),
                p.change.model(),
                r.message
            ),
        });
        answer(p.reply, &result);
    }
}
