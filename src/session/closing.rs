//! Closing connections without losing what is on its way.
//!
//! Closing a socket that still has unread input makes the kernel reset the
//! connection, and a reset discards whatever had not been transmitted yet:
//! replies written to a client that was still pipelining, or commands written
//! to a server that had not read them all. So redauth closes its side
//! (a FIN, after TLS's close_notify upstream) and then reads and drops what
//! the peer still sends until it closes too, for at most [`LINGER`].

//!
//! A client that ends its input while a blocking command of its own waits
//! upstream has that command cancelled ([`cancel_at`]), as Redis cancels it
//! when its client closes.

use super::Expect;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// How long a closing connection may take to finish on the other side.
pub const LINGER: Duration = Duration::from_secs(2);

/// Closes a client connection redauth ends (the upstream went away, QUIT, a
/// protocol error, a timeout): its replies already written still arrive.
pub async fn linger<C>(client: &mut C)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let _ = client.shutdown().await;
    drain(client).await;
}

/// Closes an upstream connection that will not be reused: the server is told
/// there is no more input, so it runs every whole command it was sent, drops
/// an incomplete one and any blocked command, and closes. Its last replies are
/// drained in the background.
pub async fn close_upstream<S>(mut stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _ = tokio::time::timeout(LINGER, stream.shutdown()).await;
    tokio::spawn(async move { drain(&mut stream).await });
}

/// Reads and drops until the peer closes, an error, or [`LINGER`].
async fn drain<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// How long after a blocking command was sent its reply may still be on its
/// way: once the client's input has ended, a blocking command with no reply
/// this long after it was sent is taken to be blocked, and is cancelled. A
/// client blocked for a while is cancelled at once, as Redis cancels it when
/// the client closes; one that sent `BLPOP` and its end of input together (a
/// pipe into `nc`) still gets an answer the server gave at once.
pub const BLOCKED_GRACE: Duration = Duration::from_millis(250);

/// When to cancel the command at the head of the reply queue, if ever: only
/// once the client's input ended, only a blocking command (or slice), and
/// [`BLOCKED_GRACE`] after the latest one was sent (at once if that is past).
pub fn cancel_at(
    input_ended: bool,
    blocking_sent: Option<Instant>,
    head: Option<&Expect>,
) -> Option<Instant> {
    match (input_ended, blocking_sent, head) {
        (true, Some(sent), Some(Expect::Blocking | Expect::Slice)) => Some(sent + BLOCKED_GRACE),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_command_is_cancelled_only_after_the_input_ended() {
        let now = Instant::now();
        let head = Some(&Expect::Blocking);
        assert_eq!(cancel_at(false, Some(now), head), None);
        assert_eq!(cancel_at(true, Some(now), Some(&Expect::Replies(1))), None);
        assert_eq!(cancel_at(true, Some(now), head), Some(now + BLOCKED_GRACE));
        assert_eq!(
            cancel_at(true, Some(now), Some(&Expect::Slice)),
            Some(now + BLOCKED_GRACE)
        );
    }

    #[test]
    fn a_client_blocked_for_a_while_is_cancelled_at_once() {
        // Sent long ago: its reply is not on its way, so there is nothing to wait for.
        let long_ago = Instant::now() - Duration::from_secs(10);
        let at = cancel_at(true, Some(long_ago), Some(&Expect::Blocking)).expect("cancelled");
        assert!(at <= Instant::now());
    }
}
