//! An exporter queue's capacity, in items and in bytes, and the reservations
//! that hold part of it from the moment a receiver accepts data until the
//! destination has it (or weir has given up on it, counted).
//!
//! Both dimensions matter: a count of items alone let 300 two-megabyte spans
//! take 640 MB while the queue looked nearly empty.

use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug)]
pub struct Budget {
    /// The capacity; changed only by a reload ([`Budget::resize`]).
    capacity: Mutex<Used>,
    used: Mutex<Used>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    pub items: usize,
    pub bytes: u64,
}

/// Why a reservation could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// Not enough room right now; room frees up as data is delivered.
    Full,
    /// More than the whole capacity: waiting cannot help.
    TooLarge {
        capacity_items: usize,
        capacity_bytes: u64,
    },
}

/// Room held in a budget; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Option<Arc<Budget>>,
    items: usize,
    bytes: u64,
}

impl Budget {
    pub fn new(items: usize, bytes: u64) -> Arc<Budget> {
        Arc::new(Budget {
            capacity: Mutex::new(Used { items, bytes }),
            used: Mutex::new(Used::default()),
        })
    }

    pub fn capacity(&self) -> Used {
        *self.capacity.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets a new capacity. Room already held stays held: a smaller budget
    /// refuses new data until enough of it is delivered.
    pub fn resize(&self, items: usize, bytes: u64) {
        *self.capacity.lock().unwrap_or_else(PoisonError::into_inner) = Used { items, bytes };
    }

    pub fn used(&self) -> Used {
        *self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `items` and `bytes`, or nothing.
    pub fn try_reserve(self: &Arc<Self>, items: usize, bytes: u64) -> Result<Reservation, Shortfall> {
        let cap = self.capacity();
        if items > cap.items || bytes > cap.bytes {
            return Err(Shortfall::TooLarge {
                capacity_items: cap.items,
                capacity_bytes: cap.bytes,
            });
        }
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        if used.items + items > cap.items || used.bytes + bytes > cap.bytes {
            return Err(Shortfall::Full);
        }
        used.items += items;
        used.bytes += bytes;
        Ok(self.held(items, bytes))
    }

    /// Takes room regardless of the capacity: for data that is already held
    /// (recovered from disk at start-up). Admission refuses until it drains.
    pub fn force(self: &Arc<Self>, items: usize, bytes: u64) -> Reservation {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.items += items;
        used.bytes += bytes;
        self.held(items, bytes)
    }

    fn held(self: &Arc<Self>, items: usize, bytes: u64) -> Reservation {
        Reservation {
            budget: Some(self.clone()),
            items,
            bytes,
        }
    }

    fn release(&self, items: usize, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        used.items = used.items.saturating_sub(items);
        used.bytes = used.bytes.saturating_sub(bytes);
    }
}

impl Reservation {
    /// A reservation of nothing.
    pub fn none() -> Reservation {
        Reservation {
            budget: None,
            items: 0,
            bytes: 0,
        }
    }

    pub fn items(&self) -> usize {
        self.items
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether this reservation holds room of `budget`.
    pub fn is_of(&self, budget: &Arc<Budget>) -> bool {
        self.budget.as_ref().is_some_and(|b| Arc::ptr_eq(b, budget))
    }

    /// Moves up to `items` and `bytes` of this reservation into a new one.
    pub fn take(&mut self, items: usize, bytes: u64) -> Reservation {
        let items = items.min(self.items);
        let bytes = bytes.min(self.bytes);
        self.items -= items;
        self.bytes -= bytes;
        Reservation {
            budget: self.budget.clone(),
            items,
            bytes,
        }
    }

    /// Adds `other`'s room to this one (both must be of the same budget, or
    /// this one empty).
    pub fn merge(&mut self, mut other: Reservation) {
        if self.budget.is_none() {
            self.budget = other.budget.take();
        }
        self.items += std::mem::take(&mut other.items);
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.items, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_bytes_both_bound_admission() {
        let b = Budget::new(10, 1000);
        let r1 = b.try_reserve(2, 900).expect("room");
        assert_eq!(b.try_reserve(1, 200).err(), Some(Shortfall::Full), "bytes full");
        let r2 = b.try_reserve(8, 100).expect("room");
        assert_eq!(b.try_reserve(1, 0).err(), Some(Shortfall::Full), "items full");
        assert!(matches!(b.try_reserve(11, 0), Err(Shortfall::TooLarge { .. })));
        assert!(matches!(b.try_reserve(1, 1001), Err(Shortfall::TooLarge { .. })));
        drop(r1);
        assert_eq!(b.used(), Used { items: 8, bytes: 100 });
        drop(r2);
        assert_eq!(b.used(), Used::default());
    }

    #[test]
    fn take_and_merge_move_room_without_losing_it() {
        let b = Budget::new(10, 1000);
        let mut r = b.try_reserve(6, 600).expect("room");
        let part = r.take(2, 250);
        assert_eq!((part.items(), part.bytes()), (2, 250));
        assert_eq!((r.items(), r.bytes()), (4, 350));
        let mut empty = Reservation::none();
        empty.merge(part);
        assert!(empty.is_of(&b));
        drop(r);
        assert_eq!(b.used(), Used { items: 2, bytes: 250 });
        drop(empty);
        assert_eq!(b.used(), Used::default());
        let forced = b.force(20, 5000);
        assert_eq!(b.try_reserve(1, 1).err(), Some(Shortfall::Full));
        drop(forced);
        assert!(b.try_reserve(1, 1).is_ok());
    }
}
