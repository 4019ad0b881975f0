//! Rewriting node addresses in replies, so that a cluster-aware client only
//! ever learns local addresses.
//!
//! Each function takes one whole reply frame and answers [`Rewrite`]:
//! unchanged (relay the server's bytes as they are), rewritten, or an address
//! the map does not know yet (refresh the topology, then rewrite again). A
//! reply that is not the shape the command gives (an error, a server of
//! another version) is left unchanged rather than half rewritten: only
//! addresses change, never anything else.
//!
//! Where each reply keeps its addresses (Redis 7):
//! - `-MOVED <slot> <host:port>` and `-ASK …`, alone or as elements of an
//!   `EXEC` array;
//! - `CLUSTER SLOTS`: `[start, end, [host, port, id, {hostname|ip …}], …]`;
//! - `CLUSTER SHARDS`: per shard `{slots, nodes: [{id, port, tls-port, ip,
//!   endpoint, hostname, …}]}`;
//! - `CLUSTER NODES` (text; a verbatim string in RESP3) and `CLUSTER
//!   REPLICAS` (one such line per bulk string): `id ip:port@cport[,hostname[,aux…]] …`.

use super::node::{LocalAddresses, NodeAddr};
use super::topology::{announced_hosts, HOST_KEYS};
use crate::resp::tree::Value;
use bytes::Bytes;

/// What to relay in place of a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// The server's bytes, as they are: no address in them.
    Unchanged,
    /// The reply with every address replaced by its local one.
    Rewritten(Bytes),
    /// The reply names a node the map does not know.
    Unknown(NodeAddr),
}

/// Maps addresses through `map`, remembering whether anything changed and
/// the first address it could not map.
struct Mapper<'a, M: ?Sized> {
    map: &'a M,
    changed: bool,
    unknown: Option<NodeAddr>,
}

impl<'a, M: LocalAddresses + ?Sized> Mapper<'a, M> {
    fn new(map: &'a M) -> Self {
        Mapper {
            map,
            changed: false,
            unknown: None,
        }
    }

    /// The local address for a node known by any of `hosts` (tried in order:
    /// a node may be known by its name or its IP) on `port`. Port 0 is a
    /// node without an address (handshake, no address yet): nothing to map.
    fn local(&mut self, hosts: &[&[u8]], port: u16) -> Option<NodeAddr> {
        if port == 0 {
            return None;
        }
        for host in hosts {
            if let Some(local) = self
                .map
                .local(&NodeAddr::new(Bytes::copy_from_slice(host), port))
            {
                self.changed = true;
                return Some(local);
            }
        }
        if self.unknown.is_none() {
            let host = hosts.first().copied().unwrap_or_default();
            self.unknown = Some(NodeAddr::new(Bytes::copy_from_slice(host), port));
        }
        None
    }

    fn finish(self, value: &Value) -> Rewrite {
        match (self.unknown, self.changed) {
            (Some(addr), _) => Rewrite::Unknown(addr),
            (None, true) => Rewrite::Rewritten(value.to_bytes()),
            (None, false) => Rewrite::Unchanged,
        }
    }

    /// Rewrites a `MOVED`/`ASK` error line's text in place.
    fn redirect(&mut self, text: &mut Bytes) {
        let mut parts = text.splitn(3, |&b| b == b' ');
        let (Some(kind @ (b"MOVED" | b"ASK")), Some(slot), Some(addr)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        let Some(upstream) = NodeAddr::parse(addr) else {
            return;
        };
        if let Some(local) = self.local(&[&upstream.host], upstream.port) {
            let mut out = Vec::with_capacity(text.len());
            out.extend_from_slice(kind);
            out.push(b' ');
            out.extend_from_slice(slot);
            out.push(b' ');
            out.extend_from_slice(&local.to_bytes());
            *text = Bytes::from(out);
        }
    }

    /// Rewrites one `CLUSTER NODES` line; `None` if nothing in it changed.
    fn nodes_line(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let mut fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let field = fields.get(1)?;
        let at = field.iter().position(|&b| b == b'@')?;
        let upstream = NodeAddr::parse(&field[..at])?;
        let mut after: Vec<&[u8]> = field[at + 1..].split(|&b| b == b',').collect();
        // After the bus port: the hostname (possibly empty), then `key=value` aux fields.
        let hostname = after.get(1).filter(|h| !h.is_empty() && !h.contains(&b'='));
        let hosts: Vec<&[u8]> = hostname
            .into_iter()
            .copied()
            .chain([&upstream.host[..]])
            .collect();
        let local = self.local(&hosts, upstream.port)?;
        let host_at = hostname.is_some().then_some(1);
        if let Some(i) = host_at {
            after[i] = &local.host;
        }
        let mut addr = local.to_bytes();
        addr.push(b'@');
        addr.extend_from_slice(&after.join(&b","[..]));
        fields[1] = &addr;
        Some(fields.join(&b" "[..]))
    }

    /// Rewrites `CLUSTER NODES` text (each line; lines keep their endings).
    fn nodes_text(&mut self, text: &[u8]) -> Option<Bytes> {
        let mut out = Vec::with_capacity(text.len() + 64);
        let mut any = false;
        for line in text.split_inclusive(|&b| b == b'\n') {
            let (body, end) = match line.strip_suffix(b"\n") {
                Some(body) => (body, &b"\n"[..]),
                None => (line, &b""[..]),
            };
            match self.nodes_line(body) {
                Some(new) => {
                    any = true;
                    out.extend_from_slice(&new);
                }
                None => out.extend_from_slice(body),
            }
            out.extend_from_slice(end);
        }
        any.then(|| Bytes::from(out))
    }
}

/// A `-MOVED`/`-ASK` reply, or an `EXEC` array holding such errors.
pub fn redirects<M: LocalAddresses + ?Sized>(frame: &Bytes, map: &M) -> Rewrite {
    // Cheap checks first: most replies are neither an error nor an array.
    let alone = frame.starts_with(b"-MOVED ") || frame.starts_with(b"-ASK ");
    let in_array =
        frame.starts_with(b"*") && frame.windows(5).any(|w| w == b"\r\n-MO" || w == b"\r\n-AS");
    if !alone && !in_array {
        return Rewrite::Unchanged;
    }
    let Some(mut value) = Value::parse(frame) else {
        return Rewrite::Unchanged;
    };
    let mut mapper = Mapper::new(map);
    match &mut value {
        Value::Line { kind: b'-', text } => mapper.redirect(text),
        Value::Aggregate {
            items: Some(items), ..
        } => {
            for item in items {
                if let Value::Line { kind: b'-', text } = item {
                    mapper.redirect(text);
                }
            }
        }
        _ => {}
    }
    mapper.finish(&value)
}

/// The values of `pairs` (alternating keys and values: a RESP3 map or a
/// RESP2 array) under `key`, as indices.
fn field(pairs: &[Value], key: &[u8]) -> Option<usize> {
    (0..pairs.len() / 2)
        .map(|i| 2 * i)
        .find(|&i| pairs[i].text().is_some_and(|k| k == key))
        .map(|i| i + 1)
}

fn port_of(value: Option<&Value>) -> Option<u16> {
    value?.integer().and_then(|p| u16::try_from(p).ok())
}

/// `CLUSTER SLOTS`.
pub fn slots<M: LocalAddresses + ?Sized>(frame: &Bytes, map: &M) -> Rewrite {
    let Some(mut value) = Value::parse(frame) else {
        return Rewrite::Unchanged;
    };
    let mut mapper = Mapper::new(map);
    for range in value.items_mut().into_iter().flatten() {
        let Some(entries) = range.items_mut() else {
            continue;
        };
        for node in entries.iter_mut().skip(2) {
            let Some(node) = node.items_mut() else {
                continue;
            };
            let Some(port) = port_of(node.get(1)) else {
                continue;
            };
            let mut hosts = announced_hosts(node);
            if hosts.is_empty() {
                // Endpoint unknown (`?`): the client uses the host it asked, so only the port changes.
                hosts.push(Bytes::new());
            }
            let hosts: Vec<&[u8]> = hosts.iter().map(|h| &h[..]).collect();
            let Some(local) = mapper.local(&hosts, port) else {
                continue;
            };
            if node[0]
                .text()
                .is_some_and(|h| !h.is_empty() && &h[..] != b"?")
            {
                node[0].set_text(local.host.clone());
            }
            node[1].set_text(Bytes::from(local.port.to_string()));
            if let Some(meta) = node.get_mut(3).and_then(Value::items_mut) {
                for key in HOST_KEYS {
                    if let Some(i) = field(meta, key) {
                        meta[i].set_text(local.host.clone());
                    }
                }
            }
        }
    }
    mapper.finish(&value)
}

/// `CLUSTER SHARDS`.
pub fn shards<M: LocalAddresses + ?Sized>(frame: &Bytes, map: &M) -> Rewrite {
    let Some(mut value) = Value::parse(frame) else {
        return Rewrite::Unchanged;
    };
    let mut mapper = Mapper::new(map);
    for shard in value.items_mut().into_iter().flatten() {
        let Some(shard) = shard.items_mut() else {
            continue;
        };
        let Some(nodes) = field(shard, b"nodes").and_then(|i| shard[i].items_mut()) else {
            continue;
        };
        for node in nodes {
            let Some(node) = node.items_mut() else {
                continue;
            };
            let tls = field(node, b"tls-port");
            let plain = field(node, b"port");
            let Some(port) = port_of(tls.or(plain).map(|i| &node[i])) else {
                continue;
            };
            let host_keys = [&b"endpoint"[..], b"hostname", b"ip"];
            let hosts: Vec<Bytes> = host_keys
                .iter()
                .filter_map(|k| field(node, k).and_then(|i| node[i].text().cloned()))
                .collect();
            let hosts: Vec<&[u8]> = hosts.iter().map(|h| &h[..]).collect();
            let Some(local) = mapper.local(&hosts, port) else {
                continue;
            };
            for i in [tls, plain].into_iter().flatten() {
                node[i].set_text(Bytes::from(local.port.to_string()));
            }
            for key in host_keys {
                if let Some(i) = field(node, key) {
                    node[i].set_text(local.host.clone());
                }
            }
        }
    }
    mapper.finish(&value)
}

/// `CLUSTER NODES` (a bulk string, or a RESP3 verbatim string) and `CLUSTER
/// REPLICAS`/`SLAVES` (an array of bulk strings, one node line each).
pub fn nodes<M: LocalAddresses + ?Sized>(frame: &Bytes, map: &M) -> Rewrite {
    let Some(mut value) = Value::parse(frame) else {
        return Rewrite::Unchanged;
    };
    let mut mapper = Mapper::new(map);
    let rewrite_text = |v: &mut Value, mapper: &mut Mapper<'_, M>| {
        let Value::Blob {
            kind,
            data: Some(data),
        } = v
        else {
            return;
        };
        let prefix = if *kind == b'=' { 4.min(data.len()) } else { 0 };
        if let Some(text) = mapper.nodes_text(&data[prefix..]) {
            let mut out = data[..prefix].to_vec();
            out.extend_from_slice(&text);
            *data = Bytes::from(out);
        }
    };
    match value.items_mut() {
        Some(items) => items.iter_mut().for_each(|v| rewrite_text(v, &mut mapper)),
        None => rewrite_text(&mut value, &mut mapper),
    }
    mapper.finish(&value)
}

#[cfg(test)]
mod tests;
