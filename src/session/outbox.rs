//! What the request side has ready for the upstream, and the records that go
//! with it to the reply side.
//!
//! Each command written upstream either is ordinary (one reply, relayed as
//! is: only counted, and announced as one `Replies(n)` record per run) or
//! comes with its own [`Expect`] record. A record always goes out before the
//! bytes it describes are written, so a reply never arrives ahead of it.

use super::expect::ExpectTx;
use super::Expect;
use crate::metrics;
use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub(super) struct Outbox {
    expect: ExpectTx,
    /// Bytes ready for the upstream, accumulated over one read.
    pub out: BytesMut,
    /// Ordinary commands in `out` not yet announced to the reply side.
    unannounced: u32,
    /// Commands handled since the last flush, for the metrics.
    handled: u64,
}

impl Outbox {
    pub fn new(expect: ExpectTx) -> Outbox {
        Outbox {
            expect,
            out: BytesMut::new(),
            unannounced: 0,
            handled: 0,
        }
    }

    /// A client command was handled (forwarded or answered).
    pub fn handled(&mut self) {
        self.handled += 1;
    }

    /// An ordinary command, already in `out` (the fast path moves whole runs
    /// of them at once).
    pub fn counted_in_place(&mut self) {
        self.unannounced += 1;
    }

    /// An ordinary command: one reply if `replied`, relayed.
    pub fn counted(&mut self, frame: BytesMut, replied: bool) {
        if replied {
            self.unannounced += 1;
        }
        self.out.unsplit(frame);
    }

    /// A command whose reply needs the reply side's attention (`None`: it
    /// gets no reply).
    pub fn special(&mut self, frame: BytesMut, expect: Option<Expect>) {
        if let Some(expect) = expect {
            self.announce(expect);
        }
        self.out.unsplit(frame);
    }

    /// A reply made by redauth, in its turn.
    pub fn local(&mut self, reply: Bytes) {
        self.announce(Expect::Local(reply));
    }

    /// Sends a record to the reply side, after any pending ordinary ones.
    pub fn announce(&mut self, expect: Expect) {
        self.announce_counted();
        self.expect.send(expect);
    }

    /// Announces the ordinary commands counted so far, and the metrics; the
    /// bytes to write, if any.
    pub fn take(&mut self) -> Option<BytesMut> {
        self.announce_counted();
        if self.handled > 0 {
            metrics::commands(std::mem::take(&mut self.handled));
        }
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    fn announce_counted(&mut self) {
        if self.unannounced > 0 {
            self.expect.send(Expect::Replies(self.unannounced));
            self.unannounced = 0;
        }
    }

    /// Nothing is waiting to be announced or written.
    pub fn is_empty(&self) -> bool {
        self.unannounced == 0 && self.out.is_empty()
    }

    /// Whether the reply side has fallen behind (the client is not reading).
    pub fn backlogged(&self) -> bool {
        self.expect.backlog().full()
    }

    /// Resolves once the reply side has caught up by half.
    pub async fn drained(&self) {
        self.expect.backlog().drained().await
    }
}
