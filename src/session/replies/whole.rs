//! The reply side's frames that are handled whole rather than streamed:
//! replies to redauth's own commands, pub/sub confirmations, EXEC arrays
//! holding them, client-side caching pushes reshaped for RESP2, and, in
//! cluster mode, replies whose node addresses are rewritten.

use super::{ReplyPump, Role};
use crate::cluster::directory::Reply;
use crate::cluster::Rewrite;
use crate::resp::command::SubscribeKind;
use crate::resp::frame;
use crate::resp::pubsub::{self, Peek};
use crate::resp::ReplyScanner;
use crate::session::consumed::{self, Consumed};
use crate::session::{pass_on, resp2, Expect};
use bytes::{Buf, Bytes};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long a reply naming an unknown node waits for the topology refresh
/// it asked for; then it is relayed as the server sent it.
pub(super) const TOPOLOGY_WAIT: Duration = Duration::from_secs(5);

impl<R, W> ReplyPump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Whether a reply starting with `first` must be seen whole to rewrite
    /// the node addresses it may hold: an error (`-MOVED`, `-ASK`) in
    /// cluster mode. Only there: every other reply keeps the fast path.
    pub(super) fn rewrites(&self, first: u8) -> bool {
        first == b'-' && self.rewriter.is_some()
    }

    /// Relays the reply at the start of the buffer with its node addresses
    /// rewritten, once it is whole: `Some(true)` when it was, `Some(false)`
    /// when more bytes are needed, `None` when it names a node not known yet
    /// (a refresh was asked for: wait for it, then call again).
    pub(super) fn rewrite_frame(&mut self, reply: Reply) -> Result<Option<bool>, String> {
        let mut scanner = ReplyScanner::default();
        let progress = scanner
            .advance(&self.buf)
            .map_err(|e| format!("upstream sent invalid RESP: {e}"))?;
        if !progress.done {
            return Ok(Some(false));
        }
        let len = progress.consumed;
        let Some(directory) = &self.rewriter else {
            pass_on(&mut self.buf, &mut self.out, len);
            return Ok(Some(true));
        };
        let frame = Bytes::copy_from_slice(&self.buf[..len]);
        match directory.rewrite(reply, &frame) {
            Rewrite::Unchanged => pass_on(&mut self.buf, &mut self.out, len),
            Rewrite::Rewritten(new) => {
                self.buf.advance(len);
                self.out.extend_from_slice(&new);
            }
            Rewrite::Unknown(node) if self.topology_wait.is_none() => {
                tracing::debug!(%node, "a reply names a cluster node not known yet: refreshing the topology");
                self.topology_wait = Some(directory.refresh());
                return Ok(None);
            }
            Rewrite::Unknown(node) => {
                tracing::warn!(%node, "a reply names a cluster node still unknown after a topology refresh; relayed as the server sent it");
                pass_on(&mut self.buf, &mut self.out, len);
            }
        }
        self.topology_wait = None;
        Ok(Some(true))
    }

    /// Handles a frame that must be seen whole; true when it was.
    pub(super) fn whole_frame(&mut self, role: Role) -> Result<bool, String> {
        let mut scanner = ReplyScanner::default();
        let progress = scanner
            .advance(&self.buf)
            .map_err(|e| format!("upstream sent invalid RESP: {e}"))?;
        if !progress.done {
            return Ok(false);
        }
        let frame = self.buf.split_to(progress.consumed);
        match role {
            Role::Consumed => {
                let expect = self.queue.pop_front();
                if let (Some(node), Some(Expect::Reauth)) = (&self.node, &expect) {
                    node.reauth(crate::upstream::auth::judge(&frame).is_ok());
                }
                match consumed::answer(expect, frame, &self.slices)? {
                    Consumed::Nothing => {}
                    Consumed::Deliver(reply) => self.out.extend_from_slice(&reply),
                    Consumed::Switched(version) => self.state.switched(version),
                }
            }
            Role::Confirmation(kind) => {
                self.confirmation(kind, &frame);
                if self.translate() && frame.first() == Some(&b'>') {
                    self.out.extend_from_slice(&resp2::confirmation(&frame));
                } else {
                    self.out.unsplit(frame);
                }
            }
            Role::Exec => {
                self.queue.pop_front();
                for element in frame::elements(&frame) {
                    if let Peek::Confirmation(kind) = pubsub::peek(element) {
                        self.confirmation(kind, element);
                    }
                }
                self.out.unsplit(frame);
            }
            Role::Tracking(push) => {
                if let Some(message) = resp2::tracking(push, &frame, self.state.subscriptions.any())
                {
                    self.out.extend_from_slice(&message);
                }
            }
            _ => unreachable!("only whole-frame roles come here"),
        }
        Ok(true)
    }

    /// Tracks subscriptions and counts the confirmation against the command
    /// at the head of the queue, if it is the one being confirmed.
    pub(super) fn confirmation(&mut self, kind: SubscribeKind, frame: &[u8]) {
        if let Some(Expect::Subscribe {
            kind: expected,
            channels,
        }) = self.queue.front()
        {
            if *expected == kind {
                // "Unsubscribe from all" is confirmed once per subscription,
                // or once if there were none.
                let left = self.confirmations_left.unwrap_or_else(|| {
                    if *channels == 0 {
                        self.state.subscriptions.count(kind).max(1) as u32
                    } else {
                        *channels
                    }
                });
                if left <= 1 {
                    self.queue.pop_front();
                    self.confirmations_left = None;
                } else {
                    self.confirmations_left = Some(left - 1);
                }
            }
        }
        if let Some(Some(channel)) = pubsub::confirmed_channel(frame) {
            self.state.subscriptions.confirmed(kind, channel.into());
        }
    }
}
