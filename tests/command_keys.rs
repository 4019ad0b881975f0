//! `redauth::cluster::keys` against a live redis-server: the command table
//! must know every command and subcommand the server lists in `COMMAND`,
//! with the same arity, first/last/step and flags, and must be keyless
//! exactly where `COMMAND GETKEYS` says so; and for sample invocations of
//! every movable-keys command and every keyed subcommand, the key positions
//! must be the ones `COMMAND GETKEYS` names.

use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use redauth::cluster::keys::{commands, keys, lookup, Command, Keys};
use redis::Value;

/// A `redis-server` on a unix socket in a temp dir; killed when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> (Server, redis::Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("r.sock");
        let child = Process::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server (is it on PATH?)");
        let server = Server {
            child,
            socket,
            _dir: dir,
        };
        let connection = server.connect();
        (server, connection)
    }

    fn connect(&self) -> redis::Connection {
        let url = format!("redis+unix://{}", self.socket.display());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let connected = redis::Client::open(url.as_str()).and_then(|c| c.get_connection());
            match connected {
                Ok(connection) => return connection,
                Err(e) if Instant::now() > deadline => panic!("redis-server did not answer: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Commands and arities the table has from Redis 7.2 that a 7.0 server lacks or has narrower.
const NEWER_THAN_7_0: &[&str] = &[
    "waitaof",
    "client|no-touch",
    "client|setinfo",
    "cluster|myshardid",
];
const WIDER_IN_7_2: &[(&str, i8)] = &[
    ("zrank", -3),
    ("zrevrank", -3),
    ("command|getkeys", -3),
    ("command|getkeysandflags", -3),
];

fn text(value: &Value) -> String {
    match value {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("expected a string, got {other:?}"),
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn array(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) | Value::Set(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

/// `COMMAND GETKEYS args…`: the key names, or the error's text.
fn getkeys(con: &mut redis::Connection, args: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("GETKEYS");
    for arg in args {
        cmd.arg(*arg);
    }
    match cmd.query::<Value>(con) {
        Ok(reply) => Ok(array(&reply).iter().map(|k| text(k).into_bytes()).collect()),
        Err(e) => Err(e.to_string()),
    }
}

/// Compares one `COMMAND` entry (a command's, or a subcommand's) with the table.
fn compare(entry: &[Value], con: &mut redis::Connection, problems: &mut Vec<String>) {
    let full = text(&entry[0]);
    let args: Vec<&[u8]> = full.split('|').map(str::as_bytes).collect();
    let Some(ours) = lookup(&args) else {
        return problems.push(format!("{full}: not in the table"));
    };
    if keys(&args) == Keys::Unknown {
        problems.push(format!("{full}: keys() says Unknown"));
    }
    let flags: Vec<String> = array(&entry[2]).iter().map(text).collect();
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    let arity = WIDER_IN_7_2
        .iter()
        .find(|(name, _)| *name == full)
        .map_or(int(&entry[1]), |&(_, wider)| i64::from(wider));
    let theirs = (arity, int(&entry[3]), int(&entry[4]), int(&entry[5]));
    let mine = (
        i64::from(ours.arity()),
        i64::from(ours.first_key()),
        i64::from(ours.last_key()),
        i64::from(ours.key_step()),
    );
    if mine != theirs {
        problems.push(format!(
            "{full}: arity/first/last/step {mine:?}, server {theirs:?}"
        ));
    }
    let mine = (ours.is_write(), ours.is_readonly(), ours.has_movable_keys());
    let theirs = (has("write"), has("readonly"), has("movablekeys"));
    if mine != theirs {
        problems.push(format!(
            "{full}: write/readonly/movablekeys {mine:?}, server {theirs:?}"
        ));
    }
    // GETKEYS checks for keys before it checks the arity, so the name and
    // one argument (GETKEYS needs one) tell. A container is no command to ask about.
    if ours.subcommands().is_empty() {
        let probe = [&args[..], &[&b"x"[..]]].concat();
        let no_keys = matches!(getkeys(con, &probe), Err(e) if e.contains("no key arguments"));
        let keyless = ours.is_keyless() || ours.has_shard_channels();
        if keyless != no_keys {
            problems.push(format!("{full}: keyless {keyless}, server {no_keys}"));
        }
    }
}

#[test]
fn the_table_knows_every_command_and_agrees_with_the_server() {
    let (_server, mut con) = Server::start();
    let listed: Value = redis::cmd("COMMAND").query(&mut con).expect("COMMAND");
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for entry in array(&listed) {
        let entry = array(entry);
        compare(entry, &mut con, &mut problems);
        seen.push(text(&entry[0]));
        for sub in array(&entry[9]) {
            compare(array(sub), &mut con, &mut problems);
            seen.push(text(&array(sub)[0]));
        }
    }
    assert!(seen.len() > 300, "COMMAND listed only {}", seen.len());
    // And the table has nothing the server does not list, but for Redis 7.2's additions.
    for command in commands() {
        let subs = command.subcommands().iter();
        let names = subs.map(|s| format!("{}|{}", command.name(), s.name()));
        for name in std::iter::once(command.name().to_string()).chain(names) {
            if !seen.contains(&name) && !NEWER_THAN_7_0.contains(&name.as_str()) {
                problems.push(format!("{name}: in the table, not listed by the server"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Invocations whose keys `COMMAND GETKEYS` must name as we do. Words are
/// split on spaces; `''` is an empty argument. A leading `!` marks arguments
/// we must call [`Keys::Malformed`] (the server's GETKEYS then answers an
/// error or no keys).
#[rustfmt::skip]
const SAMPLES: &[&str] = &[
    // Fixed positions.
    "get k1", "set k1 v ex 10 get", "mset k1 v1 k2 v2 k3 v3", "msetnx k1 v1 k2 v2",
    "del k1 k2 k3", "unlink k1", "exists k1 k2", "touch k1 k2", "watch k1 k2",
    "mget k1 k2 k3", "blpop k1 k2 0", "brpop k1 0", "bzpopmin k1 k2 1.5",
    "brpoplpush src dst 0", "blmove src dst left right 0", "lmove src dst left right",
    "rpoplpush src dst", "bitop and dst s1 s2 s3", "bitop not dst s1", "lcs k1 k2 len",
    "copy src dst replace", "rename src dst", "renamenx src dst", "smove src dst m",
    "sinterstore dst s1 s2", "sdiffstore dst s1", "sunionstore dst s1 s2", "pfmerge dst s1 s2",
    "pfcount h1 h2", "geosearchstore dst src frommember m byradius 1 km",
    "zrangestore dst src 0 -1", "hset h f v f2 v2", "xadd s * f v", "restore k 0 payload",
    "restore-asking k 0 payload", "getex k persist", "pfdebug getreg h1", "xautoclaim s g c 0 0",
    // Container subcommands with keys.
    "object encoding k1", "OBJECT FREQ k1", "object idletime k1", "object refcount k1",
    "memory usage k1 samples 5", "xinfo stream s1 full", "xinfo groups s1",
    "xinfo consumers s1 g1", "xgroup create s1 g1 $ mkstream", "xgroup setid s1 g1 0",
    "xgroup destroy s1 g1", "xgroup createconsumer s1 g1 c1", "xgroup delconsumer s1 g1 c1",
    // Key counts.
    "eval script 2 k1 k2 arg", "EVAL script 0 arg", "evalsha sha 1 k1", "eval_ro s 1 k1 a",
    "evalsha_ro s 2 k1 k2", "fcall f 3 k1 k2 k3 a", "fcall_ro f 0", "fcall_ro f 1 k1",
    "zunionstore dst 2 k1 k2 weights 1 2", "zinterstore dst 1 k1", "zdiffstore dst 2 k1 k2",
    "zunion 2 k1 k2 withscores", "zinter 3 k1 k2 k3", "zdiff 1 k1", "zintercard 2 k1 k2 limit 3",
    "sintercard 1 k1", "lmpop 2 k1 k2 left count 3", "blmpop 0.5 2 k1 k2 right",
    "zmpop 1 k1 min", "bzmpop 1 3 k1 k2 k3 max count 2",
    // After STREAMS.
    "xread count 10 streams s1 s2 0 0", "xread block 0 streams streams 0",
    "xread count streams streams s1 0", "xreadgroup group g c streams s1 >",
    "xreadgroup group streams c count 1 noack streams s1 s2 > >",
    // SORT and its STORE.
    "sort k1", "sort k1 by w_* get # get o_* limit 0 10 store dst",
    "sort k1 store d1 store d2", "sort k1 get store d1", "sort k1 limit store 1 store d1",
    "sort_ro k1 by w_* get o_*",
    // MIGRATE.
    "migrate host 6379 k1 0 5000", "migrate host 6379 '' 0 5000 copy replace keys k1 k2",
    "migrate host 6379 '' 0 5000 auth keys keys k1", "migrate host 6379 '' 0 5000 auth2 u p keys k1",
    "migrate host 6379 '' 0 5000 auth pw", "migrate host 6379 k1 0 5000 keys",
    // GEORADIUS … STORE/STOREDIST.
    "georadius g 1 2 3 km", "georadius g 1 2 3 km withdist count 5 store dst",
    "georadius g 1 2 3 km storedist dst2 store dst", "georadiusbymember g m 3 km storedist dst",
    "georadius_ro g 1 2 3 km", "georadiusbymember_ro g m 3 km",
    // No keys, or shard channels (neither is a key to GETKEYS). GETKEYS needs
    // an argument after the name, so each has one.
    "ping hello", "echo hi", "config get maxmemory", "client list", "publish c m",
    "subscribe a b", "flushall async", "select 0", "keys *", "scan 0", "function list",
    "cluster keyslot k", "spublish ch m", "ssubscribe ch1 ch2", "sunsubscribe ch1",
    // Malformed.
    "!get", "!get k1 k2", "!object", "!zunionstore dst 0 k1", "!zunion 0 k1", "!zunion x k1", "!zdiff -1 k1",
    "!eval s 3 k1 k2", "!eval s -1 k1", "!fcall f 2 k1", "!blmpop 0 0 k1 left",
    "!lmpop 3 k1 k2 left", "!xread count 1 block 0", "!xreadgroup group g c count 1 s1 0",
    "!migrate host 6379 k1 0 5000 keys k2 k3", "!eval s 99999999999999999999 k1",
    "!sintercard 0 k1", "!bzmpop 1 0 k1 min",
];

fn words(sample: &str) -> Vec<&[u8]> {
    let sample = sample.strip_prefix('!').unwrap_or(sample);
    let word = |w| if w == "''" { "" } else { w };
    sample.split(' ').map(|w| word(w).as_bytes()).collect()
}

#[test]
fn key_positions_are_the_ones_command_getkeys_names() {
    let (_server, mut con) = Server::start();
    let mut problems = Vec::new();
    let mut routed: Vec<&'static str> = Vec::new();
    for &sample in SAMPLES {
        let args = words(sample);
        let theirs = getkeys(&mut con, &args);
        let ours = keys(&args);
        let agree = match (ours, &theirs) {
            (Keys::Malformed, Ok(none)) => sample.starts_with('!') && none.is_empty(),
            (Keys::Malformed, Err(_)) => sample.starts_with('!'),
            (Keys::None | Keys::Channels(_), Ok(none)) => none.is_empty(),
            (Keys::None | Keys::Channels(_), Err(e)) => e.contains("no key arguments"),
            (Keys::Some(p), Ok(names)) => {
                let found = lookup(&args).map(Command::name);
                routed.extend(found);
                p.of(&args).eq(names.iter().map(Vec::as_slice))
            }
            _ => false,
        };
        if !agree {
            let show = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
            let ours = match ours {
                Keys::Some(p) => format!("{:?}", p.of(&args).map(show).collect::<Vec<_>>()),
                other => format!("{other:?}"),
            };
            let theirs = theirs.map(|k| k.iter().map(|k| show(k)).collect::<Vec<_>>());
            problems.push(format!("{sample}: ours {ours}, GETKEYS {theirs:?}"));
        }
    }
    // Every movable-keys command and every subcommand with keys was tried.
    for command in commands() {
        let keyed_subs = command.subcommands().iter().filter(|s| !s.is_keyless());
        let movable = std::iter::once(command).filter(|c| c.has_movable_keys());
        for c in movable.chain(keyed_subs) {
            if !routed.contains(&c.name()) {
                problems.push(format!("{}: no sample finds its keys", c.name()));
            }
        }
    }
    assert!(SAMPLES.len() >= 60);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
