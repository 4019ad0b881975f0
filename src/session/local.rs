//! The commands redauth answers itself, or changes before forwarding: the
//! client's `AUTH` (redauth owns authentication), `QUIT`, `HELLO`'s `AUTH`
//! option, and what a RESP2 subscribed client may run while its connection
//! runs in RESP3 upstream.

use super::requests::RequestPump;
use super::state::{Mode, Protocol, ReplyMode};
use super::{gate, resp2, Expect};
use crate::resp::command::CommandKind;
use crate::resp::encode;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

/// The stand-in command (see [`Expect::StandIn`]).
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

impl<R, W> RequestPump<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Client AUTH: redauth owns authentication, so the answer is `+OK`.
    /// Inside MULTI, Redis would queue it and put `+OK` in the EXEC array; a
    /// queued `CLIENT REPLY ON` (a no-op answering `+OK`) takes its place so
    /// the transaction's replies come out exactly as they would.
    ///
    /// With a client password, AUTH is checked (a command too large to hold
    /// cannot be, and is refused); a wrong one gets `-WRONGPASS` and the
    /// connection stays as it was, as in Redis. Inside MULTI a wrong one is
    /// still answered `+OK` in the EXEC array (see README Limits).
    pub(super) fn auth(&mut self, args: Option<&[Bytes]>) {
        let in_multi = self.state.in_multi();
        if let Some(password) = self.policy.client_password.current() {
            let checked = args.map_or(Err(gate::WRONGPASS), |a| gate::check_auth(&password, a));
            if let (Err(reply), false) = (checked, in_multi) {
                return self.stand_in(Bytes::from_static(reply));
            }
        }
        if in_multi {
            self.forward_counted(encode::command(&["CLIENT", "REPLY", "ON"]));
        } else {
            self.stand_in(encode::ok());
        }
    }

    /// QUIT: `+OK`, then close once earlier replies are out.
    pub(super) fn quit(&mut self) {
        self.stand_in(encode::ok());
        self.outbox.announce(Expect::Close);
        self.state.mode = Mode::Quitting;
    }

    /// Answers the current command with `reply` by way of a `PING` whose own
    /// reply is replaced (see [`Expect::StandIn`]). With replies off, nothing
    /// needs to go to the server at all.
    fn stand_in(&mut self, reply: Bytes) {
        match self.state.replies {
            ReplyMode::Off => {}
            ReplyMode::Skip(_) => {
                // The server's pending skip must fall on the stand-in.
                self.state.replies.take();
                self.outbox.out.extend_from_slice(PING);
            }
            ReplyMode::On => {
                self.outbox.announce(Expect::StandIn(reply));
                self.outbox.out.extend_from_slice(PING);
            }
        }
    }

    /// HELLO: forwarded without its `AUTH user pass` option (which, with a
    /// client password, must give it).
    pub(super) fn hello(&mut self, args: &[Bytes]) {
        if let (Some(password), Some((user, pass))) = (
            self.policy.client_password.current(),
            gate::hello_auth(args),
        ) {
            if !gate::matches(&password, Some(user), pass) {
                return self.stand_in(Bytes::from_static(gate::WRONGPASS));
            }
        }
        let version = args.get(1).and_then(|v| match &v[..] {
            b"2" => Some(2),
            b"3" => Some(3),
            _ => None,
        });
        if let Some(v) = version {
            self.state.protocol = if v == 3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            };
        }
        let kept = strip_hello_auth(args);
        let frame = encode::command(&kept);
        self.forward_as(frame, Expect::Hello(version));
    }

    /// While a RESP2 client's connection runs in RESP3 for its subscriptions,
    /// does what Redis does with a RESP2 subscribed client: only the
    /// SUBSCRIBE family, PING, QUIT and RESET run; PING answers in the
    /// subscribed shape; anything else gets Redis's context error. Once the
    /// subscriptions are gone the connection returns to RESP2 first. `named`
    /// holds at least the command's name (and subcommand, if sent). True when
    /// the command was answered here.
    pub(super) fn subscribed_gate(
        &mut self,
        kind: CommandKind,
        args: Option<&[Bytes]>,
        named: &[Bytes],
    ) -> bool {
        if !self.state.switched() {
            return false;
        }
        if !self.state.subscriptions.any() {
            self.switch_protocol(2);
            return false;
        }
        match kind {
            CommandKind::Subscribe(_) | CommandKind::Quit | CommandKind::Reset => false,
            CommandKind::Ping => match args {
                Some(args) if args.len() <= 2 => {
                    self.stand_in(resp2::subscribed_pong(args.get(1)));
                    true
                }
                _ => false, // an arity error, which the server words itself
            },
            _ => {
                self.outbox.local(encode::error(&format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    full_name(named)
                )));
                true
            }
        }
    }
}

/// Commands with subcommands, named `name|subcommand` in Redis's errors.
const CONTAINERS: &[&str] = &[
    "acl", "client", "cluster", "command", "config", "function", "latency", "memory", "module",
    "object", "pubsub", "script", "slowlog", "xgroup", "xinfo",
];

/// The command's full name as Redis writes it in errors: lower case, with
/// the subcommand for container commands (`client|info`).
fn full_name(named: &[Bytes]) -> String {
    let name = String::from_utf8_lossy(named.first().map_or(&b""[..], |n| &n[..])).to_lowercase();
    match named.get(1) {
        Some(sub) if CONTAINERS.contains(&name.as_str()) => {
            format!("{name}|{}", String::from_utf8_lossy(sub).to_lowercase())
        }
        _ => name,
    }
}

/// HELLO's arguments without `AUTH <user> <pass>` (kept whole if malformed,
/// so Redis reports the syntax error itself).
fn strip_hello_auth(args: &[Bytes]) -> Vec<Bytes> {
    let mut kept = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if i >= 2 && args[i].eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            i += 3;
            continue;
        }
        kept.push(args[i].clone());
        i += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn hello_loses_only_its_auth_option() {
        let args: Vec<Bytes> = ["HELLO", "3", "AUTH", "u", "p", "SETNAME", "n"]
            .iter()
            .map(|s| b(s))
            .collect();
        assert_eq!(
            strip_hello_auth(&args),
            vec![b("HELLO"), b("3"), b("SETNAME"), b("n")]
        );
        let short: Vec<Bytes> = ["HELLO", "3", "AUTH", "u"].iter().map(|s| b(s)).collect();
        assert_eq!(strip_hello_auth(&short), short);
    }

    #[test]
    fn container_commands_are_named_with_their_subcommand() {
        assert_eq!(full_name(&[b("CLIENT"), b("Info")]), "client|info");
        assert_eq!(full_name(&[b("GET"), b("k")]), "get");
        assert_eq!(full_name(&[b("CONFIG")]), "config");
    }
}
