//! Transactions in routing mode: pinned to one slot's node (see the module
//! docs of [`super`]), and the other commands that change the router's own
//! state (QUIT, RESET).

use super::merge::Combine;
use super::plan::{self, Own, Plan};
use super::{cluster_down, part_of, Router, Stop, Tx};
use crate::resp::encode;
use bytes::Bytes;

/// Redis's answer to an EXEC after a command was refused while queuing.
const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";

impl Router<'_> {
    /// MULTI, EXEC, DISCARD, QUIT, RESET outside a transaction.
    pub(super) fn own(&mut self, own: Own) {
        match own {
            Own::Multi => match self.watched {
                Some((port, slot)) => {
                    self.tx = Tx::Multi {
                        pin: Some((port, slot)),
                        held: Vec::new(),
                        aborted: false,
                    };
                    let seq = self.entry(1, Combine::One);
                    self.send(port, &encode::command(&["MULTI"]).freeze(), part_of(seq, 0));
                }
                None => {
                    self.tx = Tx::Multi {
                        pin: None,
                        held: Vec::new(),
                        aborted: false,
                    };
                    self.local(encode::ok());
                }
            },
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
    pub(super) fn in_multi(&mut self, command: Bytes, args: &[Bytes], plan: Plan) {
        let Tx::Multi { pin, held, aborted } = std::mem::take(&mut self.tx) else {
            return;
        };
        let (mut pin, mut held, mut aborted) = (pin, held, aborted);
        match plan {
            Plan::Own(Own::Exec) => {
                self.watched = None;
                match pin {
                    _ if aborted => {
                        if let Some((port, _)) = pin {
                            self.send_own(port, &encode::command(&["DISCARD"]).freeze());
                        }
                        self.local(Bytes::from_static(EXECABORT));
                    }
                    Some((port, _)) => {
                        let seq = self.entry(1, Combine::One);
                        self.send(port, &command, part_of(seq, 0));
                    }
                    None if held.is_empty() => self.local(Bytes::from_static(b"*0\r\n")),
                    None => {
                        let Some(home) = self.home() else { return };
                        self.send_own(home, &encode::command(&["MULTI"]).freeze());
                        for held in held {
                            self.send_own(home, &held);
                        }
                        let seq = self.entry(1, Combine::One);
                        self.send(home, &command, part_of(seq, 0));
                    }
                }
                return;
            }
            Plan::Own(Own::Discard) => {
                self.watched = None;
                match pin {
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
                if let Some((port, _)) = pin {
                    self.send_own(port, &encode::command(&["DISCARD"]).freeze());
                }
                self.watched = None;
                return self.own(own);
            }
            Plan::Slot(slot) => match pin {
                Some((port, pinned)) if pinned == slot => {
                    let seq = self.entry(1, Combine::One);
                    self.send(port, &command, part_of(seq, 0));
                }
                Some(_) => {
                    aborted = true;
                    self.local(Bytes::from_static(plan::CROSSSLOT));
                }
                None => match self.ctx.directory.owner(slot) {
                    Some(port) => {
                        pin = Some((port, slot));
                        self.send_own(port, &encode::command(&["MULTI"]).freeze());
                        for held in held.drain(..) {
                            self.send_own(port, &held);
                        }
                        let seq = self.entry(1, Combine::One);
                        self.send(port, &command, part_of(seq, 0));
                    }
                    None => {
                        aborted = true;
                        self.local(cluster_down());
                    }
                },
            },
            Plan::Split { .. } => {
                aborted = true;
                self.local(Bytes::from_static(plan::CROSSSLOT));
            }
            Plan::Reply(reply) => {
                aborted |= reply.starts_with(b"-");
                self.local(if reply.starts_with(b"-") {
                    reply
                } else {
                    Bytes::from_static(b"+QUEUED\r\n")
                });
            }
            Plan::Home | Plan::Every(_) | Plan::Scan => match pin {
                Some((port, _)) => {
                    let seq = self.entry(1, Combine::One);
                    self.send(port, &command, part_of(seq, 0));
                }
                None => {
                    held.push(command);
                    self.local(Bytes::from_static(b"+QUEUED\r\n"));
                }
            },
        }
        let _ = args;
        self.tx = Tx::Multi { pin, held, aborted };
    }
}
