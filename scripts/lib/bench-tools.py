#!/usr/bin/env python3
"""Helpers for scripts/bench: client-side measurements redis-benchmark cannot make, and the report.

  idle   --port P --pid PID --connections N [--auth PASS]
         Opens N client connections, each sends PING (or AUTH) and reads the reply, so each
         session is fully up (for redauth: its upstream TLS connection dialed and
         authenticated). Prints the process's VmRSS before, with all connections open, after
         closing them, and with N connections open a second time, as "key=value" lines.
  large  --port P --mb M [--pid PID] [--tls --cafile CA] [--auth PASS]
         SETs an M MiB value (written in 1 MiB chunks) and GETs it back (read in chunks,
         length and SHA-256 checked). With --pid, samples that process's VmRSS every 5 ms and
         prints its peak growth and VmHWM. Prints "key=value" lines.
  report RESULTS.tsv
         RESULTS.tsv has "round<TAB>metric<TAB>path<TAB>value" lines; prints each metric's median
         per path with ratios to the direct TLS path and to haproxy.

Only the standard library: plain sockets, ssl, threads.
"""

import argparse
import hashlib
import os
import socket
import ssl
import statistics
import sys
import threading
import time


def status(pid, key):
    """A /proc/PID/status field in KiB (VmRSS, VmHWM…)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_line(sock, pending):
    """Reads one CRLF-terminated line; returns (line, rest of the bytes read)."""
    while b"\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed while waiting for a reply")
        pending += chunk
    line, _, rest = pending.partition(b"\r\n")
    return line, rest


def connect(port, tls=False, cafile=None, timeout=30):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        ctx = ssl.create_default_context(cafile=cafile)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    return sock


def hello(sock, auth):
    """PING (or AUTH) and its reply: the session is up once this returns."""
    sock.sendall(command("AUTH", auth) if auth else command("PING"))
    line, _ = read_line(sock, b"")
    expected = b"+OK" if auth else b"+PONG"
    if line != expected:
        raise RuntimeError(f"expected {expected!r}, got {line[:200]!r}")


def open_sessions(port, count, auth):
    """Opens `count` connections, each with its PING (or AUTH) answered; returns the sockets."""
    socks = []
    expected = b"+OK" if auth else b"+PONG"
    batch = 200
    for first in range(0, count, batch):
        group = [connect(port) for _ in range(min(batch, count - first))]
        for s in group:
            s.sendall(command("AUTH", auth) if auth else command("PING"))
        for s in group:
            line, _ = read_line(s, b"")
            if line != expected:
                raise RuntimeError(f"connection {len(socks)}: expected {expected!r}, got {line[:200]!r}")
            socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        s.close()
    time.sleep(1.5)


def idle(args):
    warm = connect(args.port)
    hello(warm, args.auth)
    warm.close()
    time.sleep(0.5)
    before = status(args.pid, "VmRSS")
    start = time.monotonic()
    socks = open_sessions(args.port, args.connections, args.auth)
    opened = time.monotonic() - start
    time.sleep(1.0)
    during = status(args.pid, "VmRSS")
    close_all(socks)
    after = status(args.pid, "VmRSS")
    # The same again: growth the second time is memory not reused (a leak), not just memory the
    # allocator kept after the first close.
    socks = open_sessions(args.port, args.connections, args.auth)
    time.sleep(1.0)
    again = status(args.pid, "VmRSS")
    close_all(socks)
    n = args.connections
    print(f"connections={n}")
    print(f"open_seconds={opened:.2f}")
    print(f"rss_before_kib={before}")
    print(f"rss_open_kib={during}")
    print(f"rss_after_close_kib={after}")
    print(f"rss_reopen_kib={again}")
    print(f"kib_per_connection={(during - before) / n:.1f}")


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every 5 ms until stopped; keeps the peak."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, 0, threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.peak = max(self.peak, status(self.pid, "VmRSS"))
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        self.join()
        return self.peak


def pattern_chunks(total, size=1 << 20):
    """`total` bytes of a fixed non-trivial pattern, in chunks of `size`."""
    block = hashlib.sha256(b"redauth").digest() * (size // 32)
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield block[:n]
        sent += n


def large(args):
    total = args.mb << 20
    key = b"redauth-bench:large"
    sock = connect(args.port, args.tls, args.cafile, timeout=120)
    if args.auth:
        hello(sock, args.auth)
    sampler = None
    if args.pid:
        rss_before = status(args.pid, "VmRSS")
        hwm_before = status(args.pid, "VmHWM")
        sampler = RssSampler(args.pid)
        sampler.start()

    digest = hashlib.sha256()
    start = time.monotonic()
    sock.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, total))
    for chunk in pattern_chunks(total):
        digest.update(chunk)
        sock.sendall(chunk)
    sock.sendall(b"\r\n")
    line, pending = read_line(sock, b"")
    if line != b"+OK":
        raise RuntimeError(f"SET: expected +OK, got {line[:200]!r}")
    set_seconds = time.monotonic() - start

    start = time.monotonic()
    sock.sendall(command(b"GET", key))
    line, pending = read_line(sock, pending)
    if line != b"$%d" % total:
        raise RuntimeError(f"GET: expected a {total}-byte bulk, got {line[:200]!r}")
    got = hashlib.sha256()
    left = total + 2
    buf = bytearray(1 << 20)
    if pending:
        take = pending[:left]
        got.update(take[: max(0, min(len(take), left - 2))])
        left -= len(take)
    while left > 0:
        n = sock.recv_into(buf, min(len(buf), left))
        if n == 0:
            raise ConnectionError("connection closed inside the GET reply")
        payload = min(n, max(0, left - 2))
        got.update(memoryview(buf)[:payload])
        left -= n
    get_seconds = time.monotonic() - start
    if got.digest() != digest.digest():
        raise RuntimeError("GET returned different bytes than were SET")
    sock.sendall(command(b"DEL", key))
    read_line(sock, b"")
    sock.close()

    print(f"value_mib={args.mb}")
    print(f"set_seconds={set_seconds:.3f}")
    print(f"get_seconds={get_seconds:.3f}")
    print(f"set_mib_per_s={args.mb / set_seconds:.0f}")
    print(f"get_mib_per_s={args.mb / get_seconds:.0f}")
    if sampler:
        peak = sampler.stop()
        print(f"rss_before_kib={rss_before}")
        print(f"rss_peak_kib={peak}")
        print(f"rss_peak_growth_kib={peak - rss_before}")
        print(f"hwm_before_kib={hwm_before}")
        print(f"hwm_after_kib={status(args.pid, 'VmHWM')}")


# Metrics: name -> (label, unit, higher is better).
METRICS = {
    "set_c50": ("SET, 50 clients", "req/s", True),
    "get_c50": ("GET, 50 clients", "req/s", True),
    "set_c50_p16": ("SET, 50 clients, -P 16", "req/s", True),
    "get_c50_p16": ("GET, 50 clients, -P 16", "req/s", True),
    "connect": ("new connections (-k 0 -c 10, PING)", "conn/s", True),
    "connect_c50": ("new connections (-k 0 -c 50, PING)", "conn/s", True),
    "cpu_c50": ("proxy CPU per request, 50 clients", "us", False),
    "cpu_c50_p16": ("proxy CPU per request, -P 16", "us", False),
    "set_c1_p50": ("SET, 1 client, p50 latency", "ms", False),
    "set_c1_p99": ("SET, 1 client, p99 latency", "ms", False),
    "get_c1_p50": ("GET, 1 client, p50 latency", "ms", False),
    "get_c1_p99": ("GET, 1 client, p99 latency", "ms", False),
}
PATHS = ["direct", "redauth", "baseline", "haproxy", "stunnel", "plain"]


def report(args):
    values = {}
    rounds = set()
    with open(args.results) as f:
        for line in f:
            rnd, metric, path, value = line.rstrip("\n").split("\t")
            rounds.add(rnd)
            values.setdefault((metric, path), []).append(float(value))
    medians = {k: statistics.median(v) for k, v in values.items()}

    def fmt(value, unit):
        if unit == "ms":
            return f"{value:.3f}"
        return f"{value:.2f}" if unit == "us" else f"{value:,.0f}"

    def ratio(value, base):
        return f"{value / base:.2f}" if base else "-"

    print(f"Medians of {len(rounds)} round(s). Ratios are path / reference: above 1 is better for")
    print("req/s and conn/s, worse for latencies and CPU. direct = redis-benchmark --tls to redis-server;")
    print("plain = no TLS at all (reference for the cost of TLS handshakes). Proxy CPU is the proxy")
    print("process's user + system time over the run (/proc/PID/stat) per request relayed.")
    print()
    print(f"{'metric':<38} {'path':<8} {'median':>12} {'unit':<7} {'n':>2} {'vs direct':>9} {'vs haproxy':>10}")
    for metric, (label, unit, _) in METRICS.items():
        shown = False
        for path in PATHS:
            if (metric, path) not in medians:
                continue
            m = medians[(metric, path)]
            print(
                f"{label if not shown else '':<38} {path:<8} {fmt(m, unit):>12} {unit:<7} "
                f"{len(values[(metric, path)]):>2} {ratio(m, medians.get((metric, 'direct'))):>9} "
                f"{ratio(m, medians.get((metric, 'haproxy'))):>10}"
            )
            shown = True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("idle")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--auth")
    p = sub.add_parser("large")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mb", type=int, required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--cafile")
    p.add_argument("--auth")
    p = sub.add_parser("report")
    p.add_argument("results")
    args = parser.parse_args()
    try:
        {"idle": idle, "large": large, "report": report}[args.cmd](args)
    except (OSError, RuntimeError) as e:
        print(f"bench-tools {args.cmd}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
