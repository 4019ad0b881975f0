//! Command classification: `CommandKind::of`, called once per client command
//! on its name.
//!
//! Three inputs: a mix of common names as an application sends them (GET, SET,
//! HSET, EVALSHA… in upper and lower case), the special names redauth acts on
//! (AUTH, HELLO, MULTI, SUBSCRIBE, BLPOP…), and both together. Throughput is
//! in names classified.
//!
//! Run: `cargo bench --bench command_kind` (add `-- --quick` for a smoke run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redauth::resp::CommandKind;
use std::hint::black_box;
use std::time::Duration;

/// Names as applications send them most, upper and lower case.
const COMMON: &str = "GET SET get set HSET HGET hgetall DEL EXPIRE INCR MGET EVALSHA LPUSH RPOP \
    ZADD zrangebyscore SADD EXISTS PUBLISH XADD TTL SCAN setex GETDEL";

/// The names redauth acts on.
const SPECIAL: &str = "AUTH PING ping HELLO MULTI EXEC DISCARD CLIENT SUBSCRIBE psubscribe \
    UNSUBSCRIBE SSUBSCRIBE BLPOP BRPOP BLMOVE BZPOPMIN XREAD XREADGROUP RESET QUIT";

fn names(list: &str) -> Vec<&[u8]> {
    list.split_whitespace().map(str::as_bytes).collect()
}

fn classify(names: &[&[u8]]) -> usize {
    names
        .iter()
        .filter(|name| CommandKind::of(black_box(name)) != CommandKind::Other)
        .count()
}

fn command_kind(c: &mut Criterion) {
    let (common, special) = (names(COMMON), names(SPECIAL));
    let mixed: Vec<&[u8]> = common.iter().chain(&special).copied().collect();
    let cases = [("common", common), ("special", special), ("mixed", mixed)];
    let mut group = c.benchmark_group("command_kind");
    for (name, names) in &cases {
        group.throughput(Throughput::Elements(names.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), names, |b, names| {
            b.iter(|| classify(names))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = command_kind
}
criterion_main!(benches);
