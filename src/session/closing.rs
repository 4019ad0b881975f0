//! Closing connections without losing what is on its way.
//!
//! Closing a socket that still has unread input makes the kernel reset the
//! connection, and a reset discards whatever had not been transmitted yet:
//! replies written to a client that was still pipelining, or commands written
//! to a server that had not read them all. So redauth closes its side
//! (a FIN, after TLS's close_notify upstream) and then reads and drops what
//! the peer still sends until it closes too, for at most [`LINGER`].

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
