//! The in-memory index shared by callers and the writer thread: which records
//! each segment holds, which are acknowledged, and the byte accounting.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ack_log::{AckLog, runs};
use crate::writer::Msg;

#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordMeta {
    pub id: u64,
    /// Where the frame (not the payload) starts in its segment file.
    pub offset: u64,
    pub len: u32,
    pub items: u32,
    pub acked: bool,
}

pub(crate) struct Segment {
    /// The first id it may hold, and its file name.
    pub base: u64,
    pub path: PathBuf,
    /// Shared by readers (positional reads need no seek, so no lock).
    pub reader: Arc<File>,
    pub size: u64,
    /// Sorted by id.
    pub records: Vec<RecordMeta>,
    pub unacked: usize,
}

impl Segment {
    pub(crate) fn new(base: u64, path: PathBuf, reader: File, size: u64) -> Segment {
        Segment {
            base,
            path,
            reader: Arc::new(reader),
            size,
            records: Vec::new(),
            unacked: 0,
        }
    }

    pub(crate) fn find(&self, id: u64) -> Option<usize> {
        self.records.binary_search_by_key(&id, |r| r.id).ok()
    }
}

pub(crate) struct State {
    pub dir: PathBuf,
    pub segments: BTreeMap<u64, Segment>,
    /// The segment the writer appends to: never deleted while active.
    pub active_base: u64,
    /// `None` once closed: acks after `close()` are not persisted.
    pub ack_log: Option<AckLog>,
    /// Sum of the segment files' sizes.
    pub segment_bytes: u64,
    /// Frame bytes of appends accepted but not yet written.
    pub reserved: u64,
    pub pending_records: u64,
    pub pending_bytes: u64,
    /// One past the highest id handed out: the ack log's id floor.
    pub next_id: u64,
    /// `None` once closed.
    pub sender: Option<Sender<Msg>>,
    /// Holds the directory's advisory lock until close.
    pub lock: Option<File>,
    ack_log_failed: bool,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub dir: PathBuf,
    pub max_bytes: u64,
    /// fdatasync calls on segments by the writer (group commits).
    pub syncs: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the index consistent enough to
        // keep serving (every update is a few field writes); don't cascade it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct StateInit {
    pub dir: PathBuf,
    pub segments: BTreeMap<u64, Segment>,
    pub active_base: u64,
    pub ack_log: AckLog,
    pub next_id: u64,
    pub sender: Sender<Msg>,
    pub lock: File,
}

impl State {
    pub(crate) fn new(init: StateInit) -> State {
        let mut st = State {
            dir: init.dir,
            segments: init.segments,
            active_base: init.active_base,
            ack_log: Some(init.ack_log),
            segment_bytes: 0,
            reserved: 0,
            pending_records: 0,
            pending_bytes: 0,
            next_id: init.next_id,
            sender: Some(init.sender),
            lock: Some(init.lock),
            ack_log_failed: false,
        };
        for seg in st.segments.values() {
            st.segment_bytes += seg.size;
            for r in seg.records.iter().filter(|r| !r.acked) {
                st.pending_records += 1;
                st.pending_bytes += u64::from(r.len);
            }
        }
        st
    }

    pub(crate) fn ack_log_bytes(&self) -> u64 {
        self.ack_log.as_ref().map_or(0, AckLog::bytes)
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segment_bytes + self.ack_log_bytes()
    }

    /// Bytes counted against `max_bytes`: everything on disk or accepted, except
    /// an active segment whose records are all acknowledged (it is deleted once
    /// the writer rolls past it, so counting it could wedge a small queue).
    pub(crate) fn used_for_limit(&self) -> u64 {
        let reclaimable = self
            .segments
            .get(&self.active_base)
            .filter(|s| s.unacked == 0)
            .map_or(0, |s| s.size);
        (self.disk_bytes() + self.reserved).saturating_sub(reclaimable)
    }

    /// The segment and index of a record.
    pub(crate) fn locate(&self, id: u64) -> Option<(&Segment, usize)> {
        let (_, seg) = self.segments.range(..=id).next_back()?;
        seg.find(id).map(|i| (seg, i))
    }

    pub(crate) fn ack(&mut self, ids: &[u64]) {
        if self.ack_log.is_none() {
            // Closed: the ack state was flushed; later acks only mean redelivery.
            return;
        }
        let mut newly = Vec::with_capacity(ids.len());
        let mut touched: Vec<u64> = Vec::new();
        for &id in ids {
            let Some((_, seg)) = self.segments.range_mut(..=id).next_back() else {
                continue;
            };
            let Some(i) = seg.find(id) else { continue };
            let rec = &mut seg.records[i];
            if rec.acked {
                continue;
            }
            rec.acked = true;
            seg.unacked -= 1;
            self.pending_records -= 1;
            self.pending_bytes -= u64::from(rec.len);
            newly.push(id);
            if touched.last() != Some(&seg.base) {
                touched.push(seg.base);
            }
        }
        if newly.is_empty() {
            return;
        }
        newly.sort_unstable();
        if let Some(log) = self.ack_log.as_mut() {
            match log.append(&runs(newly)) {
                Ok(()) => self.ack_log_failed = false,
                Err(e) => {
                    // Not fatal: those records are only delivered again after a restart.
                    if !self.ack_log_failed {
                        tracing::warn!(error = %e, "disk queue: acknowledgements not persisted; they are redelivered after a restart");
                    }
                    self.ack_log_failed = true;
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for base in touched {
            self.delete_if_done(base);
        }
        if self.ack_log.as_ref().is_some_and(AckLog::needs_compaction) {
            self.compact(false);
        }
    }

    /// Deletes a sealed segment whose records are all acknowledged.
    pub(crate) fn delete_if_done(&mut self, base: u64) {
        if base == self.active_base {
            return;
        }
        let done = self.segments.get(&base).is_some_and(|s| s.unacked == 0);
        if !done {
            return;
        }
        let Some(seg) = self.segments.remove(&base) else {
            return;
        };
        self.segment_bytes -= seg.size;
        if let Err(e) = std::fs::remove_file(&seg.path) {
            // Its records are acknowledged in the ack log until the next
            // compaction; after that a restart would redeliver them (duplicates).
            tracing::error!(path = %seg.path.display(), error = %e, "disk queue: cannot delete a fully delivered segment");
        }
    }

    /// Rewrites the ack log to the acknowledged records still on disk.
    pub(crate) fn compact(&mut self, durable: bool) {
        if self.ack_log.is_none() {
            return;
        }
        let acked = self
            .segments
            .values()
            .flat_map(|s| s.records.iter())
            .filter(|r| r.acked)
            .map(|r| r.id);
        let runs = runs(acked);
        match AckLog::rewrite(&self.dir, self.next_id, &runs, durable) {
            Ok(log) => self.ack_log = Some(log),
            Err(e) => {
                tracing::warn!(error = %e, "disk queue: cannot rewrite the ack log; appending to the old one");
            }
        }
    }

    /// Makes `base` the active segment; the previous one is deleted if delivered.
    pub(crate) fn set_active(&mut self, seg: Segment) {
        let base = seg.base;
        self.segment_bytes += seg.size;
        self.segments.insert(base, seg);
        let old = std::mem::replace(&mut self.active_base, base);
        self.delete_if_done(old);
    }

    /// Records the writer has written to segment `base`.
    pub(crate) fn publish(&mut self, base: u64, records: &[RecordMeta], written: u64, reserved: u64) {
        self.reserved = self.reserved.saturating_sub(reserved);
        self.segment_bytes += written;
        if let Some(seg) = self.segments.get_mut(&base) {
            seg.size += written;
            seg.records.extend_from_slice(records);
            seg.unacked += records.len();
        }
        for r in records {
            self.pending_records += 1;
            self.pending_bytes += u64::from(r.len);
            self.next_id = self.next_id.max(r.id + 1);
        }
    }

    /// Undoes a reservation whose append failed.
    pub(crate) fn release(&mut self, reserved: u64) {
        self.reserved = self.reserved.saturating_sub(reserved);
    }

    /// A segment file shrank (a failed write was cut off).
    pub(crate) fn set_size(&mut self, base: u64, size: u64) {
        if let Some(seg) = self.segments.get_mut(&base) {
            self.segment_bytes = self.segment_bytes - seg.size + size;
            seg.size = size;
        }
    }
}
