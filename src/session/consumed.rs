//! The replies to commands redauth sent itself, which never reach the
//! client: what each one means.

use super::blocking::{self, SliceEnd};
use super::{reauth, Expect};
use crate::upstream::auth;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::UnboundedSender;

/// What the reply side tells the request side about the replies it consumed.
#[derive(Debug)]
pub(super) enum Report {
    /// How a slice of the held blocking command ended.
    Slice(SliceEnd),
    /// The answer to an injected re-authentication.
    Reauth(reauth::Verdict),
}

/// What the reply side does after consuming a reply.
#[derive(Debug)]
pub(super) enum Consumed {
    Nothing,
    /// Deliver this in its place (the answer to a stand-in PING).
    Deliver(Bytes),
    /// redauth's `HELLO <version>` succeeded.
    Switched(u8),
}

/// Takes in `frame`, the whole reply to the command `expect` records;
/// reports on a sliced blocking command and on re-authentications through
/// `slices`. `Err` ends the
/// session: the connection is no longer in a state redauth can vouch for.
pub(super) fn answer(
    expect: Option<Expect>,
    frame: BytesMut,
    slices: &UnboundedSender<Report>,
) -> Result<Consumed, String> {
    let text = || String::from_utf8_lossy(&frame).trim_end().to_string();
    match expect {
        Some(Expect::StandIn(reply)) => return Ok(Consumed::Deliver(reply)),
        Some(Expect::Reauth) => {
            let _ = slices.send(Report::Reauth(reauth::answered(&frame)));
        }
        Some(Expect::Slice) => {
            let _ = slices.send(Report::Slice(SliceEnd::TimedOut(frame.freeze())));
        }
        Some(Expect::LastId) => {
            let _ = slices.send(Report::Slice(SliceEnd::LastId(blocking::last_id(&frame))));
        }
        Some(Expect::Protocol(version)) => {
            if frame.first() == Some(&b'-') {
                return Err(format!(
                    "switching the upstream to RESP{version} failed: {}",
                    text()
                ));
            }
            return Ok(Consumed::Switched(version));
        }
        Some(Expect::ReplyOn) => {
            if frame.first() != Some(&b'+') {
                return Err(format!(
                    "CLIENT REPLY ON before re-authentication failed: {}",
                    text()
                ));
            }
        }
        Some(Expect::AuthAfterReset) => {
            if let Err(refused) = auth::judge(&frame) {
                return Err(format!(
                    "re-authentication after RESET was refused: {refused}"
                ));
            }
        }
        other => unreachable!("{other:?} is not the record of a consumed reply"),
    }
    Ok(Consumed::Nothing)
}
