"""Generates src/cluster/keys/table.rs from `redis-cli --json COMMAND` (redis-server 7.0.15)
plus the commands and arities Redis 7.2 added or widened.

Usage: redis-cli --json COMMAND > cmd.json; python3 scripts/command-keys-table.py cmd.json > src/cluster/keys/table.rs
(then rustfmt keeps the #[rustfmt::skip] rows as they are)."""
import json, sys
d = json.load(open(sys.argv[1]))  # redis-cli --json COMMAND > cmd.json

# Redis 7.2 (src/commands/*.json, 7.0.15 -> 7.2.6): new commands, and arities it widened.
ADDED = {'': [('waitaof', 4, 0, 0, 0, [], [])],
         'client': [('no-touch', 3, 0, 0, 0, [], []), ('setinfo', 4, 0, 0, 0, [], [])],
         'cluster': [('myshardid', 2, 0, 0, 0, [], [])]}
WIDER = {'zrank': -3, 'zrevrank': -3, 'getkeys': -3, 'getkeysandflags': -3}

def flags(c):
    f = [n for n, k in (('W', 'write'), ('R', 'readonly'), ('M', 'movablekeys')) if k in c[2]]
    return ' | '.join(f) or '0'

def find(c):
    name, specs = c[0], c[8]
    if specs and all('not_key' in s['flags'] for s in specs):
        return 'Find::Channels'
    if 'movablekeys' not in c[2]:
        return None
    if name == 'sort': return 'Find::Sort'
    if name == 'sort_ro': return None  # its key is the legacy range; BY/GET are not counted
    if name == 'migrate': return 'Find::Migrate'
    last = specs[-1]
    bs, fk = last['begin_search'], last['find_keys']
    if fk['type'] == 'keynum':
        assert fk['spec'] == {'keynumidx': 0, 'firstkey': 1, 'keystep': 1}, name
        at = bs['spec']['index']
        optional = 'true' if 'no_mandatory_keys' in c[2] else 'false'
        return f'Find::KeyNum {{ at: {at}, optional: {optional} }}'
    if bs['type'] == 'keyword' and bs['spec']['keyword'] == 'STREAMS':
        assert len(specs) == 1 and fk['spec'] == {'lastkey': -1, 'keystep': 1, 'limit': 2}
        return f"Find::Streams {{ from: {bs['spec']['startfrom']} }}"
    if bs['type'] == 'keyword' and bs['spec']['keyword'] == 'STOREDIST':
        kw = [s['begin_search']['spec'] for s in specs[1:]]
        assert kw[0]['keyword'] == 'STORE' and kw[0]['startfrom'] == kw[1]['startfrom']
        return f"Find::Store {{ from: {kw[0]['startfrom']} }}"
    raise SystemExit(f'no rule for movable {name}')

def row(c, subs=None):
    name = c[0].split('|')[-1]
    arity = WIDER.get(name, c[1])
    s = f'c("{name}", {arity}, {c[3]}, {c[4]}, {c[5]}, {flags(c)})'
    rule = find(c)
    if rule: s += f'.find({rule})'
    if subs: s += f'.with_subcommands({subs})'
    return s + ','

cmds = [list(c) for c in d] + [[n, a, [], f, l, s, [], [], [], []] for n, a, f, l, s, _, _ in ADDED['']]
out_top, out_subs = [], []
for c in sorted(cmds, key=lambda c: c[0].encode()):
    subs = [list(s) for s in c[9]]
    for n, a, f, l, st, _, _ in ADDED.get(c[0], []):
        subs.append([f'{c[0]}|{n}', a, [], f, l, st, [], [], [], []])
    if subs:
        const = c[0].upper()
        out_top.append(row(c, const))
        out_subs.append((const, c[0], [row(s) for s in sorted(subs, key=lambda s: s[0].encode())]))
    else:
        out_top.append(row(c))

print('''//! The command table: every command of redis-server 7.0 and 7.2 (except
//! `SENTINEL`, which only a sentinel serves), and every subcommand of the
//! container commands, sorted by name for [`super::lookup`]'s binary search.
//!
//! Generated from `redis-cli --json COMMAND` on redis-server 7.0.15: arity,
//! the legacy first key / last key / step, and the `write`, `readonly` and
//! `movablekeys` flags, as the server reports them. Added by hand from Redis
//! 7.2's `src/commands/*.json`: `WAITAOF`, `CLIENT NO-TOUCH`, `CLIENT
//! SETINFO`, `CLUSTER MYSHARDID`, and the arities 7.2 widened (`ZRANK`,
//! `ZREVRANK`, `COMMAND GETKEYS`, `COMMAND GETKEYSANDFLAGS`: -3). The
//! `.find(…)` rules are read off the key specs of each movable-keys command
//! (`COMMAND`'s eighth field) and of the sharded pub/sub commands, whose
//! specs say `not_key`. `tests/command_keys.rs` checks all of it against a
//! live server.
//!
//! Columns: name, arity, first key, last key, step, flags.

use super::Command;

/// Flag bits of [`Command`]: the command writes (`write`).
pub(super) const W: u8 = 1;
/// The command only reads (`readonly`).
pub(super) const R: u8 = 2;
/// The command's keys are found by its own rule (`movablekeys`).
pub(super) const M: u8 = 4;

/// How a command's keys are found beyond its legacy first/last/step range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Find {
    /// The legacy range is all.
    Range,
    /// The legacy range holds shard channels, not keys.
    Channels,
    /// After the legacy range (a destination, if any): a count of keys at
    /// `at`, the keys right after it. `optional`: a count of 0 is allowed.
    KeyNum { at: u8, optional: bool },
    /// After the first `STREAMS` at or after `from`: the first half of the
    /// remaining arguments (the other half are IDs).
    Streams { from: u8 },
    /// The legacy key, then the argument after the first `STORE` and after
    /// the first `STOREDIST` at or after `from`.
    Store { from: u8 },
    /// The legacy key, then the argument after the last `STORE` option.
    Sort,
    /// The key argument, or the arguments after `KEYS` when it is empty.
    Migrate,
}

/// A row: name, arity, first key, last key, step, flags.
const fn c(name: &'static str, arity: i8, first: u8, last: i8, step: u8, flags: u8) -> Command {
    let (find, subcommands) = (Find::Range, &[] as &[Command]);
    Command { name, arity, first, last, step, flags, find, subcommands }
}

impl Command {
    const fn find(self, find: Find) -> Command {
        Command { find, ..self }
    }

    const fn with_subcommands(self, subcommands: &'static [Command]) -> Command {
        Command { subcommands, ..self }
    }
}

/// The top-level commands.
#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[''')
for r in out_top: print('    ' + r)
print('];')
for const, name, rows in out_subs:
    print(f'\n/// The subcommands of `{name.upper()}`.\n#[rustfmt::skip]\nstatic {const}: &[Command] = &[')
    line = ''
    for r in rows:
        keyless = r.endswith(', 0, 0, 0, 0),') or r.endswith(', 0, 0, 0, W),')
        if keyless and line and len(line) + 1 + len(r) <= 96:
            line += ' ' + r
            continue
        if line: print(line)
        line = '    ' + r
        if not keyless:
            print(line); line = ''
    if line: print(line)
    print('];')
