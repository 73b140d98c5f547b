//! What an export stage holds between admission and delivery: entries in
//! arrival order, each one request as it came out of the pipeline (the unit a
//! rejected merged batch is split back into), with the budget it holds.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::time::Instant;

use super::budget::Reservation;

/// The id of an entry's record in a disk queue.
pub type RecordId = weir_queue::RecordId;

pub struct Entry {
    pub items: usize,
    pub bytes: usize,
    /// The encoded request; `None` for a disk record, read back when sent.
    pub payload: Option<Bytes>,
    pub record: Option<RecordId>,
    /// Held, not read: dropping the entry gives its room back to the budget.
    #[expect(dead_code, reason = "held for its Drop")]
    pub reservation: Reservation,
    pub since: Instant,
}

#[derive(Default)]
pub struct Pending {
    entries: VecDeque<Entry>,
    items: usize,
    bytes: usize,
}

impl Pending {
    pub fn push(&mut self, entry: Entry) {
        self.items += entry.items;
        self.bytes += entry.bytes;
        self.entries.push_back(entry);
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn oldest(&self) -> Option<Instant> {
        self.entries.front().map(|e| e.since)
    }

    /// Whether a batch of `max_items` or `max_bytes` is waiting.
    pub fn holds_a_full_batch(&self, max_items: usize, max_bytes: usize) -> bool {
        self.items >= max_items || self.bytes >= max_bytes
    }

    /// The next batch: the oldest entry, then more while the batch stays
    /// within `max_items` and `max_bytes`.
    pub fn take_batch(&mut self, max_items: usize, max_bytes: usize) -> Vec<Entry> {
        let mut batch = Vec::new();
        let (mut items, mut bytes) = (0usize, 0usize);
        while let Some(next) = self.entries.front() {
            let fits = items + next.items <= max_items && bytes + next.bytes <= max_bytes;
            if !batch.is_empty() && !fits {
                break;
            }
            let Some(e) = self.entries.pop_front() else { break };
            items += e.items;
            bytes += e.bytes;
            batch.push(e);
        }
        self.items -= items;
        self.bytes -= bytes;
        batch
    }

    pub fn take_all(&mut self) -> Vec<Entry> {
        self.items = 0;
        self.bytes = 0;
        self.entries.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(items: usize, bytes: usize) -> Entry {
        Entry {
            items,
            bytes,
            payload: Some(Bytes::new()),
            record: None,
            reservation: Reservation::none(),
            since: Instant::now(),
        }
    }

    #[tokio::test]
    async fn batches_respect_item_and_byte_limits_but_take_at_least_one() {
        let mut p = Pending::default();
        for (i, b) in [(3, 100), (3, 100), (3, 900), (50, 10), (1, 10)] {
            p.push(entry(i, b));
        }
        assert!(p.holds_a_full_batch(10, 5000));
        let sizes = |v: &Vec<Entry>| v.iter().map(|e| (e.items, e.bytes)).collect::<Vec<_>>();
        assert_eq!(sizes(&p.take_batch(10, 1000)), vec![(3, 100), (3, 100)]);
        assert_eq!(sizes(&p.take_batch(10, 1000)), vec![(3, 900)]);
        // Larger than max_items alone: sent alone.
        assert_eq!(sizes(&p.take_batch(10, 1000)), vec![(50, 10)]);
        assert!(!p.holds_a_full_batch(10, 1000));
        assert_eq!(sizes(&p.take_all()), vec![(1, 10)]);
        assert!(p.is_empty());
    }
}
