//! The local client password (`--client-password-file`).
//!
//! With one set, a new client must authenticate before redauth dials anything
//! for it, as with a Redis server that has `requirepass`: `AUTH <password>`,
//! `AUTH default <password>` or `HELLO <ver> AUTH default <password>`. Until
//! then every other command gets Redis's `-NOAUTH` error, a wrong password
//! `-WRONGPASS`, and — as Redis limits unauthenticated clients — a command
//! of more than 10 arguments or an argument over 16 KiB is a protocol error
//! that closes the connection. Passwords are compared in constant time.
//!
//! The password follows its file ([`ClientPassword`]): a client's AUTH is
//! checked against the one current when it is given.

use super::Ended;
use crate::credentials::Secret;
use crate::resp::frame::arguments;
use crate::resp::request::{Request, RequestBody};
use bytes::{Buf, Bytes, BytesMut};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// The password local clients must give, if any, as its file now holds it
/// (see [`crate::credentials::password_file::follow_client`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientPassword(watch::Receiver<Option<Arc<Secret>>>);

impl ClientPassword {
    /// No client password: any AUTH is answered `+OK`.
    pub fn none() -> ClientPassword {
        ClientPassword(watch::channel(None).1)
    }

    /// Follows the password published on `rx`.
    pub fn following(rx: watch::Receiver<Option<Arc<Secret>>>) -> ClientPassword {
        ClientPassword(rx)
    }

    /// The password as of now.
    pub fn current(&self) -> Option<Arc<Secret>> {
        self.0.borrow().clone()
    }
}

/// Largest argument an unauthenticated client may send (Redis: 16 KiB).
const MAX_BULK: u64 = 16 * 1024;

/// Most arguments in an unauthenticated client's command (Redis: 10).
const MAX_ARGS: u32 = 10;

pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
pub const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const NOAUTH_HELLO: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";

/// Whether `password` (for `user`, `None` meaning `default`) is the client
/// password, in time independent of where they differ.
pub fn matches(expected: &Secret, user: Option<&[u8]>, password: &[u8]) -> bool {
    let user_ok = user.is_none_or(|u| u == b"default");
    #[allow(deprecated)]
    let password_ok =
        ring::constant_time::verify_slices_are_equal(expected.expose().as_bytes(), password)
            .is_ok();
    user_ok && password_ok
}

/// What a client `AUTH` says, checked against the password: `Ok(())` or the
/// error reply.
pub fn check_auth(expected: &Secret, args: &[Bytes]) -> Result<(), &'static [u8]> {
    match args.len() {
        2 if matches(expected, None, &args[1]) => Ok(()),
        3 if matches(expected, Some(&args[1]), &args[2]) => Ok(()),
        2 | 3 => Err(WRONGPASS),
        0 | 1 => Err(b"-ERR wrong number of arguments for 'auth' command\r\n"),
        _ => Err(b"-ERR syntax error\r\n"),
    }
}

/// HELLO's `AUTH user pass` option, if it has one.
pub fn hello_auth(args: &[Bytes]) -> Option<(&Bytes, &Bytes)> {
    let at = (2..args.len()).find(|&i| args[i].eq_ignore_ascii_case(b"auth"))?;
    Some((args.get(at + 1)?, args.get(at + 2)?))
}

/// What an unauthenticated client's command gets.
enum Answer {
    /// This reply; the client stays unauthenticated.
    Reply(&'static [u8]),
    /// `AUTH` succeeded: `+OK`, then relay.
    Authenticated,
    /// `HELLO … AUTH` succeeded: relay, starting with this very HELLO.
    AuthenticatedByHello,
    /// `QUIT`: `+OK`, then close.
    Quit,
}

fn answer_to(expected: &Secret, args: &[Bytes]) -> Answer {
    let name = args.first().map_or(&b""[..], |n| &n[..]);
    if name.eq_ignore_ascii_case(b"auth") {
        match check_auth(expected, args) {
            Ok(()) => Answer::Authenticated,
            Err(reply) => Answer::Reply(reply),
        }
    } else if name.eq_ignore_ascii_case(b"hello") {
        match hello_auth(args) {
            Some((user, pass)) if matches(expected, Some(user), pass) => {
                Answer::AuthenticatedByHello
            }
            Some(_) => Answer::Reply(WRONGPASS),
            None => Answer::Reply(NOAUTH_HELLO),
        }
    } else if name.eq_ignore_ascii_case(b"quit") {
        Answer::Quit
    } else {
        Answer::Reply(NOAUTH)
    }
}

/// Holds a new client until it authenticates. On success, `buf` keeps what
/// the client sent after its `AUTH` (or from its authenticating `HELLO` on).
pub async fn authenticate<C>(
    client: &mut C,
    expected: &Secret,
    buf: &mut BytesMut,
) -> Result<(), Ended>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let mut out = Vec::new();
        let outcome = answer(expected, buf, &mut out);
        if !out.is_empty() && client.write_all(&out).await.is_err() {
            return Err(Ended::ClientClosed);
        }
        match outcome {
            Some(Ok(())) => return Ok(()),
            Some(Err(ended)) => {
                let _ = client.shutdown().await;
                return Err(ended);
            }
            None => {}
        }
        match client.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(Ended::ClientClosed),
            Ok(_) => {}
        }
    }
}

/// Answers every whole command in `buf`; `None` while more input is needed.
fn answer(expected: &Secret, buf: &mut BytesMut, out: &mut Vec<u8>) -> Option<Result<(), Ended>> {
    loop {
        let request = match Request::parse(buf, MAX_BULK) {
            Ok(Some(request)) => request,
            Ok(None) => return None,
            Err(e) => {
                out.extend_from_slice(&e.reply());
                return Some(Err(Ended::Closed("protocol error before authentication")));
            }
        };
        let (args, len) = match request {
            Request::Ignored { len } => {
                buf.advance(len);
                continue;
            }
            Request::Inline { len, args } => (args, len),
            Request::Multibulk {
                argc,
                head_len,
                body,
                ..
            } => {
                if argc > MAX_ARGS {
                    out.extend_from_slice(
                        b"-ERR Protocol error: unauthenticated multibulk length\r\n",
                    );
                    return Some(Err(Ended::Closed("protocol error before authentication")));
                }
                let mut body: RequestBody = body;
                match body.advance(&buf[head_len..], MAX_BULK) {
                    Ok(advance) if advance.done => {
                        let len = head_len + advance.consumed;
                        let frame = Bytes::copy_from_slice(&buf[..len]);
                        (arguments(&frame, argc), len)
                    }
                    Ok(_) => return None,
                    Err(e) => {
                        out.extend_from_slice(&e.reply());
                        return Some(Err(Ended::Closed("protocol error before authentication")));
                    }
                }
            }
        };
        match answer_to(expected, &args) {
            Answer::Reply(reply) => {
                buf.advance(len);
                out.extend_from_slice(reply);
            }
            Answer::Authenticated => {
                buf.advance(len);
                out.extend_from_slice(b"+OK\r\n");
                return Some(Ok(()));
            }
            Answer::AuthenticatedByHello => return Some(Ok(())),
            Answer::Quit => {
                out.extend_from_slice(b"+OK\r\n");
                return Some(Err(Ended::Closed("QUIT before authentication")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("hunter2".into())
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn run(input: &[u8]) -> (Vec<u8>, Option<bool>, Vec<u8>) {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        let outcome = answer(&secret(), &mut buf, &mut out).map(|r| r.is_ok());
        (out, outcome, buf.to_vec())
    }

    #[test]
    fn only_the_password_opens_the_gate() {
        assert!(check_auth(&secret(), &[b("AUTH"), b("hunter2")]).is_ok());
        assert!(check_auth(&secret(), &[b("AUTH"), b("default"), b("hunter2")]).is_ok());
        assert_eq!(
            check_auth(&secret(), &[b("AUTH"), b("hunter3")]),
            Err(WRONGPASS)
        );
        assert_eq!(
            check_auth(&secret(), &[b("AUTH"), b("alice"), b("hunter2")]),
            Err(WRONGPASS)
        );
        assert!(check_auth(&secret(), &[b("AUTH")]).is_err());
    }

    #[test]
    fn commands_before_auth_get_noauth_and_auth_lets_the_rest_through() {
        let (out, outcome, rest) = run(b"PING\r\nAUTH nope\r\nAUTH hunter2\r\nGET k\r\n");
        assert_eq!(
            out,
            [NOAUTH, WRONGPASS, b"+OK\r\n"].concat(),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(outcome, Some(true));
        assert_eq!(rest, b"GET k\r\n");
    }

    #[test]
    fn hello_with_auth_is_kept_for_the_relay() {
        let hello =
            b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$7\r\nhunter2\r\n";
        let (out, outcome, rest) = run(hello);
        assert_eq!((out, outcome), (vec![], Some(true)));
        assert_eq!(rest, hello);
        let (out, outcome, _) = run(b"HELLO 3\r\n");
        assert_eq!((out, outcome), (NOAUTH_HELLO.to_vec(), None));
    }

    #[test]
    fn unauthenticated_clients_are_held_to_small_commands() {
        let (out, outcome, _) = run(b"*11\r\n$4\r\nAUTH\r\n");
        assert_eq!(outcome, Some(false));
        assert!(out.starts_with(b"-ERR Protocol error: unauthenticated multibulk length"));
        let (out, outcome, _) = run(b"*2\r\n$4\r\nAUTH\r\n$99999\r\n");
        assert_eq!(outcome, Some(false));
        assert!(out.starts_with(b"-ERR Protocol error"), "{out:?}");
    }
}
