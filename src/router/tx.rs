//! Transactions in routing mode, and the other commands that change the
//! router's own state (QUIT, RESET).
//!
//! A transaction is pinned to one slot's node: by its WATCH, or else by the
//! first command with a key (MULTI is answered here until then, and keyless
//! commands before it are held and answered `+QUEUED`). A key in another
//! slot is refused with `-CROSSSLOT` and the EXEC answered `-EXECABORT`, as
//! Redis answers errors found while queuing.
//!
//! The slot may move while the transaction is open: the node then answers a
//! queued command `-MOVED` (or `-ASK`). Nothing was executed, so the client
//! is answered `+QUEUED` and, when the node answers the EXEC (`-EXECABORT`),
//! the transaction is sent again where the redirect said, whole. With a
//! WATCH it is not: the watched key moved, which Redis counts as a change,
//! so the EXEC is answered as for any watched key that changed (a null
//! reply), and the client retries as it would then.

use super::merge::Combine;
use super::plan::{self, Own, Plan};
use super::replies::Redirect;
use super::waiting::{Frames, Redo, Resend, Waiting};
use super::{cluster_down, part_of, Router, Stop};
use crate::metrics::{self, RoutedRedirect};
use crate::resp::encode;
use bytes::Bytes;

/// Redis's answer to an EXEC after a command was refused while queuing.
const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";

/// A transaction between MULTI and EXEC/DISCARD.
#[derive(Debug, Default)]
pub(super) struct Multi {
    /// The node and slot it is pinned to, once known.
    pub pin: Option<(u16, u16)>,
    /// Keyless commands before the pin, answered `+QUEUED` already.
    held: Vec<Bytes>,
    /// A command was refused: EXEC is answered `-EXECABORT`.
    pub aborted: bool,
    /// Its [`Track`], once commands went to the pinned node.
    track: Option<u64>,
}

/// A pinned transaction's commands, kept until its EXEC is answered in case
/// the node redirects them.
#[derive(Debug)]
pub(super) struct Track {
    id: u64,
    /// MULTI is not among them; the held commands are.
    commands: Vec<Bytes>,
    watching: bool,
    /// The first redirect a queued command got.
    moved: Option<Redirect>,
}

impl Router<'_> {
    /// MULTI, EXEC, DISCARD, QUIT, RESET outside a transaction.
    pub(super) fn own(&mut self, own: Own) {
        match own {
            Own::Multi => {
                let mut multi = Multi::default();
                match self.watched {
                    Some((port, slot)) => {
                        multi.pin = Some((port, slot));
                        let seq = self.entry(1, Combine::One);
                        self.send(port, &encode::command(&["MULTI"]), part_of(seq, 0));
                    }
                    None => self.local(encode::ok()),
                }
                self.tx = Some(multi);
            }
            Own::Exec => self.local(Bytes::from_static(b"-ERR EXEC without MULTI\r\n")),
            Own::Discard => self.local(Bytes::from_static(b"-ERR DISCARD without MULTI\r\n")),
            Own::Quit => {
                self.local(encode::ok());
                self.stop = Some(Stop::Close);
            }
            Own::Reset => self.stop = Some(Stop::Reset),
        }
    }

    /// A command between MULTI and EXEC.
    pub(super) fn in_multi(&mut self, mut multi: Multi, command: Bytes, plan: Plan) {
        match plan {
            Plan::Own(Own::Exec) => return self.exec(multi, command),
            Plan::Own(Own::Discard) => {
                self.watched = None;
                self.forget(&multi);
                match multi.pin {
                    Some((port, _)) => {
                        let seq = self.entry(1, Combine::One);
                        self.send(port, &command, part_of(seq, 0));
                    }
                    None => self.local(encode::ok()),
                }
                return;
            }
            Plan::Own(Own::Multi) => self.local(Bytes::from_static(
                b"-ERR MULTI calls can not be nested\r\n",
            )),
            Plan::Own(own @ (Own::Quit | Own::Reset)) => {
                if let Some((port, _)) = multi.pin {
                    self.send_own(port, &encode::command(&["DISCARD"]));
                }
                self.forget(&multi);
                self.watched = None;
                return self.own(own);
            }
            Plan::Slot(slot) => match multi.pin {
                Some((_, pinned)) if pinned == slot => self.queue(&mut multi, command),
                Some(_) => {
                    multi.aborted = true;
                    self.local(Bytes::from_static(plan::CROSSSLOT));
                }
                None => match self.ctx.directory.owner(slot) {
                    Some(port) => {
                        multi.pin = Some((port, slot));
                        self.send_own(port, &encode::command(&["MULTI"]));
                        for held in std::mem::take(&mut multi.held) {
                            self.track(&mut multi).commands.push(held.clone());
                            self.send_own(port, &held);
                        }
                        self.queue(&mut multi, command);
                    }
                    None => {
                        multi.aborted = true;
                        self.local(cluster_down());
                    }
                },
            },
            Plan::Split { .. } => {
                multi.aborted = true;
                self.local(Bytes::from_static(plan::CROSSSLOT));
            }
            Plan::Reply(reply) if reply.starts_with(b"-") => {
                multi.aborted = true;
                self.local(reply);
            }
            Plan::Reply(_) => self.local(Bytes::from_static(b"+QUEUED\r\n")),
            Plan::Home | Plan::Every(_) | Plan::Scan => match multi.pin {
                Some(_) => self.queue(&mut multi, command),
                None => {
                    multi.held.push(command);
                    self.local(Bytes::from_static(b"+QUEUED\r\n"));
                }
            },
        }
        self.tx = Some(multi);
    }

    /// Queues `command` on the pinned node, ready to be replayed.
    fn queue(&mut self, multi: &mut Multi, command: Bytes) {
        let Some((port, slot)) = multi.pin else {
            return;
        };
        let track = self.track(multi);
        track.commands.push(command.clone());
        let id = track.id;
        let seq = self.entry(1, Combine::One);
        let waiting = Waiting {
            resend: Some(Resend::routed(command.clone(), slot, Redo::InTx(id))),
            ..part_of(seq, 0)
        };
        self.send(port, &command, waiting);
    }

    /// The transaction's track, made on first need.
    fn track(&mut self, multi: &mut Multi) -> &mut Track {
        let id = *multi.track.get_or_insert_with(|| {
            self.next_tx += 1;
            self.next_tx
        });
        if !self.txs.iter().any(|t| t.id == id) {
            self.txs.push(Track {
                id,
                commands: Vec::new(),
                watching: self.watched.is_some(),
                moved: None,
            });
        }
        self.txs
            .iter_mut()
            .find(|t| t.id == id)
            .expect("pushed above")
    }

    fn forget(&mut self, multi: &Multi) {
        self.txs.retain(|t| Some(t.id) != multi.track);
    }

    fn exec(&mut self, multi: Multi, command: Bytes) {
        self.watched = None;
        match multi.pin {
            _ if multi.aborted => {
                self.forget(&multi);
                if let Some((port, _)) = multi.pin {
                    self.send_own(port, &encode::command(&["DISCARD"]));
                }
                self.local(Bytes::from_static(EXECABORT));
            }
            Some((port, slot)) => {
                let seq = self.entry(1, Combine::One);
                let redo = multi.track.map_or(Redo::Route, Redo::Exec);
                let waiting = Waiting {
                    resend: Some(Resend::routed(command.clone(), slot, redo)),
                    ..part_of(seq, 0)
                };
                self.send(port, &command, waiting);
            }
            None if multi.held.is_empty() => self.local(Bytes::from_static(b"*0\r\n")),
            None => {
                let Some(home) = self.home() else { return };
                self.send_own(home, &encode::command(&["MULTI"]));
                for held in &multi.held {
                    self.send_own(home, held);
                }
                let seq = self.entry(1, Combine::One);
                self.send(home, &command, part_of(seq, 0));
            }
        }
    }

    /// A queued command was redirected: nothing ran; the client hears
    /// `+QUEUED` and the EXEC's answer decides (see the module docs).
    pub(super) fn queued_elsewhere(
        &mut self,
        id: u64,
        waiting: &Waiting,
        redirect: Redirect,
        frame: &[u8],
    ) {
        match self.txs.iter_mut().find(|t| t.id == id) {
            Some(track) if redirect != Redirect::Retry => {
                track.moved.get_or_insert(redirect);
                self.answer(waiting, b"+QUEUED\r\n", true);
            }
            _ => self.answer(waiting, frame, true),
        }
    }

    /// The node answered the EXEC of transaction `id`: passed on, unless a
    /// queued command was redirected, when the transaction is replayed where
    /// it went (or, watched, answered as a watched key that changed).
    pub(super) fn exec_answered(&mut self, id: u64, waiting: &Waiting, frame: &[u8]) {
        let Some(at) = self.txs.iter().position(|t| t.id == id) else {
            return self.answer(waiting, frame, true);
        };
        let track = self.txs.swap_remove(at);
        // The EXEC itself may be what was redirected.
        let moved = track
            .moved
            .or_else(|| Redirect::of(frame).filter(|r| *r != Redirect::Retry));
        let (port, ask) = match moved {
            Some(Redirect::Moved(port)) => (port, false),
            Some(Redirect::Ask(port)) => (port, true),
            _ => return self.answer(waiting, frame, true),
        };
        if track.watching {
            let null: &[u8] = if self.resp3 { b"_\r\n" } else { b"*-1\r\n" };
            return self.answer(waiting, null, true);
        }
        metrics::router_redirect(if ask {
            RoutedRedirect::Ask
        } else {
            RoutedRedirect::Moved
        });
        let asking = encode::command(&["ASKING"]);
        self.send_own(port, &encode::command(&["MULTI"]));
        for command in &track.commands {
            if ask {
                self.send_own(port, &asking);
            }
            self.send_own(port, command);
        }
        if ask {
            self.send_own(port, &asking);
        }
        let again = Waiting {
            frames: Frames::One,
            resend: None,
            ..waiting.clone()
        };
        self.send(port, &encode::command(&["EXEC"]), again);
    }
}
