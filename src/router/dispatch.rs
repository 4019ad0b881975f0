//! The request side of routing mode: whole commands read from the client,
//! each planned ([`super::plan`]) and sent on its way: to its slot's node
//! (behind the client's commands for that slot still in flight), split, to
//! every primary, or answered here.

use super::legs::Leg;
use super::merge::Combine;
use super::order::Behind;
use super::plan::{self, Plan};
use super::waiting::{Frames, Redo, Resend, Waiting};
use super::{cluster_down, frames, is, part_of, Retry, Router, Stop, RETRY};
use crate::resp::request::Request;
use crate::resp::{encode, frame};
use bytes::{Bytes, BytesMut};
use std::ops::Range;
use tokio::time::Instant;

impl Router<'_> {
    /// Reads every whole command in `input` and sends it on its way.
    pub(super) fn requests(&mut self, input: &mut BytesMut) {
        let max_bulk = self.ctx.settings.max_bulk;
        while self.accepting() {
            let request = match Request::parse(input, max_bulk) {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(error) => {
                    self.local(error.reply());
                    self.stop = Some(Stop::Close);
                    return;
                }
            };
            match request {
                Request::Ignored { len } => {
                    let _ = input.split_to(len);
                }
                Request::Inline { len, args } => {
                    let _ = input.split_to(len);
                    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
                    self.command(&encode::command(&args).freeze(), &refs);
                }
                Request::Multibulk {
                    argc,
                    head_len,
                    name,
                    mut body,
                } => {
                    // Where the arguments after the name are, noted as the
                    // scan reads their headers.
                    let mut places = std::mem::take(&mut self.places);
                    places.clear();
                    let scanned = body.advance_noting(&input[head_len..], max_bulk, |at| {
                        places.push(head_len + at.start..head_len + at.end);
                    });
                    match scanned {
                        Ok(advance) if advance.done => {
                            let command = input.split_to(head_len + advance.consumed).freeze();
                            self.multibulk(&command, argc, name, &places);
                        }
                        Ok(_) => {
                            self.places = places;
                            return;
                        }
                        Err(error) => {
                            self.local(error.reply());
                            self.stop = Some(Stop::Close);
                            return;
                        }
                    }
                    self.places = places;
                }
            }
        }
    }

    /// A whole multibulk `command` of `argc` arguments: its name at `name`
    /// and the others at `places`. `name` is `None` for a name too long to
    /// be one, which the head left to the body's scan (`places` then holds
    /// the arguments after it).
    fn multibulk(
        &mut self,
        command: &Bytes,
        argc: u32,
        name: Option<Range<usize>>,
        places: &[Range<usize>],
    ) {
        let Some(name) = name else {
            let mut args = Vec::with_capacity(argc as usize);
            frame::each_argument(command, argc, |arg| args.push(arg));
            return self.command(command, &args);
        };
        // (The scan read every argument in, so every place is in `command`.)
        let arg = |at: &Range<usize>| command.get(at.clone()).unwrap_or_default();
        // The arguments as slices of the command: on the stack for all but
        // long commands.
        let mut short: [&[u8]; 8] = [&[]; 8];
        if places.len() < short.len() {
            short[0] = arg(&name);
            for (slot, at) in short[1..].iter_mut().zip(places) {
                *slot = arg(at);
            }
            self.command(command, &short[..=places.len()]);
        } else {
            let mut long = Vec::with_capacity(places.len() + 1);
            long.push(arg(&name));
            long.extend(places.iter().map(arg));
            self.command(command, &long);
        }
    }

    pub(super) fn command(&mut self, command: &Bytes, args: &[&[u8]]) {
        if let Some(refusal) = self.subscribed_refusal(args) {
            return self.local(refusal);
        }
        let plan = plan::plan(args);
        if let Some(multi) = self.tx.take() {
            return self.in_multi(multi, command.clone(), plan);
        }
        match plan {
            Plan::Slot(slot) => {
                let Some(port) = self.route(slot) else { return };
                let redo = if is(args, "watch") {
                    self.watched = Some((port, slot));
                    Redo::Watch
                } else {
                    Redo::Route
                };
                let seq = self.entry(1, Combine::One);
                let waiting = Waiting {
                    entry: Some(seq),
                    part: 0,
                    frames: frames(args),
                    resend: Some(Resend::routed(command.clone(), slot, redo)),
                };
                self.dispatch(port, slot, command, waiting);
            }
            Plan::Home => self.home_command(command.clone(), args),
            Plan::Split { parts, combine } => {
                let owners: Option<Vec<u16>> =
                    parts.iter().map(|(_, slot)| self.route(*slot)).collect();
                let Some(owners) = owners else { return };
                let seq = self.entry(parts.len(), combine);
                for (part, ((args, slot), port)) in parts.into_iter().zip(owners).enumerate() {
                    let command = encode::command(&args).freeze();
                    let waiting = Waiting {
                        entry: Some(seq),
                        part,
                        frames: Frames::One,
                        resend: Some(Resend::routed(command.clone(), slot, Redo::Route)),
                    };
                    self.dispatch(port, slot, &command, waiting);
                }
            }
            Plan::Every(how) => {
                let primaries = self.ctx.directory.primaries();
                if primaries.is_empty() {
                    return self.local(cluster_down());
                }
                let seq = self.entry(primaries.len(), how);
                for (part, &port) in primaries.iter().enumerate() {
                    self.send(port, command, part_of(seq, part));
                }
            }
            Plan::Scan => self.scan(args),
            Plan::Reply(reply) => self.local(reply),
            Plan::Own(own) => self.own(own),
        }
    }

    /// A RESP2 client with subscriptions may only (un)subscribe, PING, QUIT
    /// and RESET: Redis's refusal of anything else (a command Redis does not
    /// know is left to the node, which says so).
    pub(super) fn subscribed_refusal(&self, args: &[&[u8]]) -> Option<Bytes> {
        if self.resp3 || !self.legs.legs.iter().any(Leg::subscribed) {
            return None;
        }
        let name = args.first()?;
        let allowed = ["ping", "quit", "reset"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
            || matches!(
                frames(args),
                Frames::Confirmations(..) | Frames::UnsubscribeAll(_)
            );
        let known = crate::cluster::keys::lookup(args)?;
        (!allowed).then(|| {
            encode::error(&format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                known.name()
            ))
        })
    }

    /// Where a new command for `slot` goes: behind this client's commands
    /// for the slot still in flight, else to its owner ([`order`]). `None`
    /// after answering `-CLUSTERDOWN`; [`RETRY`] when it must wait behind a
    /// retry.
    pub(super) fn route(&mut self, slot: u16) -> Option<u16> {
        match self.order.behind(slot) {
            Some(Behind::Port(port)) => Some(port),
            Some(Behind::Retry) => Some(RETRY),
            None => self.owner(slot),
        }
    }

    /// Sends a new command routed by `slot` to `port` (or, [`RETRY`], to
    /// the retry list behind the slot's other retries), counting it in flight.
    pub(super) fn dispatch(&mut self, port: u16, slot: u16, command: &[u8], waiting: Waiting) {
        self.order.sent(slot, port);
        if port == RETRY {
            let at = self
                .retries
                .iter()
                .map(|r| r.at)
                .max()
                .unwrap_or_else(Instant::now);
            return self.retries.push(Retry { at, waiting });
        }
        self.send(port, command, waiting);
    }

    /// The port of the primary serving `slot`; `None` after answering the
    /// client `-CLUSTERDOWN` when no node serves it.
    pub(super) fn owner(&mut self, slot: u16) -> Option<u16> {
        let owner = self.ctx.directory.owner(slot);
        if owner.is_none() {
            let _ = self.ctx.directory.refresh();
            self.local(cluster_down());
        }
        owner
    }

    /// The client's home node (the first primary, chosen once).
    pub(super) fn home(&mut self) -> Option<u16> {
        if self.home.is_none() {
            self.home = self.ctx.directory.primaries().first().copied();
        }
        if self.home.is_none() {
            self.local(cluster_down());
        }
        self.home
    }
}
