//! The session pumps over in-memory streams, for fuzzing and property tests
//! only: not part of redauth's API, and never used by the relay itself.
//!
//! [`relay_requests`] runs the real request side ([`RequestPump`]) on a
//! client's bytes delivered in reads of chosen sizes, and returns what it
//! wrote upstream, the [`Expect`] records it announced and how it stopped.
//! [`relay_replies`] runs the real reply side ([`ReplyPump`]) on a given
//! queue of records and server bytes, and returns what reached the client.
//! Each call runs to the end of its input on a current-thread runtime. Nothing
//! here re-implements the pumps: the only stand-ins are the streams, a fixed
//! credential, and the other pump (the records go in, or come out, whole).
#![doc(hidden)]

use super::consumed::Report;
use super::replies::ReplyPump;
use super::requests::{RequestPump, Stopped};
use super::{Ended, Expect};
use crate::credentials::{Credential, CredentialFeed, Secret};
use crate::resp::DEFAULT_MAX_BULK;
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// How long a pump may sit waiting with input left before the run is called
/// stalled (a blocking command held with more than 1 MiB queued behind it
/// stops the request side reading, and no reply will ever release it here).
const STALL: Duration = Duration::from_secs(2);

/// What the request side did with a client's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRun {
    /// Everything written upstream, in order.
    pub upstream: Vec<u8>,
    /// The records sent to the reply side, in order.
    pub expects: Vec<Expect>,
    pub stop: RequestStop,
}

/// How the request side stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestStop {
    /// The client's bytes ran out (the client closed).
    InputEnded,
    /// A QUIT or a protocol error was answered; nothing more is read.
    Closing,
    /// It stopped reading with input left (see [`STALL`]).
    Stalled,
    /// Any other end, as the session would log it.
    Other(String),
}

impl RequestRun {
    /// The records with runs of `Replies(n)` added up: how many commands one
    /// record covers depends on how the reads fell, the sequence does not.
    pub fn merged_expects(&self) -> Vec<Expect> {
        let mut merged: Vec<Expect> = Vec::with_capacity(self.expects.len());
        for expect in &self.expects {
            match (merged.last_mut(), expect) {
                (Some(Expect::Replies(total)), Expect::Replies(n)) => *total += n,
                _ => merged.push(expect.clone()),
            }
        }
        merged
    }

    /// Whether the client was answered with a protocol error.
    pub fn protocol_error(&self) -> bool {
        self.expects.iter().any(|e| match e {
            Expect::Local(reply) => reply.starts_with(b"-ERR Protocol error"),
            _ => false,
        })
    }
}

/// What the reply side delivered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRun {
    /// Everything written to the client, in order.
    pub client: Vec<u8>,
    pub end: ReplyEnd,
}

/// How the reply side stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyEnd {
    /// The server's bytes ran out (the upstream closed).
    InputEnded,
    /// An [`Expect::Close`] came up: the client was closed.
    Closed,
    /// A failure such as invalid RESP from the server, with its message.
    Failed(String),
}

/// The credential the harness's upstream is authenticated with: a password
/// that never expires, so blocking commands are never sliced and the output
/// depends on the input alone.
pub fn password() -> Credential {
    Credential::password(Some("redauth".into()), Secret::new("secret".into()))
}

/// A token expiring an hour from now: blocking commands run in slices, whose
/// timeouts carry random jitter.
pub fn expiring_token() -> Credential {
    Credential {
        expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
        ..password()
    }
}

/// Runs the request side on `client`, delivered in reads of `chunks` bytes
/// (see [`Chunked`]), with the upstream authenticated by [`password`].
pub fn relay_requests(client: &[u8], chunks: &[usize]) -> RequestRun {
    relay_requests_as(password(), client, chunks)
}

/// [`relay_requests`] with the upstream authenticated by `credential`.
pub fn relay_requests_as(credential: Credential, client: &[u8], chunks: &[usize]) -> RequestRun {
    block_on(async {
        let credentials = CredentialFeed::fixed(credential);
        // The very credential published, so the watch sees nothing newer.
        let credential = credentials
            .current(Duration::ZERO)
            .await
            .expect("a fixed credential is ready");
        let watch = credentials.renewals_after(credential.clone());
        let (tx, mut rx) = super::expect::channel();
        // Kept open: a held blocking command waits on it as on a live reply side.
        let (_slice_tx, slice_rx) = mpsc::unbounded_channel::<Report>();
        let mut upstream = Vec::new();
        let mut pump = RequestPump::new(
            Chunked::new(client, chunks),
            &mut upstream,
            (tx, slice_rx),
            BytesMut::new(),
            (credential, SystemTime::now()),
            watch,
            super::requests::Policy {
                max_bulk: DEFAULT_MAX_BULK,
                idle_timeout: None,
                client_password: super::ClientPassword::none(),
                rewrites: false,
            },
        );
        let stop = match tokio::time::timeout(STALL, pump.run()).await {
            Err(_) => RequestStop::Stalled,
            Ok(Stopped::Closing) => RequestStop::Closing,
            Ok(Stopped::InputEnded) => RequestStop::InputEnded,
            Ok(Stopped::UpstreamWriteFailed(why)) => RequestStop::Other(why),
            Ok(Stopped::Ended(other)) => RequestStop::Other(format!("{other:?}")),
        };
        drop(pump);
        let mut expects = Vec::new();
        while let Some(expect) = rx.try_recv() {
            expects.push(expect);
        }
        RequestRun {
            upstream,
            expects,
            stop,
        }
    })
}

/// Runs the reply side with `expects` queued (as if the client had
/// pipelined every command before the first reply came), on `server`
/// delivered in reads of `chunks` bytes (see [`Chunked`]).
pub fn relay_replies(expects: &[Expect], server: &[u8], chunks: &[usize]) -> ReplyRun {
    relay_replies_rewriting(expects, server, chunks, None)
}

/// [`relay_replies`] in cluster mode: node addresses rewritten through `directory`.
pub fn relay_replies_rewriting(
    expects: &[Expect],
    server: &[u8],
    chunks: &[usize],
    directory: Option<std::sync::Arc<crate::cluster::Directory>>,
) -> ReplyRun {
    block_on(async {
        let (tx, rx) = super::expect::channel();
        for expect in expects {
            tx.send(expect.clone());
        }
        drop(tx);
        let (slice_tx, _slice_rx) = mpsc::unbounded_channel();
        let mut client = Vec::new();
        let mut pump = ReplyPump::new(
            Chunked::new(server, chunks),
            &mut client,
            rx,
            slice_tx,
            BytesMut::new(),
            STALL,
        )
        .rewriting_through(directory);
        let end = match pump.run().await {
            Ended::UpstreamClosed => ReplyEnd::InputEnded,
            Ended::Closed(_) => ReplyEnd::Closed,
            Ended::Failed(why) => ReplyEnd::Failed(why),
            Ended::ClientClosed => ReplyEnd::Failed("the client closed".into()),
        };
        drop(pump);
        ReplyRun { client, end }
    })
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// A stream that yields `data` in reads of the given sizes, taken in turn
/// and repeated (a size of 0 counts as 1; no sizes: as much as the reader
/// takes), then end of file. A read never exceeds the reader's free space,
/// so a chunk may reach the reader in more than one read.
pub struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    next: usize,
    /// Bytes of the current chunk not yet read.
    left: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], sizes: &'a [usize]) -> Self {
        Chunked {
            data,
            sizes,
            next: 0,
            left: 0,
        }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.left == 0 {
            this.left = match this.sizes.get(this.next % this.sizes.len().max(1)) {
                Some(&size) => size.max(1),
                None => usize::MAX,
            };
            this.next += 1;
        }
        let n = this.left.min(buf.remaining()).min(this.data.len());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        this.left -= n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::encode;
    use bytes::Bytes;

    const PIPELINE: &[u8] =
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nGET k\r\n*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n";

    #[test]
    fn requests_are_relayed_and_announced() {
        let run = relay_requests(PIPELINE, &[]);
        assert_eq!(run.stop, RequestStop::InputEnded);
        let mut expected = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n".to_vec();
        expected.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(run.upstream, expected);
        assert_eq!(
            run.merged_expects(),
            vec![
                Expect::Replies(2),
                Expect::StandIn(Bytes::from_static(b"+OK\r\n")),
                // The input ended: the client is closed once it has its replies.
                Expect::InputEnded,
            ]
        );
    }

    #[test]
    fn byte_at_a_time_reads_relay_the_same() {
        let whole = relay_requests(PIPELINE, &[]);
        let split = relay_requests(PIPELINE, &[1]);
        assert_eq!(split.upstream, whole.upstream);
        assert_eq!(split.merged_expects(), whole.merged_expects());
        assert!(
            split.expects.len() > whole.expects.len(),
            "one record per read"
        );
    }

    #[test]
    fn a_protocol_error_is_answered_and_closes() {
        let run = relay_requests(b"PING\r\n*1\r\n:1\r\nGET k\r\n", &[3, 5]);
        assert_eq!(run.stop, RequestStop::Closing);
        assert!(run.protocol_error());
        assert_eq!(run.upstream, b"*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn replies_reach_the_client_and_stand_ins_are_swapped() {
        let expects = [
            Expect::Replies(2),
            Expect::StandIn(Bytes::from_static(b"+OK\r\n")),
            Expect::Close,
        ];
        let server = b"+OK\r\n$5\r\nhello\r\n+PONG\r\n";
        for chunks in [&[][..], &[1], &[2, 7]] {
            let run = relay_replies(&expects, server, chunks);
            assert_eq!(run.end, ReplyEnd::Closed);
            assert_eq!(run.client, b"+OK\r\n$5\r\nhello\r\n+OK\r\n");
        }
    }

    // Found by fuzzing: a QUIT whose arguments came in a later read had
    // them forwarded after its PING stand-in.
    #[test]
    fn a_quit_split_across_reads_forwards_only_its_stand_in() {
        let client = b"GET k\r\n*2\r\n$4\r\nQUIT\r\n$3\r\nnow\r\n";
        let whole = relay_requests(client, &[]);
        assert_eq!(
            whole.upstream,
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n"
        );
        for chunks in [&[21][..], &[25], &[1]] {
            let split = relay_requests(client, chunks);
            assert_eq!(split.upstream, whole.upstream, "reads of {chunks:?}");
            assert_eq!(split.merged_expects(), whole.merged_expects());
        }
    }

    // Found by fuzzing: a RESET with an argument (an arity error for the
    // server) whose argument arrived in a later read had redauth's AUTH
    // written inside it. Commands that take no arguments are acted on only
    // when they have none.
    #[test]
    fn a_reset_with_an_argument_is_not_followed_by_auth_however_it_arrives() {
        let client = b"*2\r\n$5\r\nRESET\r\n$1\r\nk\r\nMULTI x\r\nGET k\r\n";
        let whole = relay_requests(client, &[]);
        let mut expected = b"*2\r\n$5\r\nRESET\r\n$1\r\nk\r\n".to_vec();
        expected
            .extend_from_slice(b"*2\r\n$5\r\nMULTI\r\n$1\r\nx\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        assert_eq!(whole.upstream, expected);
        for chunks in [&[15][..], &[3], &[1]] {
            let split = relay_requests(client, chunks);
            assert_eq!(split.upstream, whole.upstream, "reads of {chunks:?}");
            assert_eq!(split.merged_expects(), whole.merged_expects());
        }
        assert_eq!(
            whole.merged_expects(),
            vec![Expect::Replies(3), Expect::InputEnded]
        );
    }

    // Found by fuzzing: each of these panicked in a RESP scanner, which
    // ended the session's task without a reply to the client.
    #[test]
    fn an_empty_argument_header_is_a_protocol_error_not_a_panic() {
        for client in [
            &b"*1\r\n\r\n"[..],
            b"*2\r$\r\n",
            b"*2\r\n$3\r\nGET$1\r\nk\r\n",
        ] {
            let run = relay_requests(client, &[]);
            assert_eq!(run.stop, RequestStop::Closing);
            assert_eq!(
                run.expects,
                vec![
                    Expect::Local(Bytes::from_static(
                        b"-ERR Protocol error: expected '$', got ' '\r\n"
                    )),
                    Expect::Close
                ]
            );
        }
    }

    #[test]
    fn a_bare_line_feed_from_the_server_is_invalid_resp_not_a_panic() {
        for server in [&b"\n"[..], b"*2\r\n:1\r\n\n", b">2\r\n\n"] {
            let run = relay_replies(&[Expect::Replies(1)], server, &[]);
            assert!(matches!(run.end, ReplyEnd::Failed(_)), "{:?}", run.end);
        }
    }

    #[test]
    fn a_push_with_bare_line_feeds_is_relayed_not_waited_on() {
        let server = b">3\n$7\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n+OK\r\n";
        let run = relay_replies(&[Expect::Replies(1)], server, &[]);
        assert_eq!(run.end, ReplyEnd::InputEnded);
        assert_eq!(run.client, server);
    }

    // Found by fuzzing: outcomes that depend on how the bytes fell into reads.
    // Both need a change in files this harness does not own; see the reasons.

    #[test]
    fn the_subscribed_context_error_names_the_command_however_it_arrived() {
        // A RESP2 subscriber (its connection upgraded to RESP3) sends a container
        // command. Whole, it is named `config|set`; streamed (not all of it in
        // the first read), only `config`.
        let mut client = encode::command(&["SUBSCRIBE", "news"]).to_vec();
        client.extend_from_slice(&encode::command(&["CONFIG", "SET", "maxmemory", "1mb"]));
        let whole = relay_requests(&client, &[]);
        let split = relay_requests(&client, &[30]);
        assert_eq!(split.merged_expects(), whole.merged_expects());
    }

    #[test]
    fn what_follows_passthrough_does_not_depend_on_read_sizes() {
        // `GET k`, `SYNC`, then bytes that are a protocol error. If the GET's
        // reply and the start of the replication stream come in one read, the
        // error and the close are dropped (queue cleared in passthrough) and
        // the stream is relayed; in two reads, the error is sent and the
        // client closed before any of the stream.
        let expects = [
            Expect::Replies(1),
            Expect::Passthrough,
            Expect::Local(Bytes::from_static(
                b"-ERR Protocol error: invalid bulk length\r\n",
            )),
            Expect::Close,
        ];
        let server = b"$1\r\nv\r\n+FULLRESYNC 8de1787ba490483314a4d30f1c628bc5 0\r\n";
        let whole = relay_replies(&expects, server, &[]);
        let split = relay_replies(&expects, server, &[7]);
        assert_eq!(split, whole);
    }

    #[test]
    fn invalid_server_output_ends_the_reply_side() {
        let run = relay_replies(&[Expect::Replies(1)], b"+OK\r\nnonsense\r\n", &[4]);
        assert_eq!(run.client, b"+OK\r\n");
        assert!(matches!(run.end, ReplyEnd::Failed(_)), "{:?}", run.end);
    }
}
