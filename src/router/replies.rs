//! Replies from the legs: each frame matched to the command it answers,
//! pushes passed on at once, redirects followed, and a lost leg's commands
//! answered with an error.

use super::legs::{Leg, LegEvent};
use super::waiting::{Frames, Redo, Waiting};
use super::{cluster_down, ordered, tx, Retry, Router, MAX_REDIRECTS};
use crate::cluster::directory::Reply;
use crate::cluster::node::NodeAddr;
use crate::cluster::rewrite::Rewrite;
use crate::metrics::{self, RoutedRedirect};
use crate::resp::command::SubscribeKind;
use crate::resp::{encode, pubsub};
use bytes::{Buf, Bytes};
use std::time::Duration;
use tokio::time::Instant;

impl Router<'_> {
    pub(super) fn on_leg(&mut self, event: LegEvent) {
        match event {
            LegEvent::Data(port) => {
                // Frames are handled where they lie, the leg's input set
                // aside meanwhile (no copy, no count of references).
                let Some(leg) = self.legs.get(port) else {
                    return;
                };
                let mut input = std::mem::take(&mut leg.input);
                let mut at = 0;
                loop {
                    let Some(leg) = self.legs.get(port) else {
                        return;
                    };
                    match leg.frame(&input[at..]) {
                        Ok(Some(len)) => {
                            self.on_frame(port, &input[at..at + len]);
                            at += len;
                        }
                        Ok(None) => break,
                        Err(error) => {
                            tracing::warn!(peer = %self.peer, port, %error, "a routed node sent invalid RESP");
                            return self.lost(port);
                        }
                    }
                }
                if let Some(leg) = self.legs.get(port) {
                    input.advance(at);
                    leg.input = input;
                    if leg.attention() {
                        self.hand_over_if_due(port);
                    }
                }
            }
            LegEvent::Closed(port) => self.lost(port),
        }
    }

    /// The leg to `port` ended: what it owed is answered with an error.
    fn lost(&mut self, port: u16) {
        let Some(leg) = self.legs.remove(port) else {
            return;
        };
        let _ = self.ctx.directory.refresh();
        let node = self
            .ctx
            .directory
            .node(port)
            .map_or_else(|| format!("on local port {port}"), |n| n.dial.to_string());
        tracing::info!(peer = %self.peer, %node, "a routed client's connection to a cluster node was lost");
        let error = encode::error(&format!(
            "ERR redauth: the connection to cluster node {node} was lost"
        ));
        for waiting in &leg.waiting {
            if let Some(slot) = ordered(waiting) {
                self.order.settled(slot);
            }
            self.answer(waiting, &error, true);
        }
        if self.home == Some(port) {
            self.home = None;
        }
        if let Some(tx::Multi {
            pin: Some((p, _)),
            aborted,
            ..
        }) = &mut self.tx
        {
            *aborted |= *p == port;
        }
        if self.watched.is_some_and(|(p, _)| p == port) {
            self.watched = None;
        }
    }

    fn on_frame(&mut self, port: u16, frame: &[u8]) {
        let Some(leg) = self.legs.get(port) else {
            return;
        };
        if frame.first() == Some(&b'-')
            && leg.direct()
            && (frame.starts_with(b"-MOVED ") || frame.starts_with(b"-ASK "))
        {
            let local = self.local_redirect(frame);
            return self.on_reply(port, &local);
        }
        self.on_reply(port, frame);
    }

    /// A redirect from a direct leg names the node's own address: made
    /// local, as a session's reply side makes it. One to a node not known
    /// yet (a refresh is asked for) is tried again shortly instead.
    fn local_redirect(&self, frame: &[u8]) -> Bytes {
        let frame = Bytes::copy_from_slice(frame);
        match self.ctx.directory.rewrite(Reply::Redirects, &frame) {
            Rewrite::Unchanged => frame,
            Rewrite::Rewritten(local) => local,
            Rewrite::Unknown(node) => {
                tracing::debug!(peer = %self.peer, %node, "redirected to a cluster node not known yet: refreshing the topology");
                let _ = self.ctx.directory.refresh();
                Bytes::from_static(
                    b"-TRYAGAIN redauth: redirected to a cluster node not known yet\r\n",
                )
            }
        }
    }

    fn on_reply(&mut self, port: u16, frame: &[u8]) {
        let Some(leg) = self.legs.get(port) else {
            return;
        };
        // The common case first: a plain reply (not an error, an array or a
        // push) to a plain command, on a leg with no subscription.
        if !matches!(frame.first(), Some(b'-' | b'*' | b'>'))
            && leg.owed.is_none()
            && !leg.subscribed()
            && leg.waiting.front().is_some_and(|w| {
                w.frames == Frames::One
                    && !matches!(w.resend.as_ref().map(|r| r.redo), Some(Redo::Exec(_)))
            })
        {
            let Some(waiting) = leg.waiting.pop_front() else {
                return;
            };
            if let Some(slot) = ordered(&waiting) {
                self.order.settled(slot);
            }
            return self.answer(&waiting, frame, true);
        }
        let head = leg.waiting.front().cloned();
        let confirms = head.as_ref().and_then(|w| w.frames.confirmed_by());
        let peek = matches!(frame.first(), Some(b'>' | b'*')).then(|| pubsub::peek(frame));
        let subscribed = leg.subscribed() || confirms.is_some();
        match peek {
            Some(pubsub::Peek::Message | pubsub::Peek::Tracking(_))
                if frame[0] == b'>' || subscribed =>
            {
                return self.out.extend_from_slice(frame);
            }
            Some(pubsub::Peek::Confirmation(kind)) if frame[0] == b'>' || subscribed => {
                track(leg, kind, frame);
                if confirms != Some(kind) {
                    // A confirmation no command asked for: the server dropped a
                    // shard channel whose slot moved away (or whose primary is
                    // now a replica). Subscribe again where the slot went.
                    return self.unsolicited(kind, frame);
                }
            }
            Some(_) if frame[0] == b'>' => return self.out.extend_from_slice(frame),
            _ => {}
        }
        let Some(waiting) = head else {
            tracing::debug!(peer = %self.peer, port, "a reply from a routed node with no command waiting for it");
            return;
        };
        match waiting.resend.as_ref().map(|r| (r.redo, r.redirects)) {
            Some((Redo::Exec(id), _)) => {
                leg.waiting.pop_front();
                leg.owed = None;
                return self.exec_answered(id, &waiting, frame);
            }
            Some((redo, redirects)) if frame.first() == Some(&b'-') => {
                if let Some(redirect) = Redirect::of(frame) {
                    if let Redo::InTx(id) = redo {
                        leg.waiting.pop_front();
                        leg.owed = None;
                        return self.queued_elsewhere(id, &waiting, redirect, frame);
                    }
                    if redirects < MAX_REDIRECTS {
                        leg.waiting.pop_front();
                        leg.owed = None;
                        return self.redirect(waiting, redirect);
                    }
                }
            }
            _ => {}
        }
        let owed = leg.owed.unwrap_or(match waiting.frames {
            Frames::One => 1,
            Frames::Confirmations(_, n) => n,
            Frames::UnsubscribeAll(kind) => leg.subscriptions[kind.set()].len().max(1) as u32,
        });
        // An error answers a subscribe-family command whole.
        let owed = if frame.first() == Some(&b'-') {
            1
        } else {
            owed
        };
        if waiting.entry.is_none() && frame.first() == Some(&b'-') {
            let text = String::from_utf8_lossy(&frame[1..frame.len().saturating_sub(2)]);
            tracing::warn!(peer = %self.peer, port, error = %text, "a command redauth sent on a routed client's behalf failed");
        }
        let last = owed <= 1;
        if last {
            leg.waiting.pop_front();
            leg.owed = None;
            if let Some(slot) = ordered(&waiting) {
                self.order.settled(slot);
            }
        } else {
            leg.owed = Some(owed - 1);
        }
        self.answer(&waiting, frame, last);
    }

    /// A confirmation no command of the client's asked for. An
    /// `sunsubscribe` means the node dropped a shard channel (its slot moved,
    /// or the node became a replica): the channel is subscribed to again on
    /// the slot's owner (a `-MOVED` from a stale map is followed), as a
    /// cluster client would, and the client hears nothing of it. Anything
    /// else is passed on as Redis sent it.
    fn unsolicited(&mut self, kind: SubscribeKind, frame: &[u8]) {
        let channel = match pubsub::confirmed_channel(frame) {
            Some(Some(channel)) if kind == SubscribeKind::SUnsubscribe => Bytes::from(channel),
            _ => return self.out.extend_from_slice(frame),
        };
        let slot = crate::cluster::slot::slot(&channel);
        let Some(port) = self.ctx.directory.owner(slot) else {
            return self.out.extend_from_slice(frame);
        };
        tracing::debug!(peer = %self.peer, port, "a shard channel's node dropped it: subscribing again where its slot is");
        let command = encode::command(&[&b"SSUBSCRIBE"[..], &channel]).freeze();
        let waiting = Waiting {
            entry: None,
            part: 0,
            frames: Frames::Confirmations(SubscribeKind::SSubscribe, 1),
            resend: Some(super::waiting::Resend::routed(
                command.clone(),
                slot,
                Redo::Route,
            )),
        };
        self.send(port, &command, waiting);
    }

    /// Sends a redirected command where it must go now.
    fn redirect(&mut self, mut waiting: Waiting, redirect: Redirect) {
        let ordered = ordered(&waiting);
        let Some(resend) = waiting.resend.as_mut() else {
            return;
        };
        resend.redirects += 1;
        let (command, slot, redo, redirects) = (
            resend.command.clone(),
            resend.slot,
            resend.redo,
            resend.redirects,
        );
        match redirect {
            Redirect::Moved(port) => {
                metrics::router_redirect(RoutedRedirect::Moved);
                let _ = self.ctx.directory.refresh();
                if redo == Redo::Watch {
                    self.watched = Some((port, slot));
                }
                if ordered.is_some() {
                    self.order.resent(slot, port);
                }
                self.send(port, &command, waiting);
            }
            Redirect::Ask(port) => {
                metrics::router_redirect(RoutedRedirect::Ask);
                self.send_own(port, &encode::command(&["ASKING"]));
                if ordered.is_some() {
                    self.order.resent(slot, port);
                }
                self.send(port, &command, waiting);
            }
            Redirect::Retry => {
                metrics::router_redirect(RoutedRedirect::Retry);
                if ordered.is_some() {
                    self.order.retrying(slot);
                }
                let _ = self.ctx.directory.refresh();
                let backoff = Duration::from_millis(50 << redirects);
                self.retries.push(Retry {
                    at: Instant::now() + backoff,
                    waiting,
                });
            }
        }
    }

    /// Sends the retries that are due to their slot's owner now.
    pub(super) fn retry_due(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<Retry>, Vec<Retry>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.at <= now);
        self.retries = later;
        for retry in due {
            let Some(resend) = &retry.waiting.resend else {
                continue;
            };
            let (command, slot) = (resend.command.clone(), resend.slot);
            let ordered = ordered(&retry.waiting).is_some();
            match self.ctx.directory.owner(slot) {
                Some(port) => {
                    if ordered {
                        self.order.retried(slot, port);
                    }
                    self.send(port, &command, retry.waiting);
                }
                None => {
                    if ordered {
                        self.order.settled(slot);
                    }
                    self.answer(&retry.waiting, &cluster_down(), true);
                }
            }
        }
    }
}

/// Where a redirect sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Redirect {
    Moved(u16),
    Ask(u16),
    Retry,
}

impl Redirect {
    /// Reads `-MOVED <slot> <host:port>`, `-ASK …`, `-TRYAGAIN …` and
    /// `-CLUSTERDOWN …` (the address already made local by the leg).
    pub(super) fn of(frame: &[u8]) -> Option<Redirect> {
        let text = frame.strip_prefix(b"-")?.strip_suffix(b"\r\n")?;
        // Not executed: a multi-key command during a migration, a cluster
        // without a quorum, a blocked command whose primary became a replica.
        if text.starts_with(b"TRYAGAIN")
            || text.starts_with(b"CLUSTERDOWN")
            || text.starts_with(b"UNBLOCKED")
        {
            return Some(Redirect::Retry);
        }
        let mut words = text.split(|&b| b == b' ');
        let kind = words.next()?;
        let _slot = words.next()?;
        let port = NodeAddr::parse(words.next()?)?.port;
        match kind {
            b"MOVED" => Some(Redirect::Moved(port)),
            b"ASK" => Some(Redirect::Ask(port)),
            _ => None,
        }
    }
}

/// Follows a confirmation in the leg's subscription sets.
fn track(leg: &mut Leg, kind: SubscribeKind, frame: &[u8]) {
    if let Some(Some(channel)) = pubsub::confirmed_channel(frame) {
        let set = &mut leg.subscriptions[kind.set()];
        if kind.adds() {
            set.insert(channel);
        } else {
            set.remove(&channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_read_with_their_local_port() {
        assert_eq!(
            Redirect::of(b"-MOVED 3999 127.0.0.1:7001\r\n"),
            Some(Redirect::Moved(7001))
        );
        assert_eq!(
            Redirect::of(b"-ASK 3999 localhost:7002\r\n"),
            Some(Redirect::Ask(7002))
        );
        assert_eq!(
            Redirect::of(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(Redirect::Retry)
        );
        assert_eq!(
            Redirect::of(b"-CLUSTERDOWN The cluster is down\r\n"),
            Some(Redirect::Retry)
        );
        assert_eq!(Redirect::of(b"-ERR wrong number of arguments\r\n"), None);
        assert_eq!(Redirect::of(b"-MOVED garbage\r\n"), None);
    }
}
