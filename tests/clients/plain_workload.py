"""A workload written for one Redis, run through redauth's cluster routing port with redis-py's
plain client (redis.Redis: no cluster support at all), default options.

    python plain_workload.py PORT SECONDS [PROTOCOL]

PROTOCOL is 2 (RESP2, the default) or 3 (RESP3: redis-py's protocol=3); the keys and channels of
a RESP3 run are its own (plain3:…), so both can run at once.

Rounds, for SECONDS, of what the seed tutorials do against a single Redis: strings with a TTL
over keys in every slot range, hashes, a plain pipeline whose keys live on every node, WATCH/MULTI
on one key (optimistic locking, retried on a conflict as the tutorials do), MGET/DEL across slots,
a stream, blocking pops fed by a second connection, classic pub/sub and sharded pub/sub. Every
value read is checked against what was written. The test around it moves slots, fails a primary
over and adds one meanwhile; the application must not notice.

Prints one JSON line: the operations done, each error the application saw, and the messages
published and received. Exits 1 on any error or lost message.
"""

import json
import sys
import threading
import time

import redis


def main():
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    protocol = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    ns = "plain" if protocol == 2 else f"plain{protocol}"
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    feeder = redis.Redis(host="127.0.0.1", port=port, protocol=protocol)
    errors, ops = [], {"rounds": 0}

    def count(what, n=1):
        ops[what] = ops.get(what, 0) + n

    def check(what, got, want):
        if got != want:
            errors.append(f"{what}: got {got!r}, want {want!r}")

    received = {"classic": 0, "sharded": 0}
    stop = threading.Event()

    def listen(kind, subscribe, channel, get):
        ps = redis.Redis(host="127.0.0.1", port=port, protocol=protocol).pubsub()
        getattr(ps, subscribe)(channel)
        while not stop.is_set():
            try:
                message = get(ps)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                errors.append(f"{kind} listener: {type(e).__name__}: {e}")
                return
            if message and message["type"] in ("message", "smessage"):
                received[kind] += 1
            elif message and message["type"] == "sunsubscribe" and not stop.is_set():
                errors.append(f"{kind} listener: unsubscribed by the server")

    listeners = [
        threading.Thread(target=listen, daemon=True,
                         args=("classic", "subscribe", f"{ns}:news",
                               lambda ps: ps.get_message(timeout=0.2))),
        threading.Thread(target=listen, daemon=True,
                         args=("sharded", "ssubscribe", f"{{{ns}:shard}}events",
                               lambda ps: ps.get_sharded_message(timeout=0.2))),
    ]
    for t in listeners:
        t.start()
    time.sleep(0.5)  # the subscriptions are confirmed before anything is published

    published = {"classic": 0, "sharded": 0}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            for i in range(50):
                key = f"{ns}:str:{i}"
                r.set(key, f"{n}:{i}", ex=60)
                check(key, r.get(key), f"{n}:{i}".encode())
                count("strings", 2)
            check("ttl", 0 < r.ttl(f"{ns}:str:0") <= 60, True)
            keys = [f"{ns}:str:{i}" for i in range(0, 50, 5)]
            check("mget", r.mget(keys), [f"{n}:{i}".encode() for i in range(0, 50, 5)])
            count("mget")
            r.hset(f"{ns}:hash:{n % 7}", mapping={"a": n, "b": "x"})
            check("hash", r.hgetall(f"{ns}:hash:{n % 7}"), {b"a": str(n).encode(), b"b": b"x"})
            count("hashes", 2)
            pipe = r.pipeline(transaction=False)
            for i in range(20):
                pipe.set(f"{ns}:pipe:{i}", n)
                pipe.get(f"{ns}:pipe:{i}")
            replies = pipe.execute()
            check("pipeline", replies[1::2], [str(n).encode()] * 20)
            count("pipelined", 40)

            def add_one(tx):
                balance = int(tx.get(f"{ns}:balance") or 0)
                tx.multi()
                tx.set(f"{ns}:balance", balance + 1)
            r.transaction(add_one, f"{ns}:balance")
            count("transactions")
            r.xadd(f"{ns}:stream", {"n": n}, maxlen=100)
            last = r.xrevrange(f"{ns}:stream", count=1)
            check("stream", last[0][1], {b"n": str(n).encode()})
            count("streams", 2)
            jobs = f"{ns}:jobs:{n}"  # a list per round: one failed round leaves no item behind
            feeder.rpush(jobs, n)
            popped = r.blpop([jobs], timeout=5)
            # (redis-py answers a tuple in RESP2, a list in RESP3.)
            check("blpop", popped and tuple(popped), (jobs.encode(), str(n).encode()))
            count("blocking pops")
            check("del", r.delete(jobs, f"{ns}:nothing"), 0)
            r.publish(f"{ns}:news", n)
            published["classic"] += 1
            r.spublish(f"{{{ns}:shard}}events", n)
            published["sharded"] += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported
            errors.append(f"round {n}: {type(e).__name__}: {e}")
        ops["rounds"] = n
    check("balance", int(r.get(f"{ns}:balance")), ops.get("transactions", 0))
    # Once the cluster is quiet, every message of a last burst must arrive on both kinds.
    time.sleep(1)
    before = dict(received)
    for i in range(20):
        r.publish(f"{ns}:news", i)
        r.spublish(f"{{{ns}:shard}}events", i)
    time.sleep(1)
    stop.set()
    for t in listeners:
        t.join(timeout=2)
    final = {k: received[k] - before[k] for k in received}
    published = {k: v + 20 for k, v in published.items()}
    # A sharded message published while its slot was moving, before redauth subscribed again
    # on the new owner, is lost by Redis's design; classic ones never are.
    lost = {"classic": published["classic"] - received["classic"],
            "last burst": 40 - sum(final.values())}
    print(json.dumps({"client": f"redis-py {redis.__version__} (plain, RESP{protocol})", "ops": ops,
                      "errors": errors[:10] + errors[-10:], "error_count": len(errors),
                      "published": published, "received": received,
                      "last burst received": final}))
    sys.exit(1 if errors or any(lost.values()) else 0)


if __name__ == "__main__":
    main()
