//! [`DiskQueue`]: the public handle over the shared index and the writer thread.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::{QueueError, io_err};
use crate::format::{
    FRAME_HEADER_LEN, FrameHeader, LOCK_FILE, MAX_PAYLOAD, SEGMENT_HEADER_LEN, frame_len, record_crc,
};
use crate::fsutil::create_private_dir;
use crate::recovery::recover;
use crate::state::{Shared, State, StateInit};
use crate::writer::{AppendReq, Msg, Writer};
use crate::{DiskQueueOptions, QueueStats, Record, RecordId, Recovery};

/// Segments are kept to at most a quarter of `max_bytes`, so delivered segments
/// are deleted (and their space reused) well before the queue is full.
const MIN_SEGMENT_SIZE: u64 = 4096;

/// A durable queue of records in one directory. Cheap to clone; every clone is
/// the same queue. Dropping the last clone closes it.
#[derive(Clone)]
pub struct DiskQueue {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        close(&self.shared, &self.writer);
    }
}

impl std::fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskQueue")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

impl DiskQueue {
    /// Blocking. Scans segments, verifies every record's checksum, recovers.
    pub fn open(opts: DiskQueueOptions) -> Result<(DiskQueue, Recovery), QueueError> {
        if opts.max_bytes < 2 * MIN_SEGMENT_SIZE {
            return Err(QueueError::InvalidOptions(format!(
                "max_bytes = {} for {}: a disk queue needs at least {} bytes",
                opts.max_bytes,
                opts.dir.display(),
                2 * MIN_SEGMENT_SIZE
            )));
        }
        if let crate::Fsync::Interval(d) = opts.fsync
            && d.is_zero()
        {
            return Err(QueueError::InvalidOptions(
                "fsync interval is 0: use Fsync::Always to sync after every write".into(),
            ));
        }
        let dir = opts.dir.clone();
        create_private_dir(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "open"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(QueueError::Locked { dir }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, "lock")(e)),
        }
        let recovered = recover(&dir)?;
        let segment_size = opts.segment_size.min(opts.max_bytes / 4).max(MIN_SEGMENT_SIZE);
        let (tx, rx) = mpsc::channel();
        let state = State::new(StateInit {
            dir: dir.clone(),
            segments: recovered.segments,
            active_base: recovered.active.base,
            ack_log: recovered.ack_log,
            next_id: recovered.next_id,
            sender: tx,
            lock,
        });
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            dir: dir.clone(),
            max_bytes: opts.max_bytes,
            syncs: AtomicU64::new(0),
        });
        let writer = Writer::new(
            shared.clone(),
            opts.fsync,
            segment_size,
            recovered.active,
            recovered.next_id,
        );
        let handle = std::thread::Builder::new()
            .name("weir-queue-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err(&dir, "start the writer thread for"))?;
        let queue = DiskQueue {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(handle)),
            }),
        };
        Ok((queue, recovered.recovery))
    }

    /// Resolves once the record is durable per the fsync policy (fdatasync
    /// done). Dropping the future does not cancel the write: the record is then
    /// only delivered after a restart.
    pub async fn append(&self, items: u32, payload: Bytes) -> Result<Record, QueueError> {
        let shared = &self.inner.shared;
        let flen = frame_len(payload.len());
        let max_record = MAX_PAYLOAD.min(
            shared
                .max_bytes
                .saturating_sub(SEGMENT_HEADER_LEN + FRAME_HEADER_LEN as u64),
        );
        if payload.len() as u64 > max_record {
            return Err(QueueError::TooLarge {
                bytes: payload.len() as u64,
                max: max_record,
            });
        }
        let (done, result) = oneshot::channel();
        {
            let mut st = shared.lock();
            let Some(sender) = st.sender.as_ref() else {
                return Err(QueueError::Closed);
            };
            let used = st.used_for_limit();
            if used + flen > shared.max_bytes {
                return Err(QueueError::Full {
                    dir: shared.dir.clone(),
                    max_bytes: shared.max_bytes,
                    used_bytes: used,
                    record_bytes: flen,
                });
            }
            // Sent under the lock so that close() cannot slip in between the
            // check and the send.
            let req = AppendReq {
                items,
                payload,
                reserved: flen,
                done,
            };
            if sender.send(Msg::Append(req)).is_err() {
                return Err(QueueError::Closed);
            }
            st.reserved += flen;
        }
        result.await.unwrap_or(Err(QueueError::Closed))
    }

    /// Blocking read of one record's payload, verified against its checksum.
    pub fn read(&self, id: RecordId) -> Result<Bytes, QueueError> {
        let (reader, path, offset, len) = {
            let st = self.inner.shared.lock();
            let Some((seg, i)) = st.locate(id.0) else {
                return Err(QueueError::NotFound(id));
            };
            let r = seg.records[i];
            if r.acked {
                return Err(QueueError::NotFound(id));
            }
            (seg.reader.clone(), seg.path.clone(), r.offset, r.len)
        };
        let mut buf = vec![0u8; FRAME_HEADER_LEN + len as usize];
        reader
            .read_exact_at(&mut buf, offset)
            .map_err(io_err(&path, "read"))?;
        let h = FrameHeader::decode(&buf);
        let payload = &buf[FRAME_HEADER_LEN..];
        if h.id != id.0 || h.len != len || record_crc(h.id, h.items, payload) != h.crc {
            return Err(QueueError::Corrupt { path, id, offset });
        }
        Ok(Bytes::from(buf).slice(FRAME_HEADER_LEN..))
    }

    /// The records were delivered (or given up on): they do not come back after
    /// a restart, except that acks are persisted without fsync, so a crash may
    /// redeliver some. Unknown or already acknowledged ids are ignored. Fully
    /// acknowledged segments are deleted.
    pub fn ack(&self, ids: &[RecordId]) {
        let ids: Vec<u64> = ids.iter().map(|i| i.0).collect();
        self.inner.shared.lock().ack(&ids);
    }

    pub fn stats(&self) -> QueueStats {
        let st = self.inner.shared.lock();
        QueueStats {
            pending_records: st.pending_records,
            pending_bytes: st.pending_bytes,
            disk_bytes: st.disk_bytes(),
            segments: st.segments.len(),
            max_bytes: self.inner.shared.max_bytes,
            fsyncs: self.inner.shared.syncs.load(Ordering::Relaxed),
        }
    }

    /// Blocking. Writes and syncs every append already accepted, stops the
    /// writer, and flushes the ack state (synced). Further appends fail with
    /// [`QueueError::Closed`]; acks after this are not persisted; reads still
    /// work. Releases the directory lock. Idempotent.
    pub fn close(&self) {
        close(&self.inner.shared, &self.inner.writer);
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.inner.shared.dir
    }
}

fn close(shared: &Shared, writer: &Mutex<Option<JoinHandle<()>>>) {
    {
        let mut st = shared.lock();
        if let Some(sender) = st.sender.take() {
            let _ = sender.send(Msg::Close);
        }
    }
    let handle = writer.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(handle) = handle else { return };
    if handle.join().is_err() {
        tracing::error!(dir = %shared.dir.display(), "disk queue: the writer thread panicked");
    }
    let mut st = shared.lock();
    st.compact(true);
    st.ack_log = None;
    st.lock = None;
}
