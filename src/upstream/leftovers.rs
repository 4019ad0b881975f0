//! Connection settings a client can leave behind that `RESET` does not undo.
//!
//! A client's upstream connection goes back to the warm pool when the client
//! leaves, and the pool returns it to the state of a fresh dial with `RESET`
//! (see [`crate::upstream::Pool::recycle`]). `RESET` restores the database,
//! protocol, transaction, watches, subscriptions, tracking, reply mode,
//! `READONLY`/`ASKING`, the name and the user, but not everything a `CLIENT`
//! subcommand can set:
//!
//! | setting | left by `RESET` in | undone with |
//! | --- | --- | --- |
//! | `CLIENT NO-EVICT on` | 7.0 (7.2+ clears it) | `CLIENT NO-EVICT off` |
//! | `CLIENT NO-TOUCH on` | 7.2 releases before the fix | `CLIENT NO-TOUCH off` |
//! | `CLIENT SETINFO LIB-NAME`/`LIB-VER` | 7.2+, by design | `CLIENT SETINFO LIB-NAME ""` (and `LIB-VER`) |
//!
//! [`Leftovers`] records which of these a session's client ran, so the
//! recycle step undoes exactly those (an ordinary client costs nothing extra,
//! and a library that sends `CLIENT SETINFO` on every connect, as redis-py
//! does, keeps the pool's hit rate; a server that does not know the
//! subcommand answers the undo with "unknown subcommand", which is fine: the
//! client could not have set it either).
//!
//! Some state no command takes away, and then the connection is closed
//! instead of reused: `CLIENT TRACKING on` (the server remembers the keys the
//! connection read under its client id, which a recycled connection keeps, so
//! a next client turning tracking on would be told of the previous one's
//! keys), and a `CLIENT` subcommand redauth does not know or could not read
//! (too large), as nothing says `RESET` undoes it.

use crate::resp::encode;
use bytes::{Bytes, BytesMut};

/// A per-connection setting `RESET` may leave in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    NoEvict,
    NoTouch,
    LibName,
    LibVer,
}

impl Setting {
    /// The command that puts the setting back to a fresh connection's.
    fn undo(self) -> BytesMut {
        encode::command(match self {
            Setting::NoEvict => &["CLIENT", "NO-EVICT", "off"][..],
            Setting::NoTouch => &["CLIENT", "NO-TOUCH", "off"],
            Setting::LibName => &["CLIENT", "SETINFO", "LIB-NAME", ""],
            Setting::LibVer => &["CLIENT", "SETINFO", "LIB-VER", ""],
        })
    }
}

/// `CLIENT` subcommands that leave nothing behind `RESET` misses: they only
/// read, act on other connections or the server, or set state `RESET`
/// restores (name, reply mode; tracking off, or its options).
const HARMLESS: &[&[u8]] = &[
    b"caching",
    b"getname",
    b"getredir",
    b"help",
    b"id",
    b"info",
    b"kill",
    b"list",
    b"pause",
    b"reply",
    b"setname",
    b"tracking",
    b"trackinginfo",
    b"unblock",
    b"unpause",
];

/// What a session's client set that the recycle step must undo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    settings: Vec<Setting>,
    /// State no command undoes, or a `CLIENT` subcommand whose effect is not
    /// known (named for the log): the connection must not be reused.
    lasting: Option<String>,
}

impl Leftovers {
    /// Notes a `CLIENT …` command the client sent (`args` from its name on).
    pub fn client(&mut self, args: &[Bytes]) {
        let Some(sub) = args.get(1) else {
            return;
        };
        let sub = sub.to_ascii_lowercase();
        let setting = match &sub[..] {
            b"no-evict" => Some(Setting::NoEvict),
            b"no-touch" => Some(Setting::NoTouch),
            b"setinfo" => match args.get(2).map(|a| a.to_ascii_lowercase()) {
                Some(attr) if attr == b"lib-name" => Some(Setting::LibName),
                Some(attr) if attr == b"lib-ver" => Some(Setting::LibVer),
                // Any other attribute is refused by the server.
                _ => None,
            },
            b"tracking" if args.get(2).is_some_and(|a| a.eq_ignore_ascii_case(b"on")) => {
                self.lasting = Some("CLIENT TRACKING on".into());
                None
            }
            sub if HARMLESS.contains(&sub) => None,
            other => {
                self.lasting = Some(format!("CLIENT {}", String::from_utf8_lossy(other)));
                None
            }
        };
        if let Some(setting) = setting {
            if !self.settings.contains(&setting) {
                self.settings.push(setting);
            }
        }
    }

    /// Notes a `CLIENT` command too large to be read: its effect is unknown.
    pub fn unreadable_client_command(&mut self) {
        self.lasting = Some("CLIENT (too large to read)".into());
    }

    /// The commands that undo what the client set, or why the connection
    /// cannot be made fresh again and must be closed instead.
    pub fn undo(&self) -> Result<Vec<BytesMut>, &str> {
        match &self.lasting {
            Some(command) => Err(command),
            None => Ok(self.settings.iter().map(|s| s.undo()).collect()),
        }
    }
}

/// Whether `reply` to an undo command means the setting is as on a fresh
/// connection: `+OK`, or a server that does not know the subcommand (so the
/// client's own command set nothing either).
pub fn undone_by(reply: &[u8]) -> bool {
    reply == b"+OK\r\n" || reply.starts_with(b"-ERR unknown subcommand")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn after(commands: &[&[&str]]) -> Leftovers {
        let mut leftovers = Leftovers::default();
        for command in commands {
            leftovers.client(&args(command));
        }
        leftovers
    }

    #[test]
    fn an_ordinary_client_leaves_nothing_to_undo() {
        let leftovers = after(&[
            &["CLIENT", "SETNAME", "app"],
            &["client", "id"],
            &["CLIENT", "TRACKING", "off"],
            &["CLIENT", "REPLY", "ON"],
            &["CLIENT", "LIST"],
        ]);
        assert_eq!(leftovers.undo(), Ok(vec![]));
    }

    #[test]
    fn each_setting_reset_keeps_is_undone_once() {
        let leftovers = after(&[
            &["CLIENT", "NO-EVICT", "on"],
            &["client", "no-touch", "ON"],
            &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"],
            &["CLIENT", "SETINFO", "lib-ver", "5.0.1"],
            &["CLIENT", "NO-EVICT", "off"],
        ]);
        let undo = leftovers.undo().expect("all undoable");
        assert_eq!(
            undo,
            vec![
                encode::command(&["CLIENT", "NO-EVICT", "off"]),
                encode::command(&["CLIENT", "NO-TOUCH", "off"]),
                encode::command(&["CLIENT", "SETINFO", "LIB-NAME", ""]),
                encode::command(&["CLIENT", "SETINFO", "LIB-VER", ""]),
            ]
        );
    }

    #[test]
    fn an_unknown_or_unreadable_client_command_rules_out_reuse() {
        let leftovers = after(&[&["CLIENT", "CAPA", "redirect"]]);
        assert_eq!(leftovers.undo(), Err("CLIENT capa"));
        let mut big = Leftovers::default();
        big.unreadable_client_command();
        assert!(big.undo().is_err());
        // A bare CLIENT (an arity error) sets nothing.
        assert_eq!(after(&[&["CLIENT"]]).undo(), Ok(vec![]));
        // Keys read under tracking outlive RESET.
        let tracking = after(&[&["CLIENT", "TRACKING", "ON", "BCAST"]]);
        assert_eq!(tracking.undo(), Err("CLIENT TRACKING on"));
    }

    #[test]
    fn an_undo_the_server_does_not_know_is_nothing_to_undo() {
        assert!(undone_by(b"+OK\r\n"));
        assert!(undone_by(
            b"-ERR unknown subcommand 'NO-TOUCH'. Try CLIENT HELP.\r\n"
        ));
        assert!(!undone_by(b"-NOAUTH Authentication required.\r\n"));
    }
}
