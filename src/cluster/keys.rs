//! Which arguments of a command are keys: what a cluster router must know to
//! send a command to the node serving its slot.
//!
//! [`lookup`] finds a command (or a container's subcommand, such as `OBJECT
//! ENCODING`) in the table of every command of Redis 7.0 and 7.2
//! (`keys/table.rs`), ignoring case; the [`Command`] it returns says whether
//! the command writes, reads, has movable keys or none at all.
//! [`Command::keys`] (or [`keys`], both at once) finds the key positions in
//! one invocation, without allocating. They are the positions `COMMAND
//! GETKEYS` answers on redis-server 7.0, which Redis Cluster itself routes
//! by: the legacy first/last/step range, and for the movable-keys commands
//! their own rules (a key count, the arguments after `STREAMS`, `SORT …
//! STORE`, `MIGRATE … KEYS`, `GEORADIUS … STORE|STOREDIST`).
//!
//! Sharded pub/sub channels (`SPUBLISH`, `SSUBSCRIBE`, `SUNSUBSCRIBE`) are not
//! keys to Redis (their key specs say `not_key`, `GETKEYS` refuses them), but
//! they hash to slots as keys do, so they come back as [`Keys::Channels`].
//!
//! It does not hash keys (that is [`super::slot`]) nor know nodes.

mod lookup;
mod table;

pub use lookup::{commands, lookup};

use super::slot::slot;
use crate::resp::parse_i64;
use table::{Find, M, R, W};

/// What the table knows of one command or subcommand.
#[derive(Debug)]
pub struct Command {
    name: &'static str,
    arity: i8,
    first: u8,
    last: i8,
    step: u8,
    flags: u8,
    find: Find,
    subcommands: &'static [Command],
}

impl Command {
    /// The name in lower case (a subcommand's without its container's).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Redis's arity: the exact argument count (name included) if positive,
    /// the least if negative.
    pub fn arity(&self) -> i8 {
        self.arity
    }

    /// `COMMAND`'s first key position (0: none outside the command's own rule).
    pub fn first_key(&self) -> u8 {
        self.first
    }

    /// `COMMAND`'s last key position; negative counts from the end (-1: the last argument).
    pub fn last_key(&self) -> i8 {
        self.last
    }

    /// `COMMAND`'s step between keys.
    pub fn key_step(&self) -> u8 {
        self.step
    }

    /// Whether the command may modify data (`write`).
    pub fn is_write(&self) -> bool {
        self.flags & W != 0
    }

    /// Whether the command only reads data (`readonly`); a replica may serve it.
    pub fn is_readonly(&self) -> bool {
        self.flags & R != 0
    }

    /// Whether the keys are found by the command's own rule, not by
    /// first/last/step alone (`movablekeys`).
    pub fn has_movable_keys(&self) -> bool {
        self.flags & M != 0
    }

    /// Whether the command never has keys (nor shard channels): any node serves it.
    pub fn is_keyless(&self) -> bool {
        self.first == 0 && self.flags & M == 0
    }

    /// Whether the arguments at the key positions are shard channels.
    pub fn has_shard_channels(&self) -> bool {
        self.find == Find::Channels
    }

    /// A container's subcommands (empty for other commands).
    pub fn subcommands(&self) -> &'static [Command] {
        self.subcommands
    }

    /// Where this command's keys are in `args` (`args[0]` is the command name).
    pub fn keys(&self, args: &[&[u8]]) -> Keys {
        let argc = args.len();
        let arity = usize::from(self.arity.unsigned_abs());
        if (self.arity >= 0 && argc != arity) || argc < arity {
            return Keys::Malformed;
        }
        let mut found = Positions::default();
        if self.first > 0 {
            let first = usize::from(self.first);
            let from_end = argc.saturating_sub(usize::from(self.last.unsigned_abs()));
            let last = usize::try_from(self.last).unwrap_or(from_end);
            if last >= argc {
                return Keys::Malformed;
            }
            found.push(first, last, usize::from(self.step));
        }
        let found = match self.find {
            Find::Range => Some(found),
            Find::Sort => Some(sort_store(args, found)),
            Find::Channels if found.is_empty() => return Keys::None,
            Find::Channels => return Keys::Channels(found),
            Find::KeyNum { at, optional } => key_count(args, found, at.into(), optional),
            Find::Streams { from } => streams(args, from.into()),
            Find::Store { from } => Some(geo_store(args, found, from.into())),
            Find::Migrate => migrate(args, found),
        };
        match found {
            None => Keys::Malformed,
            Some(found) if found.is_empty() => Keys::None,
            Some(found) => Keys::Some(found),
        }
    }
}

/// Where a command's keys are, as [`keys`] and [`Command::keys`] find them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// No keys: the command has none, or this invocation names none where
    /// that is allowed (`EVAL`/`FCALL` with 0 keys, `SUNSUBSCRIBE` alone).
    None,
    /// The key positions, in the order `COMMAND GETKEYS` lists them; never empty.
    Some(Positions),
    /// The positions of shard channels (`SPUBLISH`, `SSUBSCRIBE`,
    /// `SUNSUBSCRIBE`): not keys, but routed by slot as keys are.
    Channels(Positions),
    /// redis-server refuses these arguments, and any node can say so: wrong
    /// arity, a key count that is not an integer (Redis's strict syntax), is
    /// negative, 0 where keys are required or more than the arguments, no
    /// `STREAMS`, `MIGRATE … KEYS` with a key argument. (Arguments wrong in
    /// other ways may still give keys, as `COMMAND GETKEYS` does.)
    Malformed,
    /// Not a command (or subcommand) of Redis 7.0 or 7.2.
    Unknown,
}

/// Where the keys of `args` are (`args[0]` is the command name, in any case;
/// a container's subcommand is `args[1]`).
pub fn keys(args: &[&[u8]]) -> Keys {
    match lookup(args) {
        Some(command) => command.keys(args),
        None => Keys::Unknown,
    }
}

/// `at`: a count of keys, which follow it. `None` if the count is not a
/// non-negative integer, overruns the arguments, or is 0 when not `optional`.
fn key_count(args: &[&[u8]], mut found: Positions, at: usize, optional: bool) -> Option<Positions> {
    let count = usize::try_from(parse_i64(args.get(at)?)?).ok()?;
    if count == 0 {
        return optional.then_some(found);
    }
    let last = at.checked_add(count)?;
    if last >= args.len() {
        return None;
    }
    found.push(at + 1, last, 1);
    Some(found)
}

/// Where the first `keyword` is at or after `from`, but before the last argument.
fn keyword(args: &[&[u8]], from: usize, keyword: &[u8]) -> Option<usize> {
    let end = args.len().checked_sub(1)?;
    (from..end).find(|&i| args[i].eq_ignore_ascii_case(keyword))
}

/// `XREAD`/`XREADGROUP`: half the arguments after the first `STREAMS`.
fn streams(args: &[&[u8]], from: usize) -> Option<Positions> {
    let first = keyword(args, from, b"streams")? + 1;
    let count = (args.len() - first) / 2;
    let mut found = Positions::default();
    (count > 0).then(|| {
        found.push(first, first + count - 1, 1);
        found
    })
}

/// `GEORADIUS[BYMEMBER]`: the keys after `STORE` and `STOREDIST` (both, if both
/// are given, as Redis lists them, though the command uses the last).
fn geo_store(args: &[&[u8]], mut found: Positions, from: usize) -> Positions {
    for word in [&b"store"[..], b"storedist"] {
        if let Some(at) = keyword(args, from, word) {
            found.push(at + 1, at + 1, 1);
        }
    }
    found
}

/// `SORT`: the argument after the last `STORE`, skipping the values of
/// `LIMIT`, `GET` and `BY` as Redis's `sortGetKeys` does.
fn sort_store(args: &[&[u8]], mut found: Positions) -> Positions {
    let is = |i: usize, word: &[u8]| args[i].eq_ignore_ascii_case(word);
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        if is(i, b"limit") {
            i += 2;
        } else if is(i, b"get") || is(i, b"by") {
            i += 1;
        } else if is(i, b"store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    if let Some(at) = store {
        found.push(at, at, 1);
    }
    found
}

/// `MIGRATE`: its key argument, or with `KEYS` (which needs an empty key
/// argument) the arguments after it. As Redis: `KEYS` counts only if it is
/// somewhere before the last argument, and then only the first one after the
/// fixed arguments that is not the value of `AUTH` or `AUTH2`.
fn migrate(args: &[&[u8]], legacy: Positions) -> Option<Positions> {
    let is = |a: &[u8], word: &[u8]| a.eq_ignore_ascii_case(word);
    let last = args.len().checked_sub(1)?;
    if !args.iter().take(last).skip(2).any(|a| is(a, b"keys")) {
        return Some(legacy);
    }
    let mut i = 6;
    while let Some(arg) = args.get(i) {
        if is(arg, b"keys") {
            if !args.get(3)?.is_empty() || i == last {
                return None;
            }
            let mut found = Positions::default();
            found.push(i + 1, last, 1);
            return Some(found);
        }
        i += match () {
            () if is(arg, b"auth") => 2,
            () if is(arg, b"auth2") => 3,
            () => 1,
        };
    }
    Some(legacy)
}

/// Argument positions: up to three runs `first..=last` by `step`, in order.
/// Copied, never allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions {
    runs: [Run; 3],
    len: u8,
}

/// One run of positions; `first <= last`, `step >= 1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Run {
    first: usize,
    last: usize,
    step: usize,
}

impl Positions {
    /// Adds a run, if it is not empty (and there is room: the table's rules need three at most).
    fn push(&mut self, first: usize, last: usize, step: usize) {
        if let Some(run) = self.runs.get_mut(usize::from(self.len)) {
            if first <= last {
                let step = step.max(1);
                *run = Run { first, last, step };
                self.len += 1;
            }
        }
    }

    fn runs(&self) -> &[Run] {
        &self.runs[..usize::from(self.len)]
    }

    /// The one position, if there is exactly one (most commands name one key).
    pub fn single(&self) -> Option<usize> {
        match self.runs() {
            [run] if run.last - run.first < run.step => Some(run.first),
            _ => None,
        }
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many positions there are.
    pub fn len(&self) -> usize {
        self.runs()
            .iter()
            .map(|r| (r.last - r.first) / r.step + 1)
            .sum()
    }

    /// The positions, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let runs = self.runs().iter();
        runs.flat_map(|r| (r.first..=r.last).step_by(r.step))
    }

    /// The arguments at these positions (positions past `args` are skipped).
    pub fn of<'a>(&'a self, args: &'a [&'a [u8]]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter_map(|i| args.get(i).copied())
    }

    /// The slot all of them hash to, or `None` if they hash to different
    /// slots (Redis answers `-CROSSSLOT`) or there are none.
    pub fn slot(&self, args: &[&[u8]]) -> Option<u16> {
        let mut slots = self.of(args).map(slot);
        let first = slots.next()?;
        slots.all(|s| s == first).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key positions `line` (split on spaces) has, or its [`Keys`] if none.
    fn at(line: &str) -> Result<Vec<usize>, Keys> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        match keys(&args) {
            Keys::Some(p) => Ok(p.iter().collect()),
            other => Err(other),
        }
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        let sorted = |t: &[Command]| t.windows(2).all(|w| w[0].name < w[1].name);
        assert!(sorted(commands()));
        assert!(commands().iter().all(|c| sorted(c.subcommands())));
        assert!(commands().len() >= 240);
        let fits = |t: &[Command]| t.iter().all(|c| c.name.len() <= lookup::NAME_MAX);
        assert!(fits(commands()));
        assert!(commands().iter().all(|c| fits(c.subcommands())));
    }

    #[test]
    fn looks_up_commands_and_subcommands_in_any_case() {
        assert_eq!(lookup(&[b"GeT", b"k"]).map(Command::name), Some("get"));
        let sub = lookup(&[b"object", b"ENCODING", b"k"]);
        assert_eq!(sub.map(Command::name), Some("encoding"));
        assert_eq!(lookup(&[b"object"]).map(Command::name), Some("object"));
        assert!(lookup(&[b"object", b"nosuch"]).is_none());
        assert!(lookup(&[b"nosuch"]).is_none() && lookup(&[]).is_none());
        assert_eq!(at("nosuch k"), Err(Keys::Unknown));
        assert_eq!(at("OBJECT ENCODING k"), Ok(vec![2]));
        assert_eq!(at("object"), Err(Keys::Malformed));
    }

    #[test]
    fn fixed_positions_follow_first_last_step() {
        assert_eq!(at("get k"), Ok(vec![1]));
        assert_eq!(at("mset a 1 b 2"), Ok(vec![1, 3]));
        let single = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            match keys(&args) {
                Keys::Some(p) => p.single(),
                _ => None,
            }
        };
        assert_eq!(single("get k"), Some(1));
        assert_eq!(single("mset a 1"), Some(1));
        assert_eq!(single("mset a 1 b 2"), None);
        assert_eq!(single("eval s 1 k"), Some(3));
        assert_eq!(at("blpop a b 0"), Ok(vec![1, 2]));
        assert_eq!(at("bitop and d a b"), Ok(vec![2, 3, 4]));
        assert_eq!(at("ping"), Err(Keys::None));
        assert_eq!(at("get"), Err(Keys::Malformed));
        assert_eq!(at("get a b"), Err(Keys::Malformed));
        let get = lookup(&[b"get"]).expect("get");
        assert!(get.is_readonly() && !get.is_write() && !get.is_keyless());
        assert!(lookup(&[b"flushall"]).is_some_and(Command::is_keyless));
    }

    #[test]
    fn key_counts() {
        assert_eq!(at("eval s 2 a b c"), Ok(vec![3, 4]));
        assert_eq!(at("eval s 0 x"), Err(Keys::None));
        assert_eq!(at("zunionstore d 2 a b weights 1 2"), Ok(vec![1, 3, 4]));
        assert_eq!(at("blmpop 0 2 a b left"), Ok(vec![3, 4]));
        assert_eq!(at("zunion 2 a b"), Ok(vec![2, 3]));
        for bad in [
            "zunion 0 a",
            "eval s 3 a b",
            "eval s -1 a",
            "eval s 02 a",
            "lmpop x a left",
        ] {
            assert_eq!(at(bad), Err(Keys::Malformed), "{bad}");
        }
        assert_eq!(at("eval s 99999999999999999999 a"), Err(Keys::Malformed));
    }

    #[test]
    fn movable_rules() {
        assert_eq!(at("xread count 1 streams a b 0 0"), Ok(vec![4, 5]));
        assert_eq!(at("xreadgroup group streams c streams a 0"), Ok(vec![5]));
        assert_eq!(at("xread count 1 block 0"), Err(Keys::Malformed));
        assert_eq!(at("sort k by w get x store d limit 0 1"), Ok(vec![1, 7]));
        assert_eq!(at("sort k store d store e"), Ok(vec![1, 5]));
        assert_eq!(at("sort k get store x"), Ok(vec![1]));
        assert_eq!(at("sort_ro k by w"), Ok(vec![1]));
        assert_eq!(
            at("georadius k 1 2 3 m storedist e store d"),
            Ok(vec![1, 9, 7])
        );
        assert_eq!(at("georadiusbymember k m 3 m store"), Ok(vec![1]));
        assert_eq!(at("migrate h p k 0 5"), Ok(vec![3]));
        assert_eq!(at("migrate h p  0 5 copy keys a b"), Ok(vec![8, 9]));
        assert_eq!(at("migrate h p  0 5 auth keys x"), Ok(vec![3]));
        assert_eq!(at("migrate h p k 0 5 keys a"), Err(Keys::Malformed));
    }

    #[test]
    fn shard_channels_are_not_keys() {
        let args: [&[u8]; 3] = [b"ssubscribe", b"a", b"b"];
        let Keys::Channels(p) = keys(&args) else {
            panic!("{:?}", keys(&args))
        };
        assert_eq!(p.of(&args).collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert_eq!(at("sunsubscribe"), Err(Keys::None));
    }

    #[test]
    fn positions_give_the_slot_when_all_keys_share_it() {
        let args: [&[u8]; 4] = [b"mget", b"{u}a", b"{u}b", b"c"];
        let Keys::Some(p) = keys(&args) else { panic!() };
        assert_eq!((p.len(), p.slot(&args[..3])), (3, Some(slot(b"u"))));
        assert_eq!(p.slot(&args), None);
    }

    #[test]
    fn no_arguments_make_it_panic_or_point_past_the_end() {
        let words: [&[u8]; 9] = [
            b"0", b"1", b"2", b"-1", b"x", b"", b"streams", b"keys", b"store",
        ];
        let subs = |c: &'static Command| c.subcommands().iter().map(|s| vec![c.name, s.name]);
        let names = commands()
            .iter()
            .flat_map(|c| subs(c).chain([vec![c.name]]));
        for (name, n, w) in names.flat_map(|c| (0..90).map(move |i| (c.clone(), i / 9, i % 9))) {
            let mut args: Vec<&[u8]> = name.iter().map(|s| s.as_bytes()).collect();
            args.extend((0..n).map(|i| words[(w + i) % words.len()]));
            if let Keys::Some(p) | Keys::Channels(p) = keys(&args) {
                assert!(p.iter().all(|i| i < args.len() && i > 0), "{args:?}");
                assert_eq!(p.iter().count(), p.len());
            }
        }
    }
}
