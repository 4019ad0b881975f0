//! Delivering replies to a client that may be slow to read them.
//!
//! A client that takes none of its replies for the output timeout is given
//! up on, as Redis drops a client past its output buffer limit. While it does
//! not read, the reply side reads nothing more upstream for it, so its
//! replies wait in the server, not in redauth.

use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes all of `out` to `client`, failing if a write makes no progress
/// within `timeout`.
pub(super) async fn write<W>(client: &mut W, out: &[u8], timeout: Duration) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let mut written = 0;
    while written < out.len() {
        let rest = &out[written..];
        // Most writes complete at once: only one that has to wait gets a timer.
        let at_once = std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *client).poll_write(cx, rest) {
                Poll::Ready(done) => Some(done),
                Poll::Pending => None,
            })
        })
        .await;
        let done = match at_once {
            Some(done) => done,
            None => tokio::time::timeout(timeout, client.write(rest))
                .await
                .map_err(|_| output_limit(timeout))?,
        };
        match done? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => written += n,
        }
    }
    client.flush().await
}

/// The error that closes a client whose replies went unread too long.
fn output_limit(timeout: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the client read none of its pending replies for {}; closing it (output limit)",
            humantime::format_duration(timeout)
        ),
    )
}
