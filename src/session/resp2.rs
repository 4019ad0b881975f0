//! What a RESP2 client would have been sent, for a RESP2 client whose
//! subscribed connection redauth runs in RESP3 upstream (where AUTH stays
//! allowed): Redis's RESP2 shapes of the subscribed-mode `PING` reply, of
//! (un)subscribe confirmations and of client-side caching invalidations.
//! (Message pushes need no more than their type byte changed; the reply side
//! does that as they stream through.)

use crate::resp::frame;
use crate::resp::pubsub::TrackingPush;
use bytes::{Bytes, BytesMut};

/// PING's reply to a RESP2 subscribed client: `["pong", <arg or "">]`.
pub(super) fn subscribed_pong(arg: Option<&Bytes>) -> Bytes {
    let arg = arg.map_or(&b""[..], |a| &a[..]);
    let mut out = BytesMut::with_capacity(24 + arg.len());
    out.extend_from_slice(b"*2\r\n$4\r\npong\r\n");
    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// A RESP3 (un)subscribe confirmation push as the RESP2 array Redis sends a
/// RESP2 client: `*3`, and a null channel as `$-1`.
pub(super) fn confirmation(frame: &[u8]) -> Vec<u8> {
    let elements = frame::elements(frame);
    let mut out = format!("*{}\r\n", elements.len()).into_bytes();
    for element in elements {
        if element == b"_\r\n" {
            out.extend_from_slice(b"$-1\r\n");
        } else {
            out.extend_from_slice(element);
        }
    }
    out
}

/// What a RESP2 connection would have been sent in place of a RESP3
/// client-side caching push. Redis delivers invalidations to a RESP2 client
/// only as the redirect target of another client's tracking, and only while
/// it is subscribed (to any channel): as a `message` on
/// `__redis__:invalidate` whose payload is the array of keys, or a null
/// bulk string for a flush. `tracking-redir-broken` goes to RESP3 clients
/// only. (A RESP2 client that turned tracking on for itself, without a
/// redirect, gets nothing from Redis; through the switch its own
/// invalidations arrive like redirected ones: see README Limits.)
pub(super) fn tracking(push: TrackingPush, frame: &[u8], subscribed: bool) -> Option<Vec<u8>> {
    const HEAD: &[u8] = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n";
    if push != TrackingPush::Invalidate || !subscribed {
        return None;
    }
    let payload = *frame::elements(frame).get(1)?;
    let mut out = HEAD.to_vec();
    if payload == b"_\r\n" {
        out.extend_from_slice(b"$-1\r\n");
    } else {
        out.extend_from_slice(payload);
    }
    Some(out)
}
