//! Keyless commands in routing mode: on the client's home node (HELLO's
//! protocol and CLIENT SETNAME's name applied to its other legs too), and
//! SCAN, walking the primaries one after another.

use super::merge::{Combine, SCAN_NODE_BITS};
use super::waiting::Waiting;
use super::{frames, is, part_of, Router};
use crate::resp::encode;
use bytes::Bytes;

impl Router<'_> {
    /// A keyless command: on the home node; HELLO's protocol and CLIENT
    /// SETNAME's name are applied to the other legs too, silently.
    pub(super) fn home_command(&mut self, command: Bytes, args: &[&[u8]]) {
        let Some(mut home) = self.home() else { return };
        // A RESP2 PING while subscribed is answered `["pong", …]` by a
        // subscribed connection: ask one that is.
        if is(args, "ping") && !self.resp3 {
            if let Some(leg) = self.legs.legs.iter().find(|l| l.subscribed()) {
                home = leg.port;
            }
        }
        if is(args, "unwatch") {
            if let Some((port, _)) = self.watched.take() {
                let seq = self.entry(1, Combine::One);
                return self.send(port, &command, part_of(seq, 0));
            }
        }
        let seq = self.entry(1, Combine::One);
        let waiting = Waiting {
            frames: frames(args),
            ..part_of(seq, 0)
        };
        self.send(home, &command, waiting);
        let setup = if is(args, "hello") {
            match args.get(1).copied() {
                Some(v @ (b"2" | b"3")) => {
                    self.resp3 = v == b"3";
                    Some(encode::command(&[&b"HELLO"[..], v]).freeze())
                }
                _ => None,
            }
        } else if is(args, "client") && args.len() == 3 && args[1].eq_ignore_ascii_case(b"setname")
        {
            self.name = Some(Bytes::copy_from_slice(args[2]));
            Some(command.clone())
        } else {
            None
        };
        if let Some(setup) = setup {
            for leg in self.legs.legs.iter_mut().filter(|l| l.port != home) {
                leg.send(&setup, Waiting::own());
            }
        }
    }

    /// SCAN: the cursor names the primary (low bits) and its own cursor.
    pub(super) fn scan(&mut self, args: &[&[u8]]) {
        let primaries = self.ctx.directory.primaries();
        let cursor = args
            .get(1)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u64>().ok());
        let Some(cursor) = cursor else {
            return self.local(Bytes::from_static(b"-ERR invalid cursor\r\n"));
        };
        let index = (cursor & ((1 << SCAN_NODE_BITS) - 1)) as usize;
        let Some(&port) = primaries.get(index) else {
            // A cursor from before the topology shrank: that scan is over.
            return self.local(Bytes::from_static(b"*2\r\n$1\r\n0\r\n*0\r\n"));
        };
        let node_cursor = (cursor >> SCAN_NODE_BITS).to_string();
        let mut node_args = args.to_vec();
        node_args[1] = node_cursor.as_bytes();
        let command = encode::command(&node_args).freeze();
        let seq = self.entry(
            1,
            Combine::Scan {
                index,
                count: primaries.len(),
            },
        );
        self.send(port, &command, part_of(seq, 0));
    }
}
