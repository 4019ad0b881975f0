// A cluster workload through redauth with ioredis's Cluster, default options.
//
//     NODE_PATH=<node_modules> node cluster_workload.js PORT SECONDS
//
// The same rounds as cluster_workload.py (strings with a TTL over every slot range, hashes, a
// pipeline, a same-slot MULTI/EXEC, a stream, blocking pops fed by a second client, classic and
// sharded pub/sub), every value read checked. Prints one JSON line; exits 1 on any error or lost
// message.
"use strict";
const Redis = require("ioredis");

async function main() {
  const port = Number(process.argv[2]);
  const seconds = Number(process.argv[3]);
  const nodes = [{ host: "127.0.0.1", port }];
  const rc = new Redis.Cluster(nodes);
  const feeder = new Redis.Cluster(nodes);
  const classic = new Redis.Cluster(nodes);
  const sharded = new Redis.Cluster(nodes, { shardedSubscribers: true });
  const errors = [];
  const ops = { rounds: 0 };
  const count = (what, n = 1) => { ops[what] = (ops[what] || 0) + n; };
  const check = (what, got, want) => {
    if (JSON.stringify(got) !== JSON.stringify(want)) errors.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  };
  for (const c of [rc, feeder, classic, sharded]) c.on("error", (e) => errors.push(`client error: ${e.message}`));

  const received = { classic: 0, sharded: 0 };
  const published = { classic: 0, sharded: 0 };
  classic.on("message", () => { received.classic += 1; });
  sharded.on("smessage", () => { received.sharded += 1; });
  await classic.subscribe("js:news");
  await sharded.ssubscribe("{js:shard}events");

  let lastResubscribe = 0;
  let resubscribed = 0;
  const deadline = Date.now() + seconds * 1000;
  let n = 0;
  while (Date.now() < deadline) {
    n += 1;
    try {
      for (let i = 0; i < 50; i++) {
        await rc.set(`js:str:${i}`, `${n}:${i}`, "EX", 60);
        check(`js:str:${i}`, await rc.get(`js:str:${i}`), `${n}:${i}`);
        count("strings", 2);
      }
      const ttl = await rc.ttl("js:str:0");
      check("ttl", ttl > 0 && ttl <= 60, true);
      await rc.hset(`js:hash:${n % 7}`, { a: String(n), b: "x" });
      check("hash", await rc.hgetall(`js:hash:${n % 7}`), { a: String(n), b: "x" });
      count("hashes", 2);
      const pipe = rc.pipeline();
      for (let i = 0; i < 20; i++) pipe.set(`{js:p}pipe:${i}`, n).get(`{js:p}pipe:${i}`);
      const replies = await pipe.exec();
      check("pipeline", replies.filter((_, i) => i % 2 === 1).map(([e, v]) => e ? e.message : v), Array(20).fill(String(n)));
      count("pipelined", 40);
      const tx = await rc.multi().incr("{js:acct}:balance").incr("{js:acct}:ops").exec();
      check("transaction errors", tx.filter(([e]) => e).length, 0);
      count("transactions");
      await rc.xadd("{js:s}stream", "MAXLEN", "~", "100", "*", "n", String(n));
      const last = await rc.xrevrange("{js:s}stream", "+", "-", "COUNT", 1);
      check("stream", last[0][1], ["n", String(n)]);
      count("streams", 2);
      const jobs = `{js:q}jobs:${n}`; // a list per round: one failed round leaves no item behind
      await feeder.rpush(jobs, String(n));
      check("blpop", await rc.blpop(jobs, 5), [jobs, String(n)]);
      count("blocking pops");
      await rc.publish("js:news", String(n));
      published.classic += 1;
      await rc.spublish("{js:shard}events", String(n));
      published.sharded += 1;
      // Redis drops a shard channel's subscribers when its slot moves away (or its primary
      // becomes a replica); ioredis 5.9 does not subscribe again by itself. Like an application
      // must, subscribe again when messages stop arriving (a repeated SSUBSCRIBE is harmless).
      if (published.sharded - received.sharded > 5 && Date.now() - lastResubscribe > 1000) {
        lastResubscribe = Date.now();
        resubscribed += 1;
        await sharded.ssubscribe("{js:shard}events");
      }
    } catch (e) {
      errors.push(`round ${n}: ${e.message}`);
    }
    ops.rounds = n;
  }
  // Once the cluster is quiet, every message of a last burst must arrive on both kinds.
  await new Promise((r) => setTimeout(r, 1000));
  const before = { ...received };
  for (let i = 0; i < 20; i++) {
    await rc.publish("js:news", String(i));
    await rc.spublish("{js:shard}events", String(i));
  }
  await new Promise((r) => setTimeout(r, 1000));
  published.classic += 20;
  published.sharded += 20;
  const final = { classic: received.classic - before.classic, sharded: received.sharded - before.sharded };
  // Sharded messages published while Redis moved a subscription are lost by design; classic never.
  const lost = published.classic - received.classic + (40 - final.classic - final.sharded);
  console.log(JSON.stringify({
    client: `ioredis ${require("ioredis/package.json").version}`, ops, errors: errors.slice(0, 10).concat(errors.slice(-10)),
    error_count: errors.length, published, received, resubscribed, "last burst received": final,
  }));
  for (const c of [rc, feeder, classic, sharded]) c.disconnect();
  process.exit(errors.length || lost ? 1 : 0);
}

main().catch((e) => { console.log(JSON.stringify({ fatal: e.message })); process.exit(1); });
