//! Finding a command in the table ([`super::table`]) by its name in any case:
//! the router looks up every command it routes, so this is on its hot path.

use super::{table, Command};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// The command `args` invoke: a container's subcommand if it has one, the
/// container itself if `args` name no subcommand, `None` if unknown.
pub fn lookup(args: &[&[u8]]) -> Option<&'static Command> {
    let (name, rest) = args.split_first()?;
    let command = top_level(name)?;
    match rest.first() {
        Some(sub) if !command.subcommands.is_empty() => find(command.subcommands, sub),
        _ => Some(command),
    }
}

/// Every top-level command of the table, sorted by name.
pub fn commands() -> &'static [Command] {
    table::COMMANDS
}

/// No name in the table is longer (a test checks).
pub(super) const NAME_MAX: usize = 32;

/// The top-level commands by name, built on first use.
type Index = HashMap<&'static [u8], &'static Command, BuildHasherDefault<NameHasher>>;

/// The top-level command `name` (in any case) names. A router looks up every
/// command it routes: a hash and one comparison cost a third of a binary
/// search's eight probes.
fn top_level(name: &[u8]) -> Option<&'static Command> {
    static INDEX: OnceLock<Index> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let names = table::COMMANDS.iter().map(|c| (c.name.as_bytes(), c));
        names.collect()
    });
    let mut lower = [0u8; NAME_MAX];
    let lower = crate::resp::lowercase(name, &mut lower)?;
    index.get(lower).copied()
}

/// FNV-1a over a command name: a few instructions a byte for names of a few
/// bytes, from a fixed table (SipHash's defence against chosen keys is not
/// needed, and costs more than the lookup).
#[derive(Debug)]
struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> NameHasher {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A slice's length, hashed first: one round, not one per byte of a `usize`.
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x0100_0000_01b3);
    }
}

/// Binary search of a sorted table (a container's subcommands), ignoring
/// the ASCII case of `name`.
///
/// The name is lower-cased once, on the stack, so each probe is a plain
/// byte comparison (a router looks up every command it routes; lower-casing
/// per probe cost more than the rest of the routing decision).
fn find(table: &'static [Command], name: &[u8]) -> Option<&'static Command> {
    let mut lower = [0u8; NAME_MAX];
    let lower = crate::resp::lowercase(name, &mut lower)?;
    let at = table
        .binary_search_by(|c| order(c.name.as_bytes(), lower))
        .ok()?;
    table.get(at)
}

/// `a.cmp(b)`, byte by byte in line: names differ within their first few
/// bytes, where a call to `memcmp` (what slices' `cmp` makes) costs more
/// than the comparison.
fn order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}
