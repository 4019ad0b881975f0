//! The front's request side: client commands in, backend commands out.
//!
//! Commands pass as the very bytes the client sent, large arguments streaming
//! through, except `AUTH` and `HELLO … AUTH`, whose token is checked by the
//! [`Gate`] and replaced: by the backend user's password when it is good, by
//! a password that cannot work when it is not, so the backend itself answers
//! `WRONGPASS` in its proper place. For every command an [`Expect`] record
//! tells the reply side what its reply means. The one-argument `AUTH
//! <token>` is checked too where the cloud accepts it (GCP, as `default`).
//! An AUTH whose token is good but over the front's rate limit (GCP) is not
//! forwarded: the front answers it itself, in its place — except inside
//! MULTI or once replies are untracked, where the limit is not applied.

use super::gate::{Gate, Refusal, IAM_RATE_LIMITED};
use super::Expect;
use bytes::{Bytes, BytesMut};
use memchr::memchr;
use redauth::resp::command::CommandKind;
use redauth::resp::request::{Request, RequestBody};
use redauth::resp::{encode, parse_i64, DEFAULT_MAX_BULK};
use std::time::{Instant, SystemTime};

/// The longest `AUTH`, `HELLO` or `CLIENT` command held whole; longer ones
/// are streamed (`CLIENT`) or end the connection (`AUTH`, `HELLO`).
const WHOLE_COMMAND_MAX: usize = 1024 * 1024;

/// What the relay must do about an AUTH, besides forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthEvent {
    /// A token was refused (and replaced by an invalid password).
    Refused(Refusal),
    /// Untracked connection: a good token counts at once.
    AcceptedUntracked(SystemTime),
    /// An AUTH (or HELLO … AUTH) inside MULTI, answered with an error by the
    /// front itself (AWS), not forwarded.
    RefusedInMulti,
    /// A good token over the front's AUTH rate limit, answered with an
    /// error by the front itself (GCP), not forwarded.
    RateLimited,
}

/// The result of one pass over the buffer.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Bytes for the backend.
    pub(crate) bytes: BytesMut,
    /// Records for the reply side, to be sent before `bytes` are written.
    pub(crate) records: Vec<Expect>,
    pub(crate) events: Vec<AuthEvent>,
    /// Commands begun in this pass, and the name of the last one (upper
    /// case, at most [`NAME_MAX`] bytes; never an argument).
    pub(crate) commands: u32,
    pub(crate) last_name: Option<Vec<u8>>,
    /// Whether a verified token was forwarded in this pass.
    pub(crate) auth_sent: bool,
    /// Tokens that passed the gate's check in this pass.
    pub(crate) verified: u32,
    /// Whether a reply the front makes itself ([`Expect::Local`]) is among
    /// `records`.
    pub(crate) local_reply: bool,
}

/// The longest command name kept for the expiry report.
const NAME_MAX: usize = 24;

impl Output {
    fn saw(&mut self, name: &[u8]) {
        self.commands += 1;
        self.last_name = Some(name[..name.len().min(NAME_MAX)].to_ascii_uppercase());
    }
}

/// An AUTH or HELLO too large to hold: its token can be neither checked nor
/// kept from the backend, so the connection ends.
#[derive(Debug, thiserror::Error)]
#[error("an AUTH or HELLO command over {WHOLE_COMMAND_MAX} bytes")]
pub(crate) struct Oversized;

/// The request side's state between reads.
#[derive(Debug, Default)]
pub(crate) struct RequestScanner {
    /// A command whose arguments are still arriving (forwarded as they come).
    streaming: Option<RequestBody>,
    /// Replies can no longer be matched to commands (see the module docs of
    /// [`super`]); no more records are sent.
    untracked: bool,
    /// Between MULTI and EXEC/DISCARD/RESET, as far as the client asked.
    in_multi: bool,
    /// A protocol error was seen: everything is passed on raw, and the backend
    /// answers the error and closes.
    broken: bool,
}

impl RequestScanner {
    /// The states worth naming in an expiry report ("" when none).
    pub(crate) fn describe(&self) -> String {
        let states = [
            (self.in_multi, "in MULTI"),
            (self.untracked, "untracked"),
            (self.broken, "after a protocol error"),
            (self.streaming.is_some(), "mid-command"),
        ];
        let named: Vec<&str> = states.iter().filter(|s| s.0).map(|s| s.1).collect();
        named.join(", ")
    }

    /// Handles every complete command (and streamable part) in `buf`.
    pub(crate) fn process(
        &mut self,
        buf: &mut BytesMut,
        gate: &Gate,
        now: SystemTime,
    ) -> Result<Output, Oversized> {
        let mut out = Output::default();
        loop {
            if self.broken {
                out.bytes.unsplit(buf.split());
                return Ok(out);
            }
            if let Some(mut body) = self.streaming.take() {
                let Ok(advance) = body.advance(buf, DEFAULT_MAX_BULK) else {
                    self.protocol_error(&mut out);
                    continue;
                };
                out.bytes.unsplit(buf.split_to(advance.consumed));
                if !advance.done {
                    self.streaming = Some(body);
                    return Ok(out);
                }
            }
            let request = match Request::parse(buf, DEFAULT_MAX_BULK) {
                Ok(Some(request)) => request,
                Ok(None) => return Ok(out),
                Err(_) => {
                    self.protocol_error(&mut out);
                    continue;
                }
            };
            match request {
                Request::Ignored { len } => out.bytes.unsplit(buf.split_to(len)),
                Request::Inline { len, args } => {
                    let frame = buf.split_to(len);
                    let args: Vec<&[u8]> = args.iter().map(Bytes::as_ref).collect();
                    out.saw(args[0]);
                    let kind = CommandKind::of(args[0]);
                    let argc = args.len() as u32;
                    let rewritten = self.command(kind, argc, Some(&args), gate, now, &mut out);
                    out.bytes.unsplit(rewritten.unwrap_or(frame));
                }
                Request::Multibulk {
                    argc,
                    head_len,
                    name,
                    body,
                } => {
                    let kind = name
                        .clone()
                        .map_or(CommandKind::Other, |r| CommandKind::of(&buf[r]));
                    let named = |buf: &BytesMut, out: &mut Output| {
                        out.saw(name.clone().map_or(&b"?"[..], |r| &buf[r]))
                    };
                    let needs_arguments = matches!(
                        kind,
                        CommandKind::Auth | CommandKind::Hello | CommandKind::Client
                    );
                    let mut whole = body;
                    let Ok(advance) = whole.advance(&buf[head_len..], DEFAULT_MAX_BULK) else {
                        self.protocol_error(&mut out);
                        continue;
                    };
                    if advance.done {
                        named(buf, &mut out);
                        let frame = buf.split_to(head_len + advance.consumed);
                        let rewritten = if needs_arguments {
                            // Cannot fail on a frame the scanner accepted; if it
                            // did, the bare name keeps any token from passing.
                            let args = arguments(&frame, argc).unwrap_or_else(|| vec![&frame[..0]]);
                            self.command(kind, argc, Some(&args), gate, now, &mut out)
                        } else {
                            self.command(kind, argc, None, gate, now, &mut out)
                        };
                        out.bytes.unsplit(rewritten.unwrap_or(frame));
                    } else if needs_arguments && buf.len() <= WHOLE_COMMAND_MAX {
                        return Ok(out);
                    } else if matches!(kind, CommandKind::Auth | CommandKind::Hello) {
                        return Err(Oversized);
                    } else {
                        named(buf, &mut out);
                        let head = buf.split_to(head_len);
                        self.record(kind, argc, None, None, &mut out);
                        out.bytes.unsplit(head);
                        self.streaming = Some(body);
                    }
                }
            }
        }
    }

    /// Stops scanning: the rest goes to the backend as is, which answers the
    /// protocol error itself and closes the connection.
    fn protocol_error(&mut self, out: &mut Output) {
        tracing::debug!("front: protocol error from a client; passing the rest through");
        self.broken = true;
        self.go_untracked(out);
    }

    fn go_untracked(&mut self, out: &mut Output) {
        if !self.untracked {
            self.untracked = true;
            out.records.push(Expect::Untracked);
        }
    }

    /// Handles one whole command: returns its replacement if it carries a
    /// token, and records what its reply means.
    fn command(
        &mut self,
        kind: CommandKind,
        argc: u32,
        args: Option<&[&[u8]]>,
        gate: &Gate,
        now: SystemTime,
        out: &mut Output,
    ) -> Option<BytesMut> {
        if let Some(reply) = self.refused_in_multi(kind, args, gate) {
            out.events.push(AuthEvent::RefusedInMulti);
            out.records.push(Expect::Local(Bytes::from_static(reply)));
            out.local_reply = true;
            return Some(BytesMut::new());
        }
        if self.rate_limited(kind, args, gate, now) {
            out.events.push(AuthEvent::RateLimited);
            out.records
                .push(Expect::Local(Bytes::from_static(IAM_RATE_LIMITED)));
            out.local_reply = true;
            return Some(BytesMut::new());
        }
        let (rewritten, auth) = match (kind, args) {
            (CommandKind::Auth, Some(args)) => auth(args, gate, now, &mut out.events),
            (CommandKind::Hello, Some(args)) => hello(args, gate, now, &mut out.events),
            _ => {
                self.record(kind, argc, args, None, out);
                return None;
            }
        };
        if matches!(auth, Some(Ok(_))) {
            out.auth_sent = true;
            out.verified += 1;
        }
        if self.untracked {
            if let Some(Ok(expires_at)) = auth {
                out.events.push(AuthEvent::AcceptedUntracked(expires_at));
            }
        }
        self.record(kind, argc, args, auth, out);
        Some(rewritten)
    }

    /// The front's own error reply if this is an AUTH (or a HELLO with an
    /// AUTH option) inside MULTI and the cloud refuses those. Only while
    /// replies are tracked: an untracked connection's MULTI state is unknown
    /// and a local reply could not be put in its place.
    fn refused_in_multi(
        &self,
        kind: CommandKind,
        args: Option<&[&[u8]]>,
        gate: &Gate,
    ) -> Option<&'static [u8]> {
        if !self.in_multi || self.untracked {
            return None;
        }
        let authenticates = match (kind, args) {
            (CommandKind::Auth, _) => true,
            (CommandKind::Hello, Some(args)) => hello_authenticates(args),
            _ => false,
        };
        if authenticates {
            gate.auth_in_multi_reply()
        } else {
            None
        }
    }

    /// Whether this is an AUTH (or HELLO … AUTH) whose token is good but
    /// which the front's rate limit turns away; a good token admitted takes
    /// a permit. Only while replies are tracked and outside MULTI, where
    /// the front's own reply has a place.
    fn rate_limited(
        &self,
        kind: CommandKind,
        args: Option<&[&[u8]]>,
        gate: &Gate,
        now: SystemTime,
    ) -> bool {
        if gate.rate_limit.is_none() || self.in_multi || self.untracked {
            return false;
        }
        let (user, token) = match (kind, args) {
            (CommandKind::Auth, Some([_, token])) => (None, *token),
            (CommandKind::Auth, Some([_, user, token])) => (Some(*user), *token),
            (CommandKind::Hello, Some(args)) => match last_hello_auth(args) {
                Some((user, token)) => (Some(user), token),
                None => return false,
            },
            _ => return false,
        };
        gate.check_user(user, token, now).is_ok() && !gate.admit(Instant::now())
    }

    /// Pushes the record for a command: `args` when it was held whole, and
    /// the outcome of its token check (`Err(())`: refused) if it had one.
    fn record(
        &mut self,
        kind: CommandKind,
        argc: u32,
        args: Option<&[&[u8]]>,
        auth: Option<Result<SystemTime, ()>>,
        out: &mut Output,
    ) {
        if self.untracked {
            return;
        }
        let verified = auth.and_then(Result::ok);
        let record = match kind {
            CommandKind::Auth => match verified {
                Some(expires_at) => Expect::Auth { expires_at },
                None => Expect::Reply,
            },
            CommandKind::Hello => Expect::Hello { auth: verified },
            CommandKind::Client
                if args
                    .and_then(|a| a.get(1))
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"reply")) =>
            {
                return self.go_untracked(out);
            }
            CommandKind::Monitor | CommandKind::Sync => return self.go_untracked(out),
            CommandKind::Subscribe(_) if self.in_multi => return self.go_untracked(out),
            CommandKind::Subscribe(kind) => Expect::Subscribe {
                kind,
                channels: argc.saturating_sub(1),
            },
            CommandKind::Multi => {
                self.in_multi = true;
                Expect::Reply
            }
            CommandKind::Exec | CommandKind::Discard => {
                self.in_multi = false;
                Expect::Reply
            }
            CommandKind::Reset => {
                self.in_multi = false;
                Expect::Reset
            }
            _ => Expect::Reply,
        };
        out.records.push(record);
    }
}

/// Checks one user/token pair: the replacement password, and the expiry if
/// the token is good (`Err(())` if it was refused).
fn swap(
    user: &[u8],
    token: &[u8],
    gate: &Gate,
    now: SystemTime,
    events: &mut Vec<AuthEvent>,
) -> (Vec<u8>, Result<SystemTime, ()>) {
    match gate.check(user, token, now) {
        Ok(expires_at) => (gate.backend_password.as_bytes().to_vec(), Ok(expires_at)),
        Err(refusal) => {
            events.push(AuthEvent::Refused(refusal));
            (gate.invalid_password.as_bytes().to_vec(), Err(()))
        }
    }
}

/// Rewrites `AUTH [user] token`.
fn auth(
    args: &[&[u8]],
    gate: &Gate,
    now: SystemTime,
    events: &mut Vec<AuthEvent>,
) -> (BytesMut, Option<Result<SystemTime, ()>>) {
    match args {
        [name, user, token] => {
            let (password, outcome) = swap(user, token, gate, now, events);
            (encode::command(&[name, user, &password[..]]), Some(outcome))
        }
        [name, token] if gate.bare_token_user().is_some() => {
            let user = gate.bare_token_user().unwrap_or_default();
            let (password, outcome) = swap(user, token, gate, now, events);
            (encode::command(&[name, &password[..]]), Some(outcome))
        }
        [name, _token] => {
            events.push(AuthEvent::Refused(Refusal::NoUser));
            let password = gate.invalid_password.as_bytes();
            (encode::command(&[name, &password]), Some(Err(())))
        }
        // Wrong arity: the backend answers an error; the arguments (which may
        // hold a token) are replaced, keeping their number.
        _ => {
            let mut redacted: Vec<&[u8]> = vec![b"-"; args.len().max(1)];
            redacted[0] = b"AUTH";
            (encode::command(&redacted), None)
        }
    }
}

/// Rewrites every `AUTH user token` option of a `HELLO`; the last one is
/// the one Redis uses.
fn hello(
    args: &[&[u8]],
    gate: &Gate,
    now: SystemTime,
    events: &mut Vec<AuthEvent>,
) -> (BytesMut, Option<Result<SystemTime, ()>>) {
    let mut rewritten: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    let mut outcome = None;
    let mut i = 2;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            let (password, result) = swap(args[i + 1], args[i + 2], gate, now, events);
            rewritten[i + 2] = password;
            outcome = Some(result);
            i += 3;
        } else if args[i].eq_ignore_ascii_case(b"setname") {
            i += 2;
        } else {
            i += 1;
        }
    }
    (encode::command(&rewritten), outcome)
}

/// Whether a `HELLO` carries an `AUTH user token` option (parsed as
/// [`hello`] does).
fn hello_authenticates(args: &[&[u8]]) -> bool {
    last_hello_auth(args).is_some()
}

/// The last `AUTH user token` option of a `HELLO` (parsed as [`hello`]
/// does): the one Redis uses.
fn last_hello_auth<'a>(args: &[&'a [u8]]) -> Option<(&'a [u8], &'a [u8])> {
    let mut last = None;
    let mut i = 2;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            last = Some((args[i + 1], args[i + 2]));
            i += 3;
        } else if args[i].eq_ignore_ascii_case(b"setname") {
            i += 2;
        } else {
            i += 1;
        }
    }
    last
}

/// The arguments of a whole multibulk command that [`Request::parse`] and
/// [`RequestBody::advance`] accepted (so its lengths are known good).
fn arguments(frame: &[u8], argc: u32) -> Option<Vec<&[u8]>> {
    // Count lines end at the first CR plus one more byte, as in Redis.
    let line_end = |pos: usize| memchr(b'\r', frame.get(pos..)?).map(|cr| (pos + cr, pos + cr + 2));
    let (_, mut pos) = line_end(0)?;
    let mut args = Vec::with_capacity(argc as usize);
    for _ in 0..argc {
        let (cr, start) = line_end(pos)?;
        let len = usize::try_from(parse_i64(frame.get(pos + 1..cr)?)?).ok()?;
        args.push(frame.get(start..start + len)?);
        pos = start + len + 2;
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::gate::Checker;
    use crate::issuer::{Issuer, Rejection};
    use redauth::resp::command::SubscribeKind;
    use std::sync::Arc;
    use std::time::Duration;

    const OID: &str = "00000000-0000-4000-8000-00000000d3e0";

    fn gate() -> Gate {
        Gate::new(
            Checker::Entra(Arc::new(Issuer::new(OID.into(), Duration::from_secs(60)))),
            "backendpw".into(),
            "invalidpw".into(),
        )
    }

    fn issuer(gate: &Gate) -> &Issuer {
        match &gate.checker {
            Checker::Entra(issuer) => issuer,
            Checker::Aws(_) | Checker::Gcp(_) => unreachable!("an Entra gate"),
        }
    }

    fn run(scanner: &mut RequestScanner, gate: &Gate, input: &[u8]) -> Output {
        let mut buf = BytesMut::from(input);
        let out = scanner.process(&mut buf, gate, SystemTime::now()).unwrap();
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    fn cmd(args: &[&str]) -> Vec<u8> {
        encode::command(args).to_vec()
    }

    #[test]
    fn a_good_token_becomes_the_backend_password() {
        let gate = gate();
        let minted = issuer(&gate).mint();
        let mut input = cmd(&["GET", "k"]);
        input.extend(cmd(&["AUTH", OID, &minted.token]));
        let out = run(&mut RequestScanner::default(), &gate, &input);
        let mut expected = cmd(&["GET", "k"]);
        expected.extend(cmd(&["AUTH", OID, "backendpw"]));
        assert_eq!(&out.bytes[..], &expected[..]);
        assert_eq!(
            out.records,
            vec![
                Expect::Reply,
                Expect::Auth {
                    expires_at: minted.expires_at
                }
            ]
        );
        assert!(out.events.is_empty());
    }

    #[test]
    fn bad_tokens_become_an_invalid_password_and_never_pass() {
        let gate = gate();
        let minted = issuer(&gate).mint();
        let other = Issuer::new(OID.into(), Duration::from_secs(60)).mint();
        let cases: &[(&[&str], Refusal)] = &[
            (&["AUTH", "someone", &minted.token], Refusal::WrongUser),
            (
                &["AUTH", OID, &other.token],
                Refusal::Token(Rejection::BadSignature),
            ),
            (&["AUTH", &minted.token], Refusal::NoUser),
        ];
        for (args, refusal) in cases {
            let out = run(&mut RequestScanner::default(), &gate, &cmd(args));
            let mut expected = args.to_vec();
            *expected.last_mut().unwrap() = "invalidpw";
            assert_eq!(&out.bytes[..], &cmd(&expected)[..]);
            assert_eq!(out.records, vec![Expect::Reply]);
            assert_eq!(out.events, vec![AuthEvent::Refused(refusal.clone())]);
        }
        let out = run(
            &mut RequestScanner::default(),
            &gate,
            &cmd(&["AUTH", "a", "b", &minted.token]),
        );
        assert_eq!(&out.bytes[..], &cmd(&["AUTH", "-", "-", "-"])[..]);
    }

    #[test]
    fn inline_auth_is_rewritten_other_inline_commands_pass_untouched() {
        let gate = gate();
        let minted = issuer(&gate).mint();
        let input = format!("PING\r\nauth {OID} {}\r\n", minted.token);
        let out = run(&mut RequestScanner::default(), &gate, input.as_bytes());
        let mut expected = b"PING\r\n".to_vec();
        expected.extend(cmd(&["auth", OID, "backendpw"]));
        assert_eq!(&out.bytes[..], &expected[..]);
        assert_eq!(out.records.len(), 2);
    }

    #[test]
    fn hello_auth_pairs_are_rewritten_and_the_rest_kept() {
        let gate = gate();
        let minted = issuer(&gate).mint();
        let args = ["HELLO", "3", "SETNAME", "auth", "AUTH", OID, &minted.token];
        let out = run(&mut RequestScanner::default(), &gate, &cmd(&args));
        assert_eq!(
            &out.bytes[..],
            &cmd(&["HELLO", "3", "SETNAME", "auth", "AUTH", OID, "backendpw"])[..]
        );
        assert_eq!(
            out.records,
            vec![Expect::Hello {
                auth: Some(minted.expires_at)
            }]
        );
        let out = run(&mut RequestScanner::default(), &gate, &cmd(&["HELLO", "3"]));
        assert_eq!(out.records, vec![Expect::Hello { auth: None }]);
    }

    #[test]
    fn commands_split_across_reads_and_large_arguments_stream() {
        let gate = gate();
        let minted = issuer(&gate).mint();
        let auth = cmd(&["AUTH", OID, &minted.token]);
        let mut scanner = RequestScanner::default();
        let mut buf = BytesMut::from(&auth[..10]);
        let out = scanner.process(&mut buf, &gate, SystemTime::now()).unwrap();
        assert!(out.bytes.is_empty() && out.records.is_empty());
        buf.extend_from_slice(&auth[10..]);
        let out = scanner.process(&mut buf, &gate, SystemTime::now()).unwrap();
        assert_eq!(&out.bytes[..], &cmd(&["AUTH", OID, "backendpw"])[..]);

        let value = "v".repeat(100_000);
        let set = cmd(&["SET", "k", &value]);
        let mut buf = BytesMut::from(&set[..5000]);
        let first = scanner.process(&mut buf, &gate, SystemTime::now()).unwrap();
        assert_eq!(first.records, vec![Expect::Reply]);
        buf.extend_from_slice(&set[5000..]);
        let rest = scanner.process(&mut buf, &gate, SystemTime::now()).unwrap();
        assert!(rest.records.is_empty());
        assert_eq!([&first.bytes[..], &rest.bytes[..]].concat(), set);
    }

    #[test]
    fn subscribe_records_its_channel_count() {
        let gate = gate();
        let out = run(
            &mut RequestScanner::default(),
            &gate,
            &cmd(&["SUBSCRIBE", "a", "b"]),
        );
        assert_eq!(
            out.records,
            vec![Expect::Subscribe {
                kind: SubscribeKind::Subscribe,
                channels: 2
            }]
        );
    }

    #[test]
    fn uncountable_commands_make_auth_lenient() {
        let gate = gate();
        for switch in [
            cmd(&["CLIENT", "REPLY", "OFF"]),
            cmd(&["MONITOR"]),
            cmd(&["PSYNC", "?", "-1"]),
            [cmd(&["MULTI"]), cmd(&["SUBSCRIBE", "x"])].concat(),
        ] {
            let mut scanner = RequestScanner::default();
            let out = run(&mut scanner, &gate, &switch);
            assert_eq!(out.records.last(), Some(&Expect::Untracked));
            let minted = issuer(&gate).mint();
            let out = run(&mut scanner, &gate, &cmd(&["AUTH", OID, &minted.token]));
            assert!(out.records.is_empty());
            assert_eq!(
                out.events,
                vec![AuthEvent::AcceptedUntracked(minted.expires_at)]
            );
        }
        let out = run(
            &mut RequestScanner::default(),
            &gate,
            &cmd(&["CLIENT", "SETNAME", "x"]),
        );
        assert_eq!(out.records, vec![Expect::Reply]);
    }

    #[test]
    fn aws_answers_auth_inside_multi_itself() {
        use crate::aws::{AwsCache, AwsService, AwsVerifier, CredentialIssuer};
        let cache = AwsCache {
            name: "cache".into(),
            region: "us-east-1".into(),
            service: AwsService::ElastiCache,
            serverless: false,
            user_id: "user".into(),
            connection_limit: Duration::from_secs(60),
        };
        let issuer = Arc::new(CredentialIssuer::new(Duration::from_secs(60)));
        let verifier = Arc::new(AwsVerifier::new(cache, issuer.clone()));
        let token = verifier.token(&issuer.issue(), "user", SystemTime::now());
        let gate = Gate::new(
            Checker::Aws(verifier),
            "backendpw".into(),
            "invalidpw".into(),
        );
        let mut scanner = RequestScanner::default();
        let input = [
            cmd(&["MULTI"]),
            cmd(&["AUTH", "user", &token]),
            cmd(&["HELLO", "3", "AUTH", "user", &token]),
            cmd(&["HELLO", "3"]),
            cmd(&["EXEC"]),
            cmd(&["AUTH", "user", &token]),
        ]
        .concat();
        let out = run(&mut scanner, &gate, &input);
        let local = Expect::Local(Bytes::from_static(crate::front::AUTH_IN_MULTI));
        assert_eq!(
            out.records,
            vec![
                Expect::Reply,
                local.clone(),
                local,
                Expect::Hello { auth: None },
                Expect::Reply,
                Expect::Auth {
                    expires_at: match out.records.last() {
                        Some(Expect::Auth { expires_at }) => *expires_at,
                        other => panic!("{other:?}"),
                    }
                },
            ]
        );
        let forwarded = [
            cmd(&["MULTI"]),
            cmd(&["HELLO", "3"]),
            cmd(&["EXEC"]),
            cmd(&["AUTH", "user", "backendpw"]),
        ]
        .concat();
        assert_eq!(&out.bytes[..], &forwarded[..]);
        assert!(out.local_reply);
        assert_eq!(out.verified, 1);
        assert_eq!(
            out.events,
            vec![AuthEvent::RefusedInMulti, AuthEvent::RefusedInMulti]
        );
    }

    fn gcp_gate(rate: Option<u32>) -> (Gate, Arc<crate::gcp::AccessTokens>) {
        use crate::gcp::{AccessTokens, GcpVerifier};
        let tokens = Arc::new(AccessTokens::new(Duration::from_secs(60)));
        let verifier = Arc::new(GcpVerifier::new(tokens.clone(), rate));
        let gate = Gate::new(
            Checker::Gcp(verifier),
            "backendpw".into(),
            "invalidpw".into(),
        );
        (gate, tokens)
    }

    #[test]
    fn gcp_takes_a_bare_token_or_the_user_default() {
        use crate::gcp::{GcpRefusal, Rejection};
        let (gate, tokens) = gcp_gate(None);
        let token = tokens.issue(None);
        let input = [
            cmd(&["AUTH", &token.token]),
            cmd(&["AUTH", "default", &token.token]),
            cmd(&["HELLO", "3", "AUTH", "default", &token.token]),
        ]
        .concat();
        let out = run(&mut RequestScanner::default(), &gate, &input);
        let expected = [
            cmd(&["AUTH", "backendpw"]),
            cmd(&["AUTH", "default", "backendpw"]),
            cmd(&["HELLO", "3", "AUTH", "default", "backendpw"]),
        ]
        .concat();
        assert_eq!(&out.bytes[..], &expected[..]);
        let auth = Expect::Auth {
            expires_at: token.expires_at,
        };
        let hello = Expect::Hello {
            auth: Some(token.expires_at),
        };
        assert_eq!(out.records, vec![auth.clone(), auth, hello]);
        assert!(out.events.is_empty());
        assert_eq!(out.verified, 3);

        let cases: &[(&[&str], Refusal)] = &[
            (
                &["AUTH", "someone", &token.token],
                Refusal::Gcp(GcpRefusal::NotDefault),
            ),
            (
                &["AUTH", "ya29.unknown"],
                Refusal::Gcp(GcpRefusal::Token(Rejection::Unknown)),
            ),
            (
                &["HELLO", "3", "AUTH", "admin", &token.token],
                Refusal::Gcp(GcpRefusal::NotDefault),
            ),
        ];
        for (args, refusal) in cases {
            let out = run(&mut RequestScanner::default(), &gate, &cmd(args));
            let mut expected = args.to_vec();
            *expected.last_mut().unwrap() = "invalidpw";
            assert_eq!(&out.bytes[..], &cmd(&expected)[..]);
            assert_eq!(out.events, vec![AuthEvent::Refused(refusal.clone())]);
        }
        let expired = Gate::check_user(
            &gate,
            None,
            token.token.as_bytes(),
            token.expires_at + Duration::from_secs(1),
        );
        assert_eq!(
            expired,
            Err(Refusal::Gcp(GcpRefusal::Token(Rejection::Expired)))
        );
    }

    #[test]
    fn gcp_answers_auths_over_the_rate_limit_itself() {
        let (gate, tokens) = gcp_gate(Some(2));
        let token = tokens.issue(None).token;
        let input = [
            cmd(&["AUTH", &token]),
            cmd(&["AUTH", "ya29.unknown"]),
            cmd(&["HELLO", "3", "AUTH", "default", &token]),
            cmd(&["AUTH", &token]),
            cmd(&["PING"]),
            cmd(&["MULTI"]),
            cmd(&["AUTH", &token]),
            cmd(&["EXEC"]),
        ]
        .concat();
        let out = run(&mut RequestScanner::default(), &gate, &input);
        let forwarded = [
            cmd(&["AUTH", "backendpw"]),
            cmd(&["AUTH", "invalidpw"]),
            cmd(&["HELLO", "3", "AUTH", "default", "backendpw"]),
            cmd(&["PING"]),
            cmd(&["MULTI"]),
            cmd(&["AUTH", "backendpw"]),
            cmd(&["EXEC"]),
        ]
        .concat();
        assert_eq!(&out.bytes[..], &forwarded[..]);
        let limited = Expect::Local(Bytes::from_static(crate::front::IAM_RATE_LIMITED));
        assert_eq!(out.records[3], limited);
        assert_eq!(out.records.len(), 8);
        assert!(out.local_reply);
        assert_eq!(out.events.len(), 2);
        assert!(matches!(out.events[0], AuthEvent::Refused(_)));
        assert_eq!(out.events[1], AuthEvent::RateLimited);
    }

    #[test]
    fn a_protocol_error_passes_the_rest_through() {
        let gate = gate();
        let input = b"PING\r\n*1\r\n:5\r\nGET k\r\n";
        let out = run(&mut RequestScanner::default(), &gate, input);
        assert_eq!(&out.bytes[..], &input[..]);
        assert_eq!(out.records, vec![Expect::Reply, Expect::Untracked]);
    }

    #[test]
    fn oversized_auth_ends_the_connection() {
        let gate = gate();
        let mut buf = BytesMut::from(&b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2000000\r\n"[..]);
        buf.resize(buf.len() + WHOLE_COMMAND_MAX, b'x');
        let result = RequestScanner::default().process(&mut buf, &gate, SystemTime::now());
        assert!(result.is_err());
    }

    #[test]
    fn arguments_follow_redis_line_rules() {
        let frame = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(arguments(frame, 2), Some(vec![&b"GET"[..], b"k"]));
        assert_eq!(
            arguments(b"*1\rx$4\r\nPING\r\n", 1),
            Some(vec![&b"PING"[..]])
        );
        assert_eq!(arguments(b"*2\r\n$3\r\nGET\r\n", 2), None);
    }
}
