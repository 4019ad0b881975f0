//! Replies from the legs: each frame matched to the command it answers,
//! pushes passed on at once, redirects followed, and a lost leg's commands
//! answered with an error.

use super::legs::{Frames, Leg, LegEvent, Waiting};
use super::{cluster_down, Retry, Router, Tx, MAX_REDIRECTS};
use crate::cluster::node::NodeAddr;
use crate::resp::command::SubscribeKind;
use crate::resp::{encode, pubsub};
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

impl Router<'_> {
    pub(super) fn on_leg(&mut self, event: LegEvent) {
        match event {
            LegEvent::Data(port) => loop {
                let Some(leg) = self.legs.get(port) else {
                    return;
                };
                match leg.frame() {
                    Ok(Some(frame)) => self.on_frame(port, frame),
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(peer = %self.peer, port, %error, "a routed node sent invalid RESP");
                        return self.lost(port);
                    }
                }
            },
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
            self.answer(waiting, &error, true);
        }
        if self.home == Some(port) {
            self.home = None;
        }
        if let Tx::Multi {
            pin: Some((p, _)),
            aborted,
            ..
        } = &mut self.tx
        {
            *aborted |= *p == port;
        }
        if self.watched.is_some_and(|(p, _)| p == port) {
            self.watched = None;
        }
    }

    fn on_frame(&mut self, port: u16, frame: Bytes) {
        let Some(leg) = self.legs.get(port) else {
            return;
        };
        let head = leg.waiting.front().cloned();
        let confirms = head.as_ref().is_some_and(|w| w.frames != Frames::One);
        let peek = matches!(frame.first(), Some(b'>' | b'*')).then(|| pubsub::peek(&frame));
        let subscribed = leg.subscribed() || confirms;
        match peek {
            Some(pubsub::Peek::Message | pubsub::Peek::Tracking(_))
                if frame[0] == b'>' || subscribed =>
            {
                return self.out.extend_from_slice(&frame);
            }
            Some(pubsub::Peek::Confirmation(kind)) if frame[0] == b'>' || subscribed => {
                track(leg, kind, &frame);
                if !confirms {
                    // A confirmation no command asked for (a shard channel's
                    // slot moved away): the client hears it as from Redis.
                    return self.out.extend_from_slice(&frame);
                }
            }
            Some(_) if frame[0] == b'>' => return self.out.extend_from_slice(&frame),
            _ => {}
        }
        let Some(waiting) = head else {
            tracing::debug!(peer = %self.peer, port, "a reply from a routed node with no command waiting for it");
            return;
        };
        if frame.first() == Some(&b'-') && waiting.entry.is_some() {
            if let Some(resend) = &waiting.resend {
                if let Some(redirect) = Redirect::of(&frame) {
                    if resend.redirects < MAX_REDIRECTS {
                        leg.waiting.pop_front();
                        leg.owed = None;
                        return self.redirect(waiting, redirect);
                    }
                }
            }
        }
        let owed = leg.owed.unwrap_or(match waiting.frames {
            Frames::One => 1,
            Frames::Confirmations(n) => n,
            Frames::UnsubscribeAll(set) => leg.subscriptions[set].len().max(1) as u32,
        });
        // An error answers a subscribe-family command whole.
        let owed = if frame.first() == Some(&b'-') {
            1
        } else {
            owed
        };
        let last = owed <= 1;
        if last {
            leg.waiting.pop_front();
            leg.owed = None;
        } else {
            leg.owed = Some(owed - 1);
        }
        self.answer(&waiting, &frame, last);
    }

    /// Sends a redirected command where it must go now.
    fn redirect(&mut self, mut waiting: Waiting, redirect: Redirect) {
        let Some(resend) = waiting.resend.as_mut() else {
            return;
        };
        resend.redirects += 1;
        let command = resend.command.clone();
        match redirect {
            Redirect::Moved(port) => {
                let _ = self.ctx.directory.refresh();
                self.send(port, &command, waiting);
            }
            Redirect::Ask(port) => {
                self.send_own(port, &encode::command(&["ASKING"]));
                self.send(port, &command, waiting);
            }
            Redirect::Retry => {
                let _ = self.ctx.directory.refresh();
                let backoff = Duration::from_millis(50 << resend.redirects);
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
            let command = resend.command.clone();
            match self.ctx.directory.owner(resend.slot) {
                Some(port) => self.send(port, &command, retry.waiting),
                None => self.answer(&retry.waiting, &cluster_down(), true),
            }
        }
    }
}

/// Where a redirect sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redirect {
    Moved(u16),
    Ask(u16),
    Retry,
}

impl Redirect {
    /// Reads `-MOVED <slot> <host:port>`, `-ASK …`, `-TRYAGAIN …` and
    /// `-CLUSTERDOWN …` (the address already made local by the leg).
    fn of(frame: &[u8]) -> Option<Redirect> {
        let text = frame.strip_prefix(b"-")?.strip_suffix(b"\r\n")?;
        if text.starts_with(b"TRYAGAIN") || text.starts_with(b"CLUSTERDOWN") {
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
