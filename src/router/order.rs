//! Keeping one client's commands for a slot in the order it sent them.
//!
//! A client's commands to one node execute in order. A redirect breaks that
//! unless the router takes care: a SET sent to the old owner comes back
//! `-MOVED` and is sent again to the new one, while the GET the client sent
//! right after it, routed by a map refreshed in between, has already run
//! there and read the old value. So while commands for a slot are in flight,
//! a new command for that slot follows the newest of them (to be redirected
//! behind them, in order), and while one waits to be retried, new ones wait
//! behind it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Where a new command for a slot must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Behind {
    /// Where the newest command in flight for the slot went.
    Port(u16),
    /// A command for the slot waits to be retried: wait behind it.
    Retry,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    count: u32,
    /// Where the newest went.
    tail: u16,
    retrying: bool,
}

/// The commands in flight per slot, for one client.
#[derive(Debug, Default)]
pub(super) struct SlotOrder(HashMap<u16, InFlight, BuildHasherDefault<SlotHasher>>);

/// Hashes a slot number: a multiply by an odd constant, its high half folded
/// into its low (the table indexes by the low bits and tags by the top ones;
/// both then depend on every bit of the slot). SipHash's defence against
/// chosen keys is not needed for at most 16384 distinct values, and cost more
/// than the rest of the lookup.
#[derive(Debug, Default)]
pub(super) struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u16(u16::from(b));
        }
    }

    fn write_u16(&mut self, slot: u16) {
        self.0 = (self.0 ^ u64::from(slot)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl SlotOrder {
    /// Where a new command for `slot` must go; `None`: to the slot's owner.
    pub fn behind(&self, slot: u16) -> Option<Behind> {
        self.0.get(&slot).map(|f| {
            if f.retrying {
                Behind::Retry
            } else {
                Behind::Port(f.tail)
            }
        })
    }

    /// A new command for `slot` went to `port`.
    pub fn sent(&mut self, slot: u16, port: u16) {
        let f = self.0.entry(slot).or_insert(InFlight {
            count: 0,
            tail: port,
            retrying: false,
        });
        f.count += 1;
        f.tail = port;
    }

    /// A command for `slot` was redirected to `port`. It is the newest only
    /// if it is the only one in flight.
    pub fn resent(&mut self, slot: u16, port: u16) {
        if let Some(f) = self.0.get_mut(&slot) {
            if f.count == 1 {
                f.tail = port;
                f.retrying = false;
            }
        }
    }

    /// A command for `slot` waits to be retried.
    pub fn retrying(&mut self, slot: u16) {
        if let Some(f) = self.0.get_mut(&slot) {
            f.retrying = true;
        }
    }

    /// The retries for `slot` were sent, the newest to `port`.
    pub fn retried(&mut self, slot: u16, port: u16) {
        if let Some(f) = self.0.get_mut(&slot) {
            f.retrying = false;
            f.tail = port;
        }
    }

    /// A command for `slot` was answered.
    pub fn settled(&mut self, slot: u16) {
        if let Some(f) = self.0.get_mut(&slot) {
            f.count = f.count.saturating_sub(1);
            if f.count == 0 {
                self.0.remove(&slot);
            }
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_over_the_low_bits_the_table_indexes_by() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<SlotHasher>::default();
        // Slots that differ only in their high bits, in a table of 1024 buckets.
        let buckets: std::collections::HashSet<u64> = (0..16u16)
            .map(|i| hasher.hash_one(i * 1024) & 1023)
            .collect();
        assert!(buckets.len() >= 14, "{buckets:?}");
    }

    #[test]
    fn new_commands_follow_the_newest_in_flight_until_all_are_answered() {
        let mut order = SlotOrder::default();
        assert_eq!(order.behind(7), None);
        order.sent(7, 100);
        order.sent(7, 100);
        // The first is redirected to 200; the second, still at 100, is newer.
        order.resent(7, 200);
        assert_eq!(order.behind(7), Some(Behind::Port(100)));
        order.settled(7);
        // The second is redirected too, and is now the only one.
        order.resent(7, 200);
        assert_eq!(order.behind(7), Some(Behind::Port(200)));
        order.retrying(7);
        assert_eq!(order.behind(7), Some(Behind::Retry));
        order.retried(7, 300);
        assert_eq!(order.behind(7), Some(Behind::Port(300)));
        order.settled(7);
        assert_eq!(order.behind(7), None);
        assert_eq!(order.behind(8), None);
    }
}
