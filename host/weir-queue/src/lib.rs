//! weir's durable export queue (`queue.type = "disk"`): append-only, checksummed
//! segment files, fsync-ed before an append is acknowledged, so that
//! "acknowledged" means "will be delivered" across `kill -9` and power loss.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weir_queue::QueueError> {
//! use weir_queue::{DiskQueue, DiskQueueOptions, Fsync};
//! let (queue, recovery) = DiskQueue::open(DiskQueueOptions {
//!     dir: "/var/lib/weir/queue/otlp/traces".into(),
//!     max_bytes: 1 << 30,
//!     segment_size: 64 << 20,
//!     fsync: Fsync::Always,
//! })?;
//! for r in &recovery.records { /* deliver queue.read(r.id)?, then ack */ }
//! let rec = queue.append(10, bytes::Bytes::from_static(b"...")).await?; // durable now
//! let payload = queue.read(rec.id)?;
//! queue.ack(&[rec.id]);
//! queue.close();
//! # Ok(()) }
//! ```
//!
//! # Files
//!
//! One queue per directory (created with mode 0700; an advisory `lock` file keeps
//! a second process out):
//!
//! - `<first id, 20 digits>.seg`: segments. A 16-byte header — magic
//!   `WEIRQSEG`, format version (u32 LE, currently 1), crc32 of those 12 bytes —
//!   then records, each framed as
//!   `[payload length u32][crc32 of (id u64, items u32, payload)][id u64][items u32][payload]`,
//!   all little-endian. Ids increase by one per append, across restarts too. The
//!   writer rolls to a new segment (named after its first id) once the next
//!   record would take it past `segment_size` (capped at `max_bytes / 4`, so
//!   delivered segments are deleted well before the queue fills); a record larger
//!   than a segment gets one of its own.
//! - `acks.log`: the acknowledged ids. A 24-byte header (magic `WEIRQACK`,
//!   version, *id floor* = the next id when the file was written, crc) and 16-byte
//!   entries `[first id u64][count u32][crc32]`, each a run of consecutive
//!   acknowledged ids. Compacted (rewritten to the acknowledged records still on
//!   disk, via `acks.log.tmp` and a rename) once it doubles, at open and at close.
//! - `corrupt/`: damaged segments moved aside, named `<segment>.<unix seconds>`.
//!
//! # Durability
//!
//! A single writer thread takes every append waiting, writes the group, calls one
//! `fdatasync` for all of it (group commit) and only then completes the appends.
//! [`Fsync::Always`] syncs as soon as a group is written; [`Fsync::Interval`]
//! syncs at most once per interval and completes everything written since the
//! previous sync (appends wait up to the interval). Either way an append that
//! returned `Ok` is on stable storage. Creating a segment syncs its header and the
//! directory; a segment is synced before the writer rolls past it, so only the
//! newest segment can ever hold unsynced bytes.
//!
//! Acknowledgements ([`DiskQueue::ack`]) are appended to `acks.log` without
//! fsync: after a process crash they survive (the page cache does); after a power
//! loss some may be lost, and those records are delivered again — duplicates, never
//! loss. [`DiskQueue::close`] rewrites and syncs the ack log. A segment whose
//! records are all acknowledged is deleted once it is no longer the active one.
//!
//! # Bounds
//!
//! An append is refused with [`QueueError::Full`] when segment files plus the ack
//! log plus appends in flight would pass `max_bytes` (an active segment whose
//! records are all acknowledged does not count: it is deleted at the next roll).
//! Disk usage therefore stays within `max_bytes` plus one segment.
//!
//! # Recovery rules ([`DiskQueue::open`])
//!
//! Every record of every segment is read and its checksum verified.
//!
//! - **Torn tail**: if the newest segment ends in a partial record (its frame runs
//!   past the end of the file, or only zeros follow), and no intact record
//!   follows, an append was interrupted — so never acknowledged — and the tail is
//!   cut off ([`Recovery::truncated_bytes`]). A newest segment shorter than its
//!   header is removed the same way.
//! - **Damage** — anything else: a complete record failing its checksum (even the
//!   last one), impossible framing, a damaged header, a sealed segment that ends
//!   early, damage that intact records follow. The scan searches on byte by byte for the next
//!   intact record (an id just past the last good one and a matching checksum),
//!   so records both before and after the damage are kept. The intact,
//!   unacknowledged records are copied into a fresh file of the same name
//!   (written and synced as `<name>.salvage`, then renamed over it), the damaged
//!   file is moved to `corrupt/` ([`Recovery::corrupt_segments`], logged with
//!   `tracing::error!`) and the ids skipped over are reported in
//!   [`Recovery::lost_records_estimate`]. Opening never fails because of damaged
//!   data — only for I/O errors, a lock held by another process, or a segment of a
//!   newer format version.
//! - **Ack log**: read up to its first damaged entry; a missing or damaged ack
//!   log only means records are delivered again. The records recovered are those
//!   in the segments minus the acknowledged ones, in append (id) order.
//! - The next id is one past the highest id in any segment, the ack log, or its
//!   id floor, so an id is never reused (a reused id could match a stale ack).

mod ack_log;
mod error;
mod format;
mod fsutil;
mod queue;
mod recovery;
mod state;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

pub use error::QueueError;
pub use queue::DiskQueue;

#[derive(Debug, Clone)]
pub struct DiskQueueOptions {
    /// Created (mode 0700) if missing; one queue per directory.
    pub dir: PathBuf,
    /// Disk bytes the queue may use; an append beyond it fails with [`QueueError::Full`].
    pub max_bytes: u64,
    /// Roll to a new segment file at this size (at most `max_bytes / 4`).
    pub segment_size: u64,
    pub fsync: Fsync,
}

/// When appended records are synced (and the appends complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// As soon as a group of appends is written.
    Always,
    /// At most once per interval; appends wait for the next sync.
    Interval(Duration),
}

/// A record's id: increases monotonically, also across restarts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Debug)]
pub struct Record {
    pub id: RecordId,
    pub items: u32,
    /// Payload length.
    pub bytes: u32,
}

/// What [`DiskQueue::open`] found.
#[derive(Debug, Default, Clone)]
pub struct Recovery {
    /// Unacknowledged records found at open, in append order.
    pub records: Vec<Record>,
    /// Damaged files moved aside (their new paths, under `<dir>/corrupt/`).
    pub corrupt_segments: Vec<PathBuf>,
    /// Records that could not be read back from corrupt segments (best effort,
    /// 0 if unknown).
    pub lost_records_estimate: u64,
    /// Torn tail cut off the newest segment.
    pub truncated_bytes: u64,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Records appended (or recovered) and not yet acknowledged.
    pub pending_records: u64,
    /// Their payload bytes.
    pub pending_bytes: u64,
    /// Segment files plus the ack log.
    pub disk_bytes: u64,
    pub segments: usize,
    pub max_bytes: u64,
    /// Group commits so far (fdatasync calls for appends, since open).
    pub fsyncs: u64,
}
