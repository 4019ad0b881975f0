//! The in-memory connection between the router and a leg's session, for a
//! session polled by the router's own task.
//!
//! Unlike `tokio::io::duplex`, nothing here stores or wakes a waker. None is
//! needed while the router polls the session: the router puts a command in
//! and polls the session straight after, and takes the replies out each time
//! it has polled it; the session's other wake-ups (its upstream socket, its
//! timers) wake the router's task, which polls it. Once the router has let
//! the leg go its session only ever sees end-of-file and broken pipe here, so
//! it never waits on this pipe in a task of its own either. The session's
//! replies are taken whole by the router on each poll, so writing never
//! waits (the router holds replies until they are complete in any case).

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default)]
struct State {
    /// Commands for the session, not yet read by it.
    commands: BytesMut,
    /// Replies from the session, not yet taken by the router.
    replies: BytesMut,
    /// The router let the leg go: the session reads end-of-file.
    router_gone: bool,
    /// The session shut down its writing side or ended.
    session_gone: bool,
}

/// Both ends: the router's and the session's.
pub(super) fn pipe() -> (RouterEnd, SessionEnd) {
    let state = Arc::new(Mutex::new(State::default()));
    (
        RouterEnd {
            state: state.clone(),
        },
        SessionEnd { state },
    )
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The router's end.
#[derive(Debug)]
pub(super) struct RouterEnd {
    state: Arc<Mutex<State>>,
}

impl RouterEnd {
    /// Queues bytes for the session to read.
    pub fn send(&self, bytes: &[u8]) {
        lock(&self.state).commands.extend_from_slice(bytes);
    }

    /// Moves the session's replies so far to the end of `into`; whether the
    /// session has stopped writing (nothing more will come).
    pub fn take(&self, into: &mut BytesMut) -> bool {
        let mut state = lock(&self.state);
        // Copied: the pipe's buffer is kept for the next replies, where
        // handing it over would cost an allocation each time.
        into.extend_from_slice(&state.replies);
        state.replies.clear();
        state.session_gone
    }
}

impl RouterEnd {
    /// Lets the session go: it reads end-of-file and can no longer write.
    pub fn close(&self) {
        lock(&self.state).router_gone = true;
    }
}

impl Drop for RouterEnd {
    fn drop(&mut self) {
        self.close();
    }
}

/// The session's end: its client connection.
#[derive(Debug)]
pub(super) struct SessionEnd {
    state: Arc<Mutex<State>>,
}

impl Drop for SessionEnd {
    fn drop(&mut self) {
        lock(&self.state).session_gone = true;
    }
}

impl AsyncRead for SessionEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut state = lock(&self.state);
        if state.commands.is_empty() {
            // End-of-file once the router is gone; else the router polls
            // again when it has put something in (see the module's doc).
            return if state.router_gone {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let n = state.commands.len().min(buf.remaining());
        buf.put_slice(&state.commands[..n]);
        // Advanced past, not split off: a split would make the buffer
        // shared, and count references, for bytes dropped at once.
        state.commands.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SessionEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut state = lock(&self.state);
        if state.router_gone || state.session_gone {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        state.replies.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        lock(&self.state).session_gone = true;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn commands_in_replies_out_and_the_ends_seen_by_both() {
        let (router, mut session) = pipe();
        let mut buf = [0u8; 8];
        // Nothing yet: the session waits (the router polls it again).
        assert!(poll_once(&mut Box::pin(session.read(&mut buf))).is_pending());
        router.send(b"PING\r\n");
        let Poll::Ready(Ok(n)) = poll_once(&mut Box::pin(session.read(&mut buf))) else {
            panic!("the command was not read");
        };
        assert_eq!(&buf[..n], b"PING\r\n");
        assert!(poll_once(&mut Box::pin(session.write_all(b"+PONG\r\n"))).is_ready());
        let mut replies = BytesMut::new();
        assert!(!router.take(&mut replies));
        assert_eq!(&replies[..], b"+PONG\r\n");
        // The session ends: the router sees it once it has taken the rest.
        assert!(poll_once(&mut Box::pin(session.write_all(b"+OK\r\n"))).is_ready());
        drop(session);
        assert!(router.take(&mut replies));
        assert_eq!(&replies[..], b"+PONG\r\n+OK\r\n");
    }

    #[test]
    fn a_session_whose_router_left_reads_end_of_file_and_cannot_write() {
        let (router, mut session) = pipe();
        router.send(b"GET k\r\n");
        drop(router);
        let mut buf = [0u8; 16];
        // What was sent before still arrives, then end-of-file.
        let Poll::Ready(Ok(n)) = poll_once(&mut Box::pin(session.read(&mut buf))) else {
            panic!("the command was not read");
        };
        assert_eq!(&buf[..n], b"GET k\r\n");
        assert!(matches!(
            poll_once(&mut Box::pin(session.read(&mut buf))),
            Poll::Ready(Ok(0))
        ));
        assert!(matches!(
            poll_once(&mut Box::pin(session.write_all(b"+OK\r\n"))),
            Poll::Ready(Err(_))
        ));
    }
}
