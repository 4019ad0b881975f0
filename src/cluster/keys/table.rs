//! The command table: every command of redis-server 7.0 and 7.2 (except
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
    Command {
        name,
        arity,
        first,
        last,
        step,
        flags,
        find,
        subcommands,
    }
}

impl Command {
    const fn find(self, find: Find) -> Command {
        Command { find, ..self }
    }

    const fn with_subcommands(self, subcommands: &'static [Command]) -> Command {
        Command {
            subcommands,
            ..self
        }
    }
}

/// The top-level commands.
#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    c("acl", -2, 0, 0, 0, 0).with_subcommands(ACL),
    c("append", 3, 1, 1, 1, W),
    c("asking", 1, 0, 0, 0, 0),
    c("auth", -2, 0, 0, 0, 0),
    c("bgrewriteaof", 1, 0, 0, 0, 0),
    c("bgsave", -1, 0, 0, 0, 0),
    c("bitcount", -2, 1, 1, 1, R),
    c("bitfield", -2, 1, 1, 1, W),
    c("bitfield_ro", -2, 1, 1, 1, R),
    c("bitop", -4, 2, -1, 1, W),
    c("bitpos", -3, 1, 1, 1, R),
    c("blmove", 6, 1, 2, 1, W),
    c("blmpop", -5, 0, 0, 0, W | M).find(Find::KeyNum { at: 2, optional: false }),
    c("blpop", -3, 1, -2, 1, W),
    c("brpop", -3, 1, -2, 1, W),
    c("brpoplpush", 4, 1, 2, 1, W),
    c("bzmpop", -5, 0, 0, 0, W | M).find(Find::KeyNum { at: 2, optional: false }),
    c("bzpopmax", -3, 1, -2, 1, W),
    c("bzpopmin", -3, 1, -2, 1, W),
    c("client", -2, 0, 0, 0, 0).with_subcommands(CLIENT),
    c("cluster", -2, 0, 0, 0, 0).with_subcommands(CLUSTER),
    c("command", -1, 0, 0, 0, 0).with_subcommands(COMMAND),
    c("config", -2, 0, 0, 0, 0).with_subcommands(CONFIG),
    c("copy", -3, 1, 2, 1, W),
    c("dbsize", 1, 0, 0, 0, R),
    c("debug", -2, 0, 0, 0, 0),
    c("decr", 2, 1, 1, 1, W),
    c("decrby", 3, 1, 1, 1, W),
    c("del", -2, 1, -1, 1, W),
    c("discard", 1, 0, 0, 0, 0),
    c("dump", 2, 1, 1, 1, R),
    c("echo", 2, 0, 0, 0, 0),
    c("eval", -3, 0, 0, 0, M).find(Find::KeyNum { at: 2, optional: true }),
    c("eval_ro", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 2, optional: true }),
    c("evalsha", -3, 0, 0, 0, M).find(Find::KeyNum { at: 2, optional: true }),
    c("evalsha_ro", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 2, optional: true }),
    c("exec", 1, 0, 0, 0, 0),
    c("exists", -2, 1, -1, 1, R),
    c("expire", -3, 1, 1, 1, W),
    c("expireat", -3, 1, 1, 1, W),
    c("expiretime", 2, 1, 1, 1, R),
    c("failover", -1, 0, 0, 0, 0),
    c("fcall", -3, 0, 0, 0, M).find(Find::KeyNum { at: 2, optional: true }),
    c("fcall_ro", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 2, optional: true }),
    c("flushall", -1, 0, 0, 0, W),
    c("flushdb", -1, 0, 0, 0, W),
    c("function", -2, 0, 0, 0, 0).with_subcommands(FUNCTION),
    c("geoadd", -5, 1, 1, 1, W),
    c("geodist", -4, 1, 1, 1, R),
    c("geohash", -2, 1, 1, 1, R),
    c("geopos", -2, 1, 1, 1, R),
    c("georadius", -6, 1, 1, 1, W | M).find(Find::Store { from: 6 }),
    c("georadius_ro", -6, 1, 1, 1, R),
    c("georadiusbymember", -5, 1, 1, 1, W | M).find(Find::Store { from: 5 }),
    c("georadiusbymember_ro", -5, 1, 1, 1, R),
    c("geosearch", -7, 1, 1, 1, R),
    c("geosearchstore", -8, 1, 2, 1, W),
    c("get", 2, 1, 1, 1, R),
    c("getbit", 3, 1, 1, 1, R),
    c("getdel", 2, 1, 1, 1, W),
    c("getex", -2, 1, 1, 1, W),
    c("getrange", 4, 1, 1, 1, R),
    c("getset", 3, 1, 1, 1, W),
    c("hdel", -3, 1, 1, 1, W),
    c("hello", -1, 0, 0, 0, 0),
    c("hexists", 3, 1, 1, 1, R),
    c("hget", 3, 1, 1, 1, R),
    c("hgetall", 2, 1, 1, 1, R),
    c("hincrby", 4, 1, 1, 1, W),
    c("hincrbyfloat", 4, 1, 1, 1, W),
    c("hkeys", 2, 1, 1, 1, R),
    c("hlen", 2, 1, 1, 1, R),
    c("hmget", -3, 1, 1, 1, R),
    c("hmset", -4, 1, 1, 1, W),
    c("hrandfield", -2, 1, 1, 1, R),
    c("hscan", -3, 1, 1, 1, R),
    c("hset", -4, 1, 1, 1, W),
    c("hsetnx", 4, 1, 1, 1, W),
    c("hstrlen", 3, 1, 1, 1, R),
    c("hvals", 2, 1, 1, 1, R),
    c("incr", 2, 1, 1, 1, W),
    c("incrby", 3, 1, 1, 1, W),
    c("incrbyfloat", 3, 1, 1, 1, W),
    c("info", -1, 0, 0, 0, 0),
    c("keys", 2, 0, 0, 0, R),
    c("lastsave", 1, 0, 0, 0, 0),
    c("latency", -2, 0, 0, 0, 0).with_subcommands(LATENCY),
    c("lcs", -3, 1, 2, 1, R),
    c("lindex", 3, 1, 1, 1, R),
    c("linsert", 5, 1, 1, 1, W),
    c("llen", 2, 1, 1, 1, R),
    c("lmove", 5, 1, 2, 1, W),
    c("lmpop", -4, 0, 0, 0, W | M).find(Find::KeyNum { at: 1, optional: false }),
    c("lolwut", -1, 0, 0, 0, R),
    c("lpop", -2, 1, 1, 1, W),
    c("lpos", -3, 1, 1, 1, R),
    c("lpush", -3, 1, 1, 1, W),
    c("lpushx", -3, 1, 1, 1, W),
    c("lrange", 4, 1, 1, 1, R),
    c("lrem", 4, 1, 1, 1, W),
    c("lset", 4, 1, 1, 1, W),
    c("ltrim", 4, 1, 1, 1, W),
    c("memory", -2, 0, 0, 0, 0).with_subcommands(MEMORY),
    c("mget", -2, 1, -1, 1, R),
    c("migrate", -6, 3, 3, 1, W | M).find(Find::Migrate),
    c("module", -2, 0, 0, 0, 0).with_subcommands(MODULE),
    c("monitor", 1, 0, 0, 0, 0),
    c("move", 3, 1, 1, 1, W),
    c("mset", -3, 1, -1, 2, W),
    c("msetnx", -3, 1, -1, 2, W),
    c("multi", 1, 0, 0, 0, 0),
    c("object", -2, 0, 0, 0, 0).with_subcommands(OBJECT),
    c("persist", 2, 1, 1, 1, W),
    c("pexpire", -3, 1, 1, 1, W),
    c("pexpireat", -3, 1, 1, 1, W),
    c("pexpiretime", 2, 1, 1, 1, R),
    c("pfadd", -2, 1, 1, 1, W),
    c("pfcount", -2, 1, -1, 1, R),
    c("pfdebug", 3, 2, 2, 1, W),
    c("pfmerge", -2, 1, -1, 1, W),
    c("pfselftest", 1, 0, 0, 0, 0),
    c("ping", -1, 0, 0, 0, 0),
    c("psetex", 4, 1, 1, 1, W),
    c("psubscribe", -2, 0, 0, 0, 0),
    c("psync", -3, 0, 0, 0, 0),
    c("pttl", 2, 1, 1, 1, R),
    c("publish", 3, 0, 0, 0, 0),
    c("pubsub", -2, 0, 0, 0, 0).with_subcommands(PUBSUB),
    c("punsubscribe", -1, 0, 0, 0, 0),
    c("quit", -1, 0, 0, 0, 0),
    c("randomkey", 1, 0, 0, 0, R),
    c("readonly", 1, 0, 0, 0, 0),
    c("readwrite", 1, 0, 0, 0, 0),
    c("rename", 3, 1, 2, 1, W),
    c("renamenx", 3, 1, 2, 1, W),
    c("replconf", -1, 0, 0, 0, 0),
    c("replicaof", 3, 0, 0, 0, 0),
    c("reset", 1, 0, 0, 0, 0),
    c("restore", -4, 1, 1, 1, W),
    c("restore-asking", -4, 1, 1, 1, W),
    c("role", 1, 0, 0, 0, 0),
    c("rpop", -2, 1, 1, 1, W),
    c("rpoplpush", 3, 1, 2, 1, W),
    c("rpush", -3, 1, 1, 1, W),
    c("rpushx", -3, 1, 1, 1, W),
    c("sadd", -3, 1, 1, 1, W),
    c("save", 1, 0, 0, 0, 0),
    c("scan", -2, 0, 0, 0, R),
    c("scard", 2, 1, 1, 1, R),
    c("script", -2, 0, 0, 0, 0).with_subcommands(SCRIPT),
    c("sdiff", -2, 1, -1, 1, R),
    c("sdiffstore", -3, 1, -1, 1, W),
    c("select", 2, 0, 0, 0, 0),
    c("set", -3, 1, 1, 1, W),
    c("setbit", 4, 1, 1, 1, W),
    c("setex", 4, 1, 1, 1, W),
    c("setnx", 3, 1, 1, 1, W),
    c("setrange", 4, 1, 1, 1, W),
    c("shutdown", -1, 0, 0, 0, 0),
    c("sinter", -2, 1, -1, 1, R),
    c("sintercard", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 1, optional: false }),
    c("sinterstore", -3, 1, -1, 1, W),
    c("sismember", 3, 1, 1, 1, R),
    c("slaveof", 3, 0, 0, 0, 0),
    c("slowlog", -2, 0, 0, 0, 0).with_subcommands(SLOWLOG),
    c("smembers", 2, 1, 1, 1, R),
    c("smismember", -3, 1, 1, 1, R),
    c("smove", 4, 1, 2, 1, W),
    c("sort", -2, 1, 1, 1, W | M).find(Find::Sort),
    c("sort_ro", -2, 1, 1, 1, R | M),
    c("spop", -2, 1, 1, 1, W),
    c("spublish", 3, 1, 1, 1, 0).find(Find::Channels),
    c("srandmember", -2, 1, 1, 1, R),
    c("srem", -3, 1, 1, 1, W),
    c("sscan", -3, 1, 1, 1, R),
    c("ssubscribe", -2, 1, -1, 1, 0).find(Find::Channels),
    c("strlen", 2, 1, 1, 1, R),
    c("subscribe", -2, 0, 0, 0, 0),
    c("substr", 4, 1, 1, 1, R),
    c("sunion", -2, 1, -1, 1, R),
    c("sunionstore", -3, 1, -1, 1, W),
    c("sunsubscribe", -1, 1, -1, 1, 0).find(Find::Channels),
    c("swapdb", 3, 0, 0, 0, W),
    c("sync", 1, 0, 0, 0, 0),
    c("time", 1, 0, 0, 0, 0),
    c("touch", -2, 1, -1, 1, R),
    c("ttl", 2, 1, 1, 1, R),
    c("type", 2, 1, 1, 1, R),
    c("unlink", -2, 1, -1, 1, W),
    c("unsubscribe", -1, 0, 0, 0, 0),
    c("unwatch", 1, 0, 0, 0, 0),
    c("wait", 3, 0, 0, 0, 0),
    c("waitaof", 4, 0, 0, 0, 0),
    c("watch", -2, 1, -1, 1, 0),
    c("xack", -4, 1, 1, 1, W),
    c("xadd", -5, 1, 1, 1, W),
    c("xautoclaim", -6, 1, 1, 1, W),
    c("xclaim", -6, 1, 1, 1, W),
    c("xdel", -3, 1, 1, 1, W),
    c("xgroup", -2, 0, 0, 0, 0).with_subcommands(XGROUP),
    c("xinfo", -2, 0, 0, 0, 0).with_subcommands(XINFO),
    c("xlen", 2, 1, 1, 1, R),
    c("xpending", -3, 1, 1, 1, R),
    c("xrange", -4, 1, 1, 1, R),
    c("xread", -4, 0, 0, 0, R | M).find(Find::Streams { from: 1 }),
    c("xreadgroup", -7, 0, 0, 0, W | M).find(Find::Streams { from: 4 }),
    c("xrevrange", -4, 1, 1, 1, R),
    c("xsetid", -3, 1, 1, 1, W),
    c("xtrim", -4, 1, 1, 1, W),
    c("zadd", -4, 1, 1, 1, W),
    c("zcard", 2, 1, 1, 1, R),
    c("zcount", 4, 1, 1, 1, R),
    c("zdiff", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 1, optional: false }),
    c("zdiffstore", -4, 1, 1, 1, W | M).find(Find::KeyNum { at: 2, optional: false }),
    c("zincrby", 4, 1, 1, 1, W),
    c("zinter", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 1, optional: false }),
    c("zintercard", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 1, optional: false }),
    c("zinterstore", -4, 1, 1, 1, W | M).find(Find::KeyNum { at: 2, optional: false }),
    c("zlexcount", 4, 1, 1, 1, R),
    c("zmpop", -4, 0, 0, 0, W | M).find(Find::KeyNum { at: 1, optional: false }),
    c("zmscore", -3, 1, 1, 1, R),
    c("zpopmax", -2, 1, 1, 1, W),
    c("zpopmin", -2, 1, 1, 1, W),
    c("zrandmember", -2, 1, 1, 1, R),
    c("zrange", -4, 1, 1, 1, R),
    c("zrangebylex", -4, 1, 1, 1, R),
    c("zrangebyscore", -4, 1, 1, 1, R),
    c("zrangestore", -5, 1, 2, 1, W),
    c("zrank", -3, 1, 1, 1, R),
    c("zrem", -3, 1, 1, 1, W),
    c("zremrangebylex", 4, 1, 1, 1, W),
    c("zremrangebyrank", 4, 1, 1, 1, W),
    c("zremrangebyscore", 4, 1, 1, 1, W),
    c("zrevrange", -4, 1, 1, 1, R),
    c("zrevrangebylex", -4, 1, 1, 1, R),
    c("zrevrangebyscore", -4, 1, 1, 1, R),
    c("zrevrank", -3, 1, 1, 1, R),
    c("zscan", -3, 1, 1, 1, R),
    c("zscore", 3, 1, 1, 1, R),
    c("zunion", -3, 0, 0, 0, R | M).find(Find::KeyNum { at: 1, optional: false }),
    c("zunionstore", -4, 1, 1, 1, W | M).find(Find::KeyNum { at: 2, optional: false }),
];

/// The subcommands of `ACL`.
#[rustfmt::skip]
static ACL: &[Command] = &[
    c("cat", -2, 0, 0, 0, 0), c("deluser", -3, 0, 0, 0, 0), c("dryrun", -4, 0, 0, 0, 0),
    c("genpass", -2, 0, 0, 0, 0), c("getuser", 3, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0),
    c("list", 2, 0, 0, 0, 0), c("load", 2, 0, 0, 0, 0), c("log", -2, 0, 0, 0, 0),
    c("save", 2, 0, 0, 0, 0), c("setuser", -3, 0, 0, 0, 0), c("users", 2, 0, 0, 0, 0),
    c("whoami", 2, 0, 0, 0, 0),
];

/// The subcommands of `CLIENT`.
#[rustfmt::skip]
static CLIENT: &[Command] = &[
    c("caching", 3, 0, 0, 0, 0), c("getname", 2, 0, 0, 0, 0), c("getredir", 2, 0, 0, 0, 0),
    c("help", 2, 0, 0, 0, 0), c("id", 2, 0, 0, 0, 0), c("info", 2, 0, 0, 0, 0),
    c("kill", -3, 0, 0, 0, 0), c("list", -2, 0, 0, 0, 0), c("no-evict", 3, 0, 0, 0, 0),
    c("no-touch", 3, 0, 0, 0, 0), c("pause", -3, 0, 0, 0, 0), c("reply", 3, 0, 0, 0, 0),
    c("setinfo", 4, 0, 0, 0, 0), c("setname", 3, 0, 0, 0, 0), c("tracking", -3, 0, 0, 0, 0),
    c("trackinginfo", 2, 0, 0, 0, 0), c("unblock", -3, 0, 0, 0, 0), c("unpause", 2, 0, 0, 0, 0),
];

/// The subcommands of `CLUSTER`.
#[rustfmt::skip]
static CLUSTER: &[Command] = &[
    c("addslots", -3, 0, 0, 0, 0), c("addslotsrange", -4, 0, 0, 0, 0),
    c("bumpepoch", 2, 0, 0, 0, 0), c("count-failure-reports", 3, 0, 0, 0, 0),
    c("countkeysinslot", 3, 0, 0, 0, 0), c("delslots", -3, 0, 0, 0, 0),
    c("delslotsrange", -4, 0, 0, 0, 0), c("failover", -2, 0, 0, 0, 0),
    c("flushslots", 2, 0, 0, 0, 0), c("forget", 3, 0, 0, 0, 0),
    c("getkeysinslot", 4, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0), c("info", 2, 0, 0, 0, 0),
    c("keyslot", 3, 0, 0, 0, 0), c("links", 2, 0, 0, 0, 0), c("meet", -4, 0, 0, 0, 0),
    c("myid", 2, 0, 0, 0, 0), c("myshardid", 2, 0, 0, 0, 0), c("nodes", 2, 0, 0, 0, 0),
    c("replicas", 3, 0, 0, 0, 0), c("replicate", 3, 0, 0, 0, 0), c("reset", -2, 0, 0, 0, 0),
    c("saveconfig", 2, 0, 0, 0, 0), c("set-config-epoch", 3, 0, 0, 0, 0),
    c("setslot", -4, 0, 0, 0, 0), c("shards", 2, 0, 0, 0, 0), c("slaves", 3, 0, 0, 0, 0),
    c("slots", 2, 0, 0, 0, 0),
];

/// The subcommands of `COMMAND`.
#[rustfmt::skip]
static COMMAND: &[Command] = &[
    c("count", 2, 0, 0, 0, 0), c("docs", -2, 0, 0, 0, 0), c("getkeys", -3, 0, 0, 0, 0),
    c("getkeysandflags", -3, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0), c("info", -2, 0, 0, 0, 0),
    c("list", -2, 0, 0, 0, 0),
];

/// The subcommands of `CONFIG`.
#[rustfmt::skip]
static CONFIG: &[Command] = &[
    c("get", -3, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0), c("resetstat", 2, 0, 0, 0, 0),
    c("rewrite", 2, 0, 0, 0, 0), c("set", -4, 0, 0, 0, 0),
];

/// The subcommands of `FUNCTION`.
#[rustfmt::skip]
static FUNCTION: &[Command] = &[
    c("delete", 3, 0, 0, 0, W), c("dump", 2, 0, 0, 0, 0), c("flush", -2, 0, 0, 0, W),
    c("help", 2, 0, 0, 0, 0), c("kill", 2, 0, 0, 0, 0), c("list", -2, 0, 0, 0, 0),
    c("load", -3, 0, 0, 0, W), c("restore", -3, 0, 0, 0, W), c("stats", 2, 0, 0, 0, 0),
];

/// The subcommands of `LATENCY`.
#[rustfmt::skip]
static LATENCY: &[Command] = &[
    c("doctor", 2, 0, 0, 0, 0), c("graph", 3, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0),
    c("histogram", -2, 0, 0, 0, 0), c("history", 3, 0, 0, 0, 0), c("latest", 2, 0, 0, 0, 0),
    c("reset", -2, 0, 0, 0, 0),
];

/// The subcommands of `MEMORY`.
#[rustfmt::skip]
static MEMORY: &[Command] = &[
    c("doctor", 2, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0), c("malloc-stats", 2, 0, 0, 0, 0),
    c("purge", 2, 0, 0, 0, 0), c("stats", 2, 0, 0, 0, 0),
    c("usage", -3, 2, 2, 1, R),
];

/// The subcommands of `MODULE`.
#[rustfmt::skip]
static MODULE: &[Command] = &[
    c("help", 2, 0, 0, 0, 0), c("list", 2, 0, 0, 0, 0), c("load", -3, 0, 0, 0, 0),
    c("loadex", -3, 0, 0, 0, 0), c("unload", 3, 0, 0, 0, 0),
];

/// The subcommands of `OBJECT`.
#[rustfmt::skip]
static OBJECT: &[Command] = &[
    c("encoding", 3, 2, 2, 1, R),
    c("freq", 3, 2, 2, 1, R),
    c("help", 2, 0, 0, 0, 0),
    c("idletime", 3, 2, 2, 1, R),
    c("refcount", 3, 2, 2, 1, R),
];

/// The subcommands of `PUBSUB`.
#[rustfmt::skip]
static PUBSUB: &[Command] = &[
    c("channels", -2, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0), c("numpat", 2, 0, 0, 0, 0),
    c("numsub", -2, 0, 0, 0, 0), c("shardchannels", -2, 0, 0, 0, 0),
    c("shardnumsub", -2, 0, 0, 0, 0),
];

/// The subcommands of `SCRIPT`.
#[rustfmt::skip]
static SCRIPT: &[Command] = &[
    c("debug", 3, 0, 0, 0, 0), c("exists", -3, 0, 0, 0, 0), c("flush", -2, 0, 0, 0, 0),
    c("help", 2, 0, 0, 0, 0), c("kill", 2, 0, 0, 0, 0), c("load", 3, 0, 0, 0, 0),
];

/// The subcommands of `SLOWLOG`.
#[rustfmt::skip]
static SLOWLOG: &[Command] = &[
    c("get", -2, 0, 0, 0, 0), c("help", 2, 0, 0, 0, 0), c("len", 2, 0, 0, 0, 0),
    c("reset", 2, 0, 0, 0, 0),
];

/// The subcommands of `XGROUP`.
#[rustfmt::skip]
static XGROUP: &[Command] = &[
    c("create", -5, 2, 2, 1, W),
    c("createconsumer", 5, 2, 2, 1, W),
    c("delconsumer", 5, 2, 2, 1, W),
    c("destroy", 4, 2, 2, 1, W),
    c("help", 2, 0, 0, 0, 0),
    c("setid", -5, 2, 2, 1, W),
];

/// The subcommands of `XINFO`.
#[rustfmt::skip]
static XINFO: &[Command] = &[
    c("consumers", 4, 2, 2, 1, R),
    c("groups", 3, 2, 2, 1, R),
    c("help", 2, 0, 0, 0, 0),
    c("stream", -3, 2, 2, 1, R),
];
