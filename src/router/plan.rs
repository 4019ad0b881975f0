//! Where a client command goes in routing mode: decided from its name and
//! its keys' slots alone, without I/O.

use super::merge::Combine;
use crate::cluster::keys::{self, Keys};
use crate::cluster::slot::slot;
use bytes::Bytes;

/// What to do with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// To the primary serving this slot.
    Slot(u16),
    /// Keyless: to the client's home node (or its transaction's node).
    Home,
    /// Split by slot: each part's arguments and slot, and how to combine.
    Split {
        parts: Vec<(Vec<Bytes>, u16)>,
        combine: Combine,
    },
    /// To every primary serving slots.
    Every(Combine),
    /// `SCAN`, on the primary its cursor names.
    Scan,
    /// Answered here.
    Reply(Bytes),
    /// Handled by the router's own state: MULTI, EXEC, DISCARD, QUIT, RESET,
    /// HELLO, CLIENT SETNAME.
    Own(Own),
}

/// The commands that change the router's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Own {
    Multi,
    Exec,
    Discard,
    Quit,
    Reset,
}

/// Redis Cluster's answer to keys in different slots.
pub(super) const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

fn unsupported(what: &str) -> Plan {
    Plan::Reply(crate::resp::encode::error(&format!(
        "ERR redauth: {what} is not supported in cluster routing mode (use the per-node ports)"
    )))
}

/// The cluster's refusal of another database.
const SELECT_REFUSED: &[u8] = b"-ERR SELECT is not allowed in cluster mode\r\n";

/// The longest command name that has a rule of its own below.
const LONGEST_SPECIAL: usize = 9;

/// Decides where `args` go.
pub(super) fn plan(args: &[&[u8]]) -> Plan {
    let Some(&name) = args.first() else {
        return Plan::Home;
    };
    // The name in lower case, matched once (most commands are none of
    // these, and go straight to their keys).
    let mut lower = [0u8; LONGEST_SPECIAL];
    let Some(lower) = crate::resp::lowercase(name, &mut lower) else {
        return by_keys(name, args);
    };
    let sub = |n: &str| {
        args.get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(n.as_bytes()))
    };
    match lower {
        b"multi" => Plan::Own(Own::Multi),
        b"exec" => Plan::Own(Own::Exec),
        b"discard" => Plan::Own(Own::Discard),
        b"quit" => Plan::Own(Own::Quit),
        b"reset" => Plan::Own(Own::Reset),
        b"select" => match args {
            [_, b"0"] => Plan::Reply(crate::resp::encode::ok()),
            [_, _] => Plan::Reply(Bytes::from_static(SELECT_REFUSED)),
            _ => Plan::Home,
        },
        b"swapdb" | b"move" => Plan::Reply(Bytes::from_static(SELECT_REFUSED)),
        b"dbsize" => Plan::Every(Combine::Sum),
        b"keys" if args.len() == 2 => Plan::Every(Combine::Concat),
        b"flushall" | b"flushdb" => Plan::Every(Combine::AllOk),
        // A busy script or function runs on one primary, whichever it is.
        b"script" | b"function" if sub("kill") => Plan::Every(Combine::AnyOk),
        b"script" if sub("load") || sub("flush") => Plan::Every(Combine::First),
        b"function" if sub("load") || sub("flush") || sub("delete") || sub("restore") => {
            Plan::Every(Combine::First)
        }
        // A server setting of "the" Redis is every primary's.
        b"config" if sub("set") || sub("resetstat") => Plan::Every(Combine::AllOk),
        b"client" if sub("pause") || sub("unpause") => Plan::Every(Combine::AllOk),
        b"client" if sub("reply") || sub("tracking") || sub("caching") => unsupported(&format!(
            "CLIENT {}",
            String::from_utf8_lossy(args[1]).to_uppercase()
        )),
        b"info" => Plan::Every(Combine::Info),
        b"randomkey" => Plan::Every(Combine::AnyNonNull),
        b"debug" => debug(args),
        b"scan" => Plan::Scan,
        b"monitor" | b"sync" | b"psync" => {
            unsupported(&String::from_utf8_lossy(name).to_uppercase())
        }
        _ => by_keys(name, args),
    }
}

/// A command without a rule of its own: by its keys' slot (split, or
/// refused, across slots), or on the home node if it has none.
fn by_keys(name: &[u8], args: &[&[u8]]) -> Plan {
    match keys::keys(args) {
        Keys::Some(positions) | Keys::Channels(positions) => {
            // The common case, one key, without iterating over positions.
            if let Some(at) = positions.single() {
                return args.get(at).map_or(Plan::Home, |key| Plan::Slot(slot(key)));
            }
            let mut slots = positions
                .iter()
                .filter_map(|p| args.get(p))
                .map(|k| slot(k));
            let Some(first) = slots.next() else {
                return Plan::Home;
            };
            if slots.all(|s| s == first) {
                return Plan::Slot(first);
            }
            split(name, args, &positions.iter().collect::<Vec<_>>())
        }
        Keys::None | Keys::Malformed | Keys::Unknown => Plan::Home,
    }
}

/// `DEBUG`: the subcommands about one key go to its slot; those that change
/// how the server behaves, and RELOAD (a save and a load, in one step), to
/// every primary; the rest to the home node. LOADAOF stays on the home node:
/// a node still writing the AOF that `CONFIG SET appendonly yes` started
/// exits when asked to load it (the suite waits for the home node's rewrite
/// only, and took a node down that way).
fn debug(args: &[&[u8]]) -> Plan {
    let Some(sub) = args.get(1).map(|s| s.to_ascii_lowercase()) else {
        return Plan::Home;
    };
    match &sub[..] {
        b"object" | b"digest-value" | b"listpack" | b"quicklist" | b"sdslen" | b"ziplist"
        | b"protocol-keys" => match args.get(2) {
            Some(key) => Plan::Slot(slot(key)),
            None => Plan::Home,
        },
        b"reload"
        | b"set-active-expire"
        | b"quicklist-packed-threshold"
        | b"set-skip-checksum-validation"
        | b"stringmatch-len"
        | b"dict-resizing"
        | b"replybuffer"
        | b"set-disable-deny-scripts" => Plan::Every(Combine::AllOk),
        _ => Plan::Home,
    }
}

/// A multi-key command whose keys are in several slots: split per slot
/// where the command allows, else Redis Cluster's `CROSSSLOT`.
fn split(name: &[u8], args: &[&[u8]], positions: &[usize]) -> Plan {
    let upper = name.to_ascii_uppercase();
    let (combine_kind, stride) = match &upper[..] {
        b"MGET" => (None, 1),
        b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" => (Some(Combine::Sum), 1),
        b"MSET" => (Some(Combine::AllOk), 2),
        _ => return Plan::Reply(Bytes::from_static(CROSSSLOT)),
    };
    // Parts in the order their slot first appears; a key's place in its part.
    let mut parts: Vec<(Vec<Bytes>, u16)> = Vec::new();
    let mut order = Vec::with_capacity(positions.len());
    for &at in positions {
        let Some(key) = args.get(at) else { continue };
        let s = slot(key);
        let index = match parts.iter().position(|(_, ps)| *ps == s) {
            Some(i) => i,
            None => {
                parts.push((vec![Bytes::copy_from_slice(name)], s));
                parts.len() - 1
            }
        };
        let part = &mut parts[index].0;
        order.push((index, (part.len() - 1) / stride));
        part.extend(
            args[at..(at + stride).min(args.len())]
                .iter()
                .map(|a| Bytes::copy_from_slice(a)),
        );
    }
    let combine = combine_kind.unwrap_or(Combine::Gather(order));
    Plan::Split { parts, combine }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(words: &str) -> Plan {
        let args: Vec<&[u8]> = words.split(' ').map(str::as_bytes).collect();
        plan(&args)
    }

    #[test]
    fn single_slot_commands_go_to_their_slot() {
        assert_eq!(plan_of("GET foo"), Plan::Slot(12182));
        assert_eq!(plan_of("MGET {u}a {u}b"), Plan::Slot(slot(b"u")));
        assert_eq!(plan_of("SSUBSCRIBE ch"), Plan::Slot(slot(b"ch")));
        assert_eq!(plan_of("PING"), Plan::Home);
        assert_eq!(plan_of("NOSUCHCOMMAND x"), Plan::Home);
    }

    #[test]
    fn multi_key_commands_split_by_slot_or_are_refused() {
        let Plan::Split { parts, combine } = plan_of("MSET a 1 b 2 {a}c 3") else {
            panic!("MSET splits");
        };
        assert_eq!(combine, Combine::AllOk);
        let words = |p: &Vec<Bytes>| {
            p.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(words(&parts[0].0), "MSET a 1 {a}c 3");
        assert_eq!(words(&parts[1].0), "MSET b 2");
        let Plan::Split { combine, parts } = plan_of("MGET a b {a}c") else {
            panic!("MGET splits");
        };
        assert_eq!(parts.len(), 2);
        assert_eq!(combine, Combine::Gather(vec![(0, 0), (1, 0), (0, 1)]));
        assert_eq!(
            plan_of("SUNION a b"),
            Plan::Reply(Bytes::from_static(CROSSSLOT))
        );
        assert_eq!(plan_of("SELECT 0"), Plan::Reply(crate::resp::encode::ok()));
        assert!(matches!(plan_of("SELECT 1"), Plan::Reply(r) if r.starts_with(b"-ERR")));
        assert_eq!(plan_of("DBSIZE"), Plan::Every(Combine::Sum));
        assert_eq!(plan_of("RANDOMKEY"), Plan::Every(Combine::AnyNonNull));
        assert_eq!(
            plan_of("CONFIG SET maxmemory 0"),
            Plan::Every(Combine::AllOk)
        );
        assert_eq!(plan_of("CONFIG GET maxmemory"), Plan::Home);
        assert_eq!(plan_of("DEBUG OBJECT foo"), Plan::Slot(12182));
        assert_eq!(plan_of("DEBUG RELOAD"), Plan::Every(Combine::AllOk));
        assert_eq!(plan_of("DEBUG SLEEP 0"), Plan::Home);
        assert_eq!(plan_of("SCRIPT KILL"), Plan::Every(Combine::AnyOk));
        assert_eq!(plan_of("CLIENT PAUSE 100"), Plan::Every(Combine::AllOk));
        assert_eq!(
            plan_of("swapdb 0 1"),
            Plan::Reply(Bytes::from_static(SELECT_REFUSED))
        );
        assert!(
            matches!(plan_of("Monitor"), Plan::Reply(r) if r.starts_with(b"-ERR redauth: MONITOR"))
        );
        // Names longer than any with a rule of their own go by their keys.
        assert_eq!(plan_of("ZRANGEBYSCORE foo 0 1"), Plan::Slot(12182));
        assert_eq!(plan_of("INFO clients"), Plan::Every(Combine::Info));
    }
}
