//! What the router waits for from a leg: a record per command sent, saying
//! which client command (and part of it) each reply frame answers, how many
//! frames answer it, and how to send it again after a redirect.

use crate::resp::command::SubscribeKind;
use bytes::Bytes;

/// What one frame from a leg is for.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    /// The entry (client command) it answers; `None`: a command the router
    /// sent on its own (`ASKING`, a leg's set-up), its reply dropped.
    pub entry: Option<u64>,
    /// Which part of the entry's reply.
    pub part: usize,
    pub frames: Frames,
    /// How to send the command again after a redirect.
    pub resend: Option<Resend>,
}

impl Waiting {
    /// A command the router sent itself; its one reply is dropped.
    pub fn own() -> Waiting {
        Waiting {
            entry: None,
            part: 0,
            frames: Frames::One,
            resend: None,
        }
    }
}

/// How many frames answer a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frames {
    /// One reply.
    One,
    /// A subscribe-family command naming channels: a confirmation each.
    Confirmations(SubscribeKind, u32),
    /// An unsubscribe from everything of one kind: one confirmation per
    /// subscription of its set the leg has when it is answered, or one if
    /// it has none.
    UnsubscribeAll(SubscribeKind),
}

impl Frames {
    /// The confirmations that answer the command, if it is of the subscribe family.
    pub fn confirmed_by(self) -> Option<SubscribeKind> {
        match self {
            Frames::One => None,
            Frames::Confirmations(kind, _) | Frames::UnsubscribeAll(kind) => Some(kind),
        }
    }
}

/// A routed command, kept until it is answered, to be sent again where a
/// redirect says.
#[derive(Debug, Clone)]
pub(super) struct Resend {
    pub command: Bytes,
    pub slot: u16,
    pub redirects: u8,
    pub redo: Redo,
}

impl Resend {
    /// A command routed by `slot`, sent again wherever a redirect says.
    pub fn routed(command: Bytes, slot: u16, redo: Redo) -> Resend {
        Resend {
            command,
            slot,
            redirects: 0,
            redo,
        }
    }
}

/// What a redirect of the command means besides sending it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redo {
    /// Nothing: send it where the redirect says.
    Route,
    /// A WATCH: the transaction that follows goes where it went.
    Watch,
    /// Queued in transaction `id` on a node that no longer serves its slot:
    /// not sent again, but the transaction is replayed at EXEC ([`super::tx`]).
    InTx(u64),
    /// The EXEC of transaction `id`.
    Exec(u64),
}
